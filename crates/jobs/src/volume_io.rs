//! Moving a volume's bytes between a node and a storage target.
//!
//! On the node dockhand is connected to, no helper service is needed: a plain container of
//! the helper image mounts the volume (and nothing else: no network, no engine socket) and
//! holds still; dockhand execs `dockhand agent pack` in it and reads the archive from the
//! exec's stdout, or execs `dockhand agent unpack` and writes the archive to its stdin. The
//! bytes go through dockhand's own process, so a storage credential never leaves it.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dockhand_engine::{Client, ExecSpec, NewContainer, StreamKind};
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentLine, AgentTask};
use crate::archive::{PackStats, UnpackStats};
use crate::helper::{HELPER_ACTION_LABEL, HELPER_LABEL, HELPER_TARGET_LABEL};
use crate::storage::Storage;
use crate::tail::Tail;

/// Where a volume is mounted in its container.
const MOUNT: &str = "/volume";
/// Part size of multipart uploads, and how many parts are in flight: memory stays near
/// their product whatever the volume's size.
const PART: usize = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 2;

/// A plain container on the connected node that mounts one volume and holds still.
pub(crate) struct VolumeContainer {
    client: Client,
    id: String,
    image: String,
}

/// Whose a volume container is: its job, the job's lock target and action (its labels, so
/// that a leftover is found like a helper service).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    pub(crate) job: &'a str,
    pub(crate) target: &'a str,
    pub(crate) action: &'a str,
}

impl VolumeContainer {
    /// Starts it: the helper image, `dockhand agent hold` for at most `hold`, the volume at
    /// `/volume` (read-only for a backup), labelled as a helper of its owner; removed by the
    /// engine when it stops.
    pub(crate) async fn start(
        client: &Client,
        image: &str,
        owner: Owner<'_>,
        volume: &str,
        read_only: bool,
        hold: Duration,
    ) -> Result<Self, String> {
        let Owner { job, target, action } = owner;
        let name = format!("dh-volume-{}-{}", short(job), short(&hex::encode(sha2::Sha256::digest(volume))));
        let spec =
            NewContainer::new(image, AgentTask::Hold { seconds: hold.as_secs().max(60) }.to_args(None))
                .with_label(HELPER_LABEL, job)
                .with_label(HELPER_TARGET_LABEL, target)
                .with_label(HELPER_ACTION_LABEL, action)
                .with_volume(volume, MOUNT, read_only)
                .auto_remove();
        match client.run_container(&name, &spec).await {
            Ok(id) => Ok(Self { client: client.clone(), id, image: image.to_owned() }),
            Err(e) if e.is_not_found() => Err(format!(
                "the helper image {image} is not on this node: pull it there, or name another with --helper-image ({e})"
            )),
            Err(e) => Err(format!("cannot start a container for volume {volume}: {e}")),
        }
    }

    /// Why `what` could not start in it: a container that stopped at once ran an image
    /// whose dockhand does not know `agent hold`.
    fn exec_failed(&self, what: &str, e: &dockhand_engine::Error) -> String {
        if e.to_string().contains("is not running") {
            format!(
                "cannot start {what}: the volume container of image {} stopped at once; its dockhand must be this \
                 version's (`dockhand agent hold`): name the right image with --helper-image ({e})",
                self.image
            )
        } else {
            format!("cannot start {what}: {e}")
        }
    }

    /// Removes it (whatever happened).
    pub(crate) async fn remove(self) {
        if let Err(e) = self.client.remove_container(&self.id).await {
            tracing::warn!(container = %self.id, error = %e, "cannot remove a volume container; it stops on its own");
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// What an upload wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploaded {
    /// Bytes of the object.
    pub(crate) bytes: u64,
    /// Its SHA-256, hex.
    pub(crate) sha256: String,
    /// What the agent archived.
    pub(crate) stats: PackStats,
}

/// Where a transfer is.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Transfer {
    /// Bytes sent to (or read from) the target.
    pub(crate) moved: u64,
    /// Of how many, when known (a restore: the object's size).
    pub(crate) moved_total: Option<u64>,
    /// Bytes of file content the archiver has read, and of how many (a backup).
    pub(crate) read: Option<(u64, u64)>,
    /// Since the start.
    pub(crate) elapsed: Duration,
}

impl Transfer {
    /// `read 120.0 of 512.0 MiB, sent 60.1 MiB at 80.0 MiB/s, ETA 5s`.
    pub(crate) fn describe(&self) -> String {
        let mib = |b: u64| b as f64 / 1_048_576.0;
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let (done, total) = match (self.read, self.moved_total) {
            (Some((read, total)), _) => (read, Some(total)),
            (None, total) => (self.moved, total),
        };
        let mut text = match self.read {
            Some((read, total)) => {
                format!("read {:.1} of {:.1} MiB, sent {:.1} MiB", mib(read), mib(total), mib(self.moved))
            }
            None => match self.moved_total {
                Some(total) => format!("{:.1} of {:.1} MiB", mib(self.moved), mib(total)),
                None => format!("{:.1} MiB", mib(self.moved)),
            },
        };
        let rate = done as f64 / secs;
        text.push_str(&format!(" at {:.1} MiB/s", rate / 1_048_576.0));
        if let Some(total) = total.filter(|t| *t > done && rate > 0.0) {
            let left = Duration::from_secs_f64((total - done) as f64 / rate);
            text.push_str(&format!(
                ", ETA {}",
                dockhand_policy::format_go_duration(Duration::from_secs(left.as_secs()))
            ));
        }
        text
    }
}

/// Progress of one transfer, for the sink.
pub(crate) type Progress<'a> = &'a (dyn Fn(Transfer) + Sync);

/// The agent's report lines on stderr, split as they arrive.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    fn push(&mut self, data: &[u8], mut each: impl FnMut(AgentLine)) {
        self.pending.extend_from_slice(data);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(parsed) = AgentLine::parse(&String::from_utf8_lossy(&line)) {
                each(parsed);
            }
        }
    }
}

/// Archives the container's volume into `key` on `storage`, as a multipart upload that
/// appears only when complete; any failure or cancellation aborts it.
pub(crate) async fn upload(
    container: &VolumeContainer,
    storage: &Storage,
    key: &Key,
    level: i32,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Result<Uploaded, String> {
    let argv = agent_argv(&AgentTask::Pack { dir: MOUNT.into(), level });
    let mut exec = container
        .client
        .exec(&container.id, &ExecSpec::new(argv))
        .await
        .map_err(|e| container.exec_failed("the archiver", &e))?;
    let mut writer =
        object_store::buffered::BufWriter::with_capacity(storage.store().clone(), key.clone(), PART)
            .with_max_concurrency(PARTS_IN_FLIGHT);
    let mut hasher = sha2::Sha256::new();
    let mut bytes = 0u64;
    let mut report = Tail::new(64 * 1024);
    let mut lines = Lines::default();
    let (mut total, mut read) = (None, 0u64);
    let started = Instant::now();
    let mut last = Instant::now();
    let copied: Result<(), String> = async {
        loop {
            let chunk = tokio::select! {
                chunk = exec.next() => chunk,
                () = cancel.cancelled() => return Err("cancelled".to_owned()),
            };
            let Some(chunk) = chunk else { return Ok(()) };
            let chunk = chunk.map_err(|e| format!("reading the archive from the node: {e}"))?;
            match chunk.stream {
                StreamKind::Stdout => {
                    hasher.update(&chunk.data);
                    bytes += chunk.data.len() as u64;
                    writer.write_all(&chunk.data).await.map_err(|e| storage_error(storage, key, &e))?;
                    if last.elapsed() >= Duration::from_secs(1) {
                        let read = total.map(|t| (read, t));
                        progress(Transfer {
                            moved: bytes,
                            read,
                            elapsed: started.elapsed(),
                            ..Transfer::default()
                        });
                        last = Instant::now();
                    }
                }
                _ => {
                    report.push(&chunk.data);
                    lines.push(&chunk.data, |line| match line {
                        AgentLine::Size { bytes } => total = Some(bytes),
                        AgentLine::Read { bytes } => read = bytes,
                        _ => {}
                    });
                }
            }
        }
    }
    .await;
    let finished = match copied {
        Ok(()) => check_agent(exec.exit_code().await, &report, "the archiver"),
        Err(e) => Err(e),
    };
    let stats = match finished {
        Ok(AgentLine::Packed { stats }) => stats,
        Ok(_) => {
            let _ = writer.abort().await;
            return Err("the archiver did not report what it archived".to_owned());
        }
        Err(e) => {
            let _ = writer.abort().await;
            return Err(e);
        }
    };
    if let Err(e) = writer.shutdown().await {
        let _ = writer.abort().await;
        return Err(storage_error(storage, key, &e));
    }
    let read = total.map(|t| (t, t));
    progress(Transfer { moved: bytes, read, elapsed: started.elapsed(), ..Transfer::default() });
    Ok(Uploaded { bytes, sha256: hex::encode(hasher.finalize()), stats })
}

/// The agent's report line (on stderr), given its exit code: failures carry its last words.
fn check_agent(
    exit: Result<i64, dockhand_engine::Error>,
    report: &Tail,
    what: &str,
) -> Result<AgentLine, String> {
    let text = report.text();
    let code = exit.map_err(|e| format!("{what}: {e}"))?;
    if code != 0 {
        let said = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no output");
        return Err(format!("{what} exited with code {code}: {said}"));
    }
    text.lines()
        .rev()
        .find_map(AgentLine::parse)
        .ok_or_else(|| format!("{what} ended without its report: {}", text.trim()))
}

fn storage_error(storage: &Storage, key: &Key, e: &std::io::Error) -> String {
    // object_store errors come wrapped in io::Error by the buffered writer.
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<object_store::Error>());
    match inner {
        Some(os) => storage.error(format!("upload {key}"), os).to_string(),
        None => format!("{}: upload {key}: {e}", storage.settings()),
    }
}

fn agent_argv(task: &AgentTask) -> Vec<String> {
    // `dockhand` on the image's PATH: an exec does not go through the entrypoint.
    let mut argv = vec!["dockhand".to_owned()];
    argv.extend(task.to_args(None));
    argv
}

/// Reads `key` whole, hashing it and checking every zstd frame and tar entry, writing
/// nothing: the check a restore makes before it touches a volume.
pub(crate) async fn verify_object(storage: &Storage, key: &Key) -> Result<(String, UnpackStats), String> {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let checker = tokio::task::spawn_blocking(move || crate::archive::verify(ChannelReader::new(rx)));
    let hashed = async {
        let mut stream = open_object(storage, key).await?;
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| storage.error(format!("read {key}"), &e).to_string())?;
            hasher.update(&chunk);
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
        Ok::<_, String>(hex::encode(hasher.finalize()))
    }
    .await;
    drop(tx);
    let checked = checker.await.map_err(|e| format!("the archive check stopped: {e}"))?;
    let sha256 = hashed?;
    let stats = checked.map_err(|e| e.to_string())?;
    Ok((sha256, stats))
}

/// The object's bytes as they arrive.
async fn open_object(
    storage: &Storage,
    key: &Key,
) -> Result<futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>, String> {
    let got =
        storage.store().get(key).await.map_err(|e| storage.error(format!("read {key}"), &e).to_string())?;
    Ok(got.into_stream())
}

/// Writes the archive at `key` into the container's volume, replacing its contents (the
/// agent extracts beside the old contents and swaps only once all is out).
pub(crate) async fn download(
    container: &VolumeContainer,
    storage: &Storage,
    key: &Key,
    size: u64,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Result<(String, UnpackStats), String> {
    let argv = agent_argv(&AgentTask::Unpack { dir: MOUNT.into() });
    let mut exec = container
        .client
        .exec(&container.id, &ExecSpec::new(argv).with_stdin(true))
        .await
        .map_err(|e| container.exec_failed("the extractor", &e))?;
    let mut stdin = exec.take_stdin().ok_or_else(|| "the extractor's stdin is not attached".to_owned())?;
    let started = Instant::now();
    let mut last = Instant::now();
    let mut sent = 0u64;
    // The extractor's output is read while its input is written, so neither side blocks.
    let reader = async {
        let mut report = Tail::new(64 * 1024);
        while let Some(chunk) = exec.next().await {
            match chunk {
                Ok(c) if c.stream != StreamKind::Stdin => report.push(&c.data),
                Ok(_) => {}
                Err(e) => return (Err(e), report),
            }
        }
        let code = exec.exit_code().await;
        (code, report)
    };
    let writer = async {
        use futures_util::StreamExt;
        let result = async {
            let mut stream = open_object(storage, key).await?;
            let mut hasher = sha2::Sha256::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| storage.error(format!("read {key}"), &e).to_string())?;
                hasher.update(&chunk);
                sent += chunk.len() as u64;
                if last.elapsed() >= Duration::from_secs(1) {
                    let elapsed = started.elapsed();
                    progress(Transfer {
                        moved: sent,
                        moved_total: Some(size),
                        elapsed,
                        ..Transfer::default()
                    });
                    last = Instant::now();
                }
                if stdin.write_all(&chunk).await.is_err() {
                    // The extractor stopped reading: its exit code and words say why.
                    break;
                }
            }
            Ok::<_, String>(hex::encode(hasher.finalize()))
        }
        .await;
        let _ = stdin.shutdown().await;
        result
    };
    let ((code, report), written) = tokio::select! {
        both = async { tokio::join!(reader, writer) } => both,
        () = cancel.cancelled() => return Err("cancelled".to_owned()),
    };
    let sha256 = written?;
    match check_agent(code, &report, "the extractor")? {
        AgentLine::Unpacked { stats } => {
            progress(Transfer {
                moved: sent,
                moved_total: Some(size),
                elapsed: started.elapsed(),
                ..Transfer::default()
            });
            Ok((sha256, stats))
        }
        _ => Err("the extractor did not report what it restored".to_owned()),
    }
}

/// A blocking reader over a channel of byte chunks.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Self { rx, current: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// `SystemTime` as the key's UTC timestamp: `20261128T083939Z`.
pub fn key_timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string().replace(['-', ':'], "")
}

/// A key timestamp back as a time.
pub fn parse_key_timestamp(ts: &str) -> Option<SystemTime> {
    let b = ts.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let rfc =
        format!("{}-{}-{}T{}:{}:{}Z", &ts[0..4], &ts[4..6], &ts[6..8], &ts[9..11], &ts[11..13], &ts[13..15]);
    humantime::parse_rfc3339(&rfc).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_sort() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_855_083);
        let ts = key_timestamp(t);
        assert_eq!(ts, "20261128T083803Z");
        assert_eq!(parse_key_timestamp(&ts), Some(t));
        assert!(key_timestamp(t) < key_timestamp(t + Duration::from_secs(1)));
        for bad in ["", "2026", "20261128 083803Z", "20261128T0838030", "20261399T083803Z"] {
            assert_eq!(parse_key_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn progress_says_bytes_rate_and_eta() {
        let mib = 1_048_576;
        let backup = Transfer {
            moved: 50 * mib,
            read: Some((100 * mib, 400 * mib)),
            elapsed: Duration::from_secs(10),
            ..Transfer::default()
        };
        assert_eq!(backup.describe(), "read 100.0 of 400.0 MiB, sent 50.0 MiB at 10.0 MiB/s, ETA 30s");
        let restore = Transfer {
            moved: 10 * mib,
            moved_total: Some(10 * mib),
            elapsed: Duration::from_secs(2),
            ..Transfer::default()
        };
        assert_eq!(restore.describe(), "10.0 of 10.0 MiB at 5.0 MiB/s");
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        lines.push(b"{\"agent\":\"size\",\"bytes\":7}\n{\"agent\":\"re", |l| seen.push(l));
        lines.push(b"ad\",\"bytes\":3}\nnoise\n", |l| seen.push(l));
        assert_eq!(seen, [AgentLine::Size { bytes: 7 }, AgentLine::Read { bytes: 3 }]);
    }

    #[test]
    fn the_channel_reader_reads_across_chunks() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Bytes::from_static(b"hel")).unwrap();
        tx.try_send(Bytes::from_static(b"lo")).unwrap();
        drop(tx);
        let mut out = String::new();
        ChannelReader::new(rx).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello");
    }
}
