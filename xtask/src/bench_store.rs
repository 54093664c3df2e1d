//! `cargo xtask bench store`: the job store and the scheduler, against baselines measured in
//! the same run.
//!
//! 1. The job store (SQLite): 1 000 jobs recorded through `SqliteStore` versus the same rows
//!    inserted with rusqlite directly (one statement each, as the store does); then
//!    `GET /v1/jobs`'s query (filtered by action, paged 50 at a time) over that history:
//!    p50 and p99; the same on a real PostgreSQL on loopback (the shared store).
//! 2. The same listing over HTTP: the release `dockhand-server` on each of those two stores,
//!    `GET /v1/jobs` filtered and on its second page, under wrk with 1 connection (what one
//!    caller waits) and with 32 (under load), against a minimal hyper server on the same
//!    runtime shape (as `bench server`).
//! 3. One cron tick over 2 000 labelled services (no tasks) on the private engine: the time
//!    from the tick to every job handed to a launcher that returns at once, and the peak
//!    memory it added; against `docker service ls` of the same services.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dockhand_e2e::postgres::PgPeer;
use dockhand_engine::{Client, Endpoint, Filters, ServiceSpec};
use dockhand_jobs::schedule::{Launched, Launcher, Work};
use dockhand_jobs::store::{JobFilter, JobStore, SqliteStore};
use dockhand_jobs::{Action, Job, Status, Step, Target, Trigger};
use futures_util::future::BoxFuture;

use crate::engine;

const JOBS: usize = 1_000;
const SERVICES: usize = 2_000;

pub(crate) fn run() -> anyhow::Result<()> {
    crate::tools::ensure_wrk()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let state = tempfile::tempdir()?;
    let pg = PgPeer::start();
    runtime.block_on(store(state.path(), &pg))?;
    let layout = engine::up()?;
    http(&layout.url(), state.path(), &pg)?;
    runtime.block_on(tick(&layout.socket(), &layout.url()))
}

fn job(i: usize) -> Job {
    let now = std::time::SystemTime::now();
    let action = [Action::CleanService, Action::BackupService, Action::CleanNode][i % 3];
    let target = Target::Service { id: format!("id{i:05}"), name: format!("svc-{}", i % 100) };
    let mut job = Job::start(action, target, Trigger::Cron, "cron", now);
    for kind in ["exec", "upload"] {
        let mut step = Step::start(kind, now);
        step.output_tail = Some(format!("step {kind} of job {i}: all done, 12 files, 3.4 MiB"));
        step.finish(Status::Succeeded, now, None);
        job.steps.push(step);
    }
    job.finish(now, None);
    job
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Records the jobs, then times 500 second-page queries: (records per second, p50, p99).
async fn measure(store: &dyn JobStore, jobs: &[Job]) -> anyhow::Result<(f64, Duration, Duration)> {
    let started = Instant::now();
    for job in jobs {
        store.record(job).await?;
    }
    let rate = jobs.len() as f64 / started.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for i in 0..500 {
        let mut filter = JobFilter::default();
        filter.action = Some(["clean-service", "backup-service", "clean-node"][i % 3].to_owned());
        filter.limit = Some(50);
        let page = store.list(&filter).await?;
        let mut next = filter.clone();
        next.before = page.last().map(|j| j.id.clone());
        let started = Instant::now();
        let _ = store.list(&next).await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((rate, percentile(&times, 0.5), percentile(&times, 0.99)))
}

/// Records the history in `state/jobs.sqlite` (where a server with `--state-dir state` finds
/// it) and in `pg`, and times the listing on each.
async fn store(state: &Path, pg: &PgPeer) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let jobs: Vec<Job> = (0..JOBS).map(job).collect();
    let sqlite = SqliteStore::open(&state.join("jobs.sqlite"))?;
    let (sqlite_rate, sqlite_p50, sqlite_p99) = measure(&sqlite, &jobs).await?;
    let mut config: tokio_postgres::Config = pg.url().parse()?;
    config.password(dockhand_e2e::postgres::PG_PASSWORD);
    let postgres = dockhand_jobs::store::PgStore::connect(config, None, &pg.url()).await?;
    let (pg_rate, pg_p50, pg_p99) = measure(&postgres, &jobs).await?;
    // The baseline: the same rows, the same statement, rusqlite on this thread.
    let raw = rusqlite::Connection::open(dir.path().join("raw.sqlite"))?;
    raw.pragma_update(None, "journal_mode", "WAL")?;
    raw.execute_batch(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, action TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
         started_ms INTEGER NOT NULL, ended_ms INTEGER, job TEXT NOT NULL)",
    )?;
    let started = Instant::now();
    for job in &jobs {
        raw.execute(
            "INSERT INTO jobs (id, action, target, status, started_ms, ended_ms, job) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET status = ?4, ended_ms = ?6, job = ?7",
            rusqlite::params![
                job.id,
                job.action.as_str(),
                job.target.describe(),
                "succeeded",
                job.started_ms as i64,
                job.ended_ms.map(|m| m as i64),
                serde_json::to_string(job)?
            ],
        )?;
    }
    let baseline = JOBS as f64 / started.elapsed().as_secs_f64();
    println!("\n== job store, {JOBS} jobs");
    println!("{:<34} {:>22} {:>22}", "", "SQLite", "PostgreSQL");
    println!(
        "{:<34} {:>20.0}/s {:>20.0}/s   (raw rusqlite {baseline:.0}/s: SQLite ratio {:.2})",
        "record",
        sqlite_rate,
        pg_rate,
        baseline / sqlite_rate
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:<34} p50 {:>5.2} p99 {:>5.2} ms p50 {:>5.2} p99 {:>5.2} ms",
        "GET /v1/jobs query (filter, page 2)",
        ms(sqlite_p50),
        ms(sqlite_p99),
        ms(pg_p50),
        ms(pg_p99)
    );
    Ok(())
}

use crate::bench_server::ADMIN;

/// A server process, killed when dropped.
/// A server process, killed on drop.
pub(crate) struct Server(pub(crate) std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /v1/jobs` over HTTP on the history [`store`] left, on SQLite (`state`) and on `pg`.
fn http(engine: &str, state: &Path, pg: &PgPeer) -> anyhow::Result<()> {
    use crate::bench_server::{free_port, request, wait_healthy, wrk_with};
    let binary = crate::bench_server::shipped_server()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hello_url = format!("http://127.0.0.1:{}/", listener.local_addr()?.port());
    crate::bench_server::hello(listener);
    let hello = (wrk_with(1, &hello_url, None, &[])?, wrk_with(32, &hello_url, None, &[])?);
    let auth = format!("Authorization: Bearer {ADMIN}\r\n");
    let pg_dir = tempfile::tempdir()?;
    let pg_config = pg_dir.path().join("dockhand.yaml");
    std::fs::write(&pg_config, format!("store:\n  url: {}\n  password_env: BENCH_PG_PASSWORD\n", pg.url()))?;
    println!(
        "\n== GET /v1/jobs over HTTP ({JOBS} jobs, ?action=backup-service&limit=50&before=<page 1's last>; wrk -d10s)"
    );
    println!("{:<34} {:>30} {:>30}", "", "1 connection", "32 connections");
    let row = |what: &str, one: (f64, f64, u64), many: (f64, f64, u64)| {
        println!(
            "{what:<34} {:>9.0} req/s p99 {:>6.2} ms {:>9.0} req/s p99 {:>6.2} ms   ratio {:.2} / {:.2}",
            one.0,
            one.1,
            many.0,
            many.1,
            one.0 / hello.0.0,
            many.0 / hello.1.0
        );
    };
    row("hyper \"hello\" (baseline)", hello.0, hello.1);
    for (name, dir, config) in [("SQLite", state, None), ("PostgreSQL", pg_dir.path(), Some(&pg_config))] {
        let port = free_port()?;
        let mut cmd = Command::new(&binary);
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(dir)
            .env("DOCKER_HOST", engine)
            .env("DOCKHAND_ADMIN_TOKENS", ADMIN)
            .env("DOCKHAND_LOG", "warn")
            .env("DOCKHAND_SCHEDULE_ENABLED", "false")
            .env("BENCH_PG_PASSWORD", dockhand_e2e::postgres::PG_PASSWORD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        let _server = Server(cmd.spawn()?);
        wait_healthy(port)?;
        let first = "/v1/jobs?action=backup-service&limit=50";
        let (code, body) = request(port, "GET", first, &auth, "")?;
        let page: Vec<serde_json::Value> =
            serde_json::from_str(&body).with_context(|| format!("{name}: {code} {body}"))?;
        anyhow::ensure!(page.len() == 50, "{name}: page 1 has {} jobs: {code} {body}", page.len());
        let last = page[49]["id"].as_str().context("a job id")?;
        let url = format!("http://127.0.0.1:{port}{first}&before={last}");
        let (code, body) = request(port, "GET", &format!("{first}&before={last}"), &auth, "")?;
        anyhow::ensure!(code == 200 && body.starts_with('['), "{name}: page 2: {code} {body}");
        let header = auth.trim_end();
        let (one, many) = (wrk_with(1, &url, None, &[header])?, wrk_with(32, &url, None, &[header])?);
        anyhow::ensure!(one.2 == 0 && many.2 == 0, "{name}: answers other than 200 under wrk");
        row(&format!("dockhand-server on {name}"), one, many);
    }
    Ok(())
}

/// A launcher that returns at once: what is measured is the scheduler's own work.
struct Instant0(std::sync::atomic::AtomicUsize);

impl Launcher for Instant0 {
    fn launch(&self, key: String, ctx: dockhand_jobs::JobContext, _work: Work) -> BoxFuture<'_, Launched> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let target = Target::Service { id: key.clone(), name: key };
        let job =
            Job::start(Action::CleanService, target, ctx.trigger, ctx.caller, std::time::SystemTime::now());
        Box::pin(async move { Launched::Ran(Box::new(job)) })
    }
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn tick(socket: &std::path::Path, url: &str) -> anyhow::Result<()> {
    let client = Client::new(Endpoint::unix(socket))?;
    let label = format!("bench-{}", std::process::id());
    println!("\n== one cron tick over {SERVICES} labelled services (creating them)");
    let created = Instant::now();
    let names: Vec<String> = (0..SERVICES).map(|i| format!("dh-tick-{label}-{i}")).collect();
    futures_util::future::try_join_all(names.chunks(SERVICES / 8).map(|chunk| {
        let client = client.clone();
        let label = label.clone();
        async move {
            for name in chunk {
                let spec = ServiceSpec::new(name, dockhand_e2e::BUSYBOX_IMAGE)
                    .with_replicas(0)
                    .with_label("dockhand.clean.enable", "true")
                    .with_label("dockhand.backup.enable", "true")
                    .with_label("dockhand.bench", &label);
                client.create_service(&spec).await?;
            }
            Ok::<_, dockhand_engine::Error>(())
        }
    }))
    .await?;
    println!("created in {:.1} s", created.elapsed().as_secs_f64());
    let result = measure_tick(&client, url, &label).await;
    let removed = futures_util::future::join_all(names.iter().map(|n| client.remove_service(n))).await;
    let left = removed.iter().filter(|r| r.is_err()).count();
    if left > 0 {
        eprintln!("{left} benchmark services could not be removed");
    }
    result
}

async fn measure_tick(client: &Client, url: &str, label: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.sqlite"))?);
    let mut ctx = dockhand_jobs::JobContext::new(client.clone(), "bench", Trigger::Cron, "cron");
    ctx.helpers = dockhand_jobs::HelperSettings::new(dockhand_e2e::HELPER_IMAGE);
    let storage = Arc::new(dockhand_jobs::storage::StorageTargets::load(
        &dockhand_host::ConfigFile::parse("{}", false)?,
        &dockhand_host::Environment::from_vars::<&str, &str>([]),
        dir.path().join("backups"),
    )?);
    let schedule = dockhand_jobs::schedule::Schedule::default().with(
        Action::CleanNode,
        dockhand_policy::Timing::Off,
        "bench",
    );
    let scheduler = dockhand_jobs::schedule::Scheduler::new(schedule, ctx, store, storage, "bench")
        .with_scope(Some(("dockhand.bench".to_owned(), label.to_owned())))
        .with_concurrency(4);
    let launcher = Instant0(std::sync::atomic::AtomicUsize::new(0));
    let at = chrono::DateTime::parse_from_rfc3339("2027-01-01T03:00:00Z")?.with_timezone(&chrono::Utc);
    let before = peak_kib();
    let started = Instant::now();
    let due = scheduler.run_tick(at, &launcher).await?;
    let ours = started.elapsed();
    let added = peak_kib().saturating_sub(before);
    let launched = launcher.0.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(
        launched == 2 * SERVICES,
        "{launched} jobs launched, {due} due: expected {}",
        2 * SERVICES
    );
    let started = Instant::now();
    let out = Command::new("docker")
        .env("DOCKER_HOST", url)
        .args(["service", "ls", "--filter", &format!("label=dockhand.bench={label}"), "-q"])
        .output()
        .context("docker service ls")?;
    let baseline = started.elapsed();
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "{:<40} {:>9.1} ms vs {:>9.1} ms (docker service ls)  ratio {:.2}; peak memory +{:.1} MiB ({} jobs)",
        "tick to every job dispatched",
        ours.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        ours.as_secs_f64() / baseline.as_secs_f64(),
        added as f64 / 1024.0,
        launched
    );
    let _ = client.services(&Filters::new()).await;
    Ok(())
}
