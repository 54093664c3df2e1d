//! The agent's protocol, shared by both sides: what a helper is asked to do ([`AgentTask`],
//! written to and read from typed arguments, never a shell string) and the JSON lines it
//! answers with ([`AgentLine`]).

use std::time::Duration;

use dockhand_policy::{format_go_duration, parse_go_duration};
use serde::{Deserialize, Serialize};

use crate::job::Step;

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

    pub(crate) fn overrun(&self, what: &str) -> String {
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
    /// update-service's `update.cleanup`: removes `image` from the node unless a container
    /// other than a stopped one of `service`'s earlier tasks uses it.
    RemoveImage {
        /// The image (`repository@sha256:…`).
        image: String,
        /// The service whose stopped task containers may go with it.
        service: String,
    },
}

/// Where a volume container sees the directory of dockhand's channel socket (see
/// `volume_io`): an archiver given `--out` writes there instead of its stdout, and an
/// extractor reads from there instead of its stdin.
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
            Self::RemoveImage { image, service } => args.extend([
                "remove-image".to_owned(),
                "--image".to_owned(),
                image.clone(),
                "--service".to_owned(),
                service.clone(),
            ]),
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
            "hold" | "pack" | "unpack" | "serve-pack" | "serve-unpack" | "fetch" | "send" | "volume-info"
            | "remove-image" => {
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
                        "remove-image" => &["--image", "--service"],
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
                    None => crate::archive::DEFAULT_ZSTD_LEVEL,
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
                    "remove-image" => {
                        Self::RemoveImage { image: text("--image")?, service: text("--service")? }
                    }
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

    /// True when the task reads an archive (`unpack`, `send`): given dockhand's channel, it
    /// reads it from there instead of its stdin; the others write to it.
    pub fn reads_archive(&self) -> bool {
        matches!(self, Self::Unpack { .. } | Self::Send { .. })
    }
}

/// One unused volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnusedVolume {
    /// The node (hostname) it is on.
    pub node: String,
    /// Its name.
    pub name: String,
    /// Its driver.
    pub driver: String,
    /// Bytes, when the engine reports them.
    pub size: Option<u64>,
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
        round_trip(AgentTask::RemoveImage {
            image: "registry.example.com/team/app@sha256:0123".into(),
            service: "svc-id".into(),
        });
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
