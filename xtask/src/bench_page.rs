//! `cargo xtask bench server`, its second part: the status page under load. 500 services
//! (no replicas) on the private engine, 10 000 of their jobs in the server's store
//! (SQLite), and 8 viewers signed in: wrk with 8 connections on `GET /` (the overview: the
//! engine's services and nodes, the store's newest jobs) and on `GET /ui/jobs` (the
//! history), against the minimal hyper server of `bench server` on the same runtime shape;
//! p99 against the 100 ms goal, and the server's idle RSS before and after, against 20 MiB.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use dockhand_engine::{Client, Endpoint};
use dockhand_jobs::store::{JobStore, SqliteStore};
use dockhand_jobs::{Action, Job, Status, Step, Target, Trigger};

use crate::bench_server::{ADMIN, free_port, hello, wait_healthy, wrk_with};
use crate::engine;

const SERVICES: usize = 500;
const JOBS: usize = 10_000;
const VIEWERS: u32 = 8;
const VIEWER: &str = "bench-viewer-token";

pub(crate) fn run() -> anyhow::Result<()> {
    let layout = engine::up()?;
    let binary = crate::bench_server::shipped_server()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client = Client::new(Endpoint::unix(layout.socket()))?;
    runtime.block_on(async {
        crate::bench::remove_services(&client).await?;
        crate::bench::create_services(&client, SERVICES).await
    })?;
    let state = tempfile::tempdir()?;
    let filled = runtime.block_on(fill(state.path()));
    let result = filled.and_then(|()| serve(&layout.url(), &binary, state.path()));
    runtime.block_on(crate::bench::remove_services(&client))?;
    result
}

/// [`JOBS`] finished jobs of the bench's services, each with two steps, in `state`'s store.
async fn fill(state: &Path) -> anyhow::Result<()> {
    let store = SqliteStore::open(&state.join("jobs.sqlite"))?;
    let now = std::time::SystemTime::now();
    for i in 0..JOBS {
        let action = [Action::CleanService, Action::BackupService, Action::UpdateService][i % 3];
        let n = i % SERVICES;
        let target = Target::Service { id: format!("bench{n:05}"), name: format!("dh-bench-{n:03}") };
        let mut job = Job::start(action, target, Trigger::Cron, "cron", now);
        for kind in ["exec", "upload"] {
            let mut step = Step::start(kind, now);
            step.output_tail = Some(format!("step {kind} of job {i}: all done, 12 files, 3.4 MiB"));
            step.finish(if i % 17 == 0 { Status::Failed } else { Status::Succeeded }, now, None);
            job.steps.push(step);
        }
        job.finish(now, None);
        store.record(&job).await?;
    }
    Ok(())
}

/// The server's resident memory in MiB: all of it, and its anonymous part (the heap, not
/// the executable's pages).
fn rss_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        Ok(kib as f64 / 1024.0)
    };
    Ok((field("VmRSS:")?, field("RssAnon:")?))
}

/// Signs in with the viewer token: the session cookie, `name=value`.
fn sign_in(port: u16) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let body = format!("token={VIEWER}");
    write!(
        stream,
        "POST /ui/login HTTP/1.0\r\nHost: bench\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    out.lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .with_context(|| format!("the sign-in gave no cookie:\n{out}"))
}

fn serve(engine: &str, binary: &Path, state: &Path) -> anyhow::Result<()> {
    let port = free_port()?;
    let server = crate::bench_store::Server(
        Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(state)
            .env("DOCKER_HOST", engine)
            .env("DOCKHAND_ADMIN_TOKENS", ADMIN)
            .env("DOCKHAND_VIEWER_TOKENS", VIEWER)
            .env("DOCKHAND_LOG", "warn")
            .env("DOCKHAND_SCHEDULE_ENABLED", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let pid = server.0.id();
    wait_healthy(port)?;
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_mib(pid)?;
    let cookie = format!("Cookie: {}", sign_in(port)?);
    let (_, page) = crate::bench_server::request(port, "GET", "/", &format!("{cookie}\r\n"), "")?;
    let rows =
        page.matches("<th scope=\"row\">dh-bench-").count() + page.matches("service/dh-bench-").count();
    anyhow::ensure!(rows >= SERVICES, "the overview does not show the {SERVICES} services ({rows} seen)");

    let hello_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hello_port = hello_listener.local_addr()?.port();
    hello(hello_listener);
    let base = wrk_with(VIEWERS, &format!("http://127.0.0.1:{hello_port}/"), None, &[])?;
    let overview = wrk_with(VIEWERS, &format!("http://127.0.0.1:{port}/"), None, &[&cookie])?;
    let history = wrk_with(VIEWERS, &format!("http://127.0.0.1:{port}/ui/jobs"), None, &[&cookie])?;
    std::thread::sleep(Duration::from_secs(5));
    let after = rss_mib(pid)?;
    println!(
        "\n== the status page: {SERVICES} services, {JOBS} jobs, {VIEWERS} viewers (wrk -t2 -c{VIEWERS} -d10s)"
    );
    println!("{:<36} {:>9.0} req/s  p99 {:>7.2} ms", "hyper \"hello\" (baseline)", base.0, base.1);
    for (what, (rps, p99, non_2xx)) in
        [("GET / (the overview)", overview), ("GET /ui/jobs (the history)", history)]
    {
        println!(
            "{what:<36} {rps:>9.1} req/s  p99 {p99:>7.2} ms (goal < 100)  ratio {:.4}  non-2xx: {non_2xx}",
            rps / base.0
        );
    }
    println!(
        "idle RSS: {:.1} MiB before (anonymous {:.1}), {:.1} MiB after (anonymous {:.1}) (goal <= 20 MiB)",
        idle.0, idle.1, after.0, after.1
    );
    Ok(())
}
