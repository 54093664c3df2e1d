//! `cargo xtask bench engine`: dockhand-engine against baselines measured in the same run,
//! on the private engine. Prints ratios (dockhand / baseline); lower is better.
//!
//! 1. In-process: 10 000 pings and 1 000 service lists through `dockhand_engine::Client`
//!    versus a raw hyper client written here, on the same socket.
//! 2. Cold process: `dockhand engine ping` versus `curl --unix-socket ... /_ping`.
//! 3. `dockhand services ls` versus `docker service ls` with 500 services: wall time and peak
//!    RSS (GNU time's `%M`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use dockhand_engine::{Client, Endpoint, Filters, ServiceSpec};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::{engine, proc};

pub(crate) fn run(what: &str) -> anyhow::Result<()> {
    if what != "engine" {
        bail!("unknown benchmark {what:?}: the benchmarks are: engine");
    }
    crate::tools::ensure_bench()?;
    let layout = engine::up()?;
    // Release binaries: these are what operators run.
    proc::run(crate::cargo().args([
        "build",
        "--release",
        "--locked",
        "--package",
        "dockhand-cli",
        "--bin",
        "dockhand",
    ]))?;
    let dockhand = crate::project_root().join("target/release/dockhand");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let socket = layout.socket();

    println!("\n== in-process, unix socket ({})", layout.url());
    let (ours, raw) = runtime.block_on(pings(&socket, 10_000))?;
    report("10 000 pings (HEAD /_ping)", ours, raw, "raw hyper");
    let (ours, raw) = runtime.block_on(service_lists(&socket, 1_000))?;
    report("1 000 service lists", ours, raw, "raw hyper");

    println!("\n== cold process");
    let url = layout.url();
    let ping = [url.as_str()];
    let ours =
        time_runs(50, || Command::new(&dockhand).args(["--host", ping[0], "engine", "ping"]).output())?;
    let sock = socket.display().to_string();
    let curl = time_runs(50, || {
        Command::new("curl").args(["-sf", "--unix-socket", &sock, "http://x/_ping"]).output()
    })?;
    report("`dockhand engine ping` x50", ours, curl, "curl --unix-socket");

    println!("\n== 500 services");
    let client = Client::new(Endpoint::unix(&socket))?;
    runtime.block_on(create_services(&client, 500))?;
    let result = (|| -> anyhow::Result<()> {
        let (ours_t, ours_rss) =
            measure(5, Command::new(&dockhand).args(["--host", &url, "services", "ls"]))?;
        let mut theirs = layout.docker()?;
        theirs.args(["service", "ls"]);
        let (docker_t, docker_rss) = measure(5, &mut theirs)?;
        report("`dockhand services ls` wall", ours_t, docker_t, "docker service ls");
        println!(
            "{:<40} {:>9} KiB vs {:>9} KiB  ratio {:.2} (peak RSS)",
            "`dockhand services ls` peak RSS",
            ours_rss,
            docker_rss,
            ours_rss as f64 / docker_rss as f64
        );
        Ok(())
    })();
    runtime.block_on(remove_services(&client))?;
    result
}

fn report(what: &str, ours: Duration, baseline: Duration, name: &str) {
    println!(
        "{what:<40} {:>9.1} ms vs {:>9.1} ms ({name})  ratio {:.2}",
        ours.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn raw_client() -> HyperClient<hyperlocal::UnixConnector, Empty<Bytes>> {
    HyperClient::builder(TokioExecutor::new()).build(hyperlocal::UnixConnector)
}

async fn raw_request(
    raw: &HyperClient<hyperlocal::UnixConnector, Empty<Bytes>>,
    socket: &Path,
    method: http::Method,
    path: &str,
) -> anyhow::Result<Bytes> {
    let request = http::Request::builder()
        .method(method)
        .uri(hyper::Uri::from(hyperlocal::Uri::new(socket, path)))
        .body(Empty::new())?;
    let response = raw.request(request).await?;
    if !response.status().is_success() {
        bail!("{path}: {}", response.status());
    }
    Ok(response.into_body().collect().await?.to_bytes())
}

/// Sequential pings: our client's `ping()` against the same HEAD request by raw hyper.
/// The two run alternately in rounds so that drift on the machine hits both alike.
async fn pings(socket: &Path, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let ours = Client::new(Endpoint::unix(socket))?;
    let raw = raw_client();
    ours.ping().await?;
    raw_request(&raw, socket, http::Method::HEAD, "/_ping").await?;
    let (mut t_ours, mut t_raw) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..10 {
        let start = Instant::now();
        for _ in 0..n / 10 {
            ours.ping().await?;
        }
        t_ours += start.elapsed();
        let start = Instant::now();
        for _ in 0..n / 10 {
            raw_request(&raw, socket, http::Method::HEAD, "/_ping").await?;
        }
        t_raw += start.elapsed();
    }
    Ok((t_ours, t_raw))
}

/// Sequential service lists: ours decodes into typed services; the raw baseline decodes
/// the same bytes into untyped JSON, so both do the work a caller needs.
async fn service_lists(socket: &Path, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let ours = Client::new(Endpoint::unix(socket))?;
    let version = ours.api_version().await?;
    let path = format!("/v{version}/services?status=true");
    let raw = raw_client();
    let (mut t_ours, mut t_raw) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..10 {
        let start = Instant::now();
        for _ in 0..n / 10 {
            ours.services(&Filters::new()).await?;
        }
        t_ours += start.elapsed();
        let start = Instant::now();
        for _ in 0..n / 10 {
            let body = raw_request(&raw, socket, http::Method::GET, &path).await?;
            let _: serde_json::Value = serde_json::from_slice(&body)?;
        }
        t_raw += start.elapsed();
    }
    Ok((t_ours, t_raw))
}

/// Total wall time of `n` runs.
fn time_runs(
    n: usize,
    mut run: impl FnMut() -> std::io::Result<std::process::Output>,
) -> anyhow::Result<Duration> {
    run()?; // warm the page cache
    let start = Instant::now();
    for _ in 0..n {
        let out = run()?;
        if !out.status.success() {
            bail!("a benchmark run failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(start.elapsed())
}

/// Mean wall time and largest peak RSS (KiB) of `n` runs, under GNU time.
fn measure(n: usize, cmd: &mut Command) -> anyhow::Result<(Duration, u64)> {
    let time = Path::new("/usr/bin/time");
    let mut total = Duration::ZERO;
    let mut peak = 0u64;
    for i in 0..=n {
        let mut timed = Command::new(time);
        timed.args(["-f", "%M"]).arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => timed.env(k, v),
                None => timed.env_remove(k),
            };
        }
        let start = Instant::now();
        let out = timed.stdout(Stdio::null()).output()?;
        let elapsed = start.elapsed();
        if !out.status.success() {
            bail!("{:?} failed: {}", cmd.get_program(), String::from_utf8_lossy(&out.stderr));
        }
        let rss: u64 = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("0").trim().parse()?;
        if i > 0 {
            // The first run warms caches and is not counted.
            total += elapsed;
            peak = peak.max(rss);
        }
    }
    Ok((total / n as u32, peak))
}

const BENCH_LABEL: &str = "dockhand.bench";

async fn create_services(client: &Client, n: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut pending = Vec::new();
    for i in 0..n {
        let c = client.clone();
        pending.push(tokio::spawn(async move {
            let spec = ServiceSpec::new(format!("dh-bench-{i:03}"), crate::images::BUSYBOX_IMAGE)
                .with_label(BENCH_LABEL, "1")
                .with_args(["sleep", "3600"])
                .with_replicas(0);
            c.create_service(&spec).await
        }));
        if pending.len() == 8 {
            for p in pending.drain(..) {
                p.await??;
            }
        }
    }
    for p in pending {
        p.await??;
    }
    let listed = client.services(&Filters::new().with("label", format!("{BENCH_LABEL}=1"))).await?.len();
    if listed != n {
        bail!("created {n} services but the engine lists {listed}");
    }
    eprintln!("created {n} services (0 replicas) in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

async fn remove_services(client: &Client) -> anyhow::Result<()> {
    for service in client.services(&Filters::new().with("label", format!("{BENCH_LABEL}=1"))).await? {
        client.remove_service(&service.id).await?;
    }
    Ok(())
}
