//! `cargo xtask bench server`: dockhand-server under wrk on loopback, against a minimal
//! hyper "hello" server run in the same process, on the same runtime shape (tokio's
//! multi-threaded runtime, 2 workers): requests/s and p99 latency for bad-token requests
//! (after 20 failures from one address they are throttled: what an attacker's flood gets)
//! and for `GET /v1/jobs/{id}` with an admin token; and the server's idle RSS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{engine, proc};

const ADMIN: &str = "bench-admin-token";

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
    let binary = release_server()?;
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
    result
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

/// Builds the release `dockhand-server`; its path.
pub(crate) fn release_server() -> anyhow::Result<std::path::PathBuf> {
    proc::run(crate::cargo().args(["build", "--release", "--locked", "--package", "dockhand-server"]))?;
    Ok(crate::project_root().join("target/release/dockhand-server"))
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
    Ok(())
}
