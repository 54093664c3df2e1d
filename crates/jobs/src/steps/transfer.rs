//! Moving a volume's bytes between a node and a storage target.
//!
//! On the node dockhand is connected to, no helper service is needed: a plain container of
//! the helper image mounts the volume (and nothing else: no network, no engine socket) and
//! holds still; dockhand execs `dockhand agent pack` in it and reads the archive from the
//! exec's stdout, or execs `dockhand agent unpack` and writes the archive to its stdin. The
//! bytes go through dockhand's own process, so a storage credential never leaves it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dockhand_engine::{Client, ExecSpec, NewContainer, StreamKind};
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use sha2::Digest;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::agent::protocol::{AgentLine, AgentTask};
use crate::archive::{PackStats, UnpackStats};
use crate::helper::{HELPER_ACTION_LABEL, HELPER_LABEL, HELPER_TARGET_LABEL};
use crate::seal::{Identity, Sealed};
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
    /// Where its archiver writes, when not to the exec's stdout.
    channel: Option<Channel>,
}

/// A unix socket in a private directory on dockhand's own host, bind-mounted into a
/// volume container: the archiver writes to it (`--out`) instead of the exec's stdout,
/// which crosses containerd's shim and dockerd and, on a 2-core machine, halves the
/// throughput. Only when dockhand and the engine share a filesystem: a unix-socket
/// endpoint, a bind that the engine accepted, and a probe that got through. Anything else
/// falls back to the exec's stdout.
struct Channel {
    dir: tempfile::TempDir,
    listener: tokio::net::UnixListener,
}

impl Channel {
    /// A fresh, private (0700) directory with the socket listening in it.
    fn open() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("dockhand-channel-").tempdir()?;
        let listener =
            tokio::net::UnixListener::bind(dir.path().join(crate::agent::protocol::CHANNEL_SOCKET))?;
        Ok(Self { dir, listener })
    }

    /// The next connection, or never without a channel.
    async fn accept(channel: Option<&Self>) -> std::io::Result<tokio::net::UnixStream> {
        match channel {
            Some(c) => c.listener.accept().await.map(|(stream, _)| stream),
            None => std::future::pending().await,
        }
    }
}

/// What a volume container gets: the volume (read-only or not), or, for a relay, the
/// job's network.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attach<'a> {
    Volume(&'a str, bool),
    Network(&'a str),
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
        attach: Attach<'_>,
        hold: Duration,
    ) -> Result<Self, String> {
        let Owner { job, target, action } = owner;
        let (what, volume) = match attach {
            Attach::Volume(volume, _) => ("volume", volume),
            Attach::Network(network) => ("relay", network),
        };
        let name = format!("dh-{what}-{}-{}", short(job), short(&hex::encode(sha2::Sha256::digest(volume))));
        let mut spec =
            NewContainer::new(image, AgentTask::Hold { seconds: hold.as_secs().max(60) }.to_args(None))
                .with_label(HELPER_LABEL, job)
                .with_label(HELPER_TARGET_LABEL, target)
                .with_label(HELPER_ACTION_LABEL, action)
                .auto_remove();
        // R3-18: hardened as a helper is, keeping what its volume work needs.
        spec = match attach {
            Attach::Volume(volume, read_only) => {
                spec.with_volume(volume, MOUNT, read_only).hardened(if read_only {
                    crate::helper::VOLUME_READ_CAPS
                } else {
                    crate::helper::VOLUME_WRITE_CAPS
                })
            }
            Attach::Network(network) => spec.with_network(network).hardened(&[]),
        };
        // The channel, for an archiver (a read-only volume, or a relay), where the engine
        // is local and takes the bind.
        let produces = matches!(attach, Attach::Volume(_, true) | Attach::Network(_));
        let channel = if produces && client.endpoint().socket_path().is_some() {
            Channel::open()
                .inspect_err(
                    |e| tracing::debug!(error = %e, "no channel: the exec's stdout carries the archive"),
                )
                .ok()
        } else {
            None
        };
        let started = match &channel {
            Some(c) => {
                let bound = spec.clone().with_bind(
                    c.dir.path().display().to_string(),
                    crate::agent::protocol::CHANNEL_MOUNT,
                    false,
                );
                match client.run_container(&name, &bound).await {
                    Ok(id) => Ok((id, true)),
                    Err(e) => {
                        tracing::debug!(error = %e, "the engine does not share dockhand's filesystem: no channel");
                        client.run_container(&name, &spec).await.map(|id| (id, false))
                    }
                }
            }
            None => client.run_container(&name, &spec).await.map(|id| (id, false)),
        };
        match started {
            Ok((id, bound)) => {
                let mut container =
                    Self { client: client.clone(), id, image: image.to_owned(), channel: None };
                if bound {
                    container.channel = container.probe(channel).await;
                }
                Ok(container)
            }
            Err(e) if e.is_not_found() => Err(format!(
                "the helper image {image} is not on this node: pull it there, or name another with --helper-image ({e})"
            )),
            Err(e) => Err(format!("cannot start a container for volume {volume}: {e}")),
        }
    }

    /// The channel, if an agent in the container can reach it: one that holds for no time
    /// connects to it and exits 0.
    async fn probe(&self, channel: Option<Channel>) -> Option<Channel> {
        let channel = channel?;
        let argv = crate::agent::protocol::exec_argv(&AgentTask::Hold { seconds: 0 }, true);
        let tried = async {
            let mut exec =
                self.client.exec(&self.id, &ExecSpec::new(argv)).await.map_err(|e| e.to_string())?;
            // It connects before it exits: once it has, the connection is waiting.
            match exec.wait_exit().await.map_err(|e| e.to_string())? {
                0 => {}
                code => return Err(format!("the probe exited with code {code}")),
            }
            match tokio::time::timeout(Duration::from_secs(5), channel.listener.accept()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the probe exited without connecting".to_owned()),
            }
        };
        match tried.await {
            Ok(()) => Some(channel),
            Err(e) => {
                tracing::debug!(container = %self.id, error = %e, "the channel is out of reach: the exec's stdout carries the archive");
                None
            }
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
    /// How the archive left its container: `channel` or `exec`.
    pub(crate) via: &'static str,
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
enum Arrived {
    Exec(Option<Result<dockhand_engine::Chunk, dockhand_engine::Error>>),
    Connected(std::io::Result<tokio::net::UnixStream>),
    Read(std::io::Result<usize>),
}

/// Reads from the channel's connection, or never without one.
async fn read_some(from: Option<&mut tokio::net::UnixStream>, buf: &mut [u8]) -> std::io::Result<usize> {
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
async fn copy_archive<W: tokio::io::AsyncWrite + Unpin>(
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

/// Archives the container's volume into `key` on `storage`, as a multipart upload that
/// appears only when complete; any failure, cancellation or the deadline aborts it.
pub(crate) async fn upload(
    container: &VolumeContainer,
    storage: &Storage,
    key: &Key,
    level: i32,
    cancel: &CancellationToken,
    deadline: &Deadline,
    progress: Progress<'_>,
) -> Result<Uploaded, String> {
    let task = AgentTask::Pack { dir: MOUNT.into(), level };
    let no_helper = CancellationToken::new();
    let gate: Gate<'_> = Box::pin(async { Ok(None) });
    upload_from(container, &task, storage, key, (cancel, deadline), progress, gate, &no_helper).await
}

/// What must say yes before an upload is completed: the remote archiver's report (its
/// stats), or nothing when the exec's own report says it.
pub(crate) type Gate<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<PackStats>, String>> + Send + 'a>>;

/// Streams what `task` writes on stdout in the container into `key`; the object is
/// completed only when the exec reported a whole archive (or exited cleanly, for a relay)
/// and `gate` said yes.
#[allow(clippy::too_many_arguments)]
async fn upload_from(
    container: &VolumeContainer,
    task: &AgentTask,
    storage: &Storage,
    key: &Key,
    (cancel, deadline): (&CancellationToken, &Deadline),
    progress: Progress<'_>,
    gate: Gate<'_>,
    stop_gate: &CancellationToken,
) -> Result<Uploaded, String> {
    let argv = crate::agent::protocol::exec_argv(task, container.channel.is_some());
    let mut exec = container
        .client
        .exec(&container.id, &ExecSpec::new(argv))
        .await
        .map_err(|e| container.exec_failed("the archiver", &e))?;
    let recipients = crate::seal::recipients(&storage.settings().recipients)
        .map_err(|e| format!("{}: encryption.recipients: {e}", storage.settings()))?;
    let writer = object_store::buffered::BufWriter::with_capacity(storage.store().clone(), key.clone(), PART)
        .with_max_concurrency(PARTS_IN_FLIGHT);
    let mut writer = Sealed::new(writer, &recipients).map_err(|e| storage_error(storage, key, &e))?;
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
        &mut writer,
        (cancel, deadline),
        false,
        |e| storage_error(storage, key, &e),
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
    // The last encrypted chunk is written out; the object is still not complete.
    let finished = match finished {
        Ok(line) => writer.finish().await.map(|()| line).map_err(|e| storage_error(storage, key, &e)),
        Err(e) => Err(e),
    };
    let (bytes, sha256) = writer.written();
    // The gate is awaited on every path (a remote helper is cleaned up by it), told to stop
    // first when this side failed.
    if finished.is_err() {
        stop_gate.cancel();
    }
    let gated = gate.await;
    let stats = match (finished, gated) {
        (Ok(AgentLine::Packed { stats }), Ok(_)) => stats,
        (Ok(AgentLine::Done), Ok(Some(stats))) => stats,
        (Err(e), _) | (_, Err(e)) => {
            let _ = writer.inner_mut().abort().await;
            return Err(e);
        }
        (Ok(_), Ok(_)) => {
            let _ = writer.inner_mut().abort().await;
            return Err("the archiver did not report what it archived".to_owned());
        }
    };
    if let Err(e) = writer.inner_mut().shutdown().await {
        let _ = writer.inner_mut().abort().await;
        return Err(storage_error(storage, key, &e));
    }
    let via = if container.channel.is_some() { "channel" } else { "exec" };
    Ok(Uploaded { bytes, sha256, stats, via })
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
    let lines: Vec<AgentLine> = text.lines().filter_map(AgentLine::parse).collect();
    lines
        .iter()
        .rev()
        .find(|l| matches!(l, AgentLine::Packed { .. } | AgentLine::Unpacked { .. }))
        .or_else(|| lines.last())
        .cloned()
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

/// The port a helper serves a volume on, on the job's own network.
const PORT: u16 = 7070;

/// A transfer with a volume on another node: the job's own overlay network (internal,
/// attachable), a relay container beside dockhand on it, and a helper service on the
/// volume's node that mounts the volume and serves it on that network. dockhand execs in
/// the relay as it does in a local volume container, so the bytes take the same path after
/// the relay, and no credential goes anywhere.
pub(crate) struct Remote<'a> {
    pub(crate) ctx: &'a crate::runner::JobContext,
    pub(crate) owner: Owner<'a>,
    pub(crate) node_id: &'a str,
    pub(crate) node_name: &'a str,
    /// How long the transfer may take.
    pub(crate) timeout: Duration,
}

/// What a node says of one of its volumes.
#[derive(Debug, Clone, Default)]
pub(crate) struct VolumeFacts {
    pub(crate) exists: bool,
    pub(crate) driver: String,
    /// Running containers that mount it, by name.
    pub(crate) users: Vec<String>,
}

impl Remote<'_> {
    /// Whether the node has `volume`, its driver, and the running containers that mount it:
    /// from the engine dockhand is connected to when that is the node's (`connected` is its
    /// node ID), else from a helper with the node's socket.
    pub(crate) async fn volume_facts(&self, connected: &str, volume: &str) -> Result<VolumeFacts, String> {
        if self.node_id == connected {
            let client = &self.ctx.client;
            return match client.volume(volume).await {
                Ok(v) => {
                    let users = crate::agent::running_users(client, volume)
                        .await
                        .map_err(|e| format!("volume {volume}: {e}"))?;
                    Ok(VolumeFacts { exists: true, driver: v.driver, users })
                }
                Err(e) if e.is_not_found() => Ok(VolumeFacts::default()),
                Err(e) => Err(format!("volume {volume}: {e}")),
            };
        }
        let (exists, driver, users) = self.volume_info(volume).await?;
        Ok(VolumeFacts { exists, driver, users })
    }

    async fn volume_info(&self, volume: &str) -> Result<(bool, String, Vec<String>), String> {
        let run =
            self.helper(AgentTask::VolumeInfo { name: volume.to_owned() }, crate::helper::Access::default());
        let output = crate::helper::run_helper(&self.ctx.client, &self.ctx.helpers, &run, &self.ctx.cancel)
            .await
            .map_err(|e| e.to_string())?;
        output
            .lines
            .into_iter()
            .find_map(|l| match l {
                AgentLine::VolumeInfo { exists, driver, users, .. } => Some((exists, driver, users)),
                _ => None,
            })
            .ok_or_else(|| {
                format!("the helper on node {} did not say whether it has volume {volume}", self.node_name)
            })
    }

    fn helper(&self, task: AgentTask, access: crate::helper::Access) -> crate::helper::HelperRun<'_> {
        crate::helper::HelperRun {
            job: self.owner.job,
            action: self.owner.action,
            target: self.owner.target.to_owned(),
            node_id: self.node_id,
            node_name: self.node_name,
            task,
            timeout: self.timeout + self.ctx.defaults.extra_timeout,
            access,
        }
    }

    /// The job's network and the relay on it.
    async fn open(&self) -> Result<(String, VolumeContainer), String> {
        let client = &self.ctx.client;
        let name = format!("dh-xfer-{}-{}", short(self.owner.job), short(self.node_id));
        let labels = [
            (HELPER_LABEL.to_owned(), self.owner.job.to_owned()),
            (HELPER_TARGET_LABEL.to_owned(), self.owner.target.to_owned()),
        ]
        .into_iter()
        .collect();
        let network = client
            .create_overlay_network(&name, &labels)
            .await
            .map_err(|e| format!("cannot create network {name}: {e}"))?;
        let hold = self.timeout + self.ctx.helpers.pending_timeout + self.ctx.defaults.extra_timeout;
        match VolumeContainer::start(
            client,
            &self.ctx.helpers.image_here().await?,
            self.owner,
            Attach::Network(&name),
            hold,
        )
        .await
        {
            Ok(relay) => Ok((network, relay)),
            Err(e) => {
                let _ = client.remove_network(&network).await;
                Err(e)
            }
        }
    }

    async fn close(&self, network: &str, relay: VolumeContainer) {
        relay.remove().await;
        // The helper's task leaves the network a moment after its service is removed.
        for _ in 0..40 {
            match self.ctx.client.remove_network(network).await {
                Ok(()) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        tracing::warn!(network, "cannot remove a transfer network; the next job on this target removes it");
    }

    fn out_of_time(&self) -> String {
        format!(
            "the transfer with node {} ran out of its {} (plus the pending timeout)",
            self.node_name,
            dockhand_policy::format_go_duration(self.timeout)
        )
    }

    /// How long the relay keeps trying to reach the helper: it may still be pending.
    fn connect_seconds(&self) -> u64 {
        (self.ctx.helpers.pending_timeout + Duration::from_secs(30)).as_secs()
    }

    /// Archives the volume on its node into `key`.
    pub(crate) async fn upload(
        &self,
        volume: &str,
        storage: &Storage,
        key: &Key,
        level: i32,
        progress: Progress<'_>,
    ) -> Result<Uploaded, String> {
        let (network, relay) = self.open().await?;
        let helper_cancel = self.ctx.cancel.child_token();
        let task =
            AgentTask::ServePack { dir: MOUNT.into(), level, port: PORT, seconds: self.connect_seconds() };
        let access = crate::helper::Access {
            socket: false,
            volume: Some((volume.to_owned(), true)),
            network: Some(network.clone()),
        };
        let run = self.helper(task, access);
        // The helper runs beside the relay's exec; its report is the upload's gate.
        let (report, reported) = tokio::sync::oneshot::channel();
        let helper = async {
            let result = crate::helper::run_helper(&self.ctx.client, &self.ctx.helpers, &run, &helper_cancel)
                .await
                .map_err(|e| e.to_string())
                .map(|output| {
                    output.lines.into_iter().find_map(|l| match l {
                        AgentLine::Packed { stats } => Some(stats),
                        _ => None,
                    })
                });
            let _ = report.send(result);
        };
        let gate: Gate<'_> = Box::pin(async move {
            reported.await.unwrap_or_else(|_| Err("the helper stopped without a report".to_owned()))
        });
        let address = format!("{}:{PORT}", crate::helper::helper_name(self.owner.job, self.node_id));
        let fetch = AgentTask::Fetch { address, seconds: self.connect_seconds() };
        // The helper may wait for its node (pending); the time limit is the upload's after.
        // At the deadline the upload is aborted and the helper told to stop, so the join
        // below ends.
        let deadline = Deadline::after(self.timeout + self.ctx.helpers.pending_timeout, self.out_of_time());
        let transfer = upload_from(
            &relay,
            &fetch,
            storage,
            key,
            (&self.ctx.cancel, &deadline),
            progress,
            gate,
            &helper_cancel,
        );
        let result = tokio::join!(helper, transfer).1;
        self.close(&network, relay).await;
        result
    }

    /// Restores the staged archive into the volume on its node.
    pub(crate) async fn download(
        &self,
        volume: &str,
        staged: &Staged,
        progress: Progress<'_>,
    ) -> Result<(String, UnpackStats), String> {
        let (network, relay) = self.open().await?;
        let helper_cancel = self.ctx.cancel.child_token();
        let task = AgentTask::ServeUnpack { dir: MOUNT.into(), port: PORT, seconds: self.connect_seconds() };
        let access = crate::helper::Access {
            socket: false,
            volume: Some((volume.to_owned(), false)),
            network: Some(network.clone()),
        };
        let run = self.helper(task, access);
        let helper = crate::helper::run_helper(&self.ctx.client, &self.ctx.helpers, &run, &helper_cancel);
        let address = format!("{}:{PORT}", crate::helper::helper_name(self.owner.job, self.node_id));
        let send = AgentTask::Send { address, seconds: self.connect_seconds() };
        let sending = async {
            let sent = download_to(&relay, &send, staged, &self.ctx.cancel, progress).await;
            if sent.is_err() {
                helper_cancel.cancel();
            }
            sent
        };
        let limit = self.timeout + self.ctx.helpers.pending_timeout;
        let both = tokio::time::timeout(limit, async { tokio::join!(helper, sending) }).await;
        self.close(&network, relay).await;
        let (helped, sent) = both.map_err(|_| self.out_of_time())?;
        let (sha256, _) = sent?;
        let output = helped.map_err(|e| e.to_string())?;
        let stats = output
            .lines
            .into_iter()
            .find_map(|l| match l {
                AgentLine::Unpacked { stats } => Some(stats),
                _ => None,
            })
            .ok_or_else(|| {
                format!("the helper on node {} did not report what it restored", self.node_name)
            })?;
        Ok((sha256, stats))
    }
}

/// One end of a node-to-node copy: the node, by ID and hostname.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
}

/// What a copy moved: the archive's bytes and SHA-256, and what the extractor wrote.
#[derive(Debug, Clone)]
pub(crate) struct Copied {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
    pub(crate) packed: Option<PackStats>,
    pub(crate) unpacked: UnpackStats,
}

/// One end of a copy, beside dockhand: a volume container, or a relay and its network.
enum End {
    Local(VolumeContainer),
    Remote(String, VolumeContainer),
}

impl End {
    async fn open(
        remote: &Remote<'_>,
        connected: &str,
        volume: &str,
        read_only: bool,
        hold: Duration,
    ) -> Result<Self, String> {
        if remote.node_id == connected {
            let attach = Attach::Volume(volume, read_only);
            let c = VolumeContainer::start(
                &remote.ctx.client,
                &remote.ctx.helpers.image_here().await?,
                remote.owner,
                attach,
                hold,
            )
            .await?;
            Ok(Self::Local(c))
        } else {
            let (network, relay) = remote.open().await?;
            Ok(Self::Remote(network, relay))
        }
    }

    fn container(&self) -> &VolumeContainer {
        match self {
            Self::Local(c) | Self::Remote(_, c) => c,
        }
    }

    async fn close(self, remote: &Remote<'_>) {
        match self {
            Self::Local(c) => c.remove().await,
            Self::Remote(network, relay) => remote.close(&network, relay).await,
        }
    }
}

/// Copies `volume` from one node to another (either may be the connected node), streamed
/// through dockhand: the archiver's stdout is the extractor's stdin. The destination's
/// contents are replaced only once the whole archive is out (the extractor's staging).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn copy_volume(
    ctx: &crate::runner::JobContext,
    owner: Owner<'_>,
    volume: &str,
    connected: &str,
    from: NodeRef<'_>,
    to: NodeRef<'_>,
    timeout: Duration,
    progress: Progress<'_>,
) -> Result<Copied, String> {
    let hold = timeout + ctx.helpers.pending_timeout + ctx.defaults.extra_timeout;
    let remote_from = Remote { ctx, owner, node_id: from.id, node_name: from.name, timeout };
    let remote_to = Remote { ctx, owner, node_id: to.id, node_name: to.name, timeout };
    let source = End::open(&remote_from, connected, volume, true, hold).await?;
    let sink = match End::open(&remote_to, connected, volume, false, hold).await {
        Ok(sink) => sink,
        Err(e) => {
            source.close(&remote_from).await;
            return Err(e);
        }
    };
    let level = crate::archive::DEFAULT_ZSTD_LEVEL;
    let address = |node: &str| format!("{}:{PORT}", crate::helper::helper_name(owner.job, node));
    let (source_task, source_helper) = match &source {
        End::Local(_) => (AgentTask::Pack { dir: MOUNT.into(), level }, None),
        End::Remote(network, _) => {
            let seconds = remote_from.connect_seconds();
            let serve = AgentTask::ServePack { dir: MOUNT.into(), level, port: PORT, seconds };
            let access = crate::helper::Access {
                socket: false,
                volume: Some((volume.to_owned(), true)),
                network: Some(network.clone()),
            };
            (AgentTask::Fetch { address: address(from.id), seconds }, Some(remote_from.helper(serve, access)))
        }
    };
    let (sink_task, sink_helper) = match &sink {
        End::Local(_) => (AgentTask::Unpack { dir: MOUNT.into() }, None),
        End::Remote(network, _) => {
            let seconds = remote_to.connect_seconds();
            let serve = AgentTask::ServeUnpack { dir: MOUNT.into(), port: PORT, seconds };
            let access = crate::helper::Access {
                socket: false,
                volume: Some((volume.to_owned(), false)),
                network: Some(network.clone()),
            };
            (AgentTask::Send { address: address(to.id), seconds }, Some(remote_to.helper(serve, access)))
        }
    };
    let helpers_cancel = ctx.cancel.child_token();

    // At the deadline the pump fails and the helpers are told to stop, so the join ends.
    let deadline = Deadline::after(timeout + ctx.helpers.pending_timeout, remote_to.out_of_time());
    let pumping = async {
        let pumped = pump(
            (source.container(), &source_task),
            (sink.container(), &sink_task),
            &ctx.cancel,
            &deadline,
            progress,
        )
        .await;
        if pumped.is_err() {
            helpers_cancel.cancel();
        }
        pumped
    };
    let (from_lines, to_lines, pumped) = tokio::join!(
        run_optional(ctx, source_helper, &helpers_cancel),
        run_optional(ctx, sink_helper, &helpers_cancel),
        pumping
    );
    source.close(&remote_from).await;
    sink.close(&remote_to).await;
    let (bytes, sha256, source_line, sink_line) = pumped?;
    let from_lines = from_lines?;
    let to_lines = to_lines?;
    let packed = std::iter::once(source_line).chain(from_lines).find_map(|l| match l {
        AgentLine::Packed { stats } => Some(stats),
        _ => None,
    });
    let unpacked = std::iter::once(sink_line)
        .chain(to_lines)
        .find_map(|l| match l {
            AgentLine::Unpacked { stats } => Some(stats),
            _ => None,
        })
        .ok_or_else(|| format!("the extractor on node {} did not report what it restored", to.name))?;
    Ok(Copied { bytes, sha256, packed, unpacked })
}

/// A helper's lines, when there is a helper.
async fn run_optional(
    ctx: &crate::runner::JobContext,
    helper: Option<crate::helper::HelperRun<'_>>,
    cancel: &CancellationToken,
) -> Result<Vec<AgentLine>, String> {
    match helper {
        Some(run) => crate::helper::run_helper(&ctx.client, &ctx.helpers, &run, cancel)
            .await
            .map(|o| o.lines)
            .map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    }
}

/// Runs the archiver and the extractor, copying one's stdout into the other's stdin:
/// bytes, SHA-256, and each one's report.
async fn pump(
    (source, source_task): (&VolumeContainer, &AgentTask),
    (sink, sink_task): (&VolumeContainer, &AgentTask),
    cancel: &CancellationToken,
    deadline: &Deadline,
    progress: Progress<'_>,
) -> Result<(u64, String, AgentLine, AgentLine), String> {
    let mut out = source
        .client
        .exec(
            &source.id,
            &ExecSpec::new(crate::agent::protocol::exec_argv(source_task, source.channel.is_some())),
        )
        .await
        .map_err(|e| source.exec_failed("the archiver", &e))?;
    let mut into = sink
        .client
        .exec(&sink.id, &ExecSpec::new(crate::agent::protocol::exec_argv(sink_task, false)).with_stdin(true))
        .await
        .map_err(|e| sink.exec_failed("the extractor", &e))?;
    let mut stdin = into.take_stdin().ok_or_else(|| "the extractor's stdin is not attached".to_owned())?;
    let mut said = Tail::new(64 * 1024);
    let copied = copy_archive(
        &mut out,
        source.channel.as_ref(),
        &mut stdin,
        (cancel, deadline),
        true,
        |_| "the extractor stopped reading".to_owned(),
        |data| said.push(data),
        |moved, elapsed| progress(Transfer { moved, elapsed, ..Transfer::default() }),
    )
    .await;
    let _ = stdin.shutdown().await;
    let (bytes, sha256) = match &copied {
        Ok((bytes, sha256)) => (*bytes, sha256.clone().unwrap_or_default()),
        Err(_) => (0, String::new()),
    };
    let source_line = match copied {
        Ok(_) => check_agent(out.exit_code().await, &said, "the archiver"),
        Err(e) => Err(e),
    };
    // The extractor's own words: its exit says whether the archive it got was whole.
    let mut heard = Tail::new(64 * 1024);
    while let Some(chunk) = into.next().await {
        match chunk {
            Ok(c) if c.stream != StreamKind::Stdin => heard.push(&c.data),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let sink_line = check_agent(into.exit_code().await, &heard, "the extractor");
    Ok((bytes, sha256, source_line?, sink_line?))
}

/// An archive read once from its target into a private, unlinked file (in `$TMPDIR`),
/// hashed as stored and checked whole: what a restore unpacks afterwards, so that the bytes
/// checked are the bytes restored, whatever the target serves later (R3-02).
pub(crate) struct Staged {
    file: std::fs::File,
    /// The SHA-256 of the object as stored (encrypted, when it is).
    pub(crate) sha256: String,
    /// Its size as stored.
    pub(crate) size: u64,
    /// What the check found in it.
    pub(crate) stats: UnpackStats,
    identity: Option<Identity>,
}

/// Reads `key` whole into a [`Staged`] file, hashing it and checking every zstd frame and
/// tar entry (decrypting first with `identity`), writing nothing to any volume: the check a
/// restore makes before it touches one.
pub(crate) async fn stage_object(
    storage: &Storage,
    key: &Key,
    identity: Option<Identity>,
) -> Result<Staged, String> {
    let file = tempfile::tempfile().map_err(|e| format!("cannot make a staging file in $TMPDIR: {e}"))?;
    let tee = file.try_clone().map_err(|e| format!("the staging file: {e}"))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let checker =
        tokio::task::spawn_blocking(move || crate::archive::verify(crate::seal::ChannelReader::new(rx)));
    let mut archive =
        ArchiveStream::read(storage, key, identity.as_ref(), Some(tokio::fs::File::from_std(tee))).await?;
    let fed = async {
        while let Some(chunk) = archive.next().await {
            if tx.send(chunk?).await.is_err() {
                break;
            }
        }
        Ok::<_, String>(())
    }
    .await;
    drop(tx);
    let checked = checker.await.map_err(|e| format!("the archive check stopped: {e}"))?;
    // The first cause first: a decryption that failed, then a read that failed, then what
    // the check found.
    fed?;
    let sha256 = archive.sha256().await?;
    let stats = checked.map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| format!("the staging file: {e}"))?.len();
    Ok(Staged { file, sha256, size, stats, identity })
}

/// Reads the seed's archive `key` (a gzip tar, the volume under `backup/<volume>/`) whole
/// into a private file, then re-packs `volume` out of it as dockhand's own zstd tar into a
/// [`Staged`] file, checked as any staged archive is: what a restore writes. Answers also
/// what the re-pack found and the SHA-256 of the object as stored.
pub(crate) async fn stage_foreign(
    storage: &Storage,
    key: &Key,
    volume: &str,
) -> Result<(Staged, crate::archive::ForeignStats, String), String> {
    let raw = tempfile::tempfile().map_err(|e| format!("cannot make a staging file in $TMPDIR: {e}"))?;
    let tee = raw.try_clone().map_err(|e| format!("the staging file: {e}"))?;
    let mut archive = ArchiveStream::read(storage, key, None, Some(tokio::fs::File::from_std(tee))).await?;
    while let Some(chunk) = archive.next().await {
        chunk?;
    }
    let stored = archive.sha256().await?;
    let volume = volume.to_owned();
    let converted = tokio::task::spawn_blocking(move || -> Result<_, String> {
        use std::io::{Seek as _, Write as _};
        let fail = |e: std::io::Error| format!("the staging file: {e}");
        let mut raw = raw;
        raw.rewind().map_err(fail)?;
        let mut file =
            tempfile::tempfile().map_err(|e| format!("cannot make a staging file in $TMPDIR: {e}"))?;
        let found = {
            let mut out = std::io::BufWriter::new(&mut file);
            let found = crate::archive::convert_foreign(
                std::io::BufReader::new(&raw),
                &volume,
                &mut out,
                crate::archive::DEFAULT_ZSTD_LEVEL,
            )
            .map_err(|e| e.to_string())?;
            out.flush().map_err(fail)?;
            found
        };
        file.rewind().map_err(fail)?;
        let stats = crate::archive::verify(std::io::BufReader::new(&file)).map_err(|e| e.to_string())?;
        let sha256 = read_hashing(&mut file, |_| Ok(()))?;
        let size = file.metadata().map_err(fail)?.len();
        Ok((file, sha256, size, stats, found))
    })
    .await
    .map_err(|e| format!("the re-pack stopped: {e}"))??;
    let (file, sha256, size, stats, found) = converted;
    Ok((Staged { file, sha256, size, stats, identity: None }, found, stored))
}

/// Reads a staging file from its start, handing each chunk to `each`: its SHA-256 (hex).
fn read_hashing(
    file: &mut std::fs::File,
    mut each: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<String, String> {
    use std::io::{Read as _, Seek as _};
    let fail = |e: std::io::Error| format!("the staging file: {e}");
    file.rewind().map_err(fail)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        each(&buf[..n])?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// An object's archive as it arrives: its bytes as stored, or decrypted with an identity.
/// The object is read (and hashed as stored) by a task of its own, so a slow decryption
/// and the read overlap.
pub(crate) struct ArchiveStream {
    chunks: ArchiveChunks,
    read: tokio::task::JoinHandle<Result<String, String>>,
}

enum ArchiveChunks {
    Plain(tokio::sync::mpsc::Receiver<Bytes>),
    Opened(tokio::sync::mpsc::Receiver<Result<Bytes, String>>),
}

impl ArchiveStream {
    /// Starts reading `key`, writing what it reads as stored into `tee` too when given;
    /// decrypts with `identity` when given.
    async fn read(
        storage: &Storage,
        key: &Key,
        identity: Option<&Identity>,
        mut tee: Option<tokio::fs::File>,
    ) -> Result<Self, String> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let got = storage
            .store()
            .get(key)
            .await
            .map_err(|e| storage.error(format!("read {key}"), &e).to_string())?;
        let mut stream = got.into_stream();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let (storage, key) = (storage.clone(), key.clone());
        let read = tokio::spawn(async move {
            let mut hasher = sha2::Sha256::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| storage.error(format!("read {key}"), &e).to_string())?;
                hasher.update(&chunk);
                if let Some(file) = tee.as_mut() {
                    file.write_all(&chunk).await.map_err(|e| format!("the staging file: {e}"))?;
                }
                if tx.send(chunk).await.is_err() {
                    return Err("the reader stopped".to_owned());
                }
            }
            if let Some(file) = tee.as_mut() {
                file.flush().await.map_err(|e| format!("the staging file: {e}"))?;
            }
            Ok(hex::encode(hasher.finalize()))
        });
        Ok(Self::over(rx, read, identity))
    }

    /// Reads a staged archive from its start, hashing it again as it goes.
    fn staged(staged: &Staged) -> Result<Self, String> {
        let mut file = staged.file.try_clone().map_err(|e| format!("the staging file: {e}"))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let read = tokio::task::spawn_blocking(move || {
            read_hashing(&mut file, |chunk| {
                tx.blocking_send(Bytes::copy_from_slice(chunk)).map_err(|_| "the reader stopped".to_owned())
            })
        });
        Ok(Self::over(rx, read, staged.identity.as_ref()))
    }

    fn over(
        rx: tokio::sync::mpsc::Receiver<Bytes>,
        read: tokio::task::JoinHandle<Result<String, String>>,
        identity: Option<&Identity>,
    ) -> Self {
        let chunks = match identity {
            None => ArchiveChunks::Plain(rx),
            Some(identity) => ArchiveChunks::Opened(crate::seal::opened(rx, identity)),
        };
        Self { chunks, read }
    }

    /// The next piece of the archive; `None` at its end.
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, String>> {
        match &mut self.chunks {
            ArchiveChunks::Plain(rx) => rx.recv().await.map(Ok),
            ArchiveChunks::Opened(rx) => rx.recv().await,
        }
    }

    /// The object's SHA-256 as stored, once it was read to its end; a read that failed is
    /// its error.
    pub(crate) async fn sha256(self) -> Result<String, String> {
        drop(self.chunks);
        self.read.await.map_err(|e| format!("reading the object stopped: {e}"))?
    }
}

/// Writes the staged archive into the container's volume, replacing its contents (the
/// agent extracts beside the old contents and swaps only once all is out).
pub(crate) async fn download(
    container: &VolumeContainer,
    staged: &Staged,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Result<(String, UnpackStats), String> {
    let task = AgentTask::Unpack { dir: MOUNT.into() };
    let (sha256, stats) = download_to(container, &task, staged, cancel, progress).await?;
    let stats = stats.ok_or_else(|| "the extractor did not report what it restored".to_owned())?;
    Ok((sha256, stats))
}

/// Streams the staged archive into what `task` reads on stdin in the container: the
/// SHA-256 of what was sent, and the extractor's stats when it ran there (a relay reports
/// none).
async fn download_to(
    container: &VolumeContainer,
    task: &AgentTask,
    staged: &Staged,
    cancel: &CancellationToken,
    progress: Progress<'_>,
) -> Result<(String, Option<UnpackStats>), String> {
    let size = staged.size;
    let argv = crate::agent::protocol::exec_argv(task, false);
    let mut exec = container
        .client
        .exec(&container.id, &ExecSpec::new(argv).with_stdin(true))
        .await
        .map_err(|e| container.exec_failed("the extractor", &e))?;
    let mut stdin = exec.take_stdin().ok_or_else(|| "the extractor's stdin is not attached".to_owned())?;
    let started = Instant::now();
    let mut last = Instant::now();
    let mut sent = 0u64;
    let mut refused = false;
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
        let result = async {
            let mut archive = ArchiveStream::staged(staged)?;
            while let Some(chunk) = archive.next().await {
                let chunk = chunk?;
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
                    refused = true;
                    break;
                }
            }
            archive.sha256().await
        }
        .await;
        // A failed read closes the extractor's input on a cut-short archive, which it
        // refuses as a whole: the volume keeps its contents.
        let _ = stdin.shutdown().await;
        result
    };
    let ((code, report), written) = tokio::select! {
        both = async { tokio::join!(reader, writer) } => both,
        () = cancel.cancelled() => return Err("cancelled".to_owned()),
    };
    // Whichever side stopped first says why.
    let line = check_agent(code, &report, "the extractor");
    let (sha256, line) = if refused { (written.unwrap_or_default(), line?) } else { (written?, line?) };
    progress(Transfer {
        moved: sent,
        moved_total: Some(size),
        elapsed: started.elapsed(),
        ..Transfer::default()
    });
    match line {
        AgentLine::Unpacked { stats } => Ok((sha256, Some(stats))),
        _ => Ok((sha256, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive of one file holding `text`.
    fn archive_of(text: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.txt"), text).unwrap();
        let mut out = Vec::new();
        crate::archive::pack(dir.path(), &mut out, 3, &std::sync::atomic::AtomicU64::new(0)).unwrap();
        out
    }

    async fn drain(mut stream: ArchiveStream) -> (Vec<u8>, String) {
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        (bytes, stream.sha256().await.unwrap())
    }

    /// R3-02: a restore unpacks the bytes it checked. The object is read once into a
    /// private file; a target that then serves another (valid) archive under the same key
    /// changes nothing of what is restored.
    #[tokio::test]
    async fn what_is_restored_is_what_was_verified_even_if_the_target_changes() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::open(&crate::storage::targets::local_target("t", "test", dir.path().join("b"))).unwrap();
        let key = storage.key("web/n1_data_20260101T000000Z.tar.zst");
        let (a, b) =
            (archive_of("the archive that was verified"), archive_of("a swapped archive, also valid"));
        storage.store().put(&key, a.clone().into()).await.unwrap();
        let staged = stage_object(&storage, &key, None).await.unwrap();
        let hash = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
        assert_eq!((staged.sha256.as_str(), staged.size), (hash(&a).as_str(), a.len() as u64));
        assert_eq!(staged.stats.entries, 2, "the root and one file");
        // Swapped on the target after the check.
        storage.store().put(&key, b.clone().into()).await.unwrap();
        let (sent, sent_hash) = drain(ArchiveStream::staged(&staged).unwrap()).await;
        assert_eq!(sent, a, "the verified bytes, not the target's new ones");
        assert_eq!(sent_hash, staged.sha256);
        // A corrupted object is refused by the check itself.
        let mut broken = a.clone();
        let last = broken.len() - 10;
        broken[last] ^= 0xff;
        storage.store().put(&key, broken.into()).await.unwrap();
        assert!(stage_object(&storage, &key, None).await.is_err());
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
}
