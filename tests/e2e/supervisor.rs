//! The managed-host supervisor against real `dockerd` processes (as root), each with its own
//! socket, data root, exec root and pid file, sharing the private engine's containerd under
//! namespaces of their own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use dockhand_e2e::{engine, managed_dockerd_yaml, processes_naming};
use dockhand_engine::{Client, Endpoint};
use dockhand_host::Environment;
use dockhand_host::supervisor::{
    Backoff, OnLeftover, OsProcesses, ProcessEffects, Supervisor, SupervisorOptions,
};
use dockhand_host::{HostEntry, HostsConfig};

/// A managed host whose engine is a plain dockerd under a short temporary directory.
struct Managed {
    dir: tempfile::TempDir,
    host: HostEntry,
}

impl Managed {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("dhsup").tempdir_in("/tmp").unwrap();
        let yaml = managed_dockerd_yaml(dir.path(), "sup");
        let env = Environment::from_vars([(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )]);
        let host = HostsConfig::parse(&yaml, false, &env).unwrap().get("sup").unwrap().clone();
        Self { dir, host }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("d.sock")
    }

    fn supervisor(&self, options: SupervisorOptions) -> Supervisor {
        Supervisor::new(&self.host, Arc::new(OsProcesses::new()), options).unwrap()
    }

    /// The same engine started by hand, as a dockhand killed earlier would leave it.
    async fn start_by_hand(&self) -> Child {
        let mut cmd = Command::new("dockerd");
        let spec = dockhand_host::supervisor::command_for(&self.host).unwrap();
        cmd.args(&spec.args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().unwrap();
        wait_answers(&self.socket(), true).await;
        child
    }

    /// No process names this engine's directory, and nothing is mounted below it.
    fn assert_nothing_left(&self) {
        let left = processes_naming(self.dir.path());
        assert!(left.is_empty(), "processes left: {left:?}");
        let mounts = dockhand_e2e::mounts_naming(self.dir.path());
        assert!(mounts.is_empty(), "mounts left below {}: {mounts:?}", self.dir.path().display());
    }
}

async fn wait_answers(socket: &Path, answers: bool) {
    let client = Client::new(Endpoint::unix(socket)).unwrap();
    for _ in 0..300 {
        if client.ping().await.is_ok() == answers {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never {}", socket.display(), if answers { "answered" } else { "went silent" });
}

fn quick() -> SupervisorOptions {
    let mut options = SupervisorOptions::default();
    options.grace = Duration::from_secs(20);
    options
}

#[tokio::test]
async fn start_answer_and_stop_leaving_nothing() {
    engine().await; // the shared containerd must be up
    let m = Managed::new();
    let sup = m.supervisor(quick());
    sup.start().await.unwrap();
    let pid = sup.pid().unwrap();
    let info = sup.client().info().await.unwrap();
    assert_eq!(info.docker_root_dir, m.dir.path().join("data").display().to_string());
    sup.stop().await.unwrap();
    assert!(!OsProcesses::new().alive(pid));
    wait_answers(&m.socket(), false).await;
    m.assert_nothing_left();
}

#[tokio::test]
async fn a_crashed_engine_is_restarted_until_the_burst_limit() {
    engine().await;
    let m = Managed::new();
    let mut options = quick();
    options.liveness_interval = Duration::from_millis(300);
    options.liveness_failures = 1;
    options.backoff = Backoff::new(Duration::from_millis(200), 1, Duration::from_secs(120));
    let sup = Arc::new(m.supervisor(options));
    sup.start().await.unwrap();
    let first = sup.pid().unwrap();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let sup = Arc::clone(&sup);
        tokio::spawn(async move {
            sup.supervise(async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let kill = |pid: u32| {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    };
    kill(first);
    // Restarted: a new pid that answers.
    let mut second = None;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(pid) = sup.pid().filter(|&p| p != first) {
            if sup.client().ping().await.is_ok() {
                second = Some(pid);
                break;
            }
        }
    }
    let second = second.expect("the supervisor restarted the engine");
    // A second crash within the window is past the burst limit of 1: it gives up.
    kill(second);
    let result = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the supervisor gave up")
        .unwrap();
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("giving up") && msg.contains("1 restarts"), "{msg}");
    drop(stop_tx);
    wait_answers(&m.socket(), false).await;
    m.assert_nothing_left();
}

#[tokio::test]
async fn a_leftover_engine_is_adopted_replaced_or_refused() {
    engine().await;
    let m = Managed::new();

    // fail: refused, naming the pid.
    let mut by_hand = m.start_by_hand().await;
    let mut options = quick();
    options.on_leftover = OnLeftover::Fail;
    let msg = m.supervisor(options).start().await.unwrap_err().to_string();
    assert!(msg.contains(&by_hand.id().to_string()) && msg.contains("kill -TERM"), "{msg}");

    // adopt (the default): the running engine is kept and supervised.
    let sup = m.supervisor(quick());
    sup.start().await.unwrap();
    assert_eq!(sup.pid(), Some(by_hand.id()));
    sup.stop().await.unwrap();
    let _ = by_hand.wait();
    drop(sup);

    // replace: stopped, and a fresh one started.
    let mut by_hand = m.start_by_hand().await;
    let mut options = quick();
    options.on_leftover = OnLeftover::Replace;
    let sup = m.supervisor(options);
    sup.start().await.unwrap();
    let _ = by_hand.wait();
    assert_ne!(sup.pid(), Some(by_hand.id()));
    sup.client().ping().await.unwrap();
    sup.stop().await.unwrap();
    wait_answers(&m.socket(), false).await;
    m.assert_nothing_left();
}

#[tokio::test]
async fn the_registry_starts_a_managed_host_on_demand_and_stops_it() {
    engine().await;
    let m = Managed::new();
    let yaml = managed_dockerd_yaml(m.dir.path(), "ondemand");
    let env =
        Environment::from_vars([("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")]);
    let registry = dockhand_host::HostRegistry::new(HostsConfig::parse(&yaml, false, &env).unwrap(), env);
    let client = registry.connect("ondemand").await.unwrap();
    assert!(!client.info().await.unwrap().docker_root_dir.is_empty());
    // A second connect reuses the running engine.
    registry.connect("ondemand").await.unwrap().ping().await.unwrap();
    let states = registry.list().await;
    assert!(states.iter().any(|s| s.id == "ondemand" && s.reachable), "{states:?}");
    registry.shutdown().await.unwrap();
    wait_answers(&m.socket(), false).await;
    m.assert_nothing_left();
}
