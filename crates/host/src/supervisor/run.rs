//! The supervisor: start (after reconciling with a leftover engine), readiness, liveness
//! with restarts, and a staged stop.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dockhand_engine::{Client, Endpoint};

use super::backoff::{Backoff, RestartDecision};
use super::command::{CommandSpec, command_for};
use super::logs::LastLines;
use super::process::{LogSink, ProcessEffects, Sig};
use super::reconcile::{Leftover, OnLeftover, ReconcileAction, reconcile};
use crate::{Error, HostConfig};

/// How the supervisor behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupervisorOptions {
    /// How long the engine may take to exit after SIGTERM before SIGKILL (default 45 s).
    pub grace: Duration,
    /// What to do with an engine an earlier run left (default: adopt a healthy one).
    pub on_leftover: OnLeftover,
    /// How often liveness is checked (default 5 s).
    pub liveness_interval: Duration,
    /// Failed liveness checks in a row that count as a crash (default 3).
    pub liveness_failures: u32,
    /// When to restart after a crash (default: after 2 s, at most 3 per 60 s).
    pub backoff: Backoff,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(45),
            on_leftover: OnLeftover::Adopt,
            liveness_interval: Duration::from_secs(5),
            liveness_failures: 3,
            backoff: Backoff::default(),
        }
    }
}

/// Supervises one managed host's engine.
pub struct Supervisor<E: ProcessEffects> {
    id: String,
    spec: CommandSpec,
    socket: PathBuf,
    pidfile: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    interval: Duration,
    retries: u32,
    effects: Arc<E>,
    options: Mutex<SupervisorOptions>,
    log: LogSink,
    client: Client,
    /// The engine's main process, once started or adopted.
    pid: Mutex<Option<u32>>,
    /// Our own lock, held while we supervise.
    _lock: std::fs::File,
}

impl<E: ProcessEffects> std::fmt::Debug for Supervisor<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("id", &self.id).field("pid", &self.pid()).finish_non_exhaustive()
    }
}

impl<E: ProcessEffects> Supervisor<E> {
    /// A supervisor for the managed host `host`. Takes the supervisor's own lock
    /// (`<socket>.dockhand.lock`): a second supervisor of the same host is refused.
    pub fn new(host: &HostConfig, effects: Arc<E>, options: SupervisorOptions) -> Result<Self, Error> {
        let fail = |detail: String| Error::Host { id: host.id.clone(), detail };
        let spec = command_for(host).ok_or_else(|| fail("is not a managed host".to_owned()))?;
        let managed = host.managed.as_ref().ok_or_else(|| fail("is not a managed host".to_owned()))?;
        let socket = host
            .host
            .as_ref()
            .and_then(Endpoint::socket_path)
            .map(Path::to_path_buf)
            .ok_or_else(|| fail("a managed host needs a unix:// host".to_owned()))?;
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
        let lock_path = PathBuf::from(format!("{}.dockhand.lock", socket.display()));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| fail(format!("cannot open the supervisor lock {}: {e}", lock_path.display())))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
            fail(format!("another dockhand already supervises this host (it holds {})", lock_path.display()))
        })?;
        let client = Client::builder(Endpoint::unix(&socket))
            .connect_timeout(Some(Duration::from_secs(2)))
            .response_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::Engine { id: host.id.clone(), source: Box::new(e) })?;
        Ok(Self {
            id: host.id.clone(),
            pidfile: arg_value(&spec.args, "--pidfile").map(PathBuf::from),
            state_dir: spec
                .env
                .iter()
                .find(|(k, _)| k == "DOCKERD_ROOTLESS_ROOTLESSKIT_STATE_DIR")
                .map(|(_, v)| PathBuf::from(v)),
            spec,
            socket,
            interval: managed.health_interval,
            retries: managed.health_retries,
            effects,
            options: Mutex::new(options),
            log: LogSink {
                prefix: managed.log_prefix.clone(),
                level: managed.log_level.clone(),
                last: Arc::new(Mutex::new(LastLines::new(30))),
            },
            client,
            pid: Mutex::new(None),
            _lock: lock,
        })
    }

    /// The engine's main pid, once running.
    pub fn pid(&self) -> Option<u32> {
        self.pid.lock().ok().and_then(|p| *p)
    }

    /// A client for the engine.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn fail(&self, detail: String) -> Error {
        Error::Host { id: self.id.clone(), detail }
    }

    fn last_lines(&self) -> String {
        self.log.last.lock().map(|l| l.render()).unwrap_or_default()
    }

    fn options(&self) -> SupervisorOptions {
        self.options.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Starts the engine and waits until it answers. First reconciles with whatever an
    /// earlier run left: adopts a healthy matching engine, replaces it, or refuses, as
    /// configured.
    pub async fn start(&self) -> Result<(), Error> {
        let found = self.probe().await;
        match reconcile(&self.id, &found, self.options().on_leftover) {
            ReconcileAction::Start => {}
            ReconcileAction::Adopt { pids } => {
                let main = self.main_pid(&pids);
                tracing::info!(host = %self.id, pid = main, "adopting the running engine");
                *self.pid.lock().map_err(|_| self.fail("state poisoned".to_owned()))? = Some(main);
                return Ok(());
            }
            ReconcileAction::Replace { pids } => {
                tracing::info!(host = %self.id, ?pids, "replacing the engine an earlier run left");
                self.stop_pid(self.main_pid(&pids)).await?;
                for pid in pids {
                    self.effects.signal(pid, Sig::Kill, false);
                }
            }
            ReconcileAction::Refuse { message } => return Err(self.fail(message)),
        }
        self.spawn_and_wait().await
    }

    async fn spawn_and_wait(&self) -> Result<(), Error> {
        let pid = self.effects.spawn(&self.spec, self.log.clone()).map_err(|e| self.fail(e))?;
        *self.pid.lock().map_err(|_| self.fail("state poisoned".to_owned()))? = Some(pid);
        for _ in 0..self.retries {
            tokio::time::sleep(self.interval).await;
            if !self.effects.alive(pid) {
                return Err(self.fail(format!(
                    "the engine exited before it was ready; its last lines:\n{}",
                    self.last_lines()
                )));
            }
            if self.client.ping().await.is_ok() {
                tracing::info!(host = %self.id, pid, "engine ready");
                return Ok(());
            }
        }
        let _ = self.stop().await;
        Err(self.fail(format!(
            "the engine did not answer on {} after {} checks every {}; its last lines:\n{}",
            self.socket.display(),
            self.retries,
            dockhand_policy::format_go_duration(self.interval),
            self.last_lines()
        )))
    }

    /// Keeps the engine alive until `shutdown` completes, then stops it. A crash (the
    /// process gone, or failed pings in a row) is restarted within the burst limit; past
    /// it the supervisor stops and returns an error.
    pub async fn supervise(&self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let mut shutdown = std::pin::pin!(shutdown);
        let options = self.options();
        let mut backoff = options.backoff.clone();
        let mut failures = 0u32;
        loop {
            tokio::select! {
                () = &mut shutdown => return self.stop().await,
                () = tokio::time::sleep(options.liveness_interval) => {}
            }
            let alive = self.pid().is_some_and(|pid| self.effects.alive(pid));
            failures = if alive && self.client.ping().await.is_ok() { 0 } else { failures + 1 };
            if alive && failures < options.liveness_failures {
                continue;
            }
            failures = 0;
            match backoff.on_crash(Instant::now()) {
                RestartDecision::RestartAfter(delay) => {
                    tracing::warn!(host = %self.id, ?delay, "the engine crashed; restarting");
                    self.stop().await?;
                    tokio::time::sleep(delay).await;
                    if let Err(e) = self.spawn_and_wait().await {
                        tracing::error!(host = %self.id, error = %e, "the restart failed");
                    }
                }
                RestartDecision::GiveUp { restarts, window } => {
                    self.stop().await?;
                    return Err(self.fail(format!(
                        "the engine crashed again after {restarts} restarts within {}; giving up. Its last lines:\n{}",
                        dockhand_policy::format_go_duration(window),
                        self.last_lines()
                    )));
                }
            }
        }
    }

    /// Stops the engine in stages and checks that it is gone.
    pub async fn stop(&self) -> Result<(), Error> {
        let Some(pid) = self.pid.lock().ok().and_then(|mut p| p.take()) else { return Ok(()) };
        self.stop_pid(pid).await
    }

    /// SIGTERM to the main process only (dockerd exits without cleanup on a third signal,
    /// so the group is not signalled), the grace period, SIGKILL, then SIGKILL to whatever
    /// is left in its process group; finally the socket must be silent.
    async fn stop_pid(&self, pid: u32) -> Result<(), Error> {
        let grace = self.options().grace;
        self.effects.signal(pid, Sig::Term, false);
        let deadline = Instant::now() + grace;
        while self.effects.alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if self.effects.alive(pid) {
            tracing::warn!(host = %self.id, pid, ?grace, "the engine ignored SIGTERM; killing it");
            self.effects.signal(pid, Sig::Kill, false);
        }
        self.effects.signal(pid, Sig::Kill, true);
        for pid in self.probe_pids() {
            self.effects.signal(pid, Sig::Kill, false);
        }
        for _ in 0..50 {
            if !self.effects.alive(pid) && self.client.ping().await.is_err() && !self.state_lock_held() {
                self.sweep_mounts();
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(self.fail(format!(
            "the engine (pid {pid}), its socket {} or rootlesskit's state-dir lock survived the stop",
            self.socket.display()
        )))
    }

    /// Unmounts what a killed engine left below its `--data-root` and `--exec-root` (a plain
    /// dockerd bind-mounts its data root onto itself). A rootless engine's mounts live in its
    /// own namespace and vanish with it; there is nothing to do then.
    fn sweep_mounts(&self) {
        let roots: Vec<PathBuf> = ["--data-root", "--exec-root"]
            .iter()
            .filter_map(|flag| arg_value(&self.spec.args, flag))
            .map(PathBuf::from)
            .collect();
        if roots.is_empty() {
            return;
        }
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = table
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(|p| PathBuf::from(p.replace("\\040", " ")))
            .filter(|p| roots.iter().any(|root| p.starts_with(root)))
            .collect();
        // Deepest first.
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for point in points {
            if let Err(e) = rustix::mount::unmount(&point, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!(host = %self.id, mount = %point.display(), error = %e, "cannot unmount what the engine left");
            }
        }
    }

    /// What an earlier run left: live processes naming this host's socket or state
    /// directory, the pidfile's process, rootlesskit's lock, and whether the socket answers.
    async fn probe(&self) -> Leftover {
        let pids = self.probe_pids();
        let mut foreign = Vec::new();
        if let Some(pid) = self
            .pidfile
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            if self.effects.alive(pid) && !pids.contains(&pid) {
                foreign.push(pid);
            }
        }
        // rootlesskit's child: ours if it or its parent names this host, foreign otherwise.
        if let Some(child) = self
            .state_dir
            .as_ref()
            .and_then(|dir| std::fs::read_to_string(dir.join("child_pid")).ok())
            .and_then(|t| t.trim().parse::<u32>().ok())
            .filter(|&pid| self.effects.alive(pid))
        {
            let ours = pids.contains(&child) || parent_of(child).is_some_and(|p| pids.contains(&p));
            if !ours && !foreign.contains(&child) {
                foreign.push(child);
            }
        }
        Leftover {
            lock_held: self.state_lock_held(),
            pids,
            foreign_pids: foreign,
            socket_answers: self.client.ping().await.is_ok(),
        }
    }

    /// True when another process holds rootlesskit's state-dir lock (probed without
    /// blocking; a missing lock file is free).
    fn state_lock_held(&self) -> bool {
        self.state_dir.as_ref().is_some_and(|dir| {
            std::fs::File::open(dir.join("lock")).is_ok_and(|f| {
                let free = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared).is_ok();
                let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::Unlock);
                !free
            })
        })
    }

    /// Live processes whose command line names this host's socket or state directory.
    fn probe_pids(&self) -> Vec<u32> {
        let mut marks = vec![self.socket.display().to_string()];
        if let Some(dir) = &self.state_dir {
            marks.push(dir.display().to_string().trim_end_matches('/').to_owned());
        }
        let me = std::process::id();
        let mut pids: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && self.effects.alive(pid))
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                marks.iter().any(|m| cmdline.contains(m.as_str()))
            })
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The process to signal among `pids`: the one whose parent is not among them.
    fn main_pid(&self, pids: &[u32]) -> u32 {
        pids.iter()
            .copied()
            .find(|&pid| parent_of(pid).is_none_or(|pp| !pids.contains(&pp)))
            .or(pids.first().copied())
            .unwrap_or(0)
    }
}

/// The parent of `pid`, from `/proc`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// The value of `--name=value` or `--name value` among `args`.
fn arg_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if let Some(v) = a.strip_prefix(&prefix) {
            Some(v)
        } else if a == name {
            args.get(i + 1).map(String::as_str)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::Environment;
    use crate::HostsConfig;

    /// Fake effects: records what the supervisor does; processes live until killed.
    #[derive(Default)]
    struct Fake {
        log: Mutex<Vec<String>>,
        alive: Mutex<HashSet<u32>>,
        /// Lines the fake engine "prints" at spawn.
        says: Vec<String>,
        /// The engine dies at once after spawning.
        dies_at_once: bool,
        /// SIGTERM is ignored (only SIGKILL works).
        ignores_term: bool,
    }

    impl ProcessEffects for Fake {
        fn spawn(&self, spec: &CommandSpec, log: LogSink) -> Result<u32, String> {
            self.log.lock().unwrap().push(format!("spawn {} {}", spec.program, spec.args.join(" ")));
            for line in &self.says {
                log.last.lock().unwrap().push(line);
            }
            if !self.dies_at_once {
                self.alive.lock().unwrap().insert(4242);
            }
            Ok(4242)
        }

        fn signal(&self, pid: u32, sig: Sig, group: bool) {
            self.log.lock().unwrap().push(format!("{sig:?} {pid}{}", if group { " group" } else { "" }));
            if sig == Sig::Kill || !self.ignores_term {
                self.alive.lock().unwrap().remove(&pid);
            }
        }

        fn alive(&self, pid: u32) -> bool {
            self.alive.lock().unwrap().contains(&pid)
        }
    }

    fn host(dir: &Path, retries: u32) -> HostConfig {
        let yaml = format!(
            "docker:\n  hosts:\n    m:\n      type: managed\n      host: unix://{}/m.sock\n      managed:\n        executable: fake-dockerd\n        args: [\"--pidfile={}/m.pid\"]\n        healthCheck: {{interval: 10ms, retries: {retries}}}\n",
            dir.display(),
            dir.display()
        );
        HostsConfig::parse(&yaml, false, &Environment::default()).unwrap().get("m").unwrap().clone()
    }

    fn options() -> SupervisorOptions {
        SupervisorOptions { grace: Duration::from_millis(50), ..SupervisorOptions::default() }
    }

    #[tokio::test]
    async fn an_engine_that_exits_at_start_fails_with_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake {
            dies_at_once: true,
            says: vec!["[rootlesskit:parent] error: failed to setup UID/GID map".to_owned()],
            ..Fake::default()
        });
        let sup = Supervisor::new(&host(dir.path(), 5), Arc::clone(&fake), options()).unwrap();
        let msg = sup.start().await.unwrap_err().to_string();
        assert!(
            msg.contains("exited before it was ready") && msg.contains("failed to setup UID/GID map"),
            "{msg}"
        );
        let log = fake.log.lock().unwrap().clone();
        assert!(log[0].starts_with("spawn fake-dockerd --pidfile="), "{log:?}");
        assert!(log[0].ends_with(&format!("--host unix://{}/m.sock", dir.path().display())), "{log:?}");
    }

    #[tokio::test]
    async fn an_engine_that_never_answers_is_stopped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake { ignores_term: true, ..Fake::default() });
        let sup = Supervisor::new(&host(dir.path(), 3), Arc::clone(&fake), options()).unwrap();
        let msg = sup.start().await.unwrap_err().to_string();
        assert!(msg.contains("did not answer") && msg.contains("after 3 checks every 10ms"), "{msg}");
        // SIGTERM to the main process only; after the grace, SIGKILL; then the group swept.
        let log = fake.log.lock().unwrap().clone();
        assert_eq!(&log[1..4], ["Term 4242", "Kill 4242", "Kill 4242 group"], "{log:?}");
        assert!(!fake.alive(4242));
    }

    #[tokio::test]
    async fn a_second_supervisor_of_the_same_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Supervisor::new(&host(dir.path(), 3), Arc::new(Fake::default()), options()).unwrap();
        let msg = Supervisor::new(&host(dir.path(), 3), Arc::new(Fake::default()), options())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("another dockhand already supervises this host"), "{msg}");
    }

    #[tokio::test]
    async fn a_pidfile_held_by_a_foreign_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Our own test process stands in for a process that does not match the host.
        std::fs::write(dir.path().join("m.pid"), std::process::id().to_string()).unwrap();
        let fake = Arc::new(Fake::default());
        fake.alive.lock().unwrap().insert(std::process::id());
        let sup = Supervisor::new(&host(dir.path(), 3), Arc::clone(&fake), options()).unwrap();
        let msg = sup.start().await.unwrap_err().to_string();
        assert!(
            msg.contains(&format!("pids {}", std::process::id())) && msg.contains("do not match"),
            "{msg}"
        );
        assert!(fake.log.lock().unwrap().is_empty(), "nothing may be spawned or signalled");
    }

    #[test]
    fn arg_values_in_both_forms() {
        let args: Vec<String> = ["--pidfile=/a.pid", "--data-root", "/d"].map(String::from).to_vec();
        assert_eq!(arg_value(&args, "--pidfile"), Some("/a.pid"));
        assert_eq!(arg_value(&args, "--data-root"), Some("/d"));
        assert_eq!(arg_value(&args, "--exec-root"), None);
    }
}
