//! Storage targets, backups and restores through the `dockhand` binary, against the real
//! engine in swarm mode and each storage target type's real peer on loopback. One test
//! binary, a module per topic; what they share is here.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use dockhand_e2e::remote::{KINDS, Remote};
use dockhand_e2e::s3::{ACCESS_KEY, S3Peer, SECRET_KEY};
use dockhand_e2e::{stderr, stdout};

/// Runs `dockhand` with a configuration file and data directory of the test's own.
fn dockhand(dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let config = dir.join("dockhand.yaml");
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let data = dir.join("data");
    let state = dir.join("state");
    let mut env =
        vec![("XDG_DATA_HOME", data.to_str().unwrap()), ("XDG_STATE_HOME", state.to_str().unwrap())];
    env.extend_from_slice(extra);
    dockhand_e2e::run(env!("CARGO_BIN_EXE_dockhand").as_ref(), &all, &env)
}

fn config(dir: &Path, targets: &str) {
    std::fs::write(dir.join("dockhand.yaml"), format!("storage:\n  targets:\n{targets}")).unwrap();
}

mod faults;
mod manager;
mod restores;
mod targets;
mod workers;

// ---------------------------------------------------------------------------------------
// Backups of a service's volume on the swarm's manager (the node dockhand is connected to).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dockhand_e2e::{BUSYBOX_IMAGE, ServiceGuard, TestSwarm, assert_nothing_left, last_job, unique_name};
use dockhand_engine::{Client, ExecSpec, Filters, ServiceSpec};

/// A test's own configuration, data and state directories.
struct Setup {
    dir: tempfile::TempDir,
    extra: Vec<(String, String)>,
    /// No `--helper-image`: on the manager, helpers run the image dockhand makes from
    /// itself. Else the image `dockhand helper-image push` put in the test registry, which
    /// nodes pull with the credentials of `config.json`.
    own_helper: bool,
}

impl Setup {
    fn new(targets: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        config(dir.path(), targets);
        Self { dir, extra: Vec::new(), own_helper: false }
    }

    /// The target `offsite` on `peer`, with its credentials in the environment.
    fn offsite(peer: &Remote) -> Self {
        let mut setup = Self::new(&peer.target_yaml("offsite", "swarm-a"));
        setup.extra = peer.credentials();
        setup
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("XDG_DATA_HOME".to_owned(), self.dir.path().join("data").display().to_string()),
            ("XDG_STATE_HOME".to_owned(), self.dir.path().join("state").display().to_string()),
        ];
        if !self.own_helper {
            let pushed =
                dockhand_e2e::pushed_helper_image(std::path::Path::new(env!("CARGO_BIN_EXE_dockhand")));
            env.push(("DOCKHAND_HELPER_IMAGE".to_owned(), pushed));
            env.push(("DOCKER_CONFIG".to_owned(), dockhand_e2e::swarm_docker_config().display().to_string()));
        }
        env.extend(self.extra.iter().cloned());
        env
    }

    fn local_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data/dockhand/backups")
    }

    fn command(&self, s: &TestSwarm, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockhand"));
        for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"] {
            cmd.env_remove(var);
        }
        cmd.env_remove("DOCKHAND_HELPER_IMAGE");
        let config = self.dir.path().join("dockhand.yaml");
        cmd.args(["-H", s.manager_url(), "--config", config.to_str().unwrap()]).args(args);
        cmd.envs(self.env());
        cmd
    }

    fn run(&self, s: &TestSwarm, args: &[&str]) -> Output {
        self.command(s, args).output().unwrap()
    }

    fn spawn(&self, s: &TestSwarm, args: &[&str]) -> Child {
        self.command(s, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }
}

/// A busybox service on the manager with `volume` at /data and backup labels; it stops at
/// once on SIGTERM.
fn backed_up(name: &str, volume: &str, extra: &[(&str, &str)]) -> ServiceSpec {
    let mut spec = ServiceSpec::new(name, BUSYBOX_IMAGE)
        .with_args(["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"])
        .with_volume(volume, "/data")
        .with_constraint("node.role==manager")
        .with_label("dockhand.backup.enable", "true")
        .with_label("dockhand.backup.volume-list-upload", volume);
    for (k, v) in extra {
        spec = spec.with_label(*k, *v);
    }
    spec
}

async fn running_container(client: &Client, service: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = client.tasks(&Filters::new().with("service", service)).await.unwrap();
        let running = tasks
            .iter()
            .find(|t| t.status.state == "running" && t.desired_state == "running")
            .and_then(|t| t.status.container_status.as_ref().map(|c| c.container_id.clone()));
        if let Some(id) = running.filter(|id| !id.is_empty()) {
            return id;
        }
        assert!(Instant::now() < deadline, "no running task of {service} within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn sh(client: &Client, container: &str, script: &str) -> String {
    let out = client.exec(container, &ExecSpec::new(["sh", "-c", script])).await.unwrap();
    let mut out = out;
    let mut text = Vec::new();
    while let Some(chunk) = out.next().await {
        text.extend_from_slice(&chunk.unwrap().data);
    }
    let code = out.exit_code().await.unwrap();
    let text = String::from_utf8_lossy(&text).into_owned();
    assert_eq!(code, 0, "{script}: {text}");
    text
}

/// Random data, symlinks (one dangling), a hard link, odd modes, owners other than root,
/// an empty directory and a name with spaces and UTF-8.
fn tree_script(mib: u32) -> String {
    format!(
        "set -e; cd /data; rm -rf /data/*; mkdir -p 'dir one/empty' deep/er/est; \
         head -c {} /dev/urandom > big.bin; head -c 4096 /dev/urandom > 'dir one/small'; \
         ln big.bin hard.bin; ln -s big.bin link; ln -s /nowhere dangling; \
         echo 'grüße' > 'deep/er/est/naïve file – ü.txt'; \
         chown 1234:5678 big.bin; chown -h 42:43 link; chown 999:999 'dir one/empty'; \
         chmod 4750 'dir one/small'; chmod 0700 'dir one/empty'; chmod 0751 deep; \
         touch -d '2001-02-03 04:05:06' deep/er; chown 70:70 /data; chmod 0750 /data",
        u64::from(mib) * 1024 * 1024
    )
}

/// Every path under /data with type and mode, owner, size, mtime, link target and a hash.
const LISTING: &str = "cd /data && find . | sort | while read -r f; do \
     stat -c '%n %f %u:%g %s %Y' \"$f\"; \
     if [ -L \"$f\" ]; then readlink \"$f\"; elif [ -f \"$f\" ]; then sha256sum \"$f\" | cut -c1-64; fi; done";

async fn replicas_and_intent(client: &Client, service: &str) -> (Option<u64>, Option<String>) {
    let s = client.service(service).await.unwrap();
    (s.spec.replicas(), s.spec.labels.get(dockhand_jobs::backup::INTENT_LABEL).cloned())
}

fn steps(job: &serde_json::Value) -> Vec<(String, String)> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

/// A service on the manager with a fresh volume and `backup.stop=true`; its name, its
/// volume's, and the guard that removes it.
async fn stopping_service(s: &TestSwarm, prefix: &str) -> (String, String, ServiceGuard) {
    let (name, volume) = (unique_name(prefix), unique_name(&format!("{prefix}-vol")));
    let spec = backed_up(&name, &volume, &[("dockhand.backup.stop", "true")]);
    s.manager().create_service(&spec).await.unwrap();
    let guard = ServiceGuard::new(s.manager_url(), &name);
    (name, volume, guard)
}

/// A stopping service whose labels name the target `offsite` on `peer`, and a setup with
/// that target's credentials.
async fn remote_service(s: &TestSwarm, peer: &Remote, prefix: &str) -> (String, ServiceGuard, Setup) {
    let (name, volume) = (unique_name(prefix), unique_name(&format!("{prefix}-vol")));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "offsite")];
    s.manager().create_service(&backed_up(&name, &volume, &labels)).await.unwrap();
    let guard = ServiceGuard::new(s.manager_url(), &name);
    (name, guard, Setup::offsite(peer))
}

/// Backs up, wipes, restores and compares; returns the backup job.
async fn round_trip(s: &TestSwarm, setup: &Setup, name: &str) -> serde_json::Value {
    round_trip_of(s, setup, name, 200).await
}

/// [`round_trip`] of a tree whose big file is `mib` MiB.
async fn round_trip_of(s: &TestSwarm, setup: &Setup, name: &str, mib: u32) -> serde_json::Value {
    let client = s.manager();
    let container = running_container(client, name).await;
    sh(client, &container, &tree_script(mib)).await;
    let before = sh(client, &container, LISTING).await;

    let out = setup.run(s, &["backup", name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(
        steps(&job),
        [("stop", "succeeded"), ("upload", "succeeded"), ("start", "succeeded")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(
        replicas_and_intent(client, name).await,
        (Some(1), None),
        "the service is back, its label gone"
    );

    let container = running_container(client, name).await;
    sh(client, &container, "rm -rf /data/* && echo junk > /data/junk && chmod 0755 /data").await;
    let out = setup.run(s, &["restore", name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let restored = last_job(&out);
    let kinds: Vec<String> = steps(&restored).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["verify", "stop", "restore", "start"], "{restored}");
    assert_eq!(restored["status"], "succeeded", "{restored}");
    // The archive goes back the way it came out: dockhand's channel where the engine is
    // local, else the exec stream.
    assert_eq!(restored["steps"][2]["via"], job["steps"][1]["via"], "{restored}\n{job}");
    let container = running_container(client, name).await;
    let after = sh(client, &container, LISTING).await;
    assert_eq!(before, after, "the volume came back byte for byte");
    let big = format!("big.bin 81a4 1234:5678 {}", u64::from(mib) * 1024 * 1024);
    assert!(before.contains(&big), "{before}");
    job
}

/// Every service spec and every helper container in the swarm, as JSON text.
async fn everything_in_the_swarm(s: &TestSwarm) -> String {
    let mut text = String::new();
    for service in s.manager().services(&Filters::new()).await.unwrap() {
        text.push_str(&serde_json::to_string(&service.spec).unwrap());
    }
    for (_, node) in &s.nodes {
        let helpers = node.containers(&Filters::new().with("label", "dockhand.helper")).await.unwrap();
        for c in helpers {
            if let Ok(inspect) = node.container(&c.id).await {
                text.push_str(&serde_json::to_string(&inspect).unwrap());
            }
        }
    }
    text
}
