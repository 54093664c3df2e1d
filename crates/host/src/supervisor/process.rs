//! The supervisor's operating-system effects, all behind one trait (as youki's `Syscall`):
//! spawning, signalling and watching processes, its lock, the files it reads, the process
//! table and the mount table. Its state machine can then be tested without a daemon, the
//! lock and mount paths included; [`OsProcesses`] is the real system.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::path::{Path, PathBuf};

use super::command::CommandSpec;
use super::logs::{LastLines, classify};
use crate::procfs::{self, ProcessInfo};

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

/// A lock held until it is dropped.
pub struct HeldLock(#[allow(dead_code)] Box<dyn Send + Sync>);

impl HeldLock {
    /// Wraps whatever releases the lock when dropped (a locked file, a test's token).
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self(Box::new(guard))
    }
}

impl std::fmt::Debug for HeldLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldLock")
    }
}

/// Everything the supervisor needs from the operating system.
pub trait ProcessEffects: Send + Sync {
    /// Starts `spec`, its output going to `log`; returns its pid.
    fn spawn(&self, spec: &CommandSpec, log: LogSink) -> std::io::Result<u32>;
    /// Sends `sig` to the process `pid`, or to its whole process group when `group`.
    fn signal(&self, pid: u32, sig: Sig, group: bool);
    /// True while `pid` runs (a zombie does not).
    fn alive(&self, pid: u32) -> bool;
    /// Creates `dir` and its missing parents, the new ones private (0700).
    fn create_private_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// Takes an exclusive lock on `path` (created 0600 if missing) without waiting;
    /// `Ok(None)` when another process holds it.
    fn try_lock(&self, path: &Path) -> std::io::Result<Option<HeldLock>>;
    /// True when another process holds a lock on `path` (a missing file is free).
    fn lock_held(&self, path: &Path) -> bool;
    /// A small file's text (a pid file); `None` when it cannot be read.
    fn read_file(&self, path: &Path) -> Option<String>;
    /// The process `pid`, as `/proc` describes it.
    fn process(&self, pid: u32) -> Option<ProcessInfo>;
    /// The mount points of our mount namespace.
    fn mount_points(&self) -> Vec<PathBuf>;
    /// Detaches the mount at `path`.
    fn unmount(&self, path: &Path) -> std::io::Result<()>;
    /// The permission bits of `path` (such as the engine's socket); `None` when it is gone.
    fn file_mode(&self, path: &Path) -> Option<u32>;
}

enum Request {
    Spawn(CommandSpec, LogSink, mpsc::Sender<std::io::Result<u32>>),
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

fn spawn_child(spec: &CommandSpec, log: LogSink) -> std::io::Result<Child> {
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
    let mut child = cmd.spawn()?;
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
    fn spawn(&self, spec: &CommandSpec, log: LogSink) -> std::io::Result<u32> {
        let gone = || std::io::Error::other("the spawner thread is gone");
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .map_err(|_| std::io::Error::other("the spawner is poisoned"))?
            .send(Request::Spawn(spec.clone(), log, reply))
            .map_err(|_| gone())?;
        let pid = answer.recv().map_err(|_| gone())??;
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
        procfs::alive(pid)
    }

    fn create_private_dir(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // The directories this creates are 0700 whatever the umask; existing ones are left.
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
        std::fs::create_dir_all(dir)?;
        for created in missing {
            std::fs::set_permissions(created, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> std::io::Result<Option<HeldLock>> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)?;
        // 0600 whatever the umask, and whatever an older file had.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(HeldLock::new(file))),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn lock_held(&self, path: &Path) -> bool {
        std::fs::File::open(path).is_ok_and(|f| {
            let free = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared).is_ok();
            let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::Unlock);
            !free
        })
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn process(&self, pid: u32) -> Option<ProcessInfo> {
        procfs::process(pid)
    }

    fn mount_points(&self) -> Vec<PathBuf> {
        procfs::mount_points()
    }

    fn unmount(&self, path: &Path) -> std::io::Result<()> {
        rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).map_err(Into::into)
    }

    fn file_mode(&self, path: &Path) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o7777)
    }
}

/// A warning when others may write to the engine's socket (anyone who can write to it
/// controls the engine, and so the host). `None` when the mode is safe.
pub fn socket_mode_warning(socket: &Path, mode: u32) -> Option<String> {
    (mode & 0o002 != 0).then(|| {
        format!(
            "the engine socket {} is writable by every user (mode {mode:o}): anyone on this host can control \
             the engine; restrict it (chmod o-w) or move it to a private directory",
            socket.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_directories_and_the_lock_have_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a").join("b");
        let os = OsProcesses::new();
        os.create_private_dir(&deep).unwrap();
        assert_eq!(os.file_mode(&dir.path().join("a")), Some(0o700));
        assert_eq!(os.file_mode(&deep), Some(0o700));
        let lock = deep.join("x.lock");
        std::fs::write(&lock, "").unwrap();
        std::fs::set_permissions(
            &lock,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o666),
        )
        .unwrap();
        let held = os.try_lock(&lock).unwrap().expect("free");
        assert_eq!(os.file_mode(&lock), Some(0o600));
        assert!(os.try_lock(&lock).unwrap().is_none(), "a second lock is refused");
        drop(held);
        assert!(os.try_lock(&lock).unwrap().is_some());
    }

    #[test]
    fn a_socket_others_may_write_is_warned_about() {
        let sock = Path::new("/run/x.sock");
        assert!(socket_mode_warning(sock, 0o666).unwrap().contains("writable by every user"));
        assert!(socket_mode_warning(sock, 0o660).is_none() && socket_mode_warning(sock, 0o600).is_none());
    }
}
