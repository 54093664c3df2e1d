//! The supervisor: start (after reconciling with a leftover engine), readiness, liveness
//! with restarts, and a staged stop. Every effect on the system goes through
//! [`ProcessEffects`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dockhand_engine::{Client, Endpoint};

use super::backoff::{Backoff, RestartDecision};
use super::command::{CommandSpec, command_for};
use super::logs::LastLines;
use super::process::{HeldLock, LogSink, ProcessEffects, Sig, socket_mode_warning};
use super::reconcile::{Leftover, OnLeftover, ReconcileAction, reconcile};
use crate::argv::arg_value;
use crate::{Error, HostEntry, SupervisorError};

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

/// The executables an engine of ours runs as: what `pidfile` and rootlesskit's `child_pid`
/// may name, besides the configured program itself.
const ENGINE_EXECUTABLES: [&str; 3] = ["dockerd", "rootlesskit", "containerd"];

/// Supervises one managed host's engine.
pub struct Supervisor {
    id: String,
    spec: CommandSpec,
    socket: PathBuf,
    pidfile: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    /// `--data-root` and `--exec-root`, for the mount sweep.
    roots: Vec<PathBuf>,
    interval: Duration,
    retries: u32,
    /// Our own uid: an engine of ours runs as it.
    uid: Option<u32>,
    effects: Arc<dyn ProcessEffects>,
    options: Mutex<SupervisorOptions>,
    log: LogSink,
    client: Client,
    /// The engine's main process, once started or adopted.
    pid: Mutex<Option<u32>>,
    /// Our own lock, held while we supervise.
    _lock: HeldLock,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("id", &self.id).field("pid", &self.pid()).finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor for the managed host `host`. Takes the supervisor's own lock
    /// (`<socket>.dockhand.lock`, 0600, in a 0700 directory when it creates one): a second
    /// supervisor of the same host is refused.
    pub fn new(
        host: &HostEntry,
        effects: Arc<dyn ProcessEffects>,
        options: SupervisorOptions,
    ) -> Result<Self, Error> {
        let fail = |source: SupervisorError| Error::Supervisor { id: host.id.clone(), source };
        let spec = command_for(host).ok_or_else(|| fail(SupervisorError::NotManaged))?;
        let managed = host.managed.as_ref().ok_or_else(|| fail(SupervisorError::NotManaged))?;
        let socket = host
            .host
            .as_ref()
            .and_then(Endpoint::socket_path)
            .map(Path::to_path_buf)
            .ok_or_else(|| fail(SupervisorError::NeedsUnixSocket))?;
        if let Some(dir) = socket.parent() {
            effects
                .create_private_dir(dir)
                .map_err(|source| fail(SupervisorError::CreateDir { dir: dir.to_owned(), source }))?;
        }
        let lock_path = PathBuf::from(format!("{}.dockhand.lock", socket.display()));
        let lock = effects
            .try_lock(&lock_path)
            .map_err(|source| fail(SupervisorError::Lock { path: lock_path.clone(), source }))?
            .ok_or_else(|| fail(SupervisorError::AlreadySupervised { path: lock_path.clone() }))?;
        let client = Client::builder(Endpoint::unix(&socket))
            .connect_timeout(Some(Duration::from_secs(2)))
            .response_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::Engine { id: host.id.clone(), source: Box::new(e) })?;
        let roots = ["--data-root", "--exec-root"]
            .iter()
            .filter_map(|flag| arg_value(&spec.args, flag))
            .map(PathBuf::from)
            .collect();
        Ok(Self {
            id: host.id.clone(),
            pidfile: arg_value(&spec.args, "--pidfile").map(PathBuf::from),
            state_dir: spec
                .env
                .iter()
                .find(|(k, _)| k == "DOCKERD_ROOTLESS_ROOTLESSKIT_STATE_DIR")
                .map(|(_, v)| PathBuf::from(v)),
            roots,
            uid: effects.process(std::process::id()).map(|me| me.uid),
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

    fn fail(&self, source: SupervisorError) -> Error {
        Error::Supervisor { id: self.id.clone(), source }
    }

    fn set_pid(&self, pid: Option<u32>) -> Result<(), Error> {
        *self.pid.lock().map_err(|_| self.fail(SupervisorError::Poisoned))? = pid;
        Ok(())
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
                self.set_pid(Some(main))?;
                return Ok(());
            }
            ReconcileAction::Replace { pids } => {
                tracing::info!(host = %self.id, ?pids, "replacing the engine an earlier run left");
                self.stop_pid(self.main_pid(&pids)).await?;
                for pid in pids {
                    self.effects.signal(pid, Sig::Kill, false);
                }
            }
            ReconcileAction::Refuse { message } => {
                return Err(self.fail(SupervisorError::Refused { message }));
            }
        }
        self.spawn_and_wait().await
    }

    async fn spawn_and_wait(&self) -> Result<(), Error> {
        let pid = self.effects.spawn(&self.spec, self.log.clone()).map_err(|source| {
            self.fail(SupervisorError::Spawn { program: self.spec.program.clone(), source })
        })?;
        self.set_pid(Some(pid))?;
        for _ in 0..self.retries {
            tokio::time::sleep(self.interval).await;
            if !self.effects.alive(pid) {
                return Err(self.fail(SupervisorError::ExitedAtStart { last_lines: self.last_lines() }));
            }
            if self.client.ping().await.is_ok() {
                tracing::info!(host = %self.id, pid, "engine ready");
                if let Some(warning) =
                    self.effects.file_mode(&self.socket).and_then(|m| socket_mode_warning(&self.socket, m))
                {
                    tracing::warn!(host = %self.id, "{warning}");
                }
                return Ok(());
            }
        }
        let _ = self.stop().await;
        Err(self.fail(SupervisorError::NotReady {
            socket: self.socket.clone(),
            checks: self.retries,
            every: self.interval,
            last_lines: self.last_lines(),
        }))
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
                    return Err(self.fail(SupervisorError::GaveUp {
                        restarts,
                        window,
                        last_lines: self.last_lines(),
                    }));
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
    /// is left in its process group and to the engine processes its pid files name;
    /// finally the socket must be silent.
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
        let (ours, _) = self.named_pids();
        for pid in ours {
            self.effects.signal(pid, Sig::Kill, false);
        }
        for _ in 0..50 {
            if !self.effects.alive(pid) && self.client.ping().await.is_err() && !self.state_lock_held() {
                self.sweep_mounts();
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(self.fail(SupervisorError::SurvivedStop { pid, socket: self.socket.clone() }))
    }

    /// Unmounts what a killed engine left at or below its `--data-root` and
    /// `--exec-root` (a plain dockerd bind-mounts its data root onto itself). The roots were
    /// validated as absolute and not `/` when the configuration was loaded, and
    /// [`crate::procfs::mounts_below`] refuses any other. A rootless engine's mounts live in
    /// its own namespace and vanish with it; there is nothing to do then.
    fn sweep_mounts(&self) {
        if self.roots.is_empty() {
            return;
        }
        let points = self.effects.mount_points();
        let mut below: Vec<PathBuf> =
            self.roots.iter().flat_map(|root| crate::procfs::mounts_below(&points, root)).collect();
        below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        below.dedup();
        for point in below {
            if let Err(e) = self.effects.unmount(&point) {
                tracing::warn!(host = %self.id, mount = %point.display(), error = %e, "cannot unmount what the engine left");
            }
        }
    }

    /// What an earlier run left: the processes the pidfile and rootlesskit's `child_pid`
    /// (and its parent, rootlesskit) name, sorted into ours and foreign, rootlesskit's lock,
    /// and whether the socket answers.
    async fn probe(&self) -> Leftover {
        let (pids, foreign_pids) = self.named_pids();
        Leftover {
            lock_held: self.state_lock_held(),
            pids,
            foreign_pids,
            socket_answers: self.client.ping().await.is_ok(),
        }
    }

    /// The live processes our pid files name: the pidfile's, rootlesskit's `child_pid` and
    /// its parent. Nothing else is ever considered, so a user's own process that merely
    /// mentions the socket is never signalled. Each is ours when it runs as our uid and its
    /// executable is an engine's ([`ENGINE_EXECUTABLES`] or the configured program);
    /// otherwise it is foreign. Returns (ours, foreign), each sorted.
    fn named_pids(&self) -> (Vec<u32>, Vec<u32>) {
        let read_pid = |path: PathBuf| self.effects.read_file(&path)?.trim().parse::<u32>().ok();
        let mut named: Vec<u32> = Vec::new();
        if let Some(pid) = self.pidfile.clone().and_then(read_pid) {
            named.push(pid);
        }
        if let Some(child) = self.state_dir.as_ref().and_then(|dir| read_pid(dir.join("child_pid"))) {
            named.push(child);
            if let Some(parent) = self.effects.process(child).map(|p| p.ppid) {
                named.push(parent);
            }
        }
        let me = std::process::id();
        let (mut ours, mut foreign) = (Vec::new(), Vec::new());
        for pid in named {
            if pid == me
                || pid <= 1
                || !self.effects.alive(pid)
                || ours.contains(&pid)
                || foreign.contains(&pid)
            {
                continue;
            }
            if self.is_our_engine(pid) { ours.push(pid) } else { foreign.push(pid) }
        }
        ours.sort_unstable();
        foreign.sort_unstable();
        (ours, foreign)
    }

    /// True when `pid` runs as our uid, and its executable is an engine's.
    fn is_our_engine(&self, pid: u32) -> bool {
        let Some(info) = self.effects.process(pid) else { return false };
        let program = Path::new(&self.spec.program).file_name().map(|n| n.to_string_lossy().into_owned());
        let exe = info.exe.as_deref().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
        let engine = exe
            .is_some_and(|exe| ENGINE_EXECUTABLES.contains(&exe.as_str()) || Some(&exe) == program.as_ref());
        engine && self.uid.is_some_and(|uid| uid == info.uid)
    }

    /// True when another process holds rootlesskit's state-dir lock (probed without
    /// blocking; a missing lock file is free).
    fn state_lock_held(&self) -> bool {
        self.state_dir.as_ref().is_some_and(|dir| self.effects.lock_held(&dir.join("lock")))
    }

    /// The process to signal among `pids`: the one whose parent is not among them.
    fn main_pid(&self, pids: &[u32]) -> u32 {
        pids.iter()
            .copied()
            .find(|&pid| self.effects.process(pid).is_none_or(|p| !pids.contains(&p.ppid)))
            .or(pids.first().copied())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::Environment;
    use crate::HostsConfig;
    use crate::procfs::ProcessInfo;

    /// Fake effects: records what the supervisor does; processes live until killed.
    #[derive(Default)]
    struct Fake {
        log: Mutex<Vec<String>>,
        alive: Mutex<HashSet<u32>>,
        /// The process table beyond our own process.
        procs: Mutex<HashMap<u32, ProcessInfo>>,
        /// The mount table.
        mounts: Mutex<Vec<PathBuf>>,
        /// Lines the fake engine "prints" at spawn.
        says: Vec<String>,
        /// The engine dies at once after spawning.
        dies_at_once: bool,
        /// SIGTERM is ignored (only SIGKILL works).
        ignores_term: bool,
    }

    /// Locks held by any fake, process-wide, as flock is.
    static LOCKS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    struct FakeLock(PathBuf);

    impl Drop for FakeLock {
        fn drop(&mut self) {
            LOCKS.lock().unwrap().retain(|p| p != &self.0);
        }
    }

    const OUR_UID: u32 = 1000;

    fn info(pid: u32, ppid: u32, uid: u32, exe: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            uid,
            state: 'S',
            name: exe.rsplit('/').next().unwrap_or_default().to_owned(),
            cmdline: vec![exe.to_owned()],
            exe: Some(PathBuf::from(exe)),
        }
    }

    impl Fake {
        /// A live process the fake knows.
        fn with_process(&self, p: ProcessInfo) {
            self.alive.lock().unwrap().insert(p.pid);
            self.procs.lock().unwrap().insert(p.pid, p);
        }
    }

    impl ProcessEffects for Fake {
        fn spawn(&self, spec: &CommandSpec, log: LogSink) -> std::io::Result<u32> {
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

        fn create_private_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.log.lock().unwrap().push(format!("mkdir {}", dir.display()));
            Ok(())
        }

        fn try_lock(&self, path: &Path) -> std::io::Result<Option<HeldLock>> {
            let mut locks = LOCKS.lock().unwrap();
            if locks.iter().any(|p| p == path) {
                return Ok(None);
            }
            locks.push(path.to_owned());
            Ok(Some(HeldLock::new(FakeLock(path.to_owned()))))
        }

        fn lock_held(&self, path: &Path) -> bool {
            LOCKS.lock().unwrap().iter().any(|p| p == path)
        }

        fn read_file(&self, path: &Path) -> Option<String> {
            std::fs::read_to_string(path).ok()
        }

        fn process(&self, pid: u32) -> Option<ProcessInfo> {
            if pid == std::process::id() {
                return Some(info(pid, 1, OUR_UID, "/test/harness"));
            }
            self.procs.lock().unwrap().get(&pid).cloned()
        }

        fn mount_points(&self) -> Vec<PathBuf> {
            self.mounts.lock().unwrap().clone()
        }

        fn unmount(&self, path: &Path) -> std::io::Result<()> {
            self.log.lock().unwrap().push(format!("unmount {}", path.display()));
            self.mounts.lock().unwrap().retain(|p| p != path);
            Ok(())
        }

        fn file_mode(&self, _path: &Path) -> Option<u32> {
            Some(0o660)
        }
    }

    fn host(dir: &Path, retries: u32) -> HostEntry {
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
        let sup = Supervisor::new(&host(dir.path(), 5), fake.clone(), options()).unwrap();
        let msg = sup.start().await.unwrap_err().to_string();
        assert!(
            msg.contains("exited before it was ready") && msg.contains("failed to setup UID/GID map"),
            "{msg}"
        );
        let log = fake.log.lock().unwrap().clone();
        assert_eq!(log[0], format!("mkdir {}", dir.path().display()), "the socket's directory first");
        assert!(log[1].starts_with("spawn fake-dockerd --pidfile="), "{log:?}");
        assert!(log[1].ends_with(&format!("--host unix://{}/m.sock", dir.path().display())), "{log:?}");
    }

    #[tokio::test]
    async fn an_engine_that_never_answers_is_stopped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake { ignores_term: true, ..Fake::default() });
        let sup = Supervisor::new(&host(dir.path(), 3), fake.clone(), options()).unwrap();
        let msg = sup.start().await.unwrap_err().to_string();
        assert!(msg.contains("did not answer") && msg.contains("after 3 checks every 10ms"), "{msg}");
        // SIGTERM to the main process only; after the grace, SIGKILL; then the group swept.
        let log = fake.log.lock().unwrap().clone();
        assert_eq!(&log[2..5], ["Term 4242", "Kill 4242", "Kill 4242 group"], "{log:?}");
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
    async fn the_lock_is_released_with_its_supervisor() {
        let dir = tempfile::tempdir().unwrap();
        let first = Supervisor::new(&host(dir.path(), 3), Arc::new(Fake::default()), options()).unwrap();
        drop(first);
        assert!(Supervisor::new(&host(dir.path(), 3), Arc::new(Fake::default()), options()).is_ok());
    }

    #[tokio::test]
    async fn a_pidfile_held_by_a_foreign_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A dockerd, but another user's: not ours to signal.
        std::fs::write(dir.path().join("m.pid"), "777").unwrap();
        let fake = Arc::new(Fake::default());
        fake.with_process(info(777, 1, 0, "/usr/sbin/dockerd"));
        let sup = Supervisor::new(&host(dir.path(), 3), fake.clone(), options()).unwrap();
        let msg = sup.start().await.unwrap_err().to_string();
        assert!(msg.contains("pids 777") && msg.contains("do not match"), "{msg}");
        assert!(
            fake.log.lock().unwrap().iter().all(|l| !l.starts_with("Term") && !l.starts_with("Kill")),
            "nothing may be signalled"
        );
    }

    #[tokio::test]
    async fn a_process_of_ours_but_not_an_engine_is_foreign_too() {
        let dir = tempfile::tempdir().unwrap();
        // Our uid, but a pidfile that a reused pid now names: a user's `docker events`.
        std::fs::write(dir.path().join("m.pid"), "778").unwrap();
        let fake = Arc::new(Fake::default());
        fake.with_process(info(778, 1, OUR_UID, "/usr/bin/docker"));
        let sup = Supervisor::new(&host(dir.path(), 3), fake.clone(), options()).unwrap();
        let msg = sup.start().await.unwrap_err().to_string();
        assert!(msg.contains("pids 778"), "{msg}");
        assert!(
            fake.log.lock().unwrap().iter().all(|l| !l.contains("778")),
            "{:?}",
            fake.log.lock().unwrap()
        );
    }

    #[tokio::test]
    async fn a_leftover_engine_of_ours_is_replaced_and_its_mounts_swept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(dir.path().join("m.pid"), "779").unwrap();
        let fake = Arc::new(Fake::default());
        fake.with_process(info(779, 1, OUR_UID, "/usr/sbin/dockerd"));
        let other = PathBuf::from(format!("{}.bak", data.display()));
        *fake.mounts.lock().unwrap() = vec![PathBuf::from("/"), data.clone(), data.join("x"), other.clone()];
        let yaml = format!(
            "docker:\n  hosts:\n    m:\n      type: managed\n      host: unix://{d}/m.sock\n      managed:\n        executable: fake-dockerd\n        args: [\"--pidfile={d}/m.pid\", \"--data-root={data}\"]\n        healthCheck: {{interval: 10ms, retries: 2}}\n",
            d = dir.path().display(),
            data = data.display()
        );
        let host =
            HostsConfig::parse(&yaml, false, &Environment::default()).unwrap().get("m").unwrap().clone();
        let sup = Supervisor::new(&host, fake.clone(), options()).unwrap();
        // The socket does not answer: not healthy, so the leftover is replaced.
        let _ = sup.start().await;
        let log = fake.log.lock().unwrap().clone();
        assert!(log.contains(&"Term 779".to_owned()), "{log:?}");
        let unmounts: Vec<&String> = log.iter().filter(|l| l.starts_with("unmount")).collect();
        assert_eq!(
            unmounts,
            [&format!("unmount {}", data.join("x").display()), &format!("unmount {}", data.display())],
            "only at or below the data root, deepest first: {log:?}"
        );
        assert!(fake.mounts.lock().unwrap().contains(&other));
    }
}
