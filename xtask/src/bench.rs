//! `cargo xtask bench engine`: dockhand-engine against baselines measured in the same run,
//! on the private engine. Prints ratios (dockhand / baseline); lower is better.
//!
//! 1. In-process: 10 000 pings and 1 000 service lists through `dockhand_engine::Client`
//!    versus a raw hyper client written here, on the same socket.
//! 2. Cold process: `dockhand engine ping` versus `curl --unix-socket ... /_ping`.
//! 3. `dockhand services ls` versus `docker service ls` with 500 and 5 000 services: wall
//!    time and peak RSS (GNU time's `%M`); and versus the listing itself, `curl
//!    --unix-socket .../services?status=true` (the limit).
//!
//! `cargo xtask bench update`: `dockhand update` against `docker service update --detach=false`
//! on a 3-replica service of the test swarm, from its registry with authentication.
//!
//! `cargo xtask bench jobs`: the jobs against the seed's way of doing them.
//!
//! `cargo xtask bench watch`: one watch tick against `docker manifest inspect` (see
//! `bench_watch.rs`).
//!
//! 1. clean-service over 50 services × 2 tasks (exec `true`): `dockhand clean service
//!    --all` versus one `docker exec` per task, in sequence (the seed's way); and versus the
//!    same execs by a plain hyper client, 8 at once (the engine's limit).
//! 2. clean-node of a node with 40 stopped containers and 10 unused images: `dockhand clean
//!    node` versus `docker system prune -af`, each on the same preparation.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use dockhand_engine::{Client, Endpoint, Filters, ServiceSpec};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::{engine, proc};

pub(crate) fn run(what: &str) -> anyhow::Result<()> {
    if what == "server" {
        return crate::bench_server::run();
    }
    if what == "store" {
        return crate::bench_store::run();
    }
    if what == "watch" {
        return crate::bench_watch::run();
    }
    if !["engine", "jobs", "backup", "update"].contains(&what) {
        bail!(
            "unknown benchmark {what:?}: the benchmarks are: engine, jobs, backup, update, server, store, watch"
        );
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
    if what == "jobs" {
        return jobs(&layout, &dockhand, &runtime);
    }
    if what == "backup" {
        return backup(&layout, &dockhand, &runtime);
    }
    if what == "update" {
        return update(&dockhand);
    }
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

    let client = Client::new(Endpoint::unix(&socket))?;
    for (count, runs) in [(500, 5), (5_000, 3)] {
        println!("\n== {count} services");
        list_services(&layout, &dockhand, &runtime, &client, count, runs)?;
    }
    Ok(())
}

/// `dockhand services ls` against `docker service ls` with `count` services.
fn list_services(
    layout: &engine::Layout,
    dockhand: &Path,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    count: usize,
    runs: usize,
) -> anyhow::Result<()> {
    let url = layout.url();
    runtime.block_on(create_services(client, count))?;
    let result = (|| -> anyhow::Result<()> {
        let (ours_t, ours_rss) =
            measure(runs, Command::new(dockhand).args(["--host", &url, "services", "ls"]))?;
        let mut theirs = layout.docker()?;
        theirs.args(["service", "ls"]);
        let (docker_t, docker_rss) = measure(runs, &mut theirs)?;
        report("`dockhand services ls` wall", ours_t, docker_t, "docker service ls");
        // The limit: the listing itself, by curl, written nowhere.
        let socket = layout.socket().display().to_string();
        let mut curl = Command::new("curl");
        curl.args(["-sf", "-o", "/dev/null", "--unix-socket", &socket, "http://x/services?status=true"]);
        let (curl_t, _) = measure(runs, &mut curl)?;
        report("`dockhand services ls` wall", ours_t, curl_t, "curl --unix-socket services?status=true");
        println!(
            "{:<40} {:>9} KiB vs {:>9} KiB  ratio {:.2} (peak RSS)",
            "`dockhand services ls` peak RSS",
            ours_rss,
            docker_rss,
            ours_rss as f64 / docker_rss as f64
        );
        Ok(())
    })();
    runtime.block_on(remove_services(client))?;
    result
}

/// The jobs benchmarks, on the private engine (a one-node swarm: every task is local).
fn jobs(layout: &engine::Layout, dockhand: &Path, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let client = Client::new(Endpoint::unix(layout.socket()))?;
    let url = layout.url();
    let state = tempfile::tempdir()?;
    let ours = |args: &[&str]| {
        let mut cmd = Command::new(dockhand);
        cmd.args(["--host", &url]).args(args).env("XDG_STATE_HOME", state.path());
        cmd
    };

    println!("\n== clean-service, 50 services x 2 tasks, exec `true`");
    runtime.block_on(create_cleanable(&client, 50, 2))?;
    let result = (|| -> anyhow::Result<()> {
        let containers = runtime.block_on(bench_containers(&client))?;
        if containers.len() != 100 {
            bail!("expected 100 running tasks, found {}", containers.len());
        }
        let (mut t_ours, mut t_seed) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..3 {
            let start = Instant::now();
            proc::output(&mut ours(&["clean", "service", "--all"]))?;
            t_ours += start.elapsed();
            let start = Instant::now();
            for container in &containers {
                proc::output(layout.docker()?.args(["exec", container, "/bin/sh", "-c", "true"]))?;
            }
            t_seed += start.elapsed();
        }
        report("`dockhand clean service --all` x3", t_ours, t_seed, "docker exec per task");
        // The engine's own limit: the same execs by a plain hyper client, in-process, at
        // dockhand's default concurrency (8).
        let mut t_raw = Duration::ZERO;
        for _ in 0..3 {
            t_raw += runtime.block_on(raw_execs(&layout.socket(), &containers, 8))?;
        }
        report("`dockhand clean service --all` x3", t_ours, t_raw, "raw hyper execs, 8 at once");
        Ok(())
    })();
    runtime.block_on(remove_services(&client))?;
    result?;

    println!("\n== clean-node: 40 stopped containers, 10 unused images");
    let (mut t_ours, mut t_prune) = (Duration::ZERO, Duration::ZERO);
    for round in 0..3 {
        runtime.block_on(prepare_node(&client, round))?;
        let start = Instant::now();
        proc::output(&mut ours(&["clean", "node"]))?;
        t_ours += start.elapsed();
        runtime.block_on(prepare_node(&client, round))?;
        let start = Instant::now();
        proc::output(layout.docker()?.args(["system", "prune", "-af"]))?;
        t_prune += start.elapsed();
        // What the prune took from the test setup comes back.
        crate::images::ensure(layout, crate::images::Build::Release)?;
    }
    report("`dockhand clean node` x3", t_ours, t_prune, "docker system prune -af");
    Ok(())
}

/// `services` services of `tasks` running busybox tasks each, labelled for clean-service.
async fn create_cleanable(client: &Client, services: usize, tasks: u64) -> anyhow::Result<()> {
    for i in 0..services {
        let spec = ServiceSpec::new(format!("dh-bench-clean-{i:02}"), crate::images::BUSYBOX_IMAGE)
            .with_label(BENCH_LABEL, "1")
            .with_label("dockhand.clean.enable", "true")
            .with_label("dockhand.clean.exec", "true")
            .with_args(["sleep", "3600"])
            .with_replicas(tasks);
        client.create_service(&spec).await?;
    }
    let want = services * usize::try_from(tasks)?;
    for _ in 0..600 {
        if bench_containers(client).await?.len() == want {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the {want} bench tasks did not all run within 2 minutes")
}

/// The containers of the running bench tasks.
async fn bench_containers(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut containers = Vec::new();
    for service in client.services(&Filters::new().with("label", format!("{BENCH_LABEL}=1"))).await? {
        let filters = Filters::new().with("service", &service.id).with("desired-state", "running");
        for task in client.tasks(&filters).await? {
            if let Some(c) = task.status.container_status.filter(|_| task.status.state == "running") {
                containers.push(c.container_id);
            }
        }
    }
    Ok(containers)
}

/// Leaves 40 stopped containers and 10 unused images of its own on the engine.
async fn prepare_node(client: &Client, round: usize) -> anyhow::Result<()> {
    for i in 0..10 {
        let tar =
            dockhand_e2e::one_file_tar("data", format!("round-{round}-image-{i}").repeat(4096).as_bytes());
        client.import_image(&format!("dh-bench-unused-{i}:r{round}"), &[], tar.into()).await?;
    }
    let spec = ServiceSpec::new(format!("dh-bench-stopped-{round}"), crate::images::BUSYBOX_IMAGE)
        .with_label(BENCH_LABEL, "1")
        .replicated_job(40)
        .with_args(["true"]);
    let mut spec = spec;
    if let Some(mode) = spec.mode.as_mut().and_then(|m| m.replicated_job.as_mut()) {
        mode.max_concurrent = Some(8);
    }
    let id = client.create_service(&spec).await?.id;
    for _ in 0..600 {
        let tasks = client.tasks(&Filters::new().with("service", &id)).await?;
        if tasks.iter().filter(|t| t.status.state == "complete").count() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The service goes; its 40 exited containers stay until a prune.
    client.remove_service(&id).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
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

/// The execs of a clean-service by a plain hyper client, `concurrency` at once: create,
/// start (reading the output to its end), inspect for the exit code. The time they took.
async fn raw_execs(socket: &Path, containers: &[String], concurrency: usize) -> anyhow::Result<Duration> {
    use futures_util::{StreamExt, TryStreamExt};
    let raw: HyperClient<hyperlocal::UnixConnector, http_body_util::Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(hyperlocal::UnixConnector);
    let send = |method: http::Method, path: String, body: &'static str| {
        let raw = raw.clone();
        async move {
            let request = http::Request::builder()
                .method(method)
                .uri(hyper::Uri::from(hyperlocal::Uri::new(socket, &path)))
                .header("Content-Type", "application/json")
                .body(http_body_util::Full::new(Bytes::from_static(body.as_bytes())))?;
            let response = raw.request(request).await?;
            if !response.status().is_success() {
                bail!("{path}: {}", response.status());
            }
            Ok::<_, anyhow::Error>(response.into_body().collect().await?.to_bytes())
        }
    };
    let start = Instant::now();
    futures_util::stream::iter(containers)
        .map(|container| {
            let send = &send;
            async move {
                let exec = r#"{"AttachStdout":true,"AttachStderr":true,"Cmd":["/bin/sh","-c","true"]}"#;
                let created = send(http::Method::POST, format!("/containers/{container}/exec"), exec).await?;
                let created: serde_json::Value = serde_json::from_slice(&created)?;
                let id = created["Id"].as_str().unwrap_or_default().to_owned();
                send(http::Method::POST, format!("/exec/{id}/start"), r#"{"Detach":false,"Tty":false}"#)
                    .await?;
                let inspect = send(http::Method::GET, format!("/exec/{id}/json"), "").await?;
                let inspect: serde_json::Value = serde_json::from_slice(&inspect)?;
                if inspect["ExitCode"].as_i64() != Some(0) {
                    bail!("exec in {container}: {inspect}");
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
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

/// backup-service of one volume to the local target, against `tar | zstd -3` of the same
/// directory, at 256 MiB, 1 GiB and 2 GiB: throughput and dockhand's peak RSS; then the
/// restore of that archive, against `zstd -d | tar -x`.
fn backup(layout: &engine::Layout, dockhand: &Path, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    // The volume container runs dockhand's image: this checkout's.
    crate::images::ensure(layout, crate::images::Build::Release)?;
    let client = Client::new(Endpoint::unix(layout.socket()))?;
    let url = layout.url();
    let scratch = tempfile::tempdir_in(crate::project_root().join("target"))?;
    let (state, data) = (scratch.path().join("state"), scratch.path().join("data"));
    for mib in [256u64, 1024, 2048] {
        let name = format!("dh-bench-backup-{mib}");
        let volume = format!("{name}-data");
        println!("\n== backup of a {mib} MiB volume (half random, half text), zstd level 3");
        let spec = ServiceSpec::new(&name, crate::images::BUSYBOX_IMAGE)
            .with_args(["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"])
            .with_volume(&volume, "/data")
            .with_label(BENCH_LABEL, "1")
            .with_label("dockhand.backup.enable", "true")
            .with_label("dockhand.backup.volume-list-upload", &volume);
        runtime.block_on(client.create_service(&spec))?;
        let result = (|| -> anyhow::Result<()> {
            let mut container = String::new();
            for _ in 0..150 {
                if let Some(c) = runtime.block_on(bench_containers(&client))?.pop() {
                    container = c;
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if container.is_empty() {
                bail!("the task of {name} did not start within 30 s");
            }
            let half = mib / 2;
            // Random bytes, and text (hex dumps, about 2:1 for zstd): 1 MiB files.
            let fill = format!(
                "cd /data && for i in $(seq 1 {half}); do head -c 1048576 /dev/urandom > r$i; \
                 head -c 1048576 /dev/urandom | od -An -tx1 | head -c 1048576 > t$i; done"
            );
            proc::output(layout.docker()?.args(["exec", &container, "sh", "-c", &fill]))?;
            let mountpoint = runtime.block_on(client.volume(&volume))?.mountpoint;
            let out = scratch.path().join("baseline.tar.zst");
            let shell = format!("tar -C '{mountpoint}' -cf - . | zstd -3 -q -f -o '{}'", out.display());
            let baseline = || Command::new("sh").args(["-c", &shell]).output();
            let t_base = time_runs(2, baseline)? / 2;
            let base_size = fs::metadata(&out)?.len();
            let mut ours = Command::new(dockhand);
            ours.args(["--host", &url, "backup", &name])
                .env("XDG_STATE_HOME", &state)
                .env("XDG_DATA_HOME", &data)
                .env("DOCKHAND_HELPER_IMAGE", crate::images::DOCKHAND_IMAGE);
            let (t_ours, rss) = measure(2, &mut ours)?;
            let ours_size = newest_archive(&data.join("dockhand/backups").join(&name))?;
            let bytes = mib as f64 * 1_048_576.0;
            throughput(
                &format!("`dockhand backup` {mib} MiB"),
                bytes,
                t_ours,
                ("", t_base),
                "throughput; goal >= 0.8",
            );
            println!("{:<40} {rss:>9} KiB (peak RSS of dockhand; goal <= 65536, flat)", "");
            println!("{:<40} {ours_size:>9} B vs {base_size:>9} B (archive sizes)", "");
            if mib == 1024 {
                remote_backups(layout, dockhand, runtime, &client, (&name, &volume), t_ours, scratch.path())?;
            }
            // The restore of that archive: checked whole into a private staging file, then
            // unpacked beside the old contents and swapped in (the service stopped and
            // started again), against `zstd -d | tar -x` of the baseline's archive into an
            // empty directory.
            let into = scratch.path().join("baseline-restore");
            let shell = format!(
                "rm -rf '{0}' && mkdir -p '{0}' && zstd -dc -q '{1}' | tar -C '{0}' -xf -",
                into.display(),
                out.display()
            );
            let baseline = || Command::new("sh").args(["-c", &shell]).output();
            let t_base = time_runs(2, baseline)? / 2;
            let _ = fs::remove_dir_all(&into);
            let mut restore = Command::new(dockhand);
            restore
                .args(["--host", &url, "restore", &name])
                .env("XDG_STATE_HOME", &state)
                .env("XDG_DATA_HOME", &data)
                .env("TMPDIR", scratch.path())
                .env("DOCKHAND_HELPER_IMAGE", crate::images::DOCKHAND_IMAGE);
            let (t_ours, rss) = measure(2, &mut restore)?;
            throughput(
                &format!("`dockhand restore` {mib} MiB"),
                bytes,
                t_ours,
                ("", t_base),
                "throughput, stop and start included",
            );
            println!("{:<40} {rss:>9} KiB (peak RSS of dockhand)", "");
            // Where a restore's time goes: one more run, its steps from the job record.
            let steps = restore_steps(&mut restore)?;
            let line: Vec<String> =
                steps.iter().map(|(kind, d)| format!("{kind} {:.2} s", d.as_secs_f64())).collect();
            println!("{:<40} {} (the steps of one more run)", "", line.join(", "));
            let bytes_path: Duration =
                steps.iter().filter(|(kind, _)| kind == "verify" || kind == "restore").map(|(_, d)| *d).sum();
            throughput(
                &format!("`dockhand restore` {mib} MiB, bytes"),
                bytes,
                bytes_path,
                ("", t_base),
                "its verify and restore steps: the service's stop and start left out",
            );
            let _ = fs::remove_dir_all(&data);
            Ok(())
        })();
        runtime.block_on(remove_services(&client))?;
        for _ in 0..50 {
            if layout.docker()?.args(["volume", "rm", &volume]).output()?.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        result?;
    }
    Ok(())
}

/// One line of `what`'s throughput over `bytes` in `ours`, against the `baseline` (named,
/// and its time) in the same run, with the ratio of the two.
fn throughput(what: &str, bytes: f64, ours: Duration, (name, base): (&str, Duration), note: &str) {
    let rate = |t: Duration| bytes / t.as_secs_f64() / 1_048_576.0;
    println!(
        "{what:<40} {:>7.1} MiB/s vs {name}{:>7.1} MiB/s  ratio {:.2} ({note})",
        rate(ours),
        rate(base),
        base.as_secs_f64() / ours.as_secs_f64()
    );
}

/// The same volume backed up to each remote target type's real peer on loopback (SeaweedFS
/// for S3, Azurite for Azure Blob Storage, Apache's mod_dav over TLS for WebDAV, sshd for SFTP), through a second service that mounts it and
/// names the target: throughput beside the local target's (`local`, measured just before).
fn remote_backups(
    layout: &engine::Layout,
    dockhand: &Path,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    (name, volume): (&str, &str),
    local: Duration,
    scratch: &Path,
) -> anyhow::Result<()> {
    use dockhand_e2e::remote::{KINDS, Remote};
    let azurite = crate::tools::ensure_azurite()?;
    crate::tools::ensure_apache()?;
    let bytes = 1024.0 * 1_048_576.0;
    for kind in KINDS {
        let peer = match kind {
            "azure" => {
                Remote::Azure(dockhand_e2e::azure::AzuritePeer::start_with(&azurite.display().to_string()))
            }
            _ => Remote::start(kind),
        };
        let service = format!("{name}-{kind}");
        let spec = ServiceSpec::new(&service, crate::images::BUSYBOX_IMAGE)
            .with_args(["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"])
            .with_volume(volume, "/data")
            .with_label(BENCH_LABEL, "1")
            .with_label("dockhand.backup.enable", "true")
            .with_label("dockhand.backup.target", "remote")
            .with_label("dockhand.backup.volume-list-upload", volume);
        runtime.block_on(client.create_service(&spec))?;
        let config = scratch.join(format!("{kind}.yaml"));
        fs::write(&config, format!("storage:\n  targets:\n{}", peer.target_yaml("remote", "bench")))?;
        let mut ours = Command::new(dockhand);
        ours.args(["--host", &layout.url(), "--config"])
            .arg(&config)
            .args(["backup", &service])
            .env("XDG_STATE_HOME", scratch.join("state"))
            .env("XDG_DATA_HOME", scratch.join("data"))
            .env("DOCKHAND_HELPER_IMAGE", crate::images::DOCKHAND_IMAGE)
            .envs(peer.credentials());
        // Its task must run (beside the first service's) before the backup reaches the
        // volume through it.
        for _ in 0..150 {
            if runtime.block_on(bench_containers(client))?.len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let measured = measure(1, &mut ours);
        runtime.block_on(client.remove_service(&service))?;
        let (t_ours, rss) = measured.with_context(|| format!("the backup to {kind}: {}", peer.log()))?;
        throughput(
            &format!("`dockhand backup` 1024 MiB to {kind}"),
            bytes,
            t_ours,
            ("local ", local),
            "no goal: the peers differ",
        );
        println!("{:<40} {rss:>9} KiB (peak RSS of dockhand)", "");
    }
    Ok(())
}

/// update-service of a 3-replica service, one task per node of the test swarm, pulling from
/// its registry with authentication: the time from request to converged of `dockhand update
/// --image`, against `docker service update --image … --with-registry-auth --detach=false`
/// on the same service, each a real rolling update (they alternate v1 and v2; both resolve
/// and pin the digest). Both read the same `config.json`, written by `docker login`.
fn update(dockhand: &Path) -> anyhow::Result<()> {
    crate::swarm::up(3)?;
    let env = crate::swarm::settings()?;
    let get = |k: &str| env.get(k).cloned().ok_or_else(|| anyhow::anyhow!("swarm.env has no {k}"));
    let (manager, registry) = (get("DOCKER_HOST")?, get("DOCKHAND_TEST_REGISTRY")?);
    let (user, password) = (get("DOCKHAND_TEST_REGISTRY_USER")?, get("DOCKHAND_TEST_REGISTRY_PASSWORD")?);
    let scratch = tempfile::tempdir_in(crate::project_root().join("target"))?;
    let config = scratch.path().join("docker");
    let docker = || {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", &manager).env("DOCKER_CONFIG", &config);
        cmd
    };
    proc::output_with_stdin(
        docker().args(["login", &registry, "-u", &user, "--password-stdin"]),
        password.as_bytes(),
    )?;
    let name = "dh-bench-update";
    let (v1, v2) = (format!("{registry}/team/app:v1"), format!("{registry}/team/app:v2"));
    let _ = docker().args(["service", "rm", name]).output();
    std::thread::sleep(Duration::from_secs(2));
    proc::output(docker().args([
        "service",
        "create",
        "--quiet",
        "--detach=false",
        "--with-registry-auth",
        "--name",
        name,
        "--replicas",
        "3",
        "--replicas-max-per-node",
        "1",
        "--label",
        "dockhand.update.enable=true",
        &v1,
    ]))?;
    let ours = |image: &str| {
        let mut cmd = Command::new(dockhand);
        cmd.args(["--host", &manager, "update", name, "--image", image])
            .env("DOCKER_CONFIG", &config)
            .env("XDG_STATE_HOME", scratch.path().join("state"))
            .env("XDG_DATA_HOME", scratch.path().join("data"))
            .stdout(Stdio::null());
        cmd
    };
    let theirs = |image: &str| {
        let mut cmd = docker();
        cmd.args([
            "service",
            "update",
            "--quiet",
            "--with-registry-auth",
            "--detach=false",
            "--image",
            image,
            name,
        ]);
        cmd
    };
    let result = (|| -> anyhow::Result<()> {
        // A warm-up of each, so that every node has both images.
        proc::output(&mut ours(&v2))?;
        proc::output(&mut theirs(&v1))?;
        let (mut t_ours, mut t_theirs) = (Duration::ZERO, Duration::ZERO);
        let rounds = 3;
        for _ in 0..rounds {
            let start = Instant::now();
            proc::output(&mut ours(&v2))?;
            t_ours += start.elapsed();
            let start = Instant::now();
            proc::output(&mut theirs(&v1))?;
            t_theirs += start.elapsed();
        }
        println!("\n== update of a 3-replica service over 3 nodes, from a registry with authentication");
        report(
            &format!("`dockhand update` x{rounds}"),
            t_ours,
            t_theirs,
            "docker service update --detach=false",
        );
        Ok(())
    })();
    let _ = docker().args(["service", "rm", name]).output();
    result
}

/// The size of the newest `.tar.zst` under `dir`.
fn newest_archive(dir: &Path) -> anyhow::Result<u64> {
    let mut archives: Vec<_> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.zst"))
        .collect();
    archives.sort_by_key(|e| e.file_name());
    let Some(last) = archives.last() else { bail!("no archive in {}", dir.display()) };
    Ok(last.metadata()?.len())
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
/// Runs `restore` once more with `--json`: the kind and duration of each step of the job it
/// prints last.
fn restore_steps(restore: &mut Command) -> anyhow::Result<Vec<(String, Duration)>> {
    let out = restore.arg("--json").output()?;
    if !out.status.success() {
        bail!("the restore with --json failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).context("the restore printed no job")?;
    let job: serde_json::Value = serde_json::from_str(last).context("the restore's last line is no job")?;
    let steps = job["steps"].as_array().context("the job has no steps")?;
    Ok(steps
        .iter()
        .map(|step| {
            let kind = step["kind"].as_str().unwrap_or("?").to_owned();
            (kind, Duration::from_millis(step["duration_ms"].as_u64().unwrap_or(0)))
        })
        .collect())
}

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

pub(crate) async fn create_services(client: &Client, n: usize) -> anyhow::Result<()> {
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

pub(crate) async fn remove_services(client: &Client) -> anyhow::Result<()> {
    for service in client.services(&Filters::new().with("label", format!("{BENCH_LABEL}=1"))).await? {
        client.remove_service(&service.id).await?;
    }
    Ok(())
}
