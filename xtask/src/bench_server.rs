//! `cargo xtask bench server`: dockhand-server under wrk on loopback, against a minimal
//! hyper "hello" server run in the same process, on the same runtime shape (tokio's
//! multi-threaded runtime, 2 workers): requests/s and p99 latency for bad-token requests
//! (after 20 failures from one address they are throttled: what an attacker's flood gets)
//! and for `GET /v1/jobs/{id}` with an admin token; and the server's idle RSS. Then the
//! no-enumeration check: how long a caller who is not an admin waits for the 403 on a
//! service that exists against one that does not. Then the status page under load
//! ([`crate::bench_page`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{engine, proc};

pub(crate) const ADMIN: &str = "bench-admin-token";

/// `METHOD path` with `headers` and `body` over HTTP/1.0; the status and the body.
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: bench\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    let status = out.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// The minimal hyper server: "hello" to every request.
pub(crate) fn hello(listener: std::net::TcpListener) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            listener.set_nonblocking(true).expect("non-blocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"hello"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
}

/// wrk's requests/s, p99 latency (ms) and count of answers that were not 2xx or 3xx, with
/// 32 connections.
fn wrk(url: &str, script: Option<&std::path::Path>, headers: &[&str]) -> anyhow::Result<(f64, f64, u64)> {
    wrk_with(32, url, script, headers)
}

/// [`wrk`] with `connections` connections (and at most 2 threads).
pub(crate) fn wrk_with(
    connections: u32,
    url: &str,
    script: Option<&std::path::Path>,
    headers: &[&str],
) -> anyhow::Result<(f64, f64, u64)> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{}", connections.min(2))).arg(format!("-c{connections}")).args(["-d10s", "--latency"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = proc::output(cmd.arg(url))?;
    let rps = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{out}"))?;
    let p99 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)
        .and_then(|v| {
            let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
            let n: f64 = number.parse().ok()?;
            Some(match unit {
                "us" => n / 1000.0,
                "ms" => n,
                "s" => n * 1000.0,
                _ => n,
            })
        })
        .with_context(|| format!("no 99% latency in wrk's output:\n{out}"))?;
    let non_2xx = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok((rps, p99, non_2xx))
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn run() -> anyhow::Result<()> {
    crate::tools::ensure_wrk()?;
    let layout = engine::up()?;
    let binary = shipped_server()?;
    let dir = tempfile::tempdir()?;
    let service = "dh-bench-server-web";
    let _ = proc::output(layout.docker()?.args(["service", "rm", service]));
    proc::output(layout.docker()?.args([
        "service",
        "create",
        "--detach",
        "--name",
        service,
        "--label",
        "dockhand.update.enable=true",
        crate::images::BUSYBOX_IMAGE,
        "sleep",
        "3600",
    ]))?;
    let port = free_port()?;
    let mut server = Command::new(&binary)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
        .arg(dir.path())
        .env("DOCKER_HOST", layout.url())
        .env("DOCKHAND_ADMIN_TOKENS", ADMIN)
        .env("DOCKHAND_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = measure(port, server.id(), service, dir.path());
    let _ = server.kill();
    let _ = server.wait();
    let _ = proc::output(layout.docker()?.args(["service", "rm", service]));
    result?;
    crate::bench_page::run()
}

/// Waits up to a minute for the server on `port` to answer `/healthz`.
pub(crate) fn wait_healthy(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !request(port, "GET", "/healthz", "", "").is_ok_and(|r| r.0 == 200) {
        if Instant::now() > deadline {
            bail!("dockhand-server did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Builds the `dockhand-server` that ships (static, the `image` profile, as `cargo xtask
/// image` puts it in dockhand's image); its path. Its memory is what an operator's swarm
/// pays.
pub(crate) fn shipped_server() -> anyhow::Result<std::path::PathBuf> {
    let [_, server] = crate::images::static_binaries()?;
    Ok(server)
}

fn measure(port: u16, pid: u32, service: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    wait_healthy(port)?;
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    let (code, body) = request(
        port,
        "POST",
        &format!("/v1/services/{service}/update"),
        &format!("Authorization: Bearer {ADMIN}\r\n"),
        &format!("{{\"image\":\"{}\",\"force\":true}}", crate::images::BUSYBOX_IMAGE),
    )?;
    let job: serde_json::Value = serde_json::from_str(&body).with_context(|| format!("{code}: {body}"))?;
    let id = job["id"].as_str().with_context(|| format!("no job id: {code} {body}"))?.to_owned();

    let hello_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hello_port = hello_listener.local_addr()?.port();
    hello(hello_listener);
    std::thread::sleep(Duration::from_millis(200));
    // The admin's reads first: the bad-token run gets this address throttled for a minute.
    let auth = format!("Authorization: Bearer {ADMIN}");
    let job = wrk(&format!("http://127.0.0.1:{port}/v1/jobs/{id}"), None, &[&auth])?;
    let hello = wrk(&format!("http://127.0.0.1:{hello_port}/"), None, &[])?;
    let script = dir.join("bad-token.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = '{\"image\":\"busybox:1\"}'\nwrk.headers[\"Authorization\"] = \"Bearer not-a-token\"\n",
    )?;
    let bad = wrk(&format!("http://127.0.0.1:{port}/v1/services/{service}/update"), Some(&script), &[])?;
    println!("\n== dockhand-server on loopback (wrk -t2 -c32 -d10s), against a minimal hyper server");
    println!("{:<36} {:>9.0} req/s  p99 {:>6.2} ms", "hyper \"hello\" (baseline)", hello.0, hello.1);
    for (what, (rps, p99, non_2xx)) in
        [("GET /v1/jobs/{id} (admin, 200)", job), ("bad-token POST (403, then 429)", bad)]
    {
        println!(
            "{what:<36} {rps:>9.0} req/s  p99 {p99:>6.2} ms  ratio {:.2} (goal >= 0.5)  non-2xx: {non_2xx}",
            rps / hello.0
        );
    }
    println!("idle RSS: {:.1} MiB (goal <= 20 MiB)", rss_kib as f64 / 1024.0);
    enumeration(port, service)
}

/// Batches of one address: under the throttle's 20 failures a minute.
const BATCH: usize = 16;
/// Addresses, each `127.0.1.<n>`: loopback answers from all of 127.0.0.0/8.
const SOURCES: u8 = 40;

/// One request from `source` with its own connection: the status, the body and the time
/// from connecting to the last byte.
async fn timed(port: u16, source: std::net::Ipv4Addr, path: &str) -> anyhow::Result<(u16, String, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let started = Instant::now();
    let mut stream = socket.connect((std::net::Ipv4Addr::LOCALHOST, port).into()).await?;
    let body = "{\"image\":\"busybox:1\"}";
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: bench\r\nAuthorization: Bearer not-this-services-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    let elapsed = started.elapsed();
    let out = String::from_utf8_lossy(&out);
    let status = out.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body, elapsed))
}

/// A caller with a token that is not the service's asks to update `service`, then a name no
/// service has, in turn, each batch from an address of its own: both must be the same 403,
/// and take as long (the ratio of the medians, and of the p90s).
fn enumeration(port: u16, service: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let missing = "dh-bench-server-no-such-service";
    // Per name: the times, and the answer's message (the same every time).
    let mut seen: [(Vec<Duration>, String); 2] = Default::default();
    runtime.block_on(async {
        for n in 1..=SOURCES {
            let source = std::net::Ipv4Addr::new(127, 0, 1, n);
            for i in 0..BATCH {
                let name = [service, missing][i % 2];
                let (code, body, took) = timed(port, source, &format!("/v1/services/{name}/update")).await?;
                anyhow::ensure!(code == 403, "{name} from {source}: {code} {body}");
                let body: serde_json::Value = serde_json::from_str(&body)?;
                let message = body["message"].as_str().unwrap_or_default().replace(name, "NAME");
                let (times, first) = &mut seen[i % 2];
                anyhow::ensure!(first.is_empty() || *first == message, "{name}: {message:?} after {first:?}");
                *first = message;
                times.push(took);
            }
        }
        Ok(())
    })?;
    let [(mut exists, shown), (mut absent, hidden)] = seen;
    anyhow::ensure!(shown == hidden, "the two 403s differ: {shown:?} / {hidden:?}");
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        let at = |p: f64| crate::bench_store::percentile(v, p).as_secs_f64() * 1e3;
        (at(0.5), at(0.9))
    };
    let ((e50, e90), (a50, a90)) = (stats(&mut exists), stats(&mut absent));
    println!(
        "\n== no enumeration: a token that is not the service's, {} requests each, {BATCH} per address",
        exists.len()
    );
    println!("{:<36} p50 {e50:>6.2} ms  p90 {e90:>6.2} ms", "403 for a service that exists");
    println!("{:<36} p50 {a50:>6.2} ms  p90 {a90:>6.2} ms", "403 for a name no service has");
    println!("ratio exists / absent: p50 {:.2}, p90 {:.2} (goal: about 1)", e50 / a50, e90 / a90);
    Ok(())
}
