//! `cargo xtask soak [--minutes N]`: faults and load against the test swarm, with nothing lost.
//!
//! Two `dockhand-server` replicas share one PostgreSQL and serve HTTPS with a test CA. For
//! the whole run a client sends CI-style requests at a steady rate (updates with the
//! services' own tokens, on the v1 and the seed's routes; cleans and backups to a real S3
//! peer with the admin token; and requests with a wrong or unknown credential), while cron
//! runs clean-service every 10 s over 50 services. In the middle come the faults, one after
//! the other: a `dockerd` restart on a worker node, a PostgreSQL restart, a `kill -9` of one
//! replica (started again on its state), and an S3 peer that stops answering for 20 s
//! (SIGSTOP). Then the load stops, the accepted jobs are waited for, the replicas get
//! SIGTERM, and [`checks`] decides.
//!
//! Everything the run writes (both replicas' logs, the configuration, the report) stays in
//! `target/soak/` for a look after a failure.

mod checks;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use dockhand_e2e::postgres::{PG_PASSWORD, PgPeer};
use dockhand_e2e::s3::{S3Peer, SECRET_KEY};
use dockhand_engine::{Client, Filters, ServiceSpec};
use serde_json::Value;

use crate::proc;

/// Services cron cleans every [`CRON`].
const CRON_SERVICES: usize = 50;
/// Services the CI-style requests update and back up, each with a volume and a token.
const CI_SERVICES: usize = 6;
/// The cron of clean-service over the [`CRON_SERVICES`].
const CRON: &str = "*/10 * * * * *";
/// One request every this long, alternating between the replicas.
const REQUEST_EVERY: Duration = Duration::from_secs(1);
/// How long the S3 peer stops answering.
const S3_PAUSE: Duration = Duration::from_secs(20);
/// How long the killed replica stays down.
const REPLICA_DOWN: Duration = Duration::from_secs(5);
/// How long the accepted jobs may take to finish once the load stops: a killed replica's
/// jobs wait for their lease to expire and the other replica's reaper.
const DRAIN: Duration = Duration::from_secs(360);

/// `cargo xtask soak`: brings the swarm up if it is not (and down again after), runs, and
/// fails unless every check holds.
pub(crate) fn run(minutes: f64) -> anyhow::Result<()> {
    if !(minutes.is_finite() && (1.0..=240.0).contains(&minutes)) {
        bail!("--minutes must be between 1 and 240, not {minutes}");
    }
    let was_up = crate::swarm::settings().is_ok();
    crate::swarm::up(3)?;
    let result = soak(Duration::from_secs_f64(minutes * 60.0));
    if was_up { result } else { result.and(crate::swarm::down()) }
}

fn soak(length: Duration) -> anyhow::Result<()> {
    let weed = crate::tools::ensure_weed()?;
    crate::tools::ensure_peers()?;
    let [_, server_bin] = crate::images::test_binaries()?;
    let dir = crate::project_root().join("target").join("soak");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let settings = crate::swarm::settings()?;
    let setting = |key: &str| settings.get(key).cloned().with_context(|| format!("swarm.env has no {key}"));
    let manager = setting("DOCKER_HOST")?;
    let nodes: usize = setting("DOCKHAND_TEST_NODES")?.parse()?;
    let node_urls =
        (1..=nodes).map(|i| setting(&format!("DOCKHAND_TEST_NODE_{i}"))).collect::<Result<Vec<_>, _>>()?;
    let helper = setting("DOCKHAND_TEST_PINNED_HELPER")?;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secrets = Secrets::new()?;
    let pg = PgPeer::start();
    let s3 = S3Peer::start_with(&weed.display().to_string());
    let ca = dockhand_e2e::pki::TestCa::new("dockhand-soak");
    let pair = ca.server();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
    std::fs::write(dir.join("server.pem"), &pair.cert_pem)?;
    std::fs::write(dir.join("server.key"), &pair.key_pem)?;
    let tenant = dockhand_e2e::unique_name("soak");
    let swarm = runtime.block_on(Fleet::create(&manager, &tenant, &secrets))?;
    let config = format!(
        "store:\n  url: {}\n  password_env: DH_SOAK_PG_PASSWORD\nscope:\n  selector: dockhand.tenant={tenant}\n\
         schedule:\n  clean-service: '{CRON}'\n  clean-node: 'off'\n  backup-service: 'off'\n\
         storage:\n  targets:\n{}",
        pg.url(),
        s3.target_yaml("soak", "soak"),
    );
    std::fs::write(dir.join("dockhand.yaml"), &config)?;
    let launch = Launch {
        bin: server_bin,
        dir: dir.clone(),
        manager: manager.clone(),
        helper,
        secrets: secrets.clone(),
        nodes: node_urls.clone(),
    };
    let outcome = runtime.block_on(async {
        let replicas = [Replica::start(&launch, "a")?, Replica::start(&launch, "b")?];
        let replicas: Arc<[Replica; 2]> = Arc::new(replicas);
        let client = https_client(&dir.join("ca.pem"))?;
        for replica in replicas.iter() {
            replica.wait_healthy(&client).await?;
        }
        let run = Run { replicas, client, swarm: &swarm, launch: &launch, length, started: Instant::now() };
        run.go(pg, s3).await
    });
    let removed = runtime.block_on(swarm.remove(&node_urls, &dir));
    let report = outcome?;
    removed?;
    std::fs::write(dir.join("report.txt"), &report.text)?;
    eprintln!("{}", report.text);
    if report.failures.is_empty() {
        eprintln!("soak: every check holds (report and logs in {})", dir.display());
        Ok(())
    } else {
        bail!(
            "soak: {} check(s) failed (logs in {}):\n- {}",
            report.failures.len(),
            dir.display(),
            report.failures.join("\n- ")
        )
    }
}

/// The run's secrets, random each run, so that finding one anywhere is a leak.
#[derive(Clone)]
struct Secrets {
    admin: String,
    /// One per CI service.
    tokens: Vec<String>,
}

impl Secrets {
    fn new() -> anyhow::Result<Self> {
        let random = |label: &str| -> anyhow::Result<String> {
            let mut bytes = [0u8; 12];
            std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
            Ok(format!("soak-{label}-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
        };
        Ok(Self {
            admin: random("admin")?,
            tokens: (0..CI_SERVICES).map(|i| random(&format!("t{i}"))).collect::<Result<_, _>>()?,
        })
    }

    /// Every secret of the run, named, for the leak check.
    fn all(&self) -> Vec<(String, String)> {
        let mut all = vec![
            ("the admin token".to_owned(), self.admin.clone()),
            ("the PostgreSQL password".to_owned(), PG_PASSWORD.to_owned()),
            ("the S3 secret key".to_owned(), SECRET_KEY.to_owned()),
        ];
        all.extend(
            self.tokens.iter().enumerate().map(|(i, t)| (format!("the token of CI service {i}"), t.clone())),
        );
        all
    }
}

/// The services of the run, all labelled with its tenant (the replicas' scope).
struct Fleet {
    manager: Client,
    /// Names of the cron services.
    cron: Vec<String>,
    /// Names of the CI services, and their volumes.
    ci: Vec<(String, String)>,
    /// Every service's ID.
    ids: Vec<String>,
}

impl Fleet {
    async fn create(manager: &str, tenant: &str, secrets: &Secrets) -> anyhow::Result<Self> {
        let client = Client::new(manager.parse()?)?;
        let mut fleet = Self { manager: client, cron: Vec::new(), ci: Vec::new(), ids: Vec::new() };
        for i in 0..CRON_SERVICES {
            let name = format!("{tenant}-cron-{i}");
            let spec = ServiceSpec::new(&name, dockhand_e2e::BUSYBOX_IMAGE)
                .with_args(["sleep", "86400"])
                .with_label("dockhand.tenant", tenant)
                .with_label("dockhand.clean.enable", "true")
                .with_label("dockhand.clean.exec", "true");
            let created =
                fleet.manager.create_service(&spec).await.with_context(|| format!("cannot create {name}"))?;
            fleet.ids.push(created.id);
            fleet.cron.push(name);
        }
        for (i, token) in secrets.tokens.iter().enumerate() {
            let name = format!("{tenant}-ci-{i}");
            let volume = format!("{tenant}-vol-{i}");
            let spec = ServiceSpec::new(&name, dockhand_e2e::BUSYBOX_IMAGE)
                .with_args([
                    "sh",
                    "-c",
                    "dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null; exec sleep 86400",
                ])
                .with_volume(&volume, "/data")
                .with_label("dockhand.tenant", tenant)
                .with_label("dockhand.update.enable", "true")
                // Hashed, as an operator should: the token itself is in no spec, and the
                // check that no secret is in any spec means something.
                .with_label("dockhand.update.token", token_hash(token))
                .with_label("dockhand.backup.enable", "true")
                .with_label("dockhand.backup.target", "soak")
                .with_label("dockhand.backup.volume-list-upload", &volume)
                .with_label("dockhand.backup.stop", if i % 2 == 0 { "true" } else { "false" });
            let created =
                fleet.manager.create_service(&spec).await.with_context(|| format!("cannot create {name}"))?;
            fleet.ids.push(created.id);
            fleet.ci.push((name, volume));
        }
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let tasks = fleet.manager.tasks(&Filters::new().with("desired-state", "running")).await?;
            let running = fleet
                .ids
                .iter()
                .filter(|id| tasks.iter().any(|t| t.status.state == "running" && &&t.service_id == id))
                .count();
            if running == CRON_SERVICES + CI_SERVICES {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {running} of the soak's {} services run after 3 minutes",
                    CRON_SERVICES + CI_SERVICES
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        eprintln!("soak: {CRON_SERVICES} cron services and {CI_SERVICES} CI services run (tenant {tenant})");
        Ok(fleet)
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.cron.iter().chain(self.ci.iter().map(|(name, _)| name))
    }

    /// Removes the services, then their volumes on every node (best effort for volumes
    /// whose containers are still going away).
    async fn remove(&self, nodes: &[String], scratch: &Path) -> anyhow::Result<()> {
        for name in self.names() {
            if let Err(e) = self.manager.remove_service(name).await {
                eprintln!("soak: cannot remove {name}: {e}");
            }
        }
        // The tasks' containers go a while after their services: their volumes are in use
        // until then.
        for url in nodes {
            let mut last = None;
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let mut rm = crate::engine::docker_cli(url, &scratch.join("docker-cli"))?;
                rm.args(["volume", "rm", "-f"]).args(self.ci.iter().map(|(_, volume)| volume));
                last = proc::output(&mut rm).err();
                if last.is_none() {
                    break;
                }
            }
            if let Some(e) = last {
                eprintln!("soak: cannot remove the volumes on {url}: {e:#}");
            }
        }
        Ok(())
    }
}

/// `sha256:<hex>`: the form of a token label that does not hold the token.
fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// What a replica is started with.
struct Launch {
    bin: PathBuf,
    dir: PathBuf,
    manager: String,
    helper: String,
    secrets: Secrets,
    /// Every node's engine URL.
    nodes: Vec<String>,
}

/// One `dockhand-server` replica: its process, port and state directory; a restart keeps
/// the port and the state, and logs to a file of its own.
struct Replica {
    name: &'static str,
    url: String,
    port: u16,
    state: Mutex<ReplicaState>,
}

struct ReplicaState {
    child: Child,
    /// 1 for the first process, 2 after a restart.
    generation: u32,
    /// Its RSS after its warm-up, in KiB (the first sample after it).
    warm_rss: Option<u64>,
    /// When this process started.
    since: Instant,
}

impl Replica {
    fn start(launch: &Launch, name: &'static str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = spawn(launch, name, port, 1)?;
        let state = ReplicaState { child, generation: 1, warm_rss: None, since: Instant::now() };
        Ok(Self { name, url: format!("https://127.0.0.1:{port}"), port, state: Mutex::new(state) })
    }

    fn pid(&self) -> u32 {
        self.state.lock().map(|s| s.child.id()).unwrap_or(0)
    }

    async fn wait_healthy(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("replica {} did not answer /healthz within 60 s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL, as a crash: nothing is cleaned up.
    fn kill(&self) {
        if let Ok(mut state) = self.state.lock() {
            let _ = state.child.kill();
            let _ = state.child.wait();
        }
    }

    /// Starts it again on the same port and state.
    fn restart(&self, launch: &Launch) -> anyhow::Result<()> {
        let mut state =
            self.state.lock().map_err(|_| anyhow::anyhow!("a replica's state lock is poisoned"))?;
        let generation = state.generation + 1;
        state.child = spawn(launch, self.name, self.port, generation)?;
        state.generation = generation;
        state.warm_rss = None;
        state.since = Instant::now();
        Ok(())
    }

    /// SIGTERM, and up to 90 s for it to stop (it cancels its running jobs first).
    fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.pid();
        proc::signal(i32::try_from(pid)?, rustix::process::Signal::TERM);
        if !proc::wait_gone(i32::try_from(pid)?, Duration::from_secs(90)) {
            self.kill();
            bail!("replica {} did not stop within 90 s of SIGTERM", self.name);
        }
        if let Ok(mut state) = self.state.lock() {
            let _ = state.child.wait();
        }
        Ok(())
    }
}

fn spawn(launch: &Launch, name: &str, port: u16, generation: u32) -> anyhow::Result<Child> {
    let dir = &launch.dir;
    let log = std::fs::File::create(dir.join(format!("server-{name}.{generation}.log")))?;
    let mut cmd = Command::new(&launch.bin);
    for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
        .arg(dir.join(format!("state-{name}")))
        .arg("--config")
        .arg(dir.join("dockhand.yaml"))
        .env("DOCKER_HOST", &launch.manager)
        .env("DOCKER_CONFIG", dir.join(format!("docker-{name}")))
        .env("DOCKHAND_ADMIN_TOKENS", &launch.secrets.admin)
        .env("DOCKHAND_HELPER_IMAGE", &launch.helper)
        .env("DOCKHAND_TLS_CERT_FILE", dir.join("server.pem"))
        .env("DOCKHAND_TLS_KEY_FILE", dir.join("server.key"))
        .env("DOCKHAND_SCHEDULE_ENABLED", "true")
        .env("DOCKHAND_LOG", "debug")
        .env("DH_SOAK_PG_PASSWORD", PG_PASSWORD)
        .env("S3_KEY", dockhand_e2e::s3::ACCESS_KEY)
        .env("S3_SECRET", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    cmd.spawn().with_context(|| format!("cannot start {}", launch.bin.display()))
}

fn https_client(ca: &Path) -> anyhow::Result<reqwest::Client> {
    let pem = std::fs::read(ca)?;
    Ok(reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// The resident set of `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// One request the client sent.
#[derive(Debug, Clone)]
struct Sent {
    kind: Kind,
    replica: &'static str,
    /// The status, or `None` when no answer came (the replica was down).
    status: Option<u16>,
    /// The job's ID when it was accepted.
    job: Option<String>,
    body: String,
}

/// The kinds of request, in the order they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `POST /v1/services/{ci}/update` with the service's token.
    Update,
    /// The seed's `POST /api/update/service` with the token in the body.
    SeedUpdate,
    /// `POST /v1/services/{ci}/backup` with the admin token.
    Backup,
    /// `POST /v1/services/{cron}/clean` with the admin token.
    Clean,
    /// An update with another service's token: refused.
    WrongToken,
    /// A backup with a token nobody has: refused.
    UnknownToken,
}

impl Kind {
    const ALL: [Self; 6] =
        [Self::Update, Self::SeedUpdate, Self::Backup, Self::Clean, Self::WrongToken, Self::UnknownToken];

    fn valid(self) -> bool {
        !matches!(self, Self::WrongToken | Self::UnknownToken)
    }
}

/// The run in progress.
struct Run<'a> {
    replicas: Arc<[Replica; 2]>,
    client: reqwest::Client,
    swarm: &'a Fleet,
    launch: &'a Launch,
    length: Duration,
    started: Instant,
}

/// What the run found.
struct Report {
    text: String,
    failures: Vec<String>,
}

impl Run<'_> {
    /// The warm-up: a fifth of the run, at least 30 s.
    fn warm_up(&self) -> Duration {
        (self.length / 5).max(Duration::from_secs(30))
    }

    async fn go(self, pg: PgPeer, s3: S3Peer) -> anyhow::Result<Report> {
        let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let faults: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop, stopped_rx) = tokio::sync::watch::channel(false);
        let plan = Plan {
            cron: self.swarm.cron.clone(),
            ci: self.swarm.ci.iter().map(|(n, _)| n.clone()).collect(),
            secrets: self.launch.secrets.clone(),
        };
        let load = tokio::spawn(load(
            Arc::clone(&self.replicas),
            self.client.clone(),
            plan,
            Arc::clone(&sent),
            stopped_rx.clone(),
        ));
        let sampler = tokio::spawn(sample_rss(Arc::clone(&self.replicas), self.warm_up(), stopped_rx));
        let (pg, s3) = self.faults(pg, s3, &faults).await?;
        let remaining = self.length.saturating_sub(self.started.elapsed());
        tokio::time::sleep(remaining).await;
        let _ = stop.send(true);
        let sent_count = load.await.context("the load task panicked")?;
        let samples = sampler.await.context("the RSS sampler panicked")?;
        eprintln!("soak: load stopped after {sent_count} requests; waiting for the accepted jobs");
        let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
        let faults = faults.lock().map(|f| f.clone()).unwrap_or_default();
        let finished = checks::wait_finished(&self, &sent).await;
        let rss: Vec<(&'static str, Option<u64>, Option<u64>)> = self
            .replicas
            .iter()
            .map(|r| (r.name, r.state.lock().ok().and_then(|s| s.warm_rss), rss_kib(r.pid())))
            .collect();
        let mut stopped = Vec::new();
        for replica in self.replicas.iter() {
            if let Err(e) = replica.terminate() {
                stopped.push(e.to_string());
            }
        }
        let findings = checks::Findings { sent, faults, finished, rss, samples, stopped };
        let report = checks::judge(&self, &pg, findings).await?;
        drop(s3);
        drop(pg);
        Ok(report)
    }

    /// The faults, one after the other at fixed shares of the run.
    async fn faults(
        &self,
        mut pg: PgPeer,
        s3: S3Peer,
        log: &Mutex<Vec<String>>,
    ) -> anyhow::Result<(PgPeer, S3Peer)> {
        let note = |what: String| {
            eprintln!("soak: {what}");
            if let Ok(mut log) = log.lock() {
                log.push(what);
            }
        };
        let at = |share: f64| self.length.mul_f64(share);
        self.until(at(0.30)).await;
        let t = self.started.elapsed();
        tokio::task::spawn_blocking(|| crate::swarm::restart_engine(2)).await??;
        note(format!(
            "{:>5.0}s dockerd of node2 restarted (down {:.0}s)",
            t.as_secs_f64(),
            (self.started.elapsed() - t).as_secs_f64()
        ));
        self.until(at(0.42)).await;
        let t = self.started.elapsed();
        let pg = tokio::task::spawn_blocking(move || {
            pg.restart();
            pg
        })
        .await?;
        note(format!(
            "{:>5.0}s PostgreSQL restarted (down {:.1}s)",
            t.as_secs_f64(),
            (self.started.elapsed() - t).as_secs_f64()
        ));
        self.until(at(0.55)).await;
        let t = self.started.elapsed();
        self.replicas[1].kill();
        tokio::time::sleep(REPLICA_DOWN).await;
        self.replicas[1].restart(self.launch)?;
        self.replicas[1].wait_healthy(&self.client).await?;
        note(format!(
            "{:>5.0}s replica b killed (SIGKILL), started again after {}s",
            t.as_secs_f64(),
            REPLICA_DOWN.as_secs()
        ));
        self.until(at(0.68)).await;
        let t = self.started.elapsed();
        s3.pause();
        tokio::time::sleep(S3_PAUSE).await;
        s3.resume();
        note(format!(
            "{:>5.0}s S3 peer stopped answering for {}s (SIGSTOP)",
            t.as_secs_f64(),
            S3_PAUSE.as_secs()
        ));
        Ok((pg, s3))
    }

    async fn until(&self, at: Duration) {
        tokio::time::sleep(at.saturating_sub(self.started.elapsed())).await;
    }
}

/// What the load sends to.
struct Plan {
    cron: Vec<String>,
    ci: Vec<String>,
    secrets: Secrets,
}

impl Plan {
    /// Request `i`: its kind, its path, its bearer token and its body.
    fn request(&self, i: usize) -> (Kind, String, Option<String>, String) {
        let kind = Kind::ALL[i % Kind::ALL.len()];
        let round = i / Kind::ALL.len();
        let n = round % self.ci.len();
        let (svc, token) = (&self.ci[n], &self.secrets.tokens[n]);
        let update = serde_json::json!({"image": dockhand_e2e::BUSYBOX_IMAGE, "force": true}).to_string();
        let admin = Some(self.secrets.admin.clone());
        match kind {
            Kind::Update => {
                (kind, format!("/v1/services/{svc}/update?wait=false"), Some(token.clone()), update)
            }
            Kind::SeedUpdate => {
                let other = (n + self.ci.len() / 2) % self.ci.len();
                let body = dockhand_e2e::seed_update_body(
                    &self.secrets.tokens[other],
                    &self.ci[other],
                    dockhand_e2e::BUSYBOX_IMAGE,
                );
                (kind, "/api/update/service?wait=false".to_owned(), None, body)
            }
            Kind::Backup => {
                // Not the service the next round's update asks for: a backup that stops its
                // service would make that update busy every time.
                let other = &self.ci[(n + 2) % self.ci.len()];
                (kind, format!("/v1/services/{other}/backup?wait=false"), admin, "{}".to_owned())
            }
            Kind::Clean => {
                let target = &self.cron[round % self.cron.len()];
                (kind, format!("/v1/services/{target}/clean?wait=false"), admin, "{}".to_owned())
            }
            Kind::WrongToken => {
                let other = &self.secrets.tokens[(n + 1) % self.ci.len()];
                (kind, format!("/v1/services/{svc}/update?wait=false"), Some(other.clone()), update)
            }
            Kind::UnknownToken => (
                kind,
                format!("/v1/services/{svc}/backup?wait=false"),
                Some(format!("soak-nobody-{i}")),
                "{}".to_owned(),
            ),
        }
    }
}

/// Sends one request every [`REQUEST_EVERY`], alternating between the replicas, until
/// `stop`; each answer is recorded in `sent`. Returns how many it sent.
async fn load(
    replicas: Arc<[Replica; 2]>,
    client: reqwest::Client,
    plan: Plan,
    sent: Arc<Mutex<Vec<Sent>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> usize {
    let mut tick = tokio::time::interval(REQUEST_EVERY);
    let mut inflight = tokio::task::JoinSet::new();
    let mut i = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let (kind, path, token, body) = plan.request(i);
        // Not the same replica for every kind: the round shifts it.
        let replica = &replicas[(i + i / Kind::ALL.len()) % 2];
        let (name, url) = (replica.name, format!("{}{path}", replica.url));
        let (client, sent) = (client.clone(), Arc::clone(&sent));
        inflight.spawn(async move {
            let mut request = client.post(url).header("Content-Type", "application/json").body(body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let (status, body) = match request.send().await {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    (Some(status), answer.text().await.unwrap_or_default())
                }
                Err(_) => (None, String::new()),
            };
            let job = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
                let id = v.get("id").or_else(|| v.get("job").and_then(|j| j.get("id")))?;
                id.as_str().map(str::to_owned)
            });
            let job = job.filter(|_| status.is_some_and(|s| (200..300).contains(&s)));
            if let Ok(mut sent) = sent.lock() {
                sent.push(Sent { kind, replica: name, status, job, body });
            }
        });
        i += 1;
    }
    while inflight.join_next().await.is_some() {}
    i
}

/// One RSS sample: seconds into the run, the replica, its process generation, KiB.
type Sample = (f64, &'static str, u32, u64);

/// Samples both replicas' RSS every 5 s until `stop`; a replica's first sample after its
/// warm-up is its baseline.
async fn sample_rss(
    replicas: Arc<[Replica; 2]>,
    warm_up: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Sample> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        for replica in replicas.iter() {
            let Ok(mut state) = replica.state.lock() else { continue };
            let Some(rss) = rss_kib(state.child.id()) else { continue };
            if state.warm_rss.is_none() && state.since.elapsed() >= warm_up {
                state.warm_rss = Some(rss);
            }
            samples.push((started.elapsed().as_secs_f64(), replica.name, state.generation, rss));
        }
    }
    samples
}
