//! The agent: what `dockhand agent <verb>` does inside a helper container on a node, through
//! that node's own engine, and the lines it prints for the dockhand that started it.
//!
//! The same work functions serve the node dockhand is connected to directly, so a prune or
//! an exec behaves the same wherever it runs.
//!
//! The arguments are typed: [`AgentTask::to_args`] writes them and [`AgentTask::from_args`]
//! reads them back, and a command to run in a container travels as its own argv, never as
//! a shell string built by dockhand.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use dockhand_engine::{Client, ExecSpec, Filters};
use dockhand_policy::{format_go_duration, parse_go_duration};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::job::{Status, Step};
use crate::tail::{OUTPUT_TAIL, Tail};
use crate::volumes::UnusedVolume;

/// One prune of clean-node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Prune {
    /// Stopped containers.
    Containers,
    /// Every unused image (`dangling=false`), not only dangling ones.
    Images,
    /// The build cache.
    BuildCache,
}

impl Prune {
    const ALL: [Self; 3] = [Self::Containers, Self::Images, Self::BuildCache];

    /// The step's kind: `container-prune`, `image-prune`, `builder-prune`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Containers => "container-prune",
            Self::Images => "image-prune",
            Self::BuildCache => "builder-prune",
        }
    }

    /// Its name in node labels: `container`, `image`, `builder` (`clean.<name>.timeout`).
    pub fn label_name(self) -> &'static str {
        match self {
            Self::Containers => "container",
            Self::Images => "image",
            Self::BuildCache => "builder",
        }
    }

    fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.kind() == kind)
    }
}

/// A wait with its limit and the label (or default) that set it, for the message when it
/// runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// The limit.
    pub timeout: Duration,
    /// Where it came from, such as `label dockhand.clean.exec.timeout`.
    pub source: String,
}

impl Budget {
    /// `timeout`, set by `source`.
    pub fn new(timeout: Duration, source: impl Into<String>) -> Self {
        Self { timeout, source: source.into() }
    }

    fn overrun(&self, what: &str) -> String {
        format!("{what} ran out of its {} ({})", format_go_duration(self.timeout), self.source)
    }

    fn to_arg(&self) -> String {
        format!("{},{}", format_go_duration(self.timeout), self.source)
    }

    fn from_arg(arg: &str) -> Result<Self, AgentArgsError> {
        let (timeout, source) = arg.split_once(',').unwrap_or((arg, "set by dockhand"));
        let timeout = parse_go_duration(timeout)
            .map_err(|e| AgentArgsError(format!("bad duration {timeout:?}: {e}")))?;
        Ok(Self::new(timeout, source))
    }
}

/// A running task's container to exec in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecTarget {
    /// The task's ID.
    pub task: String,
    /// Its container's ID.
    pub container: String,
}

/// What an agent does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentTask {
    /// Prunes, in order, each with its budget.
    CleanNode {
        /// The prunes.
        prunes: Vec<(Prune, Budget)>,
    },
    /// Lists the local volumes no container uses.
    UnusedVolumes,
    /// A node's `clean.exec.host=true`: `argv` in a root container of `image` that
    /// enters the host's namespaces (see `host_exec`).
    HostExec {
        /// The image, already on the node.
        image: String,
        /// The command, as its own argv (`/bin/sh`, `-c`, the label's text).
        argv: Vec<String>,
        /// Its budget.
        budget: Budget,
    },
    /// Runs `argv` in each container, up to `concurrency` at once.
    Exec {
        /// The command, as its own argv (`/bin/sh`, `-c`, the label's text).
        argv: Vec<String>,
        /// Per container.
        budget: Budget,
        /// Where.
        targets: Vec<ExecTarget>,
        /// How many at once.
        concurrency: usize,
    },
    /// Waits `seconds`, then exits: the life of a volume container dockhand execs into.
    Hold {
        /// How long at most.
        seconds: u64,
    },
    /// Writes the directory as a zstd-compressed tar on stdout.
    Pack {
        /// The volume's mount point.
        dir: std::path::PathBuf,
        /// The zstd level.
        level: i32,
    },
    /// Replaces the directory's contents with the archive read on stdin.
    Unpack {
        /// The volume's mount point.
        dir: std::path::PathBuf,
    },
    /// On a volume's node: waits (at most `seconds`) for one connection on `port` and
    /// writes the directory to it as a zstd-compressed tar.
    ServePack {
        /// The volume's mount point.
        dir: std::path::PathBuf,
        /// The zstd level.
        level: i32,
        /// The TCP port on the job's network.
        port: u16,
        /// How long to wait for the connection.
        seconds: u64,
    },
    /// On a volume's node: waits for one connection and replaces the directory's contents
    /// with the archive read from it.
    ServeUnpack {
        /// The volume's mount point.
        dir: std::path::PathBuf,
        /// The TCP port on the job's network.
        port: u16,
        /// How long to wait for the connection.
        seconds: u64,
    },
    /// In the relay beside dockhand: connects to `address` (retrying for `seconds`) and
    /// copies what it sends to stdout.
    Fetch {
        /// `host:port` on the job's network.
        address: String,
        /// How long to keep trying to connect.
        seconds: u64,
    },
    /// In the relay beside dockhand: connects to `address` and copies stdin to it.
    Send {
        /// `host:port` on the job's network.
        address: String,
        /// How long to keep trying to connect.
        seconds: u64,
    },
    /// Says whether the node has the volume `name`, and its driver.
    VolumeInfo {
        /// The volume's name.
        name: String,
    },
}

/// Where a volume container sees the directory of dockhand's channel socket (see
/// `volume_io`): an archiver given `--out` writes there instead of its stdout.
pub const CHANNEL_MOUNT: &str = "/run/dockhand-channel";
/// The channel socket's name in that directory.
pub const CHANNEL_SOCKET: &str = "archive.sock";
/// The flag, before everything else, that names the channel socket.
const OUT_FLAG: &str = "--out";

/// `dockhand agent --out SOCKET <rest>`: the socket a data-producing task writes to
/// instead of its stdout, and the rest of the arguments.
pub fn split_out(args: &[String]) -> Result<(Option<std::path::PathBuf>, &[String]), AgentArgsError> {
    match args {
        [flag, path, rest @ ..] if flag == OUT_FLAG => Ok((Some(path.into()), rest)),
        [flag] if flag == OUT_FLAG => Err(AgentArgsError(format!("{OUT_FLAG} needs a socket path"))),
        _ => Ok((None, args)),
    }
}

/// The argv of `dockhand agent` for `task` in a volume container (`dockhand` on the
/// image's PATH: an exec does not go through the entrypoint), writing to the channel when
/// `out` says so.
pub(crate) fn exec_argv(task: &AgentTask, out: bool) -> Vec<String> {
    let mut argv = vec!["dockhand".to_owned()];
    let mut args = task.to_args(None).into_iter();
    argv.extend(args.next()); // "agent"
    if out {
        argv.extend([OUT_FLAG.to_owned(), format!("{CHANNEL_MOUNT}/{CHANNEL_SOCKET}")]);
    }
    argv.extend(args);
    argv
}

/// Arguments `dockhand agent` cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockhand agent: {0}")]
pub struct AgentArgsError(String);

impl AgentTask {
    /// The helper's arguments after the image's entrypoint: `agent [--start-by MS] <verb>
    /// ...`. With `start_by` (milliseconds since the epoch), an agent that starts later does
    /// nothing: dockhand gave up on it by then (a helper pending past its timeout is
    /// removed, but the swarm may still start its task once the node frees up).
    pub fn to_args(&self, start_by: Option<u64>) -> Vec<String> {
        let mut args = vec!["agent".to_owned()];
        if let Some(ms) = start_by {
            args.extend(["--start-by".to_owned(), ms.to_string()]);
        }
        match self {
            Self::CleanNode { prunes } => {
                args.push("clean-node".to_owned());
                for (prune, budget) in prunes {
                    args.extend([format!("--{}", prune.kind()), budget.to_arg()]);
                }
            }
            Self::UnusedVolumes => args.push("volumes-unused".to_owned()),
            Self::Hold { seconds } => {
                args.extend(["hold".to_owned(), "--seconds".to_owned(), seconds.to_string()])
            }
            Self::Pack { dir, level } => args.extend([
                "pack".to_owned(),
                "--dir".to_owned(),
                dir.display().to_string(),
                "--level".to_owned(),
                level.to_string(),
            ]),
            Self::Unpack { dir } => {
                args.extend(["unpack".to_owned(), "--dir".to_owned(), dir.display().to_string()])
            }
            Self::ServePack { dir, level, port, seconds } => args.extend([
                "serve-pack".to_owned(),
                "--dir".to_owned(),
                dir.display().to_string(),
                "--level".to_owned(),
                level.to_string(),
                "--port".to_owned(),
                port.to_string(),
                "--seconds".to_owned(),
                seconds.to_string(),
            ]),
            Self::ServeUnpack { dir, port, seconds } => args.extend([
                "serve-unpack".to_owned(),
                "--dir".to_owned(),
                dir.display().to_string(),
                "--port".to_owned(),
                port.to_string(),
                "--seconds".to_owned(),
                seconds.to_string(),
            ]),
            Self::Fetch { address, seconds } => args.extend([
                "fetch".to_owned(),
                "--address".to_owned(),
                address.clone(),
                "--seconds".to_owned(),
                seconds.to_string(),
            ]),
            Self::Send { address, seconds } => args.extend([
                "send".to_owned(),
                "--address".to_owned(),
                address.clone(),
                "--seconds".to_owned(),
                seconds.to_string(),
            ]),
            Self::VolumeInfo { name } => {
                args.extend(["volume-info".to_owned(), "--name".to_owned(), name.clone()])
            }
            Self::HostExec { image, argv, budget } => {
                args.extend(["host-exec".to_owned(), "--image".to_owned(), image.clone()]);
                args.extend(["--timeout".to_owned(), budget.to_arg(), "--".to_owned()]);
                args.extend(argv.iter().cloned());
            }
            Self::Exec { argv, budget, targets, concurrency } => {
                args.extend(["exec".to_owned(), "--timeout".to_owned(), budget.to_arg()]);
                args.extend(["--concurrency".to_owned(), concurrency.to_string()]);
                for t in targets {
                    args.extend(["--task".to_owned(), format!("{}={}", t.task, t.container)]);
                }
                args.push("--".to_owned());
                args.extend(argv.iter().cloned());
            }
        }
        args
    }

    /// Reads what [`AgentTask::to_args`] wrote, without the leading `agent`: the task and its
    /// start-by time.
    pub fn from_args(args: &[String]) -> Result<(Self, Option<u64>), AgentArgsError> {
        let bad = |m: String| AgentArgsError(m);
        if let [flag, ms, rest @ ..] = args {
            if flag == "--start-by" {
                let ms =
                    ms.parse::<u64>().map_err(|_| bad(format!("--start-by {ms:?} is not a time in ms")))?;
                return Ok((Self::from_verb(rest)?, Some(ms)));
            }
        }
        Ok((Self::from_verb(args)?, None))
    }

    fn from_verb(args: &[String]) -> Result<Self, AgentArgsError> {
        let bad = |m: String| AgentArgsError(m);
        let (verb, rest) = args.split_first().ok_or_else(|| bad("a verb is needed".to_owned()))?;
        let mut rest = rest.iter();
        let value = |flag: &str, rest: &mut std::slice::Iter<'_, String>| {
            rest.next().cloned().ok_or_else(|| bad(format!("{flag} needs a value")))
        };
        match verb.as_str() {
            "clean-node" => {
                let mut prunes = Vec::new();
                while let Some(flag) = rest.next() {
                    let prune = flag
                        .strip_prefix("--")
                        .and_then(Prune::from_kind)
                        .ok_or_else(|| bad(format!("clean-node does not take {flag:?}")))?;
                    prunes.push((prune, Budget::from_arg(&value(flag, &mut rest)?)?));
                }
                Ok(Self::CleanNode { prunes })
            }
            "volumes-unused" => match rest.next() {
                None => Ok(Self::UnusedVolumes),
                Some(extra) => Err(bad(format!("volumes-unused takes no arguments, not {extra:?}"))),
            },
            "hold" | "pack" | "unpack" | "serve-pack" | "serve-unpack" | "fetch" | "send" | "volume-info" => {
                let mut flags = std::collections::BTreeMap::new();
                while let Some(flag) = rest.next() {
                    let v = value(flag, &mut rest)?;
                    let allowed: &[&str] = match verb.as_str() {
                        "hold" => &["--seconds"],
                        "pack" => &["--dir", "--level"],
                        "unpack" => &["--dir"],
                        "serve-pack" => &["--dir", "--level", "--port", "--seconds"],
                        "serve-unpack" => &["--dir", "--port", "--seconds"],
                        "fetch" | "send" => &["--address", "--seconds"],
                        _ => &["--name"],
                    };
                    if !allowed.contains(&flag.as_str()) {
                        return Err(bad(format!("{verb} does not take {flag:?}")));
                    }
                    flags.insert(flag.clone(), v);
                }
                let text =
                    |flag: &str| flags.get(flag).cloned().ok_or_else(|| bad(format!("{verb} needs {flag}")));
                let number = |flag: &str| -> Result<u64, AgentArgsError> {
                    let v = text(flag)?;
                    v.parse().map_err(|_| bad(format!("{flag} {v:?} is not a number")))
                };
                let level = match flags.get("--level") {
                    Some(v) => v.parse::<i32>().map_err(|_| bad(format!("--level {v:?} is not a number")))?,
                    None => crate::storage::DEFAULT_ZSTD_LEVEL,
                };
                let port = || -> Result<u16, AgentArgsError> {
                    u16::try_from(number("--port")?).map_err(|_| bad("--port is not a port".to_owned()))
                };
                let dir = || text("--dir").map(std::path::PathBuf::from);
                Ok(match verb.as_str() {
                    "hold" => Self::Hold { seconds: number("--seconds")? },
                    "pack" => Self::Pack { dir: dir()?, level },
                    "unpack" => Self::Unpack { dir: dir()? },
                    "serve-pack" => {
                        Self::ServePack { dir: dir()?, level, port: port()?, seconds: number("--seconds")? }
                    }
                    "serve-unpack" => {
                        Self::ServeUnpack { dir: dir()?, port: port()?, seconds: number("--seconds")? }
                    }
                    "fetch" => Self::Fetch { address: text("--address")?, seconds: number("--seconds")? },
                    "send" => Self::Send { address: text("--address")?, seconds: number("--seconds")? },
                    _ => Self::VolumeInfo { name: text("--name")? },
                })
            }
            "exec" => {
                let (mut budget, mut targets, mut concurrency) = (None, Vec::new(), 4);
                while let Some(flag) = rest.next() {
                    match flag.as_str() {
                        "--timeout" => budget = Some(Budget::from_arg(&value(flag, &mut rest)?)?),
                        "--concurrency" => {
                            let v = value(flag, &mut rest)?;
                            concurrency = v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                                bad(format!("--concurrency {v:?} is not a positive number"))
                            })?;
                        }
                        "--task" => {
                            let v = value(flag, &mut rest)?;
                            let (task, container) = v
                                .split_once('=')
                                .ok_or_else(|| bad(format!("--task {v:?} is not TASK=CONTAINER")))?;
                            targets
                                .push(ExecTarget { task: task.to_owned(), container: container.to_owned() });
                        }
                        "--" => break,
                        other => return Err(bad(format!("exec does not take {other:?}"))),
                    }
                }
                let argv: Vec<String> = rest.cloned().collect();
                if argv.is_empty() {
                    return Err(bad("exec needs a command after --".to_owned()));
                }
                let budget = budget.ok_or_else(|| bad("exec needs --timeout".to_owned()))?;
                Ok(Self::Exec { argv, budget, targets, concurrency })
            }
            "host-exec" => {
                let (mut image, mut budget) = (None, None);
                while let Some(flag) = rest.next() {
                    match flag.as_str() {
                        "--image" => image = Some(value(flag, &mut rest)?),
                        "--timeout" => budget = Some(Budget::from_arg(&value(flag, &mut rest)?)?),
                        "--" => break,
                        other => return Err(bad(format!("host-exec does not take {other:?}"))),
                    }
                }
                let argv: Vec<String> = rest.cloned().collect();
                if argv.is_empty() {
                    return Err(bad("host-exec needs a command after --".to_owned()));
                }
                let image = image.ok_or_else(|| bad("host-exec needs --image".to_owned()))?;
                let budget = budget.ok_or_else(|| bad("host-exec needs --timeout".to_owned()))?;
                Ok(Self::HostExec { image, argv, budget })
            }
            other => Err(bad(format!("unknown verb {other:?}"))),
        }
    }
}

/// One line an agent prints on stdout, as JSON; the dockhand that started the helper reads
/// these from the service's logs. Anything else the helper prints is kept as diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "agent", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AgentLine {
    /// A finished step.
    Step {
        /// The step.
        step: Step,
    },
    /// An unused volume.
    Volume {
        /// The volume.
        volume: UnusedVolume,
    },
    /// How many bytes of file content a pack will read.
    Size {
        /// The total.
        bytes: u64,
    },
    /// How many it has read so far (every second).
    Read {
        /// So far.
        bytes: u64,
    },
    /// What a node knows of a volume.
    VolumeInfo {
        /// Its name.
        name: String,
        /// Whether the node has it.
        exists: bool,
        /// Its driver, when it exists.
        driver: String,
        /// The running containers that mount it, by name.
        #[serde(default)]
        users: Vec<String>,
    },
    /// A volume was archived.
    Packed {
        /// What went in.
        stats: crate::archive::PackStats,
    },
    /// A volume was restored.
    Unpacked {
        /// What came out.
        stats: crate::archive::UnpackStats,
    },
    /// The agent finished its task; lines before this one are complete.
    Done,
}

impl AgentLine {
    /// The line as printed (JSON, no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"agent":"done"}"#.to_owned())
    }

    /// A printed line, or `None` for other output.
    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        line.starts_with("{\"agent\"").then(|| serde_json::from_str(line).ok()).flatten()
    }
}

/// Why an agent did not do its task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// It started after its start-by time: the dockhand that made the helper gave up on it.
    #[error(
        "started at {now_ms} ms, after its start-by time {start_by_ms} ms: dockhand gave up on this helper, so it does nothing"
    )]
    TooLate {
        /// The start-by time.
        start_by_ms: u64,
        /// Now.
        now_ms: u64,
    },
    /// The node's engine failed.
    #[error(transparent)]
    Engine(#[from] dockhand_engine::Error),
}

impl AgentTask {
    /// True for the tasks that work on a mounted volume or a connection, not through an
    /// engine.
    pub fn is_volume_task(&self) -> bool {
        matches!(
            self,
            Self::Hold { .. }
                | Self::Pack { .. }
                | Self::Unpack { .. }
                | Self::ServePack { .. }
                | Self::ServeUnpack { .. }
                | Self::Fetch { .. }
                | Self::Send { .. }
        )
    }
}

impl AgentTask {
    /// True when the task's stdin or stdout carries archive bytes: its report lines then go
    /// to stderr. A helper's (`serve-*`) go to stdout, where its service logs are read.
    pub fn data_on_stdio(&self) -> bool {
        matches!(self, Self::Pack { .. } | Self::Unpack { .. } | Self::Fetch { .. } | Self::Send { .. })
    }
}

/// Does a volume task ([`AgentTask::is_volume_task`]): archives to `output` (reporting its
/// size, then what it has read every second), or restores from `input`, or holds.
/// Blocking; the line returned is the agent's last report.
pub fn run_volume_agent(
    task: &AgentTask,
    input: impl std::io::Read,
    output: impl std::io::Write,
    report: &(dyn Fn(AgentLine) + Sync),
) -> Result<AgentLine, crate::archive::ArchiveError> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    match task {
        AgentTask::Pack { dir, level } => {
            report(AgentLine::Size { bytes: crate::archive::content_size(dir) });
            let read = AtomicU64::new(0);
            let done = AtomicBool::new(false);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        for _ in 0..10 {
                            std::thread::sleep(Duration::from_millis(100));
                            if done.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                        report(AgentLine::Read { bytes: read.load(Ordering::Relaxed) });
                    }
                });
                let packed = crate::archive::pack(dir, output, *level, &read);
                done.store(true, Ordering::Relaxed);
                Ok(AgentLine::Packed { stats: packed? })
            })
        }
        AgentTask::Unpack { dir } => Ok(AgentLine::Unpacked { stats: crate::archive::unpack(input, dir)? }),
        AgentTask::Hold { seconds } => {
            std::thread::sleep(Duration::from_secs(*seconds));
            Ok(AgentLine::Done)
        }
        AgentTask::ServePack { dir, level, port, seconds } => {
            let (stream, peer) = accept_one(*port, *seconds)?;
            let stream = NoStall::sending(stream, &peer);
            let read = AtomicU64::new(0);
            let framed =
                Framed::new(&stream, crate::archive::content_size(dir), &read).map_err(io_error(&peer))?;
            let stats =
                crate::archive::pack(dir, std::io::BufWriter::with_capacity(1 << 20, framed), *level, &read)
                    .map_err(|e| with_peer(e, &peer))?;
            let _ = stream.stream.shutdown(std::net::Shutdown::Write);
            Ok(AgentLine::Packed { stats })
        }
        AgentTask::ServeUnpack { dir, port, seconds } => {
            let (stream, peer) = accept_one(*port, *seconds)?;
            let stream = NoStall::receiving(stream, &peer);
            let stats = crate::archive::unpack(std::io::BufReader::with_capacity(1 << 20, &stream), dir)
                .map_err(|e| with_peer(e, &peer))?;
            Ok(AgentLine::Unpacked { stats })
        }
        AgentTask::Fetch { address, seconds } => {
            let stream = NoStall::receiving(connect(address, *seconds)?, address);
            let mut output = output;
            unframe(std::io::BufReader::with_capacity(1 << 20, &stream), &mut output, report)
                .map_err(io_error(address))?;
            output.flush().map_err(io_error(address))?;
            Ok(AgentLine::Done)
        }
        AgentTask::Send { address, seconds } => {
            let stream = NoStall::sending(connect(address, *seconds)?, address);
            let mut input = input;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, &stream);
            std::io::copy(&mut input, &mut writer).map_err(io_error(address))?;
            writer.flush().map_err(io_error(address))?;
            drop(writer);
            stream.stream.shutdown(std::net::Shutdown::Write).map_err(io_error(address))?;
            // Wait for the other side to close: it has then read everything.
            let _ = std::io::copy(&mut &stream, &mut std::io::sink());
            Ok(AgentLine::Done)
        }
        _ => Ok(AgentLine::Done),
    }
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> crate::archive::ArchiveError + '_ {
    move |source| crate::archive::ArchiveError::Io { path: what.into(), source }
}

fn with_peer(e: crate::archive::ArchiveError, peer: &str) -> crate::archive::ArchiveError {
    match e {
        crate::archive::ArchiveError::Damaged(m) => {
            crate::archive::ArchiveError::Damaged(format!("{m} (from {peer})"))
        }
        other => other,
    }
}

/// The archive on a transfer connection, from `serve-pack` to `fetch`, in frames: a kind
/// byte, a big-endian u32 length, the payload. `S` (first) carries the content's size and
/// `R` what has been read of it so far (u64 each, at most once a second): what the relay
/// reports so dockhand can show an ETA for a remote volume. `D` carries archive bytes. A
/// connection that ends inside a frame is an error, never a shorter archive.
struct Framed<'a, W: Write> {
    out: W,
    read: &'a std::sync::atomic::AtomicU64,
    last: Instant,
}

const FRAME_SIZE: u8 = b'S';
const FRAME_READ: u8 = b'R';
const FRAME_DATA: u8 = b'D';

impl<'a, W: Write> Framed<'a, W> {
    fn new(mut out: W, size: u64, read: &'a std::sync::atomic::AtomicU64) -> std::io::Result<Self> {
        frame(&mut out, FRAME_SIZE, &size.to_be_bytes())?;
        Ok(Self { out, read, last: Instant::now() })
    }
}

fn frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
    out.write_all(&[kind])?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(payload)
}

impl<W: Write> Write for Framed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.last.elapsed() >= Duration::from_secs(1) {
            let read = self.read.load(std::sync::atomic::Ordering::Relaxed);
            frame(&mut self.out, FRAME_READ, &read.to_be_bytes())?;
            self.last = Instant::now();
        }
        let n = buf.len().min(1 << 20);
        frame(&mut self.out, FRAME_DATA, &buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads frames until the connection ends: archive bytes to `out`, sizes and progress to
/// `report` as [`AgentLine::Size`] and [`AgentLine::Read`].
fn unframe(
    mut input: impl std::io::Read,
    out: &mut impl Write,
    report: &(dyn Fn(AgentLine) + Sync),
) -> std::io::Result<()> {
    let cut = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the archive stream was cut short {what}"),
        )
    };
    let mut head = [0u8; 5];
    let mut payload = Vec::new();
    loop {
        // The end may come only between frames.
        let mut got = 0;
        while got < head.len() {
            match input.read(&mut head[got..])? {
                0 if got == 0 => return Ok(()),
                0 => return Err(cut("in a frame header")),
                n => got += n,
            }
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        // A frame is at most what one write of the 1 MiB buffer makes.
        if ![FRAME_DATA, FRAME_SIZE, FRAME_READ].contains(&head[0]) || len > 16 << 20 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a dockhand transfer stream (frame kind {:#04x}, {len} bytes)", head[0]),
            ));
        }
        payload.resize(len, 0);
        input
            .read_exact(&mut payload)
            .map_err(|e| if e.kind() == std::io::ErrorKind::UnexpectedEof { cut("in a frame") } else { e })?;
        let number = || payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        match head[0] {
            FRAME_DATA => out.write_all(&payload)?,
            FRAME_SIZE => report(AgentLine::Size { bytes: number().ok_or_else(|| cut("in a size frame"))? }),
            FRAME_READ => {
                report(AgentLine::Read { bytes: number().ok_or_else(|| cut("in a progress frame"))? })
            }
            other => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a dockhand transfer stream (frame kind {other:#04x})"),
                ));
            }
        }
    }
}

/// How long a transfer connection may go without moving a byte before it is given up:
/// the other side is gone or stuck, and waiting would only hold the job to its deadline.
const STALL: Duration = Duration::from_secs(120);

/// A transfer connection whose reads and writes fail, naming the peer, once nothing has
/// moved for [`STALL`].
struct NoStall {
    stream: std::net::TcpStream,
    peer: String,
}

impl NoStall {
    /// The receiving end of a transfer: it closes at once once it has read the end.
    fn receiving(stream: std::net::TcpStream, peer: &str) -> Self {
        // Setting a non-zero timeout on a connected socket cannot fail on Linux; if it
        // did, the job's own deadline still holds.
        let _ = stream.set_read_timeout(Some(STALL));
        let _ = stream.set_write_timeout(Some(STALL));
        Self { stream, peer: peer.to_owned() }
    }

    /// The sending end: closing waits until the peer has acknowledged everything, the FIN
    /// included. A helper exits right after, and its task's network goes with it: without
    /// this, the last segments or the FIN could be lost with the namespace, and the other
    /// side would wait for an end that never comes.
    ///
    /// Only the sender lingers. A receiver's FIN goes to a sender that may be gone already
    /// (it exits once its own FIN is acknowledged, and its namespace with it): nothing
    /// would ever acknowledge it, and a lingering close would hold the receiver, and the
    /// archive's last bytes it still has to pass on, for the whole [`STALL`].
    fn sending(stream: std::net::TcpStream, peer: &str) -> Self {
        let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(STALL));
        Self::receiving(stream, peer)
    }

    fn stalled(&self, e: std::io::Error) -> std::io::Error {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("nothing moved on the connection with {} for {} s", self.peer, STALL.as_secs()),
            )
        } else {
            e
        }
    }
}

impl std::io::Read for &NoStall {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&self.stream).read(buf).map_err(|e| self.stalled(e))
    }
}

impl std::io::Write for &NoStall {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&self.stream).write(buf).map_err(|e| self.stalled(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&self.stream).flush()
    }
}

/// The first connection on `port` within `seconds`.
fn accept_one(
    port: u16,
    seconds: u64,
) -> Result<(std::net::TcpStream, String), crate::archive::ArchiveError> {
    let what = format!("port {port}");
    let listener = std::net::TcpListener::bind(("0.0.0.0", port)).map_err(io_error(&what))?;
    listener.set_nonblocking(true).map_err(io_error(&what))?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false).map_err(io_error(&what))?;
                return Ok((stream, peer.to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let source = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {seconds} s"),
                );
                return Err(io_error(&what)(source));
            }
            Err(e) => return Err(io_error(&what)(e)),
        }
    }
}

/// A connection to `address`, retried (the other side's task may still be starting, its
/// name not yet in DNS) until `seconds` have passed.
fn connect(address: &str, seconds: u64) -> Result<std::net::TcpStream, crate::archive::ArchiveError> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        match std::net::TcpStream::connect(address) {
            Ok(stream) => return Ok(stream),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(io_error(address)(e)),
        }
    }
}

/// Refuses an agent that starts after `start_by` (milliseconds since the epoch): dockhand
/// gave up on it, so it must do nothing. Every task checks it, volume tasks included: a
/// `serve-*` helper started late would otherwise serve a volume to whoever connects first
/// (R3-18).
pub fn check_start_by(start_by: Option<u64>) -> Result<(), AgentError> {
    let now_ms = crate::job::epoch_ms(SystemTime::now());
    match start_by.filter(|s| now_ms > *s) {
        Some(start_by_ms) => Err(AgentError::TooLate { start_by_ms, now_ms }),
        None => Ok(()),
    }
}

/// Does `task` through `client` (the node's own engine), reporting each result to `report`
/// as it comes, then [`AgentLine::Done`]; does nothing after `start_by`.
pub async fn run_agent(
    client: &Client,
    task: &AgentTask,
    start_by: Option<u64>,
    report: &(dyn Fn(AgentLine) + Sync),
) -> Result<(), AgentError> {
    check_start_by(start_by)?;
    let node = client.info().await?.name;
    match task {
        AgentTask::CleanNode { prunes } => {
            for (prune, budget) in prunes {
                report(AgentLine::Step { step: prune_step(client, *prune, budget, &node).await });
            }
        }
        AgentTask::UnusedVolumes => {
            for volume in crate::volumes::unused_volumes(client).await? {
                report(AgentLine::Volume { volume });
            }
        }
        AgentTask::VolumeInfo { name } => {
            let line = match client.volume(name).await {
                Ok(v) => {
                    let users = crate::volumes::running_users(client, name).await?;
                    AgentLine::VolumeInfo { name: name.clone(), exists: true, driver: v.driver, users }
                }
                Err(e) if e.is_not_found() => AgentLine::VolumeInfo {
                    name: name.clone(),
                    exists: false,
                    driver: String::new(),
                    users: Vec::new(),
                },
                Err(e) => return Err(e.into()),
            };
            report(line);
        }
        AgentTask::HostExec { image, argv, budget } => {
            let step = crate::host_exec::host_exec_step(client, image, argv, budget.timeout, &node).await;
            report(AgentLine::Step { step });
        }
        AgentTask::Exec { argv, budget, targets, concurrency } => {
            let mut steps = futures_util::stream::iter(targets)
                .map(|t| exec_step(client, t, argv, budget, &node))
                .buffer_unordered(*concurrency);
            while let Some(step) = steps.next().await {
                report(AgentLine::Step { step });
            }
        }
        // The volume tasks run through `run_volume_agent`, without an engine.
        _ => {}
    }
    report(AgentLine::Done);
    Ok(())
}

/// One prune on the engine `client` talks to, as a step on `node`.
pub(crate) async fn prune_step(client: &Client, prune: Prune, budget: &Budget, node: &str) -> Step {
    let mut step = Step::start(prune.kind(), SystemTime::now());
    step.node = Some(node.to_owned());
    let run = async {
        let report = match prune {
            Prune::Containers => client.prune_containers(&Filters::new()).await?,
            Prune::Images => client.prune_images(&Filters::new().with("dangling", "false")).await?,
            Prune::BuildCache => client.prune_build_cache(&Filters::new()).await?,
        };
        Ok::<_, dockhand_engine::Error>(report.space_reclaimed)
    };
    match tokio::time::timeout(budget.timeout, run).await {
        Ok(Ok(reclaimed)) => {
            step.reclaimed_bytes = Some(reclaimed);
            step.finish(Status::Succeeded, SystemTime::now(), None);
        }
        Ok(Err(e)) => step.finish(Status::Failed, SystemTime::now(), Some(e.to_string())),
        Err(_) => step.finish(Status::Failed, SystemTime::now(), Some(budget.overrun(prune.kind()))),
    }
    step
}

/// Runs `argv` in `target`'s container through `client`, keeping the output's tail; a
/// non-zero exit, a container that goes away and an overrun are failures naming the task.
pub(crate) async fn exec_step(
    client: &Client,
    target: &ExecTarget,
    argv: &[String],
    budget: &Budget,
    node: &str,
) -> Step {
    let mut step = Step::start("exec", SystemTime::now());
    step.node = Some(node.to_owned());
    step.task = Some(target.task.clone());
    step.container = Some(target.container.clone());
    let mut tail = Tail::new(OUTPUT_TAIL);
    let started = Instant::now();
    let run = async {
        let mut output = client.exec(&target.container, &ExecSpec::new(argv.iter().cloned())).await?;
        while let Some(chunk) = output.next().await {
            tail.push(&chunk?.data);
        }
        output.exit_code().await
    };
    let outcome = tokio::time::timeout(budget.timeout, run).await;
    step.output_tail = Some(tail.text());
    match outcome {
        Ok(Ok(0)) => step.finish(Status::Succeeded, SystemTime::now(), None),
        Ok(Ok(code)) => {
            step.exit_code = Some(code);
            step.finish(
                Status::Failed,
                SystemTime::now(),
                Some(format!("the command exited with {code} in task {}", target.task)),
            );
        }
        Ok(Err(e)) => step.finish(
            Status::Failed,
            SystemTime::now(),
            Some(format!("task {} (container {}): {e}", target.task, short(&target.container))),
        ),
        Err(_) => step.finish(
            Status::Failed,
            SystemTime::now(),
            Some(budget.overrun(&format!("the exec in task {} after {:?}", target.task, started.elapsed()))),
        ),
    }
    if step.status == Status::Succeeded {
        step.exit_code = Some(0);
    }
    step
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(task: AgentTask) {
        let args = task.to_args(None);
        assert_eq!(args[0], "agent");
        assert_eq!(AgentTask::from_args(&args[1..]).unwrap(), (task.clone(), None), "{args:?}");
        let args = task.to_args(Some(1_795_000_000_000));
        assert_eq!(&args[1..3], ["--start-by", "1795000000000"]);
        assert_eq!(AgentTask::from_args(&args[1..]).unwrap(), (task, Some(1_795_000_000_000)), "{args:?}");
    }

    #[test]
    fn only_the_sending_end_of_a_transfer_lingers_on_close() {
        // A receiver's FIN goes to a sender whose namespace may be gone: a lingering close
        // there held the last bytes of a volume move for the whole stall time (CI, twice).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(address).unwrap();
        let (server, _) = listener.accept().unwrap();
        let receiving = NoStall::receiving(client, "test");
        let sending = NoStall::sending(server, "test");
        assert_eq!(rustix::net::sockopt::socket_linger(&receiving.stream).unwrap(), None);
        assert_eq!(rustix::net::sockopt::socket_linger(&sending.stream).unwrap(), Some(STALL));
        assert_eq!(receiving.stream.read_timeout().unwrap(), Some(STALL));
        assert_eq!(sending.stream.write_timeout().unwrap(), Some(STALL));
    }

    #[test]
    fn frames_carry_the_archive_its_size_and_progress_and_a_cut_is_an_error() {
        use std::sync::Mutex;
        let read = std::sync::atomic::AtomicU64::new(0);
        let mut wire = Vec::new();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut framed = Framed::new(&mut wire, 12_345, &read).unwrap();
            framed.last = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
            read.store(777, std::sync::atomic::Ordering::Relaxed);
            for chunk in data.chunks(30_000) {
                framed.write_all(chunk).unwrap();
            }
        }
        let lines = Mutex::new(Vec::new());
        let report = |l: AgentLine| lines.lock().unwrap().push(l);
        let mut out = Vec::new();
        unframe(wire.as_slice(), &mut out, &report).unwrap();
        assert_eq!(out, data);
        assert_eq!(
            *lines.lock().unwrap(),
            [AgentLine::Size { bytes: 12_345 }, AgentLine::Read { bytes: 777 }]
        );
        let err = unframe(&wire[..wire.len() - 10], &mut Vec::new(), &report).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        let err = unframe(&b"hello world"[..], &mut Vec::new(), &report).unwrap_err();
        assert!(err.to_string().contains("not a dockhand transfer stream"), "{err}");
    }

    #[test]
    fn arguments_round_trip() {
        round_trip(AgentTask::CleanNode {
            prunes: vec![
                (Prune::Containers, Budget::new(Duration::from_secs(60), "default")),
                (
                    Prune::BuildCache,
                    Budget::new(Duration::from_millis(1500), "label x.clean.builder.timeout"),
                ),
            ],
        });
        round_trip(AgentTask::UnusedVolumes);
        round_trip(AgentTask::Exec {
            argv: vec!["/bin/sh".into(), "-c".into(), "echo 'a b' -- --task; rm -rf $X".into()],
            budget: Budget::new(Duration::from_secs(5), "label dockhand.clean.exec.timeout"),
            targets: vec![
                ExecTarget { task: "t1".into(), container: "c1".into() },
                ExecTarget { task: "t2".into(), container: "c2".into() },
            ],
            concurrency: 3,
        });
        round_trip(AgentTask::Hold { seconds: 600 });
        round_trip(AgentTask::Pack { dir: "/volume".into(), level: 7 });
        round_trip(AgentTask::Unpack { dir: "/volume dir".into() });
        round_trip(AgentTask::ServePack { dir: "/volume".into(), level: 3, port: 7070, seconds: 60 });
        round_trip(AgentTask::ServeUnpack { dir: "/volume".into(), port: 7070, seconds: 60 });
        round_trip(AgentTask::Fetch { address: "dh-helper-x:7070".into(), seconds: 30 });
        round_trip(AgentTask::Send { address: "dh-helper-x:7070".into(), seconds: 30 });
        round_trip(AgentTask::VolumeInfo { name: "stack_data".into() });
        round_trip(AgentTask::HostExec {
            image: "registry.example.com/tools@sha256:abc".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), "journalctl --vacuum-time=7d -- --image x".into()],
            budget: Budget::new(Duration::from_secs(60), "label dockhand.clean.exec.timeout"),
        });
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let err = |a: &[&str]| AgentTask::from_args(&args(a)).unwrap_err().to_string();
        assert!(err(&[]).contains("verb"));
        assert!(err(&["nope"]).contains("\"nope\""));
        assert!(err(&["clean-node", "--volume-prune", "1s"]).contains("--volume-prune"));
        assert!(err(&["clean-node", "--image-prune", "soon"]).contains("soon"));
        assert!(err(&["exec", "--timeout", "1s"]).contains("command after --"));
        assert!(err(&["exec", "--task", "x", "--", "true"]).contains("TASK=CONTAINER"));
        assert!(err(&["exec", "--", "true"]).contains("--timeout"));
        assert!(err(&["host-exec", "--timeout", "1s,x", "--", "true"]).contains("--image"));
        assert!(err(&["host-exec", "--image", "i", "--timeout", "1s,x"]).contains("command after --"));
        assert!(err(&["volumes-unused", "x"]).contains("no arguments"));
        assert!(err(&["pack", "--level", "3"]).contains("--dir"));
        assert!(err(&["hold", "--dir", "/x"]).contains("\"--dir\""));
        assert!(err(&["unpack", "--level", "3"]).contains("\"--level\""));
        assert!(err(&["--start-by", "soon", "volumes-unused"]).contains("\"soon\""));
        assert!(split_out(&args(&["--out"])).unwrap_err().to_string().contains("socket path"));
    }

    #[test]
    fn the_channel_flag_comes_first_and_is_split_off() {
        let task = AgentTask::Pack { dir: "/volume".into(), level: 3 };
        let argv = exec_argv(&task, true);
        assert_eq!(argv[..4], ["dockhand", "agent", "--out", "/run/dockhand-channel/archive.sock"]);
        let (out, rest) = split_out(&argv[2..]).unwrap();
        assert_eq!(out, Some("/run/dockhand-channel/archive.sock".into()));
        assert_eq!(AgentTask::from_args(rest).unwrap(), (task.clone(), None));
        let plain = exec_argv(&task, false);
        assert_eq!(split_out(&plain[2..]).unwrap(), (None, &plain[2..]));
    }

    #[test]
    fn lines_are_tagged_json_and_other_output_is_not_a_line() {
        let line = AgentLine::Done.to_line();
        assert_eq!(line, r#"{"agent":"done"}"#);
        assert_eq!(AgentLine::parse(&format!("{line}\n")), Some(AgentLine::Done));
        assert_eq!(AgentLine::parse("WARN something"), None);
        assert_eq!(AgentLine::parse(r#"{"agent":"unknown"}"#), None);
    }
}
