//! The harness of dockhand's end-to-end tests: it finds the real engine a test run
//! started, and runs dockhand's binaries with a clean environment.
//!
//! The engine is the one named by `DOCKHAND_TEST_HOST` (set by `cargo xtask ci`), else the
//! private engine of `cargo xtask engine up` under `target/dh-engine/` (or
//! `$DOCKHAND_ENGINE_DIR`). When none answers, tests fail with a message that says how to
//! start one: an engine test never passes without an engine.

pub mod azure;
pub mod browser;
pub mod pki;
pub mod postgres;
pub mod remote;
pub mod s3;
pub mod sftp;
pub mod smtp;
pub mod webdav;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dockhand_engine::{Client, Endpoint, Filters, Task};

/// The engine under test.
#[derive(Debug, Clone)]
pub struct TestEngine {
    /// Its URL, as passed to `-H`.
    pub url: String,
    /// A client for it.
    pub client: Client,
}

/// dockhand's own image built from this checkout (`cargo xtask engine up`, `swarm up`): the
/// helper image of the tests.
pub const HELPER_IMAGE: &str = "dockhand/dockhand:dev";

/// The busybox-based test image that `cargo xtask engine up` creates.
pub const BUSYBOX_IMAGE: &str = "dockhand/busybox:test";

/// busybox with the machine's `curl` (`cargo xtask engine up`, `swarm up`): a CI job's
/// HTTPS call on the overlay network.
pub const CURL_IMAGE: &str = "dockhand/curl:test";

/// The free and the total bytes of the filesystem that holds `path`.
///
/// # Errors
/// When `statvfs` fails on `path`.
pub fn disk_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let stat = rustix::fs::statvfs(path)?;
    Ok((stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize))
}

/// `bytes` in GiB, for messages.
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// A name no other test run or test uses: `dh-<prefix>-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("dh-{prefix}-{}-{n}", std::process::id())
}

/// Removes a service when dropped, so a test cleans up whether it passes or fails.
#[derive(Debug)]
pub struct ServiceGuard {
    url: String,
    name: String,
}

impl ServiceGuard {
    /// Guards the service `name` on the engine at `url`.
    pub fn new(url: &str, name: &str) -> Self {
        Self { url: url.to_owned(), name: name.to_owned() }
    }
}

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop cannot await: remove on a runtime of its own, with a client of its own. A
        // test's client cannot serve here: its pooled connections are driven by the test's
        // runtime, which is blocked in this very drop.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            let client = Client::new(url.parse().expect("the engine URL")).expect("a client");
            let _ = rt.block_on(client.remove_service(&name));
        })
        .join();
    }
}

/// Waits up to 30 s for a task of `service` in `state` (`running`, `complete`, ...).
///
/// # Panics
/// When none gets there in time, or the engine fails.
pub async fn wait_for_task(client: &Client, service: &str, state: &str) -> Task {
    let filters = Filters::new().with("service", service);
    for _ in 0..300 {
        let tasks = client.tasks(&filters).await.expect("tasks of the service");
        if let Some(task) = tasks.into_iter().find(|t| t.status.state == state) {
            return task;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no task of {service} reached {state} in 30 s");
}

/// Creates a service from `spec`, waits for a task in `state`, and returns the guard that
/// removes the service and the task's container ID.
///
/// # Panics
/// When the engine fails or the task never gets there.
pub async fn service_with_container(
    e: &TestEngine,
    spec: &dockhand_engine::ServiceSpec,
    state: &str,
) -> (ServiceGuard, String) {
    e.client.create_service(spec).await.expect("the service is created");
    let guard = ServiceGuard::new(&e.url, &spec.name);
    let task = wait_for_task(&e.client, &spec.name, state).await;
    let container = task.status.container_status.map(|c| c.container_id).unwrap_or_default();
    assert!(!container.is_empty(), "the task of {} has no container", spec.name);
    (guard, container)
}

/// A configuration whose host `id` is a plain `dockerd` managed by dockhand, everything
/// under `dir` (keep it short: the socket path must fit), sharing the private engine's
/// containerd under a namespace of its own.
pub fn managed_dockerd_yaml(dir: &Path, id: &str) -> String {
    let d = dir.display();
    let ns = unique_name("sup");
    let _ = std::fs::write(dir.join("daemon.json"), "{}");
    format!(
        r#"docker:
  hosts:
    {id}:
      type: managed
      host: "unix://{d}/d.sock"
      managed:
        executable: dockerd
        args:
          - "--data-root={d}/data"
          - "--exec-root={d}/exec"
          - "--pidfile={d}/d.pid"
          - "--config-file={d}/daemon.json"
          - "--bridge=none"
          - "--iptables=false"
          - "--containerd={containerd}"
          - "--containerd-namespace={ns}"
          - "--containerd-plugins-namespace={ns}-plugins"
        logLevel: debug
        logPrefix: "SUPERVISED: "
        healthCheck:
          interval: 200ms
          retries: 150
"#,
        containerd = engine_dir().join("containerd/containerd.sock").display()
    )
}

/// Live processes whose command line names `dir`.
pub fn processes_naming(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    dockhand_host::procfs::processes()
        .into_iter()
        .filter(dockhand_host::procfs::ProcessInfo::is_alive)
        .map(|p| p.cmdline.join(" "))
        .filter(|cmd| cmd.contains(&d))
        .collect()
}

/// Mount points at or below `dir`.
pub fn mounts_naming(dir: &Path) -> Vec<std::path::PathBuf> {
    dockhand_host::procfs::mounts_below(&dockhand_host::procfs::mount_points(), dir)
}

/// The private engine's directory: `$DOCKHAND_ENGINE_DIR`, else `target/dh-engine`.
pub fn engine_dir() -> PathBuf {
    std::env::var_os("DOCKHAND_ENGINE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("dh-engine"))
}

/// A test peer's setting: `DOCKHAND_TEST_<name>` from the environment, else from the
/// `test-peers.env` file that `cargo xtask engine up` writes.
///
/// # Panics
/// When neither has it: the peers are part of the test environment, never optional.
pub fn peer(name: &str) -> String {
    let var = format!("DOCKHAND_TEST_{name}");
    if let Some(value) = std::env::var(&var).ok().filter(|v| !v.is_empty()) {
        return value;
    }
    let file = engine_dir().join("test-peers.env");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| *key == var)
        .map(|(_, value)| value.to_owned())
        .unwrap_or_else(|| {
            panic!("{var} is not set and {} does not name it: run `cargo xtask engine up`", file.display())
        })
}

/// The URL of the engine the tests should use.
pub fn engine_url() -> String {
    if let Some(url) = std::env::var("DOCKHAND_TEST_HOST").ok().filter(|u| !u.is_empty()) {
        return url;
    }
    format!("unix://{}", engine_dir().join("docker.sock").display())
}

/// The engine under test, after checking that it answers and is in swarm mode.
///
/// # Panics
/// When no engine answers: with `CI` set or not, an engine test must fail, never skip.
pub async fn engine() -> TestEngine {
    let url = engine_url();
    let endpoint: Endpoint = url.parse().unwrap_or_else(|e| panic!("DOCKHAND_TEST_HOST: {e}"));
    let client = Client::new(endpoint).unwrap_or_else(|e| panic!("{e}"));
    if let Err(err) = client.ping().await {
        let ci = if std::env::var_os("CI").is_some() { " (CI is set: engine tests must run)" } else { "" };
        panic!(
            "no Docker engine answers for the end-to-end tests{ci}: {err}\nstart one with `cargo xtask engine up`"
        );
    }
    TestEngine { url, client }
}

/// The test swarm of several nodes (`cargo xtask swarm up`): the manager's client first,
/// then every node's, each reached on its own engine socket.
#[derive(Debug, Clone)]
pub struct TestSwarm {
    /// `(url, client)` of every node, node1 (the manager) first.
    pub nodes: Vec<(String, Client)>,
}

impl TestSwarm {
    /// The manager's client.
    pub fn manager(&self) -> &Client {
        &self.nodes[0].1
    }

    /// The manager's URL.
    pub fn manager_url(&self) -> &str {
        &self.nodes[0].0
    }
}

/// A setting of the test swarm: the variable `name` from the environment, else from the
/// `swarm.env` that `cargo xtask swarm up` writes.
fn swarm_env(name: &str) -> Option<String> {
    let file = std::fs::read_to_string(swarm_dir().join("swarm.env")).unwrap_or_default();
    std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| {
        file.lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    })
}

/// The test swarm's registry (`cargo xtask swarm up`): its address, user and password.
///
/// # Panics
/// When the swarm is not up: a registry test fails, never skips.
pub fn swarm_registry() -> (String, String, String) {
    let get = |name: &str| {
        swarm_env(name)
            .unwrap_or_else(|| panic!("{name} is not set: start the swarm with `cargo xtask swarm up`"))
    };
    (
        get("DOCKHAND_TEST_REGISTRY"),
        get("DOCKHAND_TEST_REGISTRY_USER"),
        get("DOCKHAND_TEST_REGISTRY_PASSWORD"),
    )
}

/// Puts `image` back on the engine at `node_url` when a test's clean-node pruned it there:
/// `docker save` from the private engine (`cargo xtask engine up` made it there too), then
/// `docker load`.
///
/// # Panics
/// When neither engine has it.
pub fn ensure_test_image(node_url: &str, image: &str) {
    let docker = |url: &str| {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", url).env_remove("DOCKER_CONTEXT");
        cmd
    };
    let present = |url: &str| {
        docker(url)
            .args(["image", "inspect", "--format", "{{.Id}}", image])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present(node_url) {
        return;
    }
    let saved = docker(&engine_url()).args(["save", image]).output().expect("docker save");
    assert!(
        saved.status.success(),
        "{image} is on neither engine: {}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let mut load = docker(node_url)
        .args(["load", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker load");
    {
        use std::io::Write;
        load.stdin.take().expect("stdin").write_all(&saved.stdout).expect("docker load's input");
    }
    assert!(load.wait().expect("docker load").success(), "docker load {image} on {node_url}");
}

/// [`HELPER_IMAGE`], put back on every node of the test swarm that lacks it (once per test
/// process): a clean-node of another suite prunes it where no helper of that image was
/// running. For suites whose helpers run it by that local tag.
///
/// # Panics
/// When the swarm is not up, or no engine has the image.
pub fn helper_image_on_every_node() -> &'static str {
    static PLACED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    PLACED.get_or_init(|| {
        let count: usize = swarm_env("DOCKHAND_TEST_NODES").and_then(|n| n.parse().ok()).unwrap_or(3);
        for i in 1..=count {
            let url = swarm_env(&format!("DOCKHAND_TEST_NODE_{i}"))
                .unwrap_or_else(|| panic!("DOCKHAND_TEST_NODE_{i} is not set: run `cargo xtask swarm up`"));
            ensure_test_image(&url, HELPER_IMAGE);
        }
    });
    HELPER_IMAGE
}

/// dockhand's test image as the test swarm's registry holds it, pinned by digest and
/// present on every node (`cargo xtask swarm up`): what a service deployed by digest runs.
///
/// # Panics
/// When the swarm is not up.
pub fn pinned_helper_image() -> String {
    swarm_env("DOCKHAND_TEST_PINNED_HELPER").unwrap_or_else(|| {
        panic!("DOCKHAND_TEST_PINNED_HELPER is not set: start the swarm with `cargo xtask swarm up`")
    })
}

/// The docker CLI configuration directory holding the test registry's credentials
/// (`cargo xtask swarm up` logs in there): what an operator's `config.json` is.
pub fn swarm_docker_config() -> PathBuf {
    swarm_dir().join("registry").join("docker-config")
}

/// Pushes what `from` is as `to` (both full references in the test registry), the way a
/// CI pipeline pushes: the docker CLI through the engine at `manager_url`, with the
/// registry's credentials ([`swarm_docker_config`]); the local tag `to` is removed after.
///
/// # Panics
/// When a docker command fails.
pub fn push_as(manager_url: &str, from: &str, to: &str) {
    let docker = |args: &[&str]| registry_docker(manager_url, args);
    docker(&["pull", from]);
    docker(&["tag", from, to]);
    docker(&["push", to]);
    docker(&["image", "rm", to]);
}

/// Runs the docker CLI through the engine at `manager_url` with the test registry's
/// credentials; its stdout, trimmed.
///
/// # Panics
/// When the command fails.
fn registry_docker(manager_url: &str, args: &[&str]) -> String {
    let out = Command::new("docker")
        .env("DOCKER_HOST", manager_url)
        .env("DOCKER_CONFIG", swarm_docker_config())
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .output()
        .expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Pushes an image of its own as `to`: what `from` is (a reference in the test registry),
/// with the label `dockhand.test=<label>`, so that its image ID is shared with no other
/// image (a test that removes it from the nodes removes nothing another test runs).
///
/// # Panics
/// When a docker command fails.
pub fn push_distinct(manager_url: &str, from: &str, to: &str, label: &str) {
    let docker = |args: &[&str]| registry_docker(manager_url, args);
    docker(&["pull", from]);
    let container = docker(&["create", from]);
    docker(&["commit", "--change", &format!("LABEL dockhand.test={label}"), &container, to]);
    docker(&["rm", &container]);
    docker(&["push", to]);
    docker(&["image", "rm", to]);
}

/// The test registry's log, its access log included: one line per request.
pub fn swarm_registry_log() -> PathBuf {
    swarm_dir().join("registry").join("registry.log")
}

/// Where `cargo xtask swarm up` keeps the test swarm's state.
fn swarm_dir() -> PathBuf {
    std::env::var_os("DOCKHAND_SWARM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("dh-swarm"))
}

/// A turn at jobs on whole nodes of the test swarm, held until dropped.
pub struct NodeJobsTurn {
    _lock: std::fs::File,
}

/// Waits for a turn at jobs on whole nodes (node backup and restore, volume moves, node
/// labels): one test at a time across every test process of the run, since the suites run
/// side by side (`cargo xtask test`) and such a test takes node locks, labels nodes and
/// checks that nothing is left on them. An exclusive `flock` on a file in the swarm's state
/// directory, released when the turn is dropped (or the process dies).
///
/// # Panics
/// When the lock file cannot be opened or locked.
pub async fn node_jobs_turn() -> NodeJobsTurn {
    let path = swarm_dir().join("node-jobs.lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        NodeJobsTurn { _lock: file }
    })
    .await
    .expect("the lock's task")
}

/// The helper image as an operator gets it for a swarm: `dockhand helper-image push
/// <registry>/dockhand-helper`, run once per test process by `dockhand` (the binary under
/// test) against the swarm's manager, with the registry's credentials in
/// [`swarm_docker_config`]. Answers the digest reference it printed; nodes pull it with
/// the same credentials when a helper needs it.
///
/// # Panics
/// When the swarm is not up or the push fails.
pub fn pushed_helper_image(dockhand: &Path) -> String {
    static PUSHED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PUSHED
        .get_or_init(|| {
            let (registry, _, _) = swarm_registry();
            let manager = swarm_env("DOCKHAND_TEST_NODE_1").unwrap_or_else(|| panic!("the swarm is not up"));
            let out = Command::new(dockhand)
                .args(["-H", &manager, "helper-image", "push", &format!("{registry}/dockhand-helper")])
                .env("DOCKER_CONFIG", swarm_docker_config())
                .env_remove("DOCKHAND_HELPER_IMAGE")
                .output()
                .expect("dockhand helper-image push");
            let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert!(
                out.status.success() && printed.contains("@sha256:"),
                "dockhand helper-image push: {printed}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            printed
        })
        .clone()
}

/// The test swarm: `DOCKHAND_TEST_NODE_<i>` from the environment, else from the
/// `swarm.env` that `cargo xtask swarm up` writes; every node must answer.
///
/// # Panics
/// When the swarm is not up: a multi-node test fails, never skips.
pub async fn swarm() -> TestSwarm {
    let setting = swarm_env;
    let count: usize = setting("DOCKHAND_TEST_NODES").and_then(|n| n.parse().ok()).unwrap_or_else(|| {
        panic!("the test swarm is not up (no DOCKHAND_TEST_NODES): start it with `cargo xtask swarm up`")
    });
    let mut nodes = Vec::new();
    for i in 1..=count {
        let url = setting(&format!("DOCKHAND_TEST_NODE_{i}"))
            .unwrap_or_else(|| panic!("DOCKHAND_TEST_NODE_{i} is not set: run `cargo xtask swarm up`"));
        let client = Client::new(url.parse().unwrap_or_else(|e| panic!("{url}: {e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        if let Err(err) = client.ping().await {
            panic!(
                "swarm node {i} at {url} does not answer: {err}
start the swarm with `cargo xtask swarm up`"
            );
        }
        nodes.push((url, client));
    }
    TestSwarm { nodes }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// Runs a dockhand binary with a clean Docker environment: none of the caller's
/// `DOCKER_*` variables leak in, only those in `env`.
pub fn run(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    for var in
        ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"]
    {
        cmd.env_remove(var);
    }
    cmd.args(args).envs(env.iter().copied());
    cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// A tar archive holding one file, `name` with `content`: the root filesystem of a tiny
/// image of a test's own (`Client::import_image`), written by hand in the ustar format.
pub fn one_file_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let put =
        |header: &mut [u8; 512], at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(&mut header, 124, format!("{:011o}\0", content.len()).as_bytes());
    put(&mut header, 136, b"00000000000\0");
    put(&mut header, 148, b"        ");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// A command's stdout, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The last line of a `--json` job run: the finished job.
///
/// # Panics
/// When the output does not end in a JSON job.
pub fn last_job(out: &Output) -> serde_json::Value {
    let text = stdout(out);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no job at the end ({e}):\n{text}\n{}", stderr(out)))
}

/// The end-of-test check of every jobs test: no helper service and no lock object is left
/// on any of `targets` (`node/<id>`, `service/<id>`). Scoped to the test's own targets,
/// since other tests run at the same time.
///
/// # Panics
/// When something is left, or the engine fails.
pub async fn assert_nothing_left(manager: &Client, targets: &[String]) {
    for target in targets {
        let helpers = manager
            .services(&Filters::new().with("label", format!("dockhand.helper.target={target}")))
            .await
            .expect("services");
        let names: Vec<&str> = helpers.iter().map(|s| s.spec.name.as_str()).collect();
        assert!(names.is_empty(), "helper services left on {target}: {names:?}");
        let locks = manager
            .configs(&Filters::new().with("label", format!("dockhand.lock={target}")))
            .await
            .expect("configs");
        assert!(locks.is_empty(), "a lock left on {target}: {locks:?}");
    }
    assert_no_helper_containers(targets).await;
}

/// No container of a helper of `targets` (`dockhand.helper.target` on the container,
/// running or exited) on any node of the test swarm, once the swarm has had 30 s to remove
/// the tasks of removed helper services. Nothing to check without a swarm.
///
/// # Panics
/// When one is left, or a node fails.
pub async fn assert_no_helper_containers(targets: &[String]) {
    let count: usize = swarm_env("DOCKHAND_TEST_NODES").and_then(|n| n.parse().ok()).unwrap_or(0);
    for i in 1..=count {
        let Some(url) = swarm_env(&format!("DOCKHAND_TEST_NODE_{i}")) else { continue };
        let node = Client::new(url.parse().expect("a node URL")).expect("a client");
        for target in targets {
            let filters = Filters::new().with("label", format!("dockhand.helper.target={target}"));
            let mut left = Vec::new();
            for _ in 0..60 {
                left = node.containers(&filters).await.expect("containers");
                if left.is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            let names: Vec<&Vec<String>> = left.iter().map(|c| &c.names).collect();
            assert!(names.is_empty(), "helper containers of {target} left on node{i}: {names:?}");
        }
    }
}

/// Every node's `(id, hostname)`, node1 first, as the swarm's nodes are numbered.
///
/// # Panics
/// When a node does not answer.
pub async fn node_ids(swarm: &TestSwarm) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for (_, client) in &swarm.nodes {
        let info = client.info().await.expect("node info");
        ids.push((info.swarm.node_id, info.name));
    }
    ids
}

/// A shell script for the curl test image ([`CURL_IMAGE`]) that posts `$BODY` (JSON) to
/// `$URL` over HTTPS from a container on the overlay network, as a CI job does, checking
/// the server's certificate against `$CA` (the CA's PEM); it prints the answer's body and
/// then its status code on a line of their own. While the server starts (its name not yet
/// on the network, nothing listening, or no TLS yet: curl's 6, 7 and 35, none of which sent
/// the request) it tries again for about two minutes; a request that was sent is never
/// sent twice, and any other failure, such as curl's 60 for a certificate the CA did not
/// sign, is its exit code. The seed's routes answer when the job ends: up to 5 minutes.
pub const OVERLAY_HTTPS_SCRIPT: &str = "printf '%s\\n' \"$CA\" > /tmp/ca.pem; \
     for i in $(seq 1 60); do \
       curl -sS --max-time 300 --cacert /tmp/ca.pem -H 'Content-Type: application/json' \
         --data \"$BODY\" -w '\\n%{http_code}\\n' \"$URL\" > /tmp/out 2> /tmp/err; rc=$?; \
       if [ $rc -eq 0 ]; then cat /tmp/out; exit 0; fi; \
       case $rc in 6|7|35) sleep 2 ;; *) cat /tmp/err >&2; exit $rc ;; esac; \
     done; cat /tmp/err >&2; exit 1";

/// Seed 002's update request body as its GitLab job sends it to `/api/update/service`.
pub fn seed_update_body(token: &str, service: &str, image: &str) -> String {
    serde_json::json!({"token": token, "serviceName": service, "image": image, "isForce": false}).to_string()
}

/// The files under `base` (a peer's own directory), relative to it, sorted: what a storage
/// peer holds.
pub fn files_under(base: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if let Ok(relative) = path.strip_prefix(base) {
                out.push(relative.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(base, base, &mut out);
    out.sort();
    out
}
