//! update-service through the `dockhand` binary, on the test swarm of three nodes, against
//! its registry with authentication (Debian's `docker-registry`, htpasswd), which holds
//! `team/app:v1`, `v2` and `broken` (`cargo xtask swarm up`).

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dockhand_e2e::{ServiceGuard, TestSwarm, last_job, stderr, stdout, unique_name};
use dockhand_engine::{Client, Filters, RegistryAuth, ServiceSpec};

/// The updates run one at a time: they share the registry's images on the nodes, which a
/// test removes to prove that the nodes pull with the credentials.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Registry {
    address: String,
    user: String,
    password: String,
}

impl Registry {
    fn new() -> Self {
        let (address, user, password) = dockhand_e2e::swarm_registry();
        Self { address, user, password }
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/team/app:{tag}", self.address)
    }

    fn auth(&self) -> RegistryAuth {
        RegistryAuth::password(&self.user, &self.password, &self.address)
    }
}

/// A `dockhand` run with a configuration, a docker CLI directory and a PATH of its own.
struct Setup {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Setup {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dockhand.yaml"), config).unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        Self { dir, env: Vec::new() }
    }

    /// With the registry's credentials only in `config.json` `auths`.
    fn with_auths(reg: &Registry) -> Self {
        let setup = Self::new("{}\n");
        let auth = base64_encode(&format!("{}:{}", reg.user, reg.password));
        let json = serde_json::json!({"auths": {reg.address.clone(): {"auth": auth}}});
        std::fs::write(setup.docker_config(), json.to_string()).unwrap();
        setup
    }

    fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker").join("config.json")
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn run(&self, s: &TestSwarm, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockhand"));
        for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG"]
        {
            cmd.env_remove(var);
        }
        let path = format!("{}:{}", self.bin().display(), std::env::var("PATH").unwrap_or_default());
        cmd.args([
            "-H",
            s.manager_url(),
            "--config",
            self.dir.path().join("dockhand.yaml").to_str().unwrap(),
        ])
        .args(args)
        .env("PATH", path)
        .env("DOCKER_CONFIG", self.dir.path().join("docker"))
        .env("XDG_STATE_HOME", self.dir.path().join("state"))
        .env("XDG_DATA_HOME", self.dir.path().join("data"))
        .env("DOCKHAND_HELPER_IMAGE", dockhand_e2e::helper_image_on_every_node())
        .envs(self.env.iter().cloned());
        cmd.output().unwrap()
    }
}

/// A 3-replica service of `team/app:v1`, at most one task per node, created with the
/// registry's credentials; with `labels` besides `update.enable=true`.
async fn app(s: &TestSwarm, reg: &Registry, prefix: &str, labels: &[(&str, &str)]) -> (String, ServiceGuard) {
    let name = unique_name(prefix);
    let mut spec = ServiceSpec::new(&name, reg.image("v1"))
        .with_replicas(3)
        .with_max_replicas_per_node(1)
        .with_label("dockhand.update.enable", "true");
    for (k, v) in labels {
        spec = spec.with_label(*k, *v);
    }
    s.manager().create_service_with_auth(&spec, &reg.auth()).await.unwrap();
    let guard = ServiceGuard::new(s.manager_url(), &name);
    converged(s.manager(), &name, &reg.image("v1"), 3).await;
    (name, guard)
}

/// Waits until `count` tasks run an image that starts with `image`, on distinct nodes.
async fn converged(client: &Client, service: &str, image: &str, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tasks = client
            .tasks(&Filters::new().with("service", service).with("desired-state", "running"))
            .await
            .unwrap();
        let running: Vec<(String, String)> = tasks
            .iter()
            .filter(|t| t.status.state == "running" && t.spec.container_spec.image.starts_with(image))
            .map(|t| (t.id.clone(), t.node_id.clone()))
            .collect();
        let mut nodes: Vec<&String> = running.iter().map(|(_, n)| n).collect();
        nodes.sort();
        nodes.dedup();
        if running.len() == count && nodes.len() == count {
            return running;
        }
        assert!(
            Instant::now() < deadline,
            "{service}: {count} tasks of {image} did not run within 120 s: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Removes `image` from every node, so that the next update must pull it.
async fn forget(s: &TestSwarm, image: &str) {
    for (_, node) in &s.nodes {
        let _ = node.remove_image(image).await;
        assert!(node.image(image).await.is_err(), "{image} is still on a node");
    }
}

/// The service's spec as the engine shows it (`docker service inspect`).
async fn inspected(client: &Client, service: &str) -> String {
    serde_json::to_string(&client.service(service).await.unwrap()).unwrap()
}

/// An update to v2 that converges on three nodes, pinned by digest, with the password in
/// neither the service nor dockhand's output.
async fn updates_to_v2(s: &TestSwarm, reg: &Registry, setup: &Setup, name: &str) -> serde_json::Value {
    forget(s, &reg.image("v2")).await;
    let out = setup.run(s, &["update", name, "--image", &reg.image("v2"), "--json"]);
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains(&reg.password), "the password is in dockhand's output: {said}");
    let job = last_job(&out);
    assert_eq!(job["status"], "succeeded", "{job}");
    let spec = s.manager().service(name).await.unwrap().spec;
    let image = spec.task_template.container_spec.image.clone();
    assert!(image.starts_with(&format!("{}@sha256:", reg.image("v2"))), "pinned by digest: {image}");
    let tasks = converged(s.manager(), name, &image, 3).await;
    assert_eq!(tasks.len(), 3);
    // Every node pulled v2 (it was removed from all of them), with the credentials.
    for (_, node) in &s.nodes {
        assert!(node.image(&image).await.is_ok(), "a node lacks {image}");
    }
    let shown = inspected(s.manager(), name).await;
    assert!(!shown.contains(&reg.password), "the password is in the service: {shown}");
    job
}

#[tokio::test]
async fn with_credentials_only_in_config_json_auths_three_replicas_update_on_three_nodes() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let (name, _guard) = app(&s, &reg, "up-auths", &[]).await;
    let setup = Setup::with_auths(&reg);
    let job = updates_to_v2(&s, &reg, &setup, &name).await;
    let resolve = &job["steps"][0];
    assert_eq!(resolve["kind"], "resolve", "{job}");
    assert!(resolve["output_tail"].as_str().unwrap().contains("auths."), "{job}");
}

#[tokio::test]
async fn with_credentials_only_through_a_creds_store_helper_the_update_converges() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let (name, _guard) = app(&s, &reg, "up-helper", &[]).await;
    let setup = Setup::new("{}\n");
    // The credential-helper protocol: `get`, the server on stdin, JSON on stdout. The
    // helper logs what it was asked for, to prove it was the one asked.
    let asked = setup.dir.path().join("asked");
    let helper = setup.bin().join("docker-credential-dhtest");
    let answer = serde_json::json!({"ServerURL": reg.address, "Username": reg.user, "Secret": reg.password});
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r server\necho \"$server\" >> '{}'\n\
             [ \"$server\" = '{}' ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{}'\n",
            asked.display(),
            reg.address,
            answer
        ),
    )
    .unwrap();
    make_executable(&helper);
    std::fs::write(setup.docker_config(), r#"{"credsStore": "dhtest"}"#).unwrap();
    let job = updates_to_v2(&s, &reg, &setup, &name).await;
    assert_eq!(std::fs::read_to_string(&asked).unwrap().trim(), reg.address);
    assert!(job["steps"][0]["output_tail"].as_str().unwrap().contains("docker-credential-dhtest"), "{job}");
}

#[tokio::test]
async fn with_a_named_credential_the_update_converges_and_a_wrong_one_names_registry_and_user() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let (name, _guard) = app(&s, &reg, "up-named", &[("dockhand.update.registry", "ci")]).await;
    let config = format!(
        "registries:\n  ci:\n    url: {}\n    username: {}\n    password_env: DH_TEST_REGISTRY_PASSWORD\n",
        reg.address, reg.user
    );
    let mut setup = Setup::new(&config);
    setup.env.push(("DH_TEST_REGISTRY_PASSWORD".into(), reg.password.clone()));
    let job = updates_to_v2(&s, &reg, &setup, &name).await;
    assert!(job["steps"][0]["output_tail"].as_str().unwrap().contains("named credential ci"), "{job}");

    let wrong = "not-the-password-42";
    setup.env = vec![("DH_TEST_REGISTRY_PASSWORD".into(), wrong.into())];
    let before = s.manager().service(&name).await.unwrap().spec.task_template.container_spec.image;
    let out = setup.run(&s, &["update", &name, "--image", &reg.image("v1")]);
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&reg.address) && said.contains(&format!("user {}", reg.user)), "{said}");
    assert!(!said.contains(wrong) && !said.contains(&reg.password), "{said}");
    let after = s.manager().service(&name).await.unwrap().spec.task_template.container_spec.image;
    assert_eq!(before, after, "the service is unchanged");
}

#[tokio::test]
async fn the_image_rule_refuses_with_exit_code_3_and_leaves_the_service_unchanged() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let allow = format!("{}/team/app:v*", reg.address);
    let (name, _guard) = app(&s, &reg, "up-rule", &[("dockhand.update.image-allow", &allow)]).await;
    let setup = Setup::new("{}\n");
    let before = inspected(s.manager(), &name).await;
    let out = setup.run(&s, &["update", &name, "--image", &reg.image("broken")]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("dockhand.update.image-allow"), "{}", stdout(&out));
    assert_eq!(before, inspected(s.manager(), &name).await, "the service is unchanged");

    // Without the label, only the service's own repository.
    let (other, _guard) = app(&s, &reg, "up-repo", &[]).await;
    let before = inspected(s.manager(), &other).await;
    let out = setup.run(&s, &["update", &other, "--image", &format!("{}/team/other:v2", reg.address)]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("not in the service's repository"), "{}", stdout(&out));
    assert_eq!(before, inspected(s.manager(), &other).await, "the service is unchanged");
}

#[tokio::test]
async fn a_broken_image_fails_with_the_tasks_error_and_rolls_back_to_v2() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let (name, _guard) = app(&s, &reg, "up-broken", &[("dockhand.update.timeout", "3m")]).await;
    let setup = Setup::with_auths(&reg);
    let out = setup.run(&s, &["update", &name, "--image", &reg.image("v2"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let v2 = s.manager().service(&name).await.unwrap().spec.task_template.container_spec.image;

    let out = setup.run(&s, &["update", &name, "--image", &reg.image("broken"), "--json"]);
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    let job = last_job(&out);
    let steps: Vec<(&str, &str)> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("resolve", "succeeded"), ("update", "failed"), ("rollback", "succeeded")], "{job}");
    let update = &job["steps"][1];
    let error = update["error"].as_str().unwrap();
    assert!(error.contains("exit code 1"), "the task's exit code: {error}");
    assert_eq!(update["exit_code"], 1, "{job}");
    assert!(
        update["output_tail"].as_str().unwrap().contains("the broken image exits at once"),
        "the task's last log lines: {job}"
    );
    let rollback = job["steps"][2]["output_tail"].as_str().unwrap();
    assert_eq!(rollback, format!("rolled back to {v2}"), "{job}");
    assert_eq!(s.manager().service(&name).await.unwrap().spec.task_template.container_spec.image, v2);
    converged(s.manager(), &name, &v2, 3).await;

    // The job records the digest it tried; watch mode, following `broken`, remembers it
    // through the job store and does not try it again.
    let tried = job["image"].as_str().unwrap().to_owned();
    assert!(tried.starts_with(&format!("{}@sha256:", reg.image("broken"))), "{job}");
    let svc = s.manager().service(&name).await.unwrap();
    let mut spec = svc.spec.clone();
    spec.labels.insert("dockhand.update.auto".to_owned(), "true".to_owned());
    spec.labels.insert("dockhand.update.auto.tag".to_owned(), "broken".to_owned());
    s.manager()
        .update_service(&svc.id, svc.version.index, &spec, &dockhand_engine::UpdateOptions::new())
        .await
        .unwrap();
    let out = setup.run(&s, &["plan", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let watch = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "watch" && r["target"] == format!("service/{name}"))
        .unwrap_or_else(|| panic!("no watch row: {rows}"))["watch"]
        .clone();
    let next = watch["next"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("skip: {tried}: an update to this digest failed or was rolled back")),
        "{watch}"
    );
}

#[tokio::test]
async fn hooks_run_before_in_the_old_tasks_and_after_in_the_new_ones_and_a_failing_pre_hook_stops_it() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    // The images' /version says which one a task runs: the markers.
    let labels =
        [("dockhand.update.exec-pre", "cat /version"), ("dockhand.update.exec-post", "cat /version")];
    let (name, _guard) = app(&s, &reg, "up-hooks", &labels).await;
    let setup = Setup::with_auths(&reg);
    let old: Vec<String> =
        converged(s.manager(), &name, &reg.image("v1"), 3).await.into_iter().map(|(t, _)| t).collect();
    let out = setup.run(&s, &["update", &name, "--image", &reg.image("v2"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let hooks = |kind: &str| -> Vec<(String, String)> {
        job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == kind)
            .map(|s| {
                (s["task"].as_str().unwrap().to_owned(), s["output_tail"].as_str().unwrap().trim().to_owned())
            })
            .collect()
    };
    let (pre, post) = (hooks("exec-pre"), hooks("exec-post"));
    assert_eq!(pre.len(), 3, "{job}");
    assert_eq!(post.len(), 3, "{job}");
    assert!(pre.iter().all(|(task, said)| old.contains(task) && said == "v1"), "{pre:?} in {old:?}");
    assert!(post.iter().all(|(task, said)| !old.contains(task) && said == "v2"), "{post:?}");

    // A failing pre-hook: no update.
    let client = s.manager();
    let before = client.service(&name).await.unwrap().spec.task_template.container_spec.image;
    let mut svc = client.service(&name).await.unwrap();
    svc.spec.labels.insert("dockhand.update.exec-pre".into(), "echo refusing; exit 7".into());
    client
        .update_service(&svc.id, svc.version.index, &svc.spec, &dockhand_engine::UpdateOptions::new())
        .await
        .unwrap();
    let out = setup.run(&s, &["update", &name, "--image", &reg.image("v1"), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let update = job["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "update").unwrap();
    assert_eq!(update["status"], "skipped", "{job}");
    assert_eq!(client.service(&name).await.unwrap().spec.task_template.container_spec.image, before);
}

#[tokio::test]
async fn the_same_digest_is_a_no_op_and_force_recreates_the_tasks() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let (name, _guard) = app(&s, &reg, "up-same", &[]).await;
    let setup = Setup::with_auths(&reg);
    // Pinned first (v1 by tag, as created), then the same again: nothing to do.
    let out = setup.run(&s, &["update", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let pinned = s.manager().service(&name).await.unwrap().spec.task_template.container_spec.image;
    let tasks = converged(s.manager(), &name, &pinned, 3).await;
    let out = setup.run(&s, &["update", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let update = job["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "update").unwrap();
    assert_eq!(update["status"], "skipped", "{job}");
    assert!(update["error"].as_str().unwrap().contains("already up to date"), "{job}");
    assert_eq!(converged(s.manager(), &name, &pinned, 3).await, tasks, "the tasks are the same");

    let out = setup.run(&s, &["update", &name, "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let now = converged(s.manager(), &name, &pinned, 3).await;
    assert!(now.iter().all(|t| !tasks.contains(t)), "every task was recreated: {now:?} vs {tasks:?}");
}

#[tokio::test]
async fn where_the_log_driver_keeps_nothing_the_report_says_so_and_never_means_no_rollback() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let name = unique_name("up-nologs");
    let spec = ServiceSpec::new(&name, reg.image("v1"))
        .with_replicas(1)
        .with_log_driver("none")
        .with_label("dockhand.update.enable", "true")
        .with_label("dockhand.update.rollback", "never");
    s.manager().create_service_with_auth(&spec, &reg.auth()).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    converged(s.manager(), &name, &reg.image("v1"), 1).await;
    let setup = Setup::with_auths(&reg);
    let out = setup.run(&s, &["update", &name, "--image", &reg.image("broken"), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let step =
        |kind: &str| job["steps"].as_array().unwrap().iter().find(|s| s["kind"] == kind).unwrap().clone();
    let update = step("update");
    assert_eq!(update["status"], "failed", "{job}");
    assert!(update["error"].as_str().unwrap().contains("exit code 1"), "{job}");
    let said = update["output_tail"].as_str().unwrap();
    assert!(said.contains("log driver (none)") && said.contains("keeps nothing"), "{job}");
    let rollback = step("rollback");
    assert_eq!(rollback["status"], "skipped", "{job}");
    assert!(rollback["error"].as_str().unwrap().contains("dockhand.update.rollback=never"), "{job}");
}

#[tokio::test]
async fn a_global_service_updates_on_every_node() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let name = unique_name("up-global");
    let spec = ServiceSpec::new(&name, reg.image("v1")).global().with_label("dockhand.update.enable", "true");
    s.manager().create_service_with_auth(&spec, &reg.auth()).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    converged(s.manager(), &name, &reg.image("v1"), s.nodes.len()).await;
    let setup = Setup::with_auths(&reg);
    let out = setup.run(&s, &["update", &name, "--image", &reg.image("v2"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let image = s.manager().service(&name).await.unwrap().spec.task_template.container_spec.image;
    assert!(image.starts_with(&format!("{}@sha256:", reg.image("v2"))), "{image}");
    converged(s.manager(), &name, &image, s.nodes.len()).await;
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A registry stand-in on the engine's loopback that answers every request with a Basic
/// challenge and records whether any carried `Authorization`.
fn trap_registry() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line);
            }
            log.lock()
                .unwrap()
                .extend(head.iter().filter(|l| l.to_ascii_lowercase().starts_with("authorization")).cloned());
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"trap\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (address, seen)
}

/// R3-01: a named or seed credential is refused for an image of another registry, before
/// any engine call, and nothing reaches that registry with a credential.
#[tokio::test]
async fn a_credential_never_reaches_a_registry_it_is_not_for() {
    let e = dockhand_e2e::engine().await;
    let (trap, seen) = trap_registry();
    let image = format!("{trap}/evil/x:1");
    let name = unique_name("up-trap");
    let spec = ServiceSpec::new(&name, dockhand_e2e::BUSYBOX_IMAGE)
        .with_args(["sleep", "3600"])
        .with_label("dockhand.update.enable", "true")
        .with_label("dockhand.update.image-allow", &image)
        .with_label("dockhand.update.registry", "ci");
    e.client.create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(&e.url, &name);
    let setup = Setup::new(
        "registries:\n  ci:\n    url: registry.example.com\n    username: bot\n    password_env: DH_TRAP_PW\n",
    );
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockhand"));
        for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG"] {
            cmd.env_remove(var);
        }
        cmd.args(["-H", &e.url, "--config", setup.dir.path().join("dockhand.yaml").to_str().unwrap()])
            .args(["update", &name, "--image", &image, "--json"])
            .env("DOCKER_CONFIG", setup.dir.path().join("docker"))
            .env("XDG_STATE_HOME", setup.dir.path().join("state"))
            .env("XDG_DATA_HOME", setup.dir.path().join("data"))
            .env("DOCKHAND_HELPER_IMAGE", dockhand_e2e::HELPER_IMAGE)
            .env("DH_TRAP_PW", "trap-s3cret")
            .envs(extra.iter().copied());
        cmd.output().unwrap()
    };
    let out = run(&[]);
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    let job = last_job(&out);
    assert_eq!(job["steps"][0]["kind"], "resolve", "{job}");
    let error = job["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("named credential ci") && error.contains(&format!("not {trap}")), "{job}");
    assert!(!said.contains("trap-s3cret"), "{said}");

    // The seed's way: the service's labels switched to `update.registry.auth=true`, the
    // rest from SWARM_UTILS_REGISTRY_*.
    e.client
        .modify_service(&name, &dockhand_engine::UpdateOptions::new(), |spec| {
            spec.labels.remove("dockhand.update.registry");
            spec.labels.insert("dockhand.update.registry.auth".into(), "true".into());
            Ok(())
        })
        .await
        .unwrap();
    let out = run(&[
        ("SWARM_UTILS_REGISTRY_USER", "bot"),
        ("SWARM_UTILS_REGISTRY_PASSWORD", "trap-s3cret"),
        ("SWARM_UTILS_REGISTRY_URL", "registry.example.com"),
    ]);
    let said = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    let job = last_job(&out);
    let error = job["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("SWARM_UTILS_REGISTRY_URL") && error.contains(&format!("not {trap}")), "{job}");
    assert!(seen.lock().unwrap().is_empty(), "the stand-in registry got {:?}", seen.lock().unwrap());
}

/// Watch mode's look (`dockhand plan`): per service with `update.auto`, the tag it follows
/// (its own, or `update.auto.tag`), the digest it runs, the registry's digest (asked with
/// the credential of `config.json`) and what a tick would do. Services of no replicas: the
/// look reads specs and the registry, never the tasks.
#[tokio::test]
async fn plan_shows_what_the_watch_sees_in_the_registry_and_would_do() {
    let s = dockhand_e2e::swarm().await;
    let reg = Registry::new();
    let mut digests = Vec::new();
    for tag in ["v1", "v2"] {
        let found = s.manager().distribution(&reg.image(tag), Some(&reg.auth())).await.unwrap();
        digests.push(found.descriptor.digest);
    }
    let (d1, d2) = (digests[0].clone(), digests[1].clone());
    assert_ne!(d1, d2);
    let pinned_v1 = format!("{}@{d1}", reg.image("v1"));
    let mut guards = Vec::new();
    let mut watched = |prefix: &str, image: &str, labels: &[(&str, &str)]| {
        let name = unique_name(prefix);
        let mut spec =
            ServiceSpec::new(&name, image).with_replicas(0).with_label("dockhand.update.enable", "true");
        for (k, v) in labels {
            spec = spec.with_label(*k, *v);
        }
        guards.push(ServiceGuard::new(s.manager_url(), &name));
        (name, spec)
    };
    let services = [
        watched("watch-same", &pinned_v1, &[("dockhand.update.auto", "true")]),
        watched(
            "watch-moved",
            &pinned_v1,
            &[("dockhand.update.auto", "true"), ("dockhand.update.auto.tag", "v2")],
        ),
        watched(
            "watch-notify",
            &pinned_v1,
            &[("dockhand.update.auto", "notify"), ("dockhand.update.auto.tag", "v2")],
        ),
        watched("watch-gone", &reg.image("no-such-tag"), &[("dockhand.update.auto", "true")]),
    ];
    for (_, spec) in &services {
        s.manager().create_service(spec).await.unwrap();
    }
    let setup = Setup::with_auths(&reg);

    let out = setup.run(&s, &["plan", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let watch_of = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"] == "watch" && r["target"] == format!("service/{name}"))
            .unwrap_or_else(|| panic!("no watch row for {name}: {rows}"))["watch"]
            .clone()
    };
    let same = watch_of(&services[0].0);
    assert_eq!(same["follows"], reg.image("v1"), "{same}");
    assert_eq!(
        (same["runs"].as_str(), same["latest"].as_str()),
        (Some(d1.as_str()), Some(d1.as_str())),
        "{same}"
    );
    assert_eq!(same["next"], "current", "{same}");
    let moved = watch_of(&services[1].0);
    assert_eq!(moved["follows"], reg.image("v2"), "{moved}");
    assert_eq!(moved["next"], format!("update to {}@{d2}", reg.image("v2")), "{moved}");
    let notify = watch_of(&services[2].0);
    assert_eq!(
        (notify["mode"].as_str(), notify["next"].as_str()),
        (Some("notify"), Some(format!("notify {}@{d2}", reg.image("v2")).as_str()))
    );
    let gone = watch_of(&services[3].0);
    let next = gone["next"].as_str().unwrap();
    assert!(next.starts_with(&format!("skip: {}: the registry failed", reg.image("no-such-tag"))), "{gone}");
    assert!(!stdout(&out).contains(&reg.password), "the password is in the plan");

    let text = stdout(&setup.run(&s, &["plan"]));
    let line = format!(
        "service/{}: watch (true): follows {}; runs {d1}; the registry has {d2}; next tick: update to {}@{d2}",
        services[1].0,
        reg.image("v2"),
        reg.image("v2")
    );
    assert!(text.contains(&line), "{line}\nnot in:\n{text}");
}

/// `dockhand update --image-of REPO:TAG`: every service that runs the repository (whatever
/// its tag) with `update.enable=true` is updated to it, each its own job, all at once; a
/// service without `update.enable` and one of another repository are left alone; a
/// repository nothing runs is an error naming it. The repository is this test's own, pushed
/// as a CI pipeline would, so no other test's service runs it.
#[tokio::test]
async fn image_of_updates_every_service_of_the_repository() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let repo = format!("{}/team/io-{}", reg.address, std::process::id());
    for tag in ["v1", "v2"] {
        dockhand_e2e::push_as(s.manager_url(), &reg.image(tag), &format!("{repo}:{tag}"));
    }
    let mut guards = Vec::new();
    let mut names = Vec::new();
    for (prefix, image, replicas, enabled) in [
        ("io-a", format!("{repo}:v1"), 1, true),
        ("io-b", format!("{repo}:v1"), 0, true),
        ("io-off", format!("{repo}:v1"), 0, false),
        ("io-other", reg.image("v1"), 0, true),
    ] {
        let name = unique_name(prefix);
        let mut spec = ServiceSpec::new(&name, &image).with_replicas(replicas);
        if enabled {
            spec = spec.with_label("dockhand.update.enable", "true");
        }
        s.manager().create_service_with_auth(&spec, &reg.auth()).await.unwrap();
        guards.push(ServiceGuard::new(s.manager_url(), &name));
        names.push(name);
    }
    let setup = Setup::with_auths(&reg);

    let out = setup.run(&s, &["update", "--image-of", &format!("{repo}:v2"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let d2 =
        s.manager().distribution(&format!("{repo}:v2"), Some(&reg.auth())).await.unwrap().descriptor.digest;
    let manager = s.manager();
    let image_of = |name: &str| {
        let name = name.to_owned();
        async move { manager.service(&name).await.unwrap().spec.task_template.container_spec.image }
    };
    for name in &names[..2] {
        assert_eq!(image_of(name).await, format!("{repo}:v2@{d2}"), "{name}");
    }
    assert_eq!(image_of(&names[2]).await, format!("{repo}:v1"), "no update.enable: left alone");
    assert_eq!(image_of(&names[3]).await, reg.image("v1"), "another repository: left alone");
    let jobs = setup.run(&s, &["jobs", "ls", "--json"]);
    let jobs: serde_json::Value = serde_json::from_str(&stdout(&jobs)).unwrap();
    let updated: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["action"] == "update-service" && j["status"] == "succeeded")
        .map(|j| j["target"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(updated.len(), 2, "one job per service: {jobs}");

    let nothing = format!("{}/team/nothing-runs-this:v1", reg.address);
    let out = setup.run(&s, &["update", "--image-of", &nothing]);
    assert_ne!(out.status.code(), Some(0));
    let expected = format!("no service runs {}/team/nothing-runs-this with update.enable=true", reg.address);
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    let out = setup.run(&s, &["update", &names[0], "--image-of", &format!("{repo}:v1")]);
    assert_eq!(out.status.code(), Some(2), "a service and --image-of conflict: {}", stderr(&out));
}

/// `update.cleanup=true`: once the update converged, the image the service ran before is
/// removed from each of the three nodes its tasks ran on (by a helper on the workers), with
/// the stopped containers of its old tasks, each an `image-cleanup` step with its bytes.
/// The images are this test's own (an image ID no other test's service shares).
#[tokio::test]
async fn cleanup_removes_the_previous_image_from_every_node_it_ran_on() {
    let s = dockhand_e2e::swarm().await;
    let _one = ONE_AT_A_TIME.lock().await;
    let reg = Registry::new();
    let repo = format!("{}/team/cl-{}", reg.address, std::process::id());
    for tag in ["v1", "v2"] {
        let label = format!("{tag}-{}", std::process::id());
        dockhand_e2e::push_distinct(s.manager_url(), &reg.image(tag), &format!("{repo}:{tag}"), &label);
    }
    let d1 =
        s.manager().distribution(&format!("{repo}:v1"), Some(&reg.auth())).await.unwrap().descriptor.digest;
    let name = unique_name("cleanup");
    let spec = ServiceSpec::new(&name, format!("{repo}:v1@{d1}"))
        .with_replicas(3)
        .with_max_replicas_per_node(1)
        .with_label("dockhand.update.enable", "true")
        .with_label("dockhand.update.cleanup", "true");
    s.manager().create_service_with_auth(&spec, &reg.auth()).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    converged(s.manager(), &name, &format!("{repo}:v1"), 3).await;
    let stored = format!("{repo}@{d1}");
    for (url, node) in &s.nodes {
        assert!(node.image(&stored).await.is_ok(), "{stored} is not on {url} before the update");
    }
    let setup = Setup::with_auths(&reg);

    let out = setup.run(&s, &["update", &name, "--image", &format!("{repo}:v2"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let cleanups: Vec<&serde_json::Value> =
        job["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "image-cleanup").collect();
    assert_eq!(cleanups.len(), 3, "one per node: {job:#}");
    let mut nodes: Vec<&str> = cleanups.iter().map(|s| s["node"].as_str().unwrap()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "{job:#}");
    for step in &cleanups {
        assert_eq!(step["status"], "succeeded", "{step}");
        assert!(step["reclaimed_bytes"].as_u64().unwrap() > 0, "{step}");
    }
    for (url, node) in &s.nodes {
        assert!(node.image(&stored).await.is_err(), "{stored} is still on {url}");
    }
    assert_eq!(job["status"], "succeeded", "{job:#}");
}
