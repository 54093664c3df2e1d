//! What the server's test binaries share: a `dockhand-server` process of its own against
//! the test swarm, and helpers to make services and follow jobs.

// Each binary uses its own share of these.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dockhand_e2e::{BUSYBOX_IMAGE, ServiceGuard, TestSwarm, unique_name};
use dockhand_engine::ServiceSpec;
use serde_json::Value;

pub(crate) const ADMIN: &str = "admin-8c1f0e2b7d";

/// A `dockhand-server` process with a state directory and a log of its own.
pub(crate) struct Server {
    pub(crate) child: tokio::process::Child,
    pub(crate) url: String,
    pub(crate) dir: tempfile::TempDir,
    /// Every answer body, for the leak check.
    pub(crate) answers: std::sync::Mutex<Vec<String>>,
    /// The CA its HTTPS certificate is checked against (`DH_TEST_CA` in its env), if any.
    pub(crate) ca: Option<PathBuf>,
}

/// A client; reqwest takes the process's rustls provider: ring, as dockhand's.
pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    pub(crate) async fn start(manager: &str, config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dockhand.yaml"), config).unwrap();
        Self::spawn(dir, manager, env).await
    }

    /// Kills the process (SIGKILL: nothing is cleaned up) and starts another on the same
    /// state directory and configuration.
    pub(crate) async fn kill_and_restart(
        mut self,
        manager: &str,
        env: &[(&str, &str)],
        down: Duration,
    ) -> Self {
        self.child.kill().await.unwrap();
        let Self { dir, .. } = self;
        tokio::time::sleep(down).await;
        Self::spawn(dir, manager, env).await
    }

    pub(crate) async fn spawn(dir: tempfile::TempDir, manager: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let helper_image = tokio::task::block_in_place(dockhand_e2e::helper_image_on_every_node);
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dockhand-server"));
        for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG"]
        {
            cmd.env_remove(var);
        }
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(dir.path().join("state"))
            .arg("--config")
            .arg(dir.path().join("dockhand.yaml"))
            .env("DOCKER_HOST", manager)
            .env("DOCKER_CONFIG", dir.path().join("docker"))
            .env("DOCKHAND_ADMIN_TOKENS", ADMIN)
            .env("DOCKHAND_HELPER_IMAGE", helper_image)
            .env("DOCKHAND_LOG", "debug")
            // Cron is off unless a test turns it on: other tests' services with
            // `clean.schedule` labels are not for every server.
            .env("DOCKHAND_SCHEDULE_ENABLED", "false")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().unwrap();
        let ca = env.iter().find(|(k, _)| *k == "DH_TEST_CA").map(|(_, v)| PathBuf::from(v));
        let scheme = if ca.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let server = Self { child, url, dir, answers: Default::default(), ca };
        server.wait_healthy().await;
        server
    }

    /// A client for it: over HTTPS, trusting its CA alone.
    pub(crate) fn client(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).unwrap();
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }

    pub(crate) async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client().get(format!("{}/healthz", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the server did not start:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A request; the status and the body as JSON (`Null` when it is not JSON).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let client = self.client();
        let mut req = client.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_owned());
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.answers.lock().unwrap().push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        self.call("POST", path, token, Some(body)).await
    }

    /// Neither the log, the job store nor any answer holds one of `secrets`.
    pub(crate) fn assert_no_leaks(&self, secrets: &[&str]) {
        let mut places = vec![("the log".to_owned(), self.log())];
        for entry in std::fs::read_dir(self.dir.path().join("state")).into_iter().flatten().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            places.push((entry.path().display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
        for (i, answer) in self.answers.lock().unwrap().iter().enumerate() {
            places.push((format!("answer {i}"), answer.clone()));
        }
        for secret in secrets {
            for (place, text) in &places {
                assert!(!text.contains(secret), "a secret appears in {place}");
            }
        }
    }
}

/// A busybox service that sleeps, with `labels`.
pub(crate) async fn service(s: &TestSwarm, prefix: &str, labels: &[(&str, &str)]) -> (String, ServiceGuard) {
    let name = unique_name(prefix);
    let mut spec = ServiceSpec::new(&name, BUSYBOX_IMAGE).with_args(["sleep", "3600"]);
    for (k, v) in labels {
        spec = spec.with_label(*k, *v);
    }
    s.manager().create_service(&spec).await.unwrap();
    (name.clone(), ServiceGuard::new(s.manager_url(), &name))
}

/// A sleeping busybox service on the manager (its execs and volumes stay local), with
/// `labels` and, if given, `volume` at `/data`.
pub(crate) async fn on_manager(
    s: &TestSwarm,
    prefix: &str,
    labels: &[(&str, &str)],
    volume: Option<&str>,
) -> (String, ServiceGuard) {
    let name = unique_name(prefix);
    let mut spec = ServiceSpec::new(&name, BUSYBOX_IMAGE)
        .with_args(["sleep", "3600"])
        .with_constraint("node.role==manager");
    if let Some(volume) = volume {
        spec = spec.with_volume(volume, "/data");
    }
    for (k, v) in labels {
        spec = spec.with_label(*k, *v);
    }
    s.manager().create_service(&spec).await.unwrap();
    (name.clone(), ServiceGuard::new(s.manager_url(), &name))
}

pub(crate) fn update_body() -> String {
    serde_json::json!({"image": BUSYBOX_IMAGE, "force": true}).to_string()
}

pub(crate) async fn ended(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, job) = server.call("GET", &format!("/v1/jobs/{id}"), Some(ADMIN), None).await;
        if job["status"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not end: {job}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
