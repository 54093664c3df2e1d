//! Process effects: spawning, signalling and watching the managed engine, behind a trait
//! so the supervisor's state machine can be tested without a daemon.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::command::CommandSpec;
use super::logs::{LastLines, classify};

/// Where the engine's output goes: `tracing`, with a prefix, and the last lines.
#[derive(Debug, Clone)]
pub struct LogSink {
    /// The prefix of each line (`managed.logprefix`).
    pub prefix: String,
    /// The default level (`managed.loglevel`).
    pub level: String,
    /// The last lines, for errors.
    pub last: Arc<Mutex<LastLines>>,
}

impl LogSink {
    fn line(&self, line: &str) {
        if let Ok(mut last) = self.last.lock() {
            last.push(line);
        }
        let prefix = &self.prefix;
        match classify(line, &self.level) {
            "error" => tracing::error!(target: "dockhand::managed", "{prefix}{line}"),
            "warn" => tracing::warn!(target: "dockhand::managed", "{prefix}{line}"),
            "debug" => tracing::debug!(target: "dockhand::managed", "{prefix}{line}"),
            "trace" => tracing::trace!(target: "dockhand::managed", "{prefix}{line}"),
            _ => tracing::info!(target: "dockhand::managed", "{prefix}{line}"),
        }
    }
}

/// The signals the supervisor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// SIGTERM: stop cleanly.
    Term,
    /// SIGKILL.
    Kill,
}

/// What the supervisor needs from the operating system.
pub trait ProcessEffects: Send + Sync {
    /// Starts `spec`, its output going to `log`; returns its pid.
    fn spawn(&self, spec: &CommandSpec, log: LogSink) -> Result<u32, String>;
    /// Sends `sig` to the process `pid`, or to its whole process group when `group`.
    fn signal(&self, pid: u32, sig: Sig, group: bool);
    /// True while `pid` runs (a zombie does not).
    fn alive(&self, pid: u32) -> bool;
}

enum Request {
    Spawn(CommandSpec, LogSink, mpsc::Sender<Result<u32, String>>),
}

/// The real effects. Every child is spawned by one dedicated, long-lived thread, which sets
/// the child's parent-death signal: the kernel delivers it when the *thread* that forked
/// the child exits, so a short-lived or pooled thread would kill the engine early. The same
/// thread reaps exited children.
pub struct OsProcesses {
    requests: Mutex<mpsc::Sender<Request>>,
    exited: Arc<Mutex<HashMap<u32, std::process::ExitStatus>>>,
    /// Pids this spawned: they count as alive until reaped, so that a stop never returns
    /// leaving a zombie behind.
    spawned: Mutex<std::collections::HashSet<u32>>,
}

impl std::fmt::Debug for OsProcesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsProcesses").finish_non_exhaustive()
    }
}

impl Default for OsProcesses {
    fn default() -> Self {
        Self::new()
    }
}

impl OsProcesses {
    /// Starts the spawner thread.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let exited = Arc::new(Mutex::new(HashMap::new()));
        let reaped = Arc::clone(&exited);
        std::thread::Builder::new()
            .name("dockhand-spawner".to_owned())
            .spawn(move || spawner(&rx, &reaped))
            .expect("the spawner thread starts");
        Self { requests: Mutex::new(tx), exited, spawned: Mutex::new(std::collections::HashSet::new()) }
    }
}

/// The spawner thread: spawns on request, reaps children, lives as long as the effects.
fn spawner(rx: &mpsc::Receiver<Request>, exited: &Mutex<HashMap<u32, std::process::ExitStatus>>) {
    let mut children: Vec<Child> = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Request::Spawn(spec, log, reply)) => {
                let result = spawn_child(&spec, log).map(|child| {
                    let pid = child.id();
                    children.push(child);
                    pid
                });
                let _ = reply.send(result);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        children.retain_mut(|child| match child.try_wait() {
            Ok(Some(status)) => {
                if let Ok(mut map) = exited.lock() {
                    map.insert(child.id(), status);
                }
                false
            }
            _ => true,
        });
    }
    // The effects were dropped: keep reaping until the children are gone, so none is left a
    // zombie. Their parent-death signal fires when this thread returns.
    for mut child in children {
        let _ = child.try_wait();
    }
}

fn spawn_child(spec: &CommandSpec, log: LogSink) -> Result<Child, String> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at the terminal reaches dockhand, which stops the
        // engine in stages, rather than the engine directly.
        .process_group(0);
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec; it only makes two raw
    // system calls through rustix (prctl and getppid), which allocate nothing and take no
    // locks, so it is async-signal-safe.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))?;
            // The parent may have died before the signal was armed: then nobody would stop us.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("the supervisor exited while the engine started"));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", spec.program))?;
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        // Drained continuously, or the engine would block on a full pipe.
        let _ = std::thread::Builder::new().name("dockhand-engine-log".to_owned()).spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                log.line(&line);
            }
        });
    }
    Ok(child)
}

impl ProcessEffects for OsProcesses {
    fn spawn(&self, spec: &CommandSpec, log: LogSink) -> Result<u32, String> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .map_err(|_| "the spawner is poisoned".to_owned())?
            .send(Request::Spawn(spec.clone(), log, reply))
            .map_err(|_| "the spawner thread is gone".to_owned())?;
        let pid = answer.recv().map_err(|_| "the spawner thread is gone".to_owned())??;
        if let Ok(mut spawned) = self.spawned.lock() {
            spawned.insert(pid);
        }
        Ok(pid)
    }

    fn signal(&self, pid: u32, sig: Sig, group: bool) {
        let signal = match sig {
            Sig::Term => rustix::process::Signal::TERM,
            Sig::Kill => rustix::process::Signal::KILL,
        };
        let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else { return };
        let _ = if group {
            rustix::process::kill_process_group(pid, signal)
        } else {
            rustix::process::kill_process(pid, signal)
        };
    }

    fn alive(&self, pid: u32) -> bool {
        if self.exited.lock().is_ok_and(|m| m.contains_key(&pid)) {
            return false;
        }
        if self.spawned.lock().is_ok_and(|s| s.contains(&pid)) {
            // Ours and not reaped yet: running, or a zombie about to be reaped.
            return true;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }
}
