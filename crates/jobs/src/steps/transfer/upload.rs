//! The upload: the archive's stream from a volume container (or a relay) into a streamed
//! multipart upload, hashed and optionally sealed on the way, with progress and deadlines.

use crate::agent::protocol::{AgentLine, AgentTask};
use crate::archive::PackStats;
use crate::seal::Sealed;
use crate::steps::transfer::container::Channel;
use crate::steps::transfer::container::MOUNT;
use crate::steps::transfer::container::PART;
use crate::steps::transfer::container::PARTS_IN_FLIGHT;
use crate::steps::transfer::container::VolumeContainer;
use crate::steps::transfer::fanout::Fanout;
use crate::storage::Storage;
use crate::tail::Tail;
use bytes::Bytes;
use dockhand_engine::{ExecSpec, StreamKind};
use object_store::path::Path as Key;
use sha2::Digest;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Where an archive goes: a target, and the object's key on it.
pub(crate) struct Destination<'a> {
    pub(crate) storage: &'a Storage,
    pub(crate) key: Key,
}

/// What an upload wrote to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Bytes of the object.
    pub(crate) bytes: u64,
    /// Its SHA-256, hex.
    pub(crate) sha256: String,
}

/// What an upload archived, and what each destination stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploaded {
    /// What the agent archived.
    pub(crate) stats: PackStats,
    /// How the archive left its container: `channel` or `exec`.
    pub(crate) via: &'static str,
    /// Per destination, in their order: the object, or why it was not completed (the
    /// others keep theirs).
    pub(crate) stored: Vec<Result<Stored, String>>,
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
pub(crate) struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    pub(crate) fn push(&mut self, data: &[u8], mut each: impl FnMut(AgentLine)) {
        self.pending.extend_from_slice(data);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(parsed) = AgentLine::parse(&String::from_utf8_lossy(&line)) {
                each(parsed);
            }
        }
    }
}

/// When a transfer must be over, and what to say when it is not.
#[derive(Debug, Clone)]
pub(crate) struct Deadline {
    pub(crate) at: tokio::time::Instant,
    pub(crate) message: String,
}

impl Deadline {
    /// `limit` from now.
    pub(crate) fn after(limit: Duration, message: String) -> Self {
        Self { at: tokio::time::Instant::now() + limit, message }
    }
}

/// What the copy loop waits on next.
pub(crate) enum Arrived {
    Exec(Option<Result<dockhand_engine::Chunk, dockhand_engine::Error>>),
    Connected(std::io::Result<tokio::net::UnixStream>),
    Read(std::io::Result<usize>),
}

/// Reads from the channel's connection, or never without one.
pub(crate) async fn read_some(
    from: Option<&mut tokio::net::UnixStream>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    match from {
        Some(stream) => stream.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Copies the archive `exec` produces into `out`: its stdout, or, with a `channel`, the
/// one connection the archiver makes to it. The exec's other output goes to `on_other`,
/// and progress is reported every second. Ends with the output, or with an error on
/// cancellation, at the deadline, or when `out` refuses (`refused` says why). The bytes,
/// and their SHA-256 when `hash` asks for it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn copy_archive<W: tokio::io::AsyncWrite + Unpin>(
    exec: &mut dockhand_engine::ExecOutput,
    channel: Option<&Channel>,
    out: &mut W,
    (cancel, deadline): (&CancellationToken, &Deadline),
    hash: bool,
    refused: impl Fn(std::io::Error) -> String,
    mut on_other: impl FnMut(&[u8]),
    progress: impl Fn(u64, Duration),
) -> Result<(u64, Option<String>), String> {
    let (mut hasher, mut bytes) = (hash.then(sha2::Sha256::new), 0u64);
    let started = Instant::now();
    let mut last = Instant::now();
    let (mut exec_open, mut listening) = (true, channel.is_some());
    let mut connection: Option<tokio::net::UnixStream> = None;
    let mut buf = vec![0u8; if channel.is_some() { 1 << 20 } else { 0 }];
    while exec_open || listening || connection.is_some() {
        let arrived = tokio::select! {
            chunk = exec.next(), if exec_open => Arrived::Exec(chunk),
            accepted = Channel::accept(channel), if listening => Arrived::Connected(accepted),
            read = read_some(connection.as_mut(), &mut buf) => Arrived::Read(read),
            () = cancel.cancelled() => return Err("cancelled".to_owned()),
            () = tokio::time::sleep_until(deadline.at) => return Err(deadline.message.clone()),
        };
        let held: Bytes;
        let data: &[u8] = match arrived {
            Arrived::Exec(None) => {
                exec_open = false;
                // An archiver that exited 0 had connected (it connects first): its
                // connection may still be waiting. Any other exit is the caller's to report.
                if listening && !matches!(exec.wait_exit().await, Ok(0)) {
                    listening = false;
                }
                continue;
            }
            Arrived::Exec(Some(chunk)) => {
                let chunk = chunk.map_err(|e| format!("reading the archive: {e}"))?;
                if chunk.stream != StreamKind::Stdout {
                    on_other(&chunk.data);
                    continue;
                }
                held = chunk.data;
                &held
            }
            Arrived::Connected(accepted) => {
                connection = Some(accepted.map_err(|e| format!("the archiver's channel: {e}"))?);
                listening = false;
                continue;
            }
            Arrived::Read(Ok(0)) => {
                connection = None;
                continue;
            }
            Arrived::Read(Ok(n)) => &buf[..n],
            Arrived::Read(Err(e)) => return Err(format!("reading the archive from its channel: {e}")),
        };
        if let Some(h) = hasher.as_mut() {
            h.update(data);
        }
        bytes += data.len() as u64;
        // A side that stops reading is held to the same deadline.
        tokio::select! {
            written = out.write_all(data) => written.map_err(&refused)?,
            () = cancel.cancelled() => return Err("cancelled".to_owned()),
            () = tokio::time::sleep_until(deadline.at) => return Err(deadline.message.clone()),
        }
        if last.elapsed() >= Duration::from_secs(1) {
            progress(bytes, started.elapsed());
            last = Instant::now();
        }
    }
    progress(bytes, started.elapsed());
    Ok((bytes, hasher.map(|h| hex::encode(h.finalize()))))
}

/// Archives the container's volume into each destination, as multipart uploads that appear
/// only when complete; any failure of the archive, cancellation or the deadline aborts them.
pub(crate) async fn upload(
    container: &VolumeContainer,
    to: &[Destination<'_>],
    level: i32,
    cancel: &CancellationToken,
    deadline: &Deadline,
    progress: Progress<'_>,
) -> Result<Uploaded, String> {
    let task = AgentTask::Pack { dir: MOUNT.into(), level };
    let no_helper = CancellationToken::new();
    let gate: Gate<'_> = Box::pin(async { Ok(None) });
    upload_from(container, &task, to, (cancel, deadline), progress, gate, &no_helper).await
}

/// What must say yes before an upload is completed: the remote archiver's report (its
/// stats), or nothing when the exec's own report says it.
pub(crate) type Gate<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<PackStats>, String>> + Send + 'a>>;

/// Streams what `task` writes on stdout in the container into every destination at once;
/// the objects are completed only when the exec reported a whole archive (or exited
/// cleanly, for a relay) and `gate` said yes. A destination that fails is aborted and the
/// others go on; the upload fails when none is left.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn upload_from(
    container: &VolumeContainer,
    task: &AgentTask,
    to: &[Destination<'_>],
    (cancel, deadline): (&CancellationToken, &Deadline),
    progress: Progress<'_>,
    gate: Gate<'_>,
    stop_gate: &CancellationToken,
) -> Result<Uploaded, String> {
    let mut writers = Vec::new();
    for Destination { storage, key } in to {
        let recipients = crate::seal::recipients(&storage.settings().recipients)
            .map_err(|e| format!("{}: encryption.recipients: {e}", storage.settings()))?;
        let writer =
            object_store::buffered::BufWriter::with_capacity(storage.store().clone(), key.clone(), PART)
                .with_max_concurrency(PARTS_IN_FLIGHT);
        writers.push(Sealed::new(writer, &recipients).map_err(|e| storage_error(storage, key, &e))?);
    }
    let mut fan = Fanout::new(writers);
    let argv = crate::agent::protocol::exec_argv(task, container.channel.is_some());
    let mut exec = container
        .client
        .exec(&container.id, &ExecSpec::new(argv))
        .await
        .map_err(|e| container.exec_failed("the archiver", &e))?;
    let mut report = Tail::new(64 * 1024);
    let mut lines = Lines::default();
    // The archiver's size and progress lines, read as they come, for the ETA.
    // Atomics, not cells: the job's future may move between threads (the server's runtime).
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let (total, read) = (AtomicU64::new(u64::MAX), AtomicU64::new(0));
    let show = |moved: u64, elapsed: Duration| {
        let known = Some(total.load(Relaxed)).filter(|t| *t != u64::MAX);
        let read = known.map(|t| (read.load(Relaxed), t));
        progress(Transfer { moved, read, elapsed, ..Transfer::default() });
    };
    let copied = copy_archive(
        &mut exec,
        container.channel.as_ref(),
        &mut fan,
        (cancel, deadline),
        false,
        |e| e.to_string(),
        |data| {
            report.push(data);
            lines.push(data, |line| match line {
                AgentLine::Size { bytes } => total.store(bytes, Relaxed),
                AgentLine::Read { bytes } => read.store(bytes, Relaxed),
                _ => {}
            });
        },
        show,
    )
    .await;
    let finished = match copied {
        Ok(_) => check_agent(exec.exit_code().await, &report, "the archiver"),
        Err(e) => Err(e),
    };
    // What the copy accepted last reaches every writer still standing; after a failure
    // (cancelled, out of time) nothing more is written: every object is aborted below.
    let settled = if finished.is_ok() { fan.settle().await } else { Ok(()) };
    let mut parts = fan.into_parts();
    // Each one's last encrypted chunk is written out; no object is complete yet.
    if finished.is_ok() && settled.is_ok() {
        for (writer, failed) in parts.iter_mut().filter(|(_, failed)| failed.is_none()) {
            if let Err(e) = writer.finish().await {
                *failed = Some(e);
            }
        }
    }
    let finished =
        if parts.iter().all(|(_, failed)| failed.is_some()) { Err(refusals(to, &parts)) } else { finished };
    // The gate is awaited on every path (a remote helper is cleaned up by it), told to stop
    // first when this side failed.
    if finished.is_err() {
        stop_gate.cancel();
    }
    let gated = gate.await;
    let stats = match (finished, gated) {
        (Ok(AgentLine::Packed { stats }), Ok(_)) => Ok(stats),
        (Ok(AgentLine::Done), Ok(Some(stats))) => Ok(stats),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(_), Ok(_)) => Err("the archiver did not report what it archived".to_owned()),
    };
    let stats = match stats {
        Ok(stats) => stats,
        Err(e) => {
            for (writer, _) in &mut parts {
                let _ = writer.inner_mut().abort().await;
            }
            return Err(e);
        }
    };
    let mut stored = Vec::new();
    for ((mut writer, failed), Destination { storage, key }) in parts.into_iter().zip(to) {
        let completed = match failed {
            Some(e) => Err(e),
            None => writer.inner_mut().shutdown().await,
        };
        stored.push(match completed {
            Ok(()) => {
                let (bytes, sha256) = writer.written();
                Ok(Stored { bytes, sha256 })
            }
            Err(e) => {
                let _ = writer.inner_mut().abort().await;
                Err(storage_error(storage, key, &e))
            }
        });
    }
    let via = if container.channel.is_some() { "channel" } else { "exec" };
    Ok(Uploaded { stats, via, stored })
}

/// Why no destination took the archive: the one's error, or each one's.
fn refusals<W>(to: &[Destination<'_>], parts: &[(W, Option<std::io::Error>)]) -> String {
    let each: Vec<String> = parts
        .iter()
        .zip(to)
        .filter_map(|((_, failed), d)| failed.as_ref().map(|e| storage_error(d.storage, &d.key, e)))
        .collect();
    match each.as_slice() {
        [one] => one.clone(),
        _ => format!("every target refused the archive: {}", each.join("; ")),
    }
}

/// The agent's report line (on stderr), given its exit code: failures carry its last words.
pub(crate) fn check_agent(
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
    let lines: Vec<AgentLine> = text.lines().filter_map(AgentLine::parse).collect();
    lines
        .iter()
        .rev()
        .find(|l| matches!(l, AgentLine::Packed { .. } | AgentLine::Unpacked { .. }))
        .or_else(|| lines.last())
        .cloned()
        .ok_or_else(|| format!("{what} ended without its report: {}", text.trim()))
}

pub(crate) fn storage_error(storage: &Storage, key: &Key, e: &std::io::Error) -> String {
    // object_store errors come wrapped in io::Error by the buffered writer.
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<object_store::Error>());
    match inner {
        Some(os) => storage.error(format!("upload {key}"), os).to_string(),
        None => format!("{}: upload {key}: {e}", storage.settings()),
    }
}
