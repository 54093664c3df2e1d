//! dockhand-server over HTTP, as a process of its own, against the test swarm's manager
//! (`cargo xtask swarm up`): the authorization matrix on real services, one job for many
//! identical requests (one server and two), abuse, the seed's routes, SIGTERM, and the
//! stack file deployed with `docker stack deploy` and called the seed's way over the
//! overlay network. After each test, no token appears in the server's log, its job store
//! or any answer.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use dockhand_e2e::{BUSYBOX_IMAGE, ServiceGuard, TestSwarm, unique_name};
use dockhand_engine::{Filters, ServiceSpec};
use serde_json::Value;

mod common;
use common::*;

/// The update jobs share the nodes' engines, beside the other suites (`cargo xtask test`):
/// a few at a time keep the test swarm calm.
static FEW: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_authorization_matrix_over_http() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let clean_hash = dockhand_policy_hash("tok-clean-9d2");
    let (web, _g1) = service(
        &s,
        "srv-web",
        &[
            ("dockhand.update.enable", "true"),
            ("dockhand.update.token", "tok-web-41a"),
            ("dockhand.clean.enable", "true"),
            ("dockhand.clean.exec", "true"),
            ("dockhand.clean.token", &clean_hash),
            ("dockhand.tenant", "a"),
        ],
    )
    .await;
    let (api, _g2) = service(
        &s,
        "srv-api",
        &[
            ("dockhand.update.enable", "true"),
            ("dockhand.update.token", "tok-api-77e"),
            ("dockhand.tenant", "a"),
        ],
    )
    .await;
    let (other, _g3) = service(
        &s,
        "srv-other",
        &[
            ("dockhand.update.enable", "true"),
            ("dockhand.update.token", "tok-other-3b"),
            ("dockhand.tenant", "b"),
        ],
    )
    .await;
    let server = Server::start(s.manager_url(), "server:\n  scope: dockhand.tenant=a\n", &[]).await;
    let update = |svc: &str| format!("/v1/services/{svc}/update");
    let body = update_body();
    // (row, method path, token, expected status, expected code)
    let rows: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        ("admin", update(&web), Some(ADMIN), 200, ""),
        ("the right token", update(&api), Some("tok-api-77e"), 200, ""),
        ("a hashed label", format!("/v1/services/{web}/clean"), Some("tok-clean-9d2"), 200, ""),
        ("the wrong action", format!("/v1/services/{web}/backup"), Some("tok-web-41a"), 403, "forbidden"),
        ("another service's token", update(&web), Some("tok-api-77e"), 403, "forbidden"),
        ("an empty token", update(&web), Some(""), 401, "unauthorized"),
        ("no token", update(&web), None, 401, "unauthorized"),
        ("out of scope, a token", update(&other), Some("tok-other-3b"), 403, "forbidden"),
        (
            "out of scope, admin: as if it did not exist (R3-07)",
            update(&other),
            Some(ADMIN),
            404,
            "not_found",
        ),
        ("no such service, a token", update("srv-nosuch-x"), Some("tok-web-41a"), 403, "forbidden"),
        ("no such service, admin", update("srv-nosuch-x"), Some(ADMIN), 404, "not_found"),
        (
            "restore is for admins",
            format!("/v1/services/{web}/restore"),
            Some("tok-web-41a"),
            403,
            "forbidden",
        ),
    ];
    let mut denial_messages = Vec::new();
    for (row, path, token, status, code) in &rows {
        let payload = if path.ends_with("/update") { body.as_str() } else { "" };
        let (got, answer) = server.post(path, *token, payload).await;
        assert_eq!(got, *status, "{row}: {answer}\n{}", server.log());
        if !code.is_empty() {
            assert_eq!(answer["code"], *code, "{row}: {answer}");
        } else {
            assert_eq!(answer["status"], "succeeded", "{row}: {answer}");
        }
        if *row == "another service's token" || *row == "no such service, a token" {
            let message = answer["message"].as_str().unwrap().replace(&web, "X").replace("srv-nosuch-x", "X");
            denial_messages.push(message);
        }
    }
    // No enumeration: a service that does not exist and one the token may not touch look
    // the same.
    assert_eq!(denial_messages[0], denial_messages[1]);
    // A job is readable with the credential that may run it, not with another's.
    let (_, job) = server.post(&update(&api), Some("tok-api-77e"), &body).await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(server.call("GET", &format!("/v1/jobs/{id}"), Some("tok-api-77e"), None).await.0, 200);
    assert_eq!(server.call("GET", &format!("/v1/jobs/{id}"), Some("tok-web-41a"), None).await.0, 403);
    assert_eq!(server.call("GET", "/v1/jobs", Some("tok-api-77e"), None).await.0, 403);
    let (status, jobs) =
        server.call("GET", "/v1/jobs?action=update-service&limit=2", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    assert_eq!(jobs.as_array().unwrap().len(), 2, "{jobs}");
    let (status, listed) =
        server.call("GET", "/v1/services?label=dockhand.tenant=a", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&web.as_str()) && names.contains(&api.as_str()) && !names.contains(&other.as_str())
    );
    assert!(listed.to_string().contains("\"dockhand.update.token\":\"***\""), "{listed}");
    let text = http().get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("dockhand_auth_failures_total"), "{text}");
    assert!(text.contains("dockhand_jobs_total{action=\"update-service\",status=\"succeeded\"}"), "{text}");
    server.assert_no_leaks(&[ADMIN, "tok-web-41a", "tok-api-77e", "tok-clean-9d2", "tok-other-3b"]);
}

fn dockhand_policy_hash(token: &str) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = String::from("sha256:");
    for b in digest.as_ref() {
        write!(out, "{b:02x}").unwrap();
    }
    out
}

/// Fires `n` identical update requests at once, spread over `servers`; the statuses.
/// `n` identical requests at once, spread over the servers and over 50 loopback addresses,
/// as from many CI jobs (one address holds at most its share of connections).
async fn storm(servers: &[&Server], path: &str, token: &str, n: usize) -> Vec<(u16, Value)> {
    let body = update_body();
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = format!("{}{path}", servers[i % servers.len()].url);
        let (body, token) = (body.clone(), token.to_owned());
        let from: std::net::IpAddr = format!("127.0.2.{}", 2 + i % 50).parse().unwrap();
        tasks.push(tokio::spawn(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder().local_address(from).build().unwrap();
            let r = client.post(url).bearer_auth(token).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn count(answers: &[(u16, Value)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

/// Waits until the job store of `server` says `id` ended.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_identical_requests_make_one_job_on_one_server_and_on_two() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let (web, _guard) = service(&s, "srv-storm", &[("dockhand.update.enable", "true")]).await;
    let a = Server::start(s.manager_url(), "{}\n", &[]).await;
    let b = Server::start(s.manager_url(), "{}\n", &[]).await;
    let path = format!("/v1/services/{web}/update?wait=false");
    for servers in [vec![&a], vec![&a, &b]] {
        let answers = storm(&servers, &path, ADMIN, 100).await;
        assert_eq!(count(&answers, 202), 1, "{answers:?}");
        assert_eq!(count(&answers, 409), 99, "{answers:?}");
        let accepted = answers.iter().find(|(s, _)| *s == 202).unwrap();
        let id = accepted.1["id"].as_str().unwrap().to_owned();
        for (status, answer) in &answers {
            if *status == 409 {
                assert_eq!(answer["code"], "busy", "{answer}");
                // Before the accepted request has its slot (a busy machine), it has no job
                // to name yet: the answer says so.
                let queued = answer["job"].is_null()
                    && answer["message"] == "the target is busy: another request for it waits for a slot";
                assert!(
                    queued || answer["job"]["id"] == id.as_str(),
                    "a 409 names the holding job: {answer}"
                );
            }
        }
        // Whichever server ran it has it; the other recorded nothing for the target.
        let mut found = 0;
        for server in &servers {
            let (_, jobs) =
                server.call("GET", &format!("/v1/jobs?target=service/{web}"), Some(ADMIN), None).await;
            for job in jobs.as_array().unwrap() {
                if job["id"] == id.as_str() {
                    found += 1;
                    assert_eq!(ended(server, &id).await["status"], "succeeded");
                }
            }
        }
        assert_eq!(found, 1);
    }
    let mut recorded = 0;
    for server in [&a, &b] {
        let (_, jobs) =
            server.call("GET", &format!("/v1/jobs?target=service/{web}"), Some(ADMIN), None).await;
        recorded += jobs.as_array().unwrap().len();
    }
    assert_eq!(recorded, 2, "two storms, two jobs: busy refusals are not recorded");
    a.assert_no_leaks(&[ADMIN]);
    b.assert_no_leaks(&[ADMIN]);
}

/// The seed's lock wait (`SWARM_UTILS_LOCK_TIMEOUT`, `server.lock_wait`, 10 s): a request
/// for a target another server's job holds waits for that job to end and then runs (it was
/// 409 at once); one that cannot wait that long is 409 naming the job; the same request as
/// the running one is 409 at once, whatever the wait. The waiting server gets a long wait:
/// on a swarm busy with the suites beside this one, a 4-second clean can take longer than
/// the default 10 s, and this test is about waiting, not about the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_different_request_waits_for_a_busy_target_and_the_same_one_is_busy_at_once() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let labels = [
        ("dockhand.clean.enable", "true"),
        ("dockhand.clean.exec", "sleep 4"),
        ("dockhand.update.enable", "true"),
    ];
    let (web, _guard) = service(&s, "srv-wait", &labels).await;
    dockhand_e2e::wait_for_task(s.manager(), &web, "running").await;
    let a = Server::start(s.manager_url(), "{}\n", &[]).await;
    let b = Server::start(s.manager_url(), "server:\n  lock_wait: 2m\n", &[]).await;
    let impatient = Server::start(s.manager_url(), "server:\n  lock_wait: 300ms\n", &[]).await;
    let clean = format!("/v1/services/{web}/clean?wait=false");
    let update = format!("/v1/services/{web}/update?wait=true");

    let (status, held) = a.post(&clean, Some(ADMIN), "{}").await;
    assert_eq!(status, 202, "{held}");
    let holder = held["id"].as_str().unwrap().to_owned();
    let (status, same) = b.post(&clean, Some(ADMIN), "{}").await;
    assert_eq!((status, same["job"]["id"].as_str()), (409, Some(holder.as_str())), "{same}");
    let (status, refused) = impatient.post(&update, Some(ADMIN), &update_body()).await;
    assert_eq!((status, refused["job"]["id"].as_str()), (409, Some(holder.as_str())), "{refused}");
    let (status, updated) = b.post(&update, Some(ADMIN), &update_body()).await;
    assert_eq!(status, 200, "the update waited for the clean, then ran: {updated}\n{}", b.log());
    assert_eq!(updated["status"], "succeeded", "{updated}");
    assert_eq!(ended(&a, &holder).await["status"], "succeeded", "the clean was not cut short");
    a.assert_no_leaks(&[ADMIN]);
    b.assert_no_leaks(&[ADMIN]);
}

/// A configuration error at start is one line on stderr naming the file and the key, exit
/// code 1, and no backtrace even with `RUST_BACKTRACE=1` (as on many CI images).
#[test]
fn a_bad_configuration_is_one_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dockhand.yaml");
    std::fs::write(&config, "schedule:\n  bogus: 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dockhand-server"))
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("dockhand-server: error: ") && err.contains("schedule") && err.contains("bogus"),
        "{err}"
    );
    assert!(err.contains(&config.display().to_string()), "names the file: {err}");
}

/// Sends raw bytes and returns what came back before the server closed (or 60 s passed).
fn raw(url: &str, bytes: &[u8]) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abuse_gets_the_documented_answers_and_never_a_5xx() {
    let s = dockhand_e2e::swarm().await;
    let (web, _guard) = service(
        &s,
        "srv-abuse",
        &[("dockhand.update.enable", "true"), ("dockhand.update.token", "tok-abuse-5e")],
    )
    .await;
    let server = Server::start(s.manager_url(), "{}\n", &[]).await;
    let update = format!("/v1/services/{web}/update");
    let cases: Vec<(&str, String, Option<&str>, String, u16)> = vec![
        ("malformed JSON", update.clone(), Some(ADMIN), "{\"image\": ".into(), 400),
        ("a wrong type", update.clone(), Some(ADMIN), r#"{"image": 42}"#.into(), 422),
        ("a missing image", update.clone(), Some(ADMIN), r#"{"force": true}"#.into(), 422),
        ("an unknown field", update.clone(), Some(ADMIN), r#"{"image": "a:1", "imagee": 1}"#.into(), 422),
        ("a bad image", update.clone(), Some(ADMIN), r#"{"image": "UPPER CASE:??"}"#.into(), 422),
        ("../ in a name", "/v1/services/..%2F..%2Fetc/update".into(), Some(ADMIN), update_body(), 422),
        ("NUL in a name", "/v1/services/web%00x/update".into(), Some(ADMIN), update_body(), 422),
        (
            "300 characters",
            format!("/v1/services/{}/update", "a".repeat(300)),
            Some(ADMIN),
            update_body(),
            422,
        ),
        ("a bad name, no token", "/v1/services/..%2Fx/update".into(), None, update_body(), 401),
        ("wait=maybe", format!("{update}?wait=maybe"), Some(ADMIN), update_body(), 400),
        ("a bad job id", "/v1/jobs/..%2F..".into(), Some(ADMIN), String::new(), 422),
        ("an unknown route", "/v2/anything".into(), Some(ADMIN), String::new(), 404),
        (
            "seed: no serviceName",
            "/api/update/service".into(),
            None,
            r#"{"token":"x","image":"a:1"}"#.into(),
            422,
        ),
        (
            "seed: isForce a string",
            "/api/update/service".into(),
            None,
            r#"{"token":"x","serviceName":"s","image":"a:1","isForce":"yes"}"#.into(),
            422,
        ),
    ];
    for (what, path, token, body, want) in &cases {
        let method = if path.starts_with("/v1/jobs") { "GET" } else { "POST" };
        let body = (method == "POST").then_some(body.as_str());
        let (status, answer) = server.call(method, path, *token, body).await;
        assert_eq!(status, *want, "{what}: {answer}");
        assert!(
            answer["code"].is_string() && answer["message"].is_string(),
            "{what}: not the error shape: {answer}"
        );
    }
    // 10 MiB, announced the way curl sends a large body (Expect: 100-continue): refused
    // before a byte of it is read.
    let url = server.url.clone();
    let path = update.clone();
    let big = tokio::task::spawn_blocking(move || {
        raw(
            &url,
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
                10 << 20
            )
            .as_bytes(),
        )
    })
    .await
    .unwrap();
    assert_eq!(status_of(&big), 413, "10 MiB: {big}");
    assert!(big.contains("\"code\":\"too_large\""), "{big}");
    let (status, _) = server.call("PUT", &update, Some(ADMIN), Some("{}")).await;
    assert_eq!(status, 405);
    // A header flood: hyper refuses it with 431, and the server goes on.
    let url = server.url.clone();
    let flood = tokio::task::spawn_blocking(move || {
        let mut req = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
        for i in 0..2000 {
            req.push_str(&format!("X-Flood-{i}: {}\r\n", "y".repeat(50)));
        }
        req.push_str("\r\n");
        raw(&url, req.as_bytes())
    })
    .await
    .unwrap();
    let flood_status = status_of(&flood);
    assert!(flood_status == 431 || flood_status == 0, "a header flood: {flood:?}");
    // A slow client that never finishes its headers is disconnected (the header timeout),
    // and others are served meanwhile.
    let url = server.url.clone();
    let slow =
        tokio::task::spawn_blocking(move || raw(&url, b"POST /v1/services/x/update HTTP/1.1\r\nHost: x\r\n"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.call("GET", "/healthz", None, None).await.0, 200);
    let slow = slow.await.unwrap();
    let slow_status = status_of(&slow);
    assert!(slow_status == 408 || slow_status == 0, "a slow client: {slow:?}");
    // Throttling: an address with too many failed authentications gets 429, with
    // Retry-After, even with a good token.
    for _ in 0..dockhand_server::THROTTLE_LIMIT {
        server.post(&update, Some("wrong-token-x"), &update_body()).await;
    }
    let (status, answer) = server.post(&update, Some("tok-abuse-5e"), &update_body()).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["code"], "throttled");
    assert!(!server.log().contains("panicked"), "{}", server.log());
    assert_eq!(server.call("GET", "/healthz", None, None).await.0, 200);
    server.assert_no_leaks(&[ADMIN, "tok-abuse-5e"]);
}

/// A service's and a node's status (seed idea 9.1): what the swarm has now and the last job
/// of each action, for an admin and for the service's own token, and nothing for anyone
/// else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_status_shows_replicas_image_and_the_last_job_of_each_action() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let (web, _guard) = service(
        &s,
        "srv-status",
        &[("dockhand.update.enable", "true"), ("dockhand.update.token", "tok-status-1d")],
    )
    .await;
    dockhand_e2e::wait_for_task(s.manager(), &web, "running").await;
    let server = Server::start(s.manager_url(), "{}\n", &[]).await;
    let path = format!("/v1/services/{web}/status");
    let (status, before) = server.call("GET", &path, Some(ADMIN), None).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["last"]["update-service"], Value::Null, "{before}");
    let (status, job) = server.post(&format!("/v1/services/{web}/update"), Some(ADMIN), &update_body()).await;
    assert_eq!(status, 200, "{job}");
    let (status, after) = server.call("GET", &path, Some("tok-status-1d"), None).await;
    assert_eq!(status, 200, "the service's own token reads it: {after}");
    assert_eq!(after["name"], web.as_str());
    assert_eq!(after["mode"], "replicated");
    assert_eq!(after["replicas_wanted"], 1);
    assert!(after["image"].as_str().unwrap().starts_with(BUSYBOX_IMAGE), "{after}");
    assert_eq!(after["update_state"], "completed", "{after}");
    assert_eq!(after["last"]["update-service"]["id"], job["id"], "{after}");
    assert_eq!(after["last"]["update-service"]["status"], "succeeded", "{after}");
    assert_eq!(after["last"]["clean-service"], Value::Null, "{after}");
    // Running again once the forced update converged.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, now) = server.call("GET", &path, Some(ADMIN), None).await;
        if now["replicas_running"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{now}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Nobody else: the same answer as for a service that does not exist.
    let (status, other) = server.call("GET", &path, Some("tok-not-this-one"), None).await;
    assert_eq!(status, 403, "{other}");
    let (status, none) =
        server.call("GET", "/v1/services/srv-nosuch-x/status", Some("tok-not-this-one"), None).await;
    assert_eq!(status, 403, "{none}");
    assert_eq!(
        other["message"].as_str().unwrap().replace(&web, "X"),
        none["message"].as_str().unwrap().replace("srv-nosuch-x", "X")
    );
    let (status, _) = server.call("GET", "/v1/services/srv-nosuch-x/status", Some(ADMIN), None).await;
    assert_eq!(status, 404);
    // A node, for an admin.
    let manager = dockhand_e2e::node_ids(&s).await[0].1.clone();
    let (status, node) = server.call("GET", &format!("/v1/nodes/{manager}/status"), Some(ADMIN), None).await;
    assert_eq!(status, 200, "{node}");
    assert_eq!((node["hostname"].as_str(), node["role"].as_str()), (Some(manager.as_str()), Some("manager")));
    assert!(node["last"].as_object().unwrap().contains_key("clean-node"), "{node}");
    server.assert_no_leaks(&[ADMIN, "tok-status-1d"]);
}

/// Sets (`Some`) or removes (`None`) labels on the node `id`.
async fn label_node(s: &TestSwarm, id: &str, labels: &[(&str, Option<&str>)]) {
    let node = s.manager().node(id).await.unwrap();
    let mut spec = node.spec.clone();
    for (key, value) in labels {
        match value {
            Some(v) => spec.labels.insert((*key).to_owned(), (*v).to_owned()),
            None => spec.labels.remove(*key),
        };
    }
    s.manager().update_node(id, node.version.index, &spec).await.unwrap();
}

/// A node backup over the API (it was CLI-only, and the node's `backup.token` a dead
/// label): with the node's own token, a volume of a worker goes to the server's local
/// target; another token is refused; the node's status names the job; and cron backs the
/// node up on `schedule.backup-node`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_is_backed_up_over_the_api_with_its_own_token() {
    let s = dockhand_e2e::swarm().await;
    let _node_jobs = dockhand_e2e::node_jobs_turn().await;
    let _few = FEW.acquire().await.unwrap();
    let (node_id, hostname) = dockhand_e2e::node_ids(&s).await[2].clone();
    let (name, volume) = (unique_name("srv-nb"), unique_name("srv-nb-vol"));
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE)
        .with_args(["sh", "-c", "echo node-data > /data/f && exec sleep 3600"])
        .with_volume(&volume, "/data")
        .with_constraint(format!("node.id=={node_id}"));
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    dockhand_e2e::wait_for_task(s.manager(), &name, "running").await;
    let labels = [
        ("dockhand.backup.enable", Some("true")),
        ("dockhand.backup.volume-list-upload", Some(volume.as_str())),
        ("dockhand.backup.token", Some("tok-node-backup-7e")),
    ];
    label_node(&s, &node_id, &labels).await;
    let server = Server::start(s.manager_url(), "{}\n", &[]).await;
    let path = format!("/v1/nodes/{hostname}/backup");
    let (refused, refusal) = server.post(&path, Some("tok-not-the-node"), "").await;
    let (status, job) = server.post(&path, Some("tok-node-backup-7e"), "").await;
    let (_, node) =
        server.call("GET", &format!("/v1/nodes/{hostname}/status"), Some("tok-node-backup-7e"), None).await;
    // And by cron: `schedule.backup-node` (every node with backup.enable=true).
    let config = "schedule:\n  backup-node: '*/10 * * * * *'\n  clean-node: 'off'\n  clean-service: 'off'\n  backup-service: 'off'\n";
    let cron = Server::start(s.manager_url(), config, &[("DOCKHAND_SCHEDULE_ENABLED", "true")]).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let by_cron = loop {
        let jobs = cron_jobs(&cron, "backup-node").await;
        if let Some(done) =
            // A tick that found the node busy (this test's own API job still releasing its
            // lock) is not the one to judge: the next tick runs it.
            jobs.iter().find(|j| {
                j["target"]["id"] == node_id.as_str()
                    && !["running", "busy"].contains(&j["status"].as_str().unwrap_or_default())
            })
        {
            break done.clone();
        }
        assert!(Instant::now() < deadline, "no cron backup-node of {hostname}: {jobs:?}\n{}", cron.log());
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    drop(cron);
    label_node(&s, &node_id, &labels.map(|(k, _)| (k, None))).await;
    assert_eq!(by_cron["status"], "succeeded", "{by_cron}");
    assert_eq!(refused, 403, "{refusal}");
    assert_eq!(status, 200, "{job}\n{}", server.log());
    assert_eq!(
        (job["action"].as_str(), job["status"].as_str()),
        (Some("backup-node"), Some("succeeded")),
        "{job}"
    );
    let upload = job["steps"].as_array().unwrap().iter().find(|st| st["kind"] == "upload").unwrap().clone();
    let object = upload["object"].as_str().unwrap();
    assert!(object.starts_with(&format!("node/{hostname}/{hostname}_{volume}_")), "{object}");
    assert!(server.dir.path().join("state").join("backups").join(object).is_file(), "{object}");
    assert_eq!(node["last"]["backup-node"]["id"], job["id"], "{node}");

    // Restored over the API (admins only) once nothing mounts the volume: byte for byte.
    s.manager().remove_service(&name).await.unwrap();
    let node_url = s.nodes[2].0.clone();
    let on_node = |script: &str| {
        let mount = format!("{volume}:/data");
        docker(&node_url, &["run", "--rm", "-v", &mount, BUSYBOX_IMAGE, "sh", "-c", script], &[])
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !on_node("rm -f /data/f && echo junk > /data/junk").status.success() {
        assert!(Instant::now() < deadline, "the volume cannot be written on {hostname}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mounted = Filters::new().with("volume", volume.as_str()).with("status", "running");
    while !s.nodes[2].1.containers(&mounted).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the service's container did not stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restore = format!("/v1/nodes/{hostname}/restore");
    let (status, answer) = server.post(&restore, Some("tok-node-backup-7e"), "{}").await;
    assert_eq!(status, 403, "restores are for admins: {answer}");
    let (status, restored) = server.post(&restore, Some(ADMIN), "{}").await;
    assert_eq!(status, 200, "{restored}\n{}", server.log());
    assert_eq!(
        (restored["action"].as_str(), restored["target"]["id"].as_str()),
        (Some("restore"), Some(node_id.as_str())),
        "{restored}"
    );
    let listing = on_node("cat /data/f; ls /data");
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "node-data\nf\n", "{restored}");
    dockhand_e2e::assert_nothing_left(s.manager(), &[format!("node/{node_id}")]).await;
    server.assert_no_leaks(&[ADMIN, "tok-node-backup-7e"]);
}

/// `GET /v1/volumes/unused` (seed idea 18, CLI-only before): a volume nothing uses on a
/// worker is listed with its node, read there by a helper; only admins may list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unused_volumes_of_every_node_are_listed_for_admins() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let (node_id, hostname) = dockhand_e2e::node_ids(&s).await[1].clone();
    let node_url = s.nodes[1].0.clone();
    let volume = unique_name("srv-unused");
    let created = docker(&node_url, &["volume", "create", &volume], &[]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let server = Server::start(s.manager_url(), "{}\n", &[]).await;
    let (status, listed) = server.call("GET", "/v1/volumes/unused", Some(ADMIN), None).await;
    let (refused, _) = server.call("GET", "/v1/volumes/unused", Some("tok-not-an-admin"), None).await;
    let _ = docker(&node_url, &["volume", "rm", &volume], &[]);
    assert_eq!(status, 200, "{listed}\n{}", server.log());
    let found = listed["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == volume.as_str() && v["node"] == hostname.as_str());
    assert!(found, "{volume} on {hostname}: {listed}");
    assert_eq!(refused, 403);
    dockhand_e2e::assert_nothing_left(s.manager(), &[format!("volumes/{node_id}")]).await;
}

/// `POST /v1/volumes/{volume}/move` (CLI-only before): a volume's contents go from one
/// worker to another, node to node; only admins may move.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_volume_moves_between_workers_over_the_api() {
    let s = dockhand_e2e::swarm().await;
    let _node_jobs = dockhand_e2e::node_jobs_turn().await;
    let _few = FEW.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let ((from_id, from), (to_id, to)) = (ids[1].clone(), ids[2].clone());
    let (from_url, to_url) = (s.nodes[1].0.clone(), s.nodes[2].0.clone());
    let volume = unique_name("srv-move");
    let mount = format!("{volume}:/data");
    let on = |url: &str, script: &str| {
        docker(url, &["run", "--rm", "-v", &mount, BUSYBOX_IMAGE, "sh", "-c", script], &[])
    };
    let wrote = on(&from_url, "echo moved-over-the-api > /data/f");
    assert!(wrote.status.success(), "{}", String::from_utf8_lossy(&wrote.stderr));
    let server = Server::start(s.manager_url(), "{}\n", &[]).await;
    let path = format!("/v1/volumes/{volume}/move");
    let body = serde_json::json!({"from": from, "to": to}).to_string();
    let (refused, answer) = server.post(&path, Some("tok-not-an-admin"), &body).await;
    assert_eq!(refused, 403, "{answer}");
    let (status, job) = server.post(&path, Some(ADMIN), &body).await;
    let read = on(&to_url, "cat /data/f");
    let _ = docker(&from_url, &["volume", "rm", &volume], &[]);
    let _ = docker(&to_url, &["volume", "rm", &volume], &[]);
    assert_eq!(status, 200, "{job}\n{}", server.log());
    assert_eq!(
        (job["action"].as_str(), job["status"].as_str()),
        (Some("volume-move"), Some("succeeded")),
        "{job}"
    );
    assert_eq!(String::from_utf8_lossy(&read.stdout), "moved-over-the-api\n", "{job}");
    let (status, bad) = server.post(&path, Some(ADMIN), r#"{"from": "", "to": "x"}"#).await;
    assert_eq!(status, 422, "{bad}");
    dockhand_e2e::assert_nothing_left(s.manager(), &[format!("node/{to_id}"), format!("node/{from_id}")])
        .await;
}

/// An operator swaps the seed's image for dockhand's and keeps its environment and labels,
/// with no configuration file: the seed's labels are read because a `SWARM_UTILS_*`
/// variable is set (the log says so), and the seed's update without `image` deploys the
/// service's current image again. `DOCKHAND_LABELS_COMPAT=none` turns the seed's labels off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seeds_environment_alone_reads_its_labels_and_an_update_needs_no_image() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let (web, _guard) = service(
        &s,
        "srv-migrate",
        &[("swarm-utils.update.enable", "true"), ("swarm-utils.update.token", "tok-migrate-5c")],
    )
    .await;
    let before = s.manager().service(&web).await.unwrap();
    let seed = format!(r#"{{"token":"tok-migrate-5c","serviceName":"{web}","isForce":true}}"#);
    let env = [("SWARM_UTILS_LOCK_TIMEOUT", "10000")];
    let server = Server::start(s.manager_url(), "{}\n", &env).await;
    assert!(
        server.log().contains("labels read: dockhand.* and swarm-utils.* (SWARM_UTILS_LOCK_TIMEOUT is set"),
        "{}",
        server.log()
    );
    let (status, answer) = server.post("/api/update/service", None, &seed).await;
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    assert_eq!(answer["job"]["status"], "succeeded", "{answer}");
    let after = s.manager().service(&web).await.unwrap();
    let image = |svc: &dockhand_engine::Service| svc.spec.task_template.container_spec.image.clone();
    assert!(image(&after).starts_with(BUSYBOX_IMAGE), "the current image, again: {}", image(&after));
    assert!(after.version.index > before.version.index, "forced: the service was updated");
    server.assert_no_leaks(&[ADMIN, "tok-migrate-5c"]);

    let off = [("SWARM_UTILS_LOCK_TIMEOUT", "10000"), ("DOCKHAND_LABELS_COMPAT", "none")];
    let server = Server::start(s.manager_url(), "{}\n", &off).await;
    assert!(
        server.log().contains("labels read: dockhand.* (DOCKHAND_LABELS_COMPAT=none)"),
        "{}",
        server.log()
    );
    let (status, answer) = server.post("/api/update/service", None, &seed).await;
    assert_eq!(status, 403, "the seed's labels are not read: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seeds_routes_answer_in_its_form_and_sigterm_leaves_nothing_behind() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let (web, _guard) = service(
        &s,
        "srv-seed",
        &[
            ("swarm-utils.update.enable", "true"),
            ("swarm-utils.update.token", "tok-seed-0f"),
            ("swarm-utils.clean.enable", "true"),
            ("swarm-utils.clean.exec", "sleep 60"),
            ("swarm-utils.clean.token", "tok-seed-clean-1"),
        ],
    )
    .await;
    let mut server = Server::start(
        s.manager_url(),
        "labels:\n  compat: swarm-utils\n",
        &[("SWARM_UTILS_ADMIN_TOKEN_LIST", "seed-admin-a1,seed-admin-b2")],
    )
    .await;
    assert!(server.log().contains("SWARM_UTILS_ADMIN_TOKEN_LIST is read for compatibility"));
    // The seed's GitLab request, byte for byte.
    let seed = format!(
        r#"{{"token":"tok-seed-0f","serviceName":"{web}","image":"{BUSYBOX_IMAGE}","isForce":true}}"#
    );
    let (status, answer) = server.post("/api/update/service", None, &seed).await;
    assert_eq!(status, 200, "{answer}\n{}", server.log());
    assert_eq!(answer["message"], "Ok");
    assert_eq!(answer["job"]["status"], "succeeded");
    // A seed admin token, the service in the query (as the seed's code reads it). The
    // manager is cleaned: a task of each test image keeps it in use there, or the prune would
    // take it from the tests that run beside this one and after it (the stack runs the helper
    // image on the manager; the replicas' services run busybox on any node), and no registry
    // is reachable to pull it again.
    let mut holds = Vec::new();
    for (image, args) in [
        (dockhand_e2e::HELPER_IMAGE, &["agent", "hold", "--seconds", "600"][..]),
        (BUSYBOX_IMAGE, &["sleep", "600"][..]),
    ] {
        let holder = unique_name("srv-hold");
        let hold = ServiceSpec::new(&holder, image)
            .with_args(args.iter().copied())
            .with_constraint("node.role==manager");
        s.manager().create_service(&hold).await.unwrap();
        holds.push(ServiceGuard::new(s.manager_url(), &holder));
        dockhand_e2e::wait_for_task(s.manager(), &holder, "running").await;
    }
    let node = s.manager().info().await.unwrap().name;
    let (status, answer) = server
        .post("/api/clean/node", None, &format!(r#"{{"token":"seed-admin-b2","nodeName":"{node}"}}"#))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["message"], "Ok");
    // A clean that runs a minute, not waited for; then SIGTERM: the job is cancelled at its
    // next safe point, its lock is released and no helper is left.
    let (status, answer) = server
        .post(
            &format!("/api/clean/service?serviceName={web}&waitRes=false"),
            None,
            r#"{"token":"tok-seed-clean-1"}"#,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    let pid = server.child.id().unwrap();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(120), server.child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    let service_id = s.manager().service(&web).await.unwrap().id;
    dockhand_e2e::assert_nothing_left(s.manager(), &[format!("service/{service_id}")]).await;
    let locks = s.manager().configs(&Filters::new().with("label", "dockhand.lock")).await.unwrap();
    assert!(locks.iter().all(|c| !c.spec.name.contains(&service_id)), "a lock is left: {locks:?}");
    assert!(server.log().contains("shutting down"), "{}", server.log());
    // The job store has the job, cancelled.
    let store = std::fs::read(server.dir.path().join("state").join("jobs.sqlite")).unwrap_or_default();
    let wal = std::fs::read(server.dir.path().join("state").join("jobs.sqlite-wal")).unwrap_or_default();
    let text = format!("{}{}", String::from_utf8_lossy(&store), String::from_utf8_lossy(&wal));
    assert!(text.contains(&id), "the cancelled job is recorded");
    server.assert_no_leaks(&["tok-seed-0f", "tok-seed-clean-1", "seed-admin-a1", "seed-admin-b2", ADMIN]);
}

/// `dockhand-server` on a managed host whose engine is down (`DOCKHAND_HOST_ID`): it starts
/// the engine and keeps it for its whole life, starting it again when it dies (the liveness
/// checks of `dockhand host run`), and SIGTERM stops it and leaves nothing. (Before, the
/// engine was stopped at once: the registry that started it was dropped at the end of the
/// statement that connected.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_on_a_managed_host_keeps_its_engine_alive_and_stops_it_with_itself() {
    dockhand_e2e::engine().await;
    let dir = tempfile::Builder::new().prefix("dhsrv").tempdir_in("/tmp").unwrap();
    let yaml = dockhand_e2e::managed_dockerd_yaml(dir.path(), "managed");
    let mut server =
        Server::start(&dockhand_e2e::engine_url(), &yaml, &[("DOCKHAND_HOST_ID", "managed")]).await;
    let socket = dir.path().join("d.sock");
    let answers = || async {
        dockhand_engine::Client::new(dockhand_engine::Endpoint::unix(&socket)).unwrap().ping().await.is_ok()
    };
    let pid = || std::fs::read_to_string(dir.path().join("d.pid")).unwrap_or_default().trim().to_owned();
    // Still there well after the start.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(answers().await, "the engine the server started is gone:\n{}", server.log());
    let first = pid();
    assert!(!first.is_empty());
    // It dies: the server starts it again.
    let killed = std::process::Command::new("kill").args(["-KILL", &first]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = pid();
        if !now.is_empty() && now != first && answers().await {
            break;
        }
        assert!(Instant::now() < deadline, "the engine was not started again:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(server.log().contains("restarting"), "{}", server.log());
    // SIGTERM: the server stops, and the engine with it, leaving nothing.
    let server_pid = server.child.id().unwrap();
    let term = std::process::Command::new("kill").args(["-TERM", &server_pid.to_string()]).status().unwrap();
    assert!(term.success());
    let exit = tokio::time::timeout(Duration::from_secs(120), server.child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    assert!(!answers().await, "the engine outlived the server");
    let left = dockhand_e2e::processes_naming(dir.path());
    assert!(left.is_empty(), "processes left: {left:?}");
    let mounts = dockhand_e2e::mounts_naming(dir.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
}

/// The docker CLI on the manager.
fn docker(manager: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new("docker")
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_HOST", manager)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

fn socket_path(url: &str) -> &str {
    url.strip_prefix("unix://").expect("the test swarm's manager is a unix socket")
}

/// Removes the stack, its secret and its network whatever the test did.
struct StackGuard(String);

impl Drop for StackGuard {
    fn drop(&mut self) {
        let _ = docker(&self.0, &["stack", "rm", "dhstack"], &[]);
        std::thread::sleep(Duration::from_secs(3));
        for secret in ["dockhand_admin_tokens", "dockhand_tls_cert", "dockhand_tls_key"] {
            let _ = docker(&self.0, &["secret", "rm", secret], &[]);
        }
        let _ = docker(&self.0, &["network", "rm", "dockhand"], &[]);
        let _ = docker(&self.0, &["volume", "rm", "dhstack_state"], &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stack_deploys_and_answers_the_seeds_gitlab_request_over_the_overlay() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let manager = s.manager_url().to_owned();
    let (registry, user, password) = dockhand_e2e::swarm_registry();
    let v1 = format!("{registry}/team/app:v1");
    let v2 = format!("{registry}/team/app:v2");
    let name = unique_name("srv-ci");
    let spec = ServiceSpec::new(&name, &v1)
        .with_label("dockhand.update.enable", "true")
        .with_label("dockhand.update.token", "tok-ci-6a0")
        .with_label("dockhand.update.registry.auth", "true");
    let auth = dockhand_engine::RegistryAuth::password(&user, &password, &registry);
    s.manager().create_service_with_auth(&spec, &auth).await.unwrap();
    let _svc = ServiceGuard::new(&manager, &name);
    let _stack = StackGuard(manager.clone());
    // The admin token and the server's TLS pair, for the names it has on the overlay, as
    // swarm secrets; the CI job trusts the CA alone.
    let ca = dockhand_e2e::pki::TestCa::new("dockhand stack CA");
    let pair = ca.server_for(&["dockhand", "swarm-utils"]);
    for (secret, value) in [
        ("dockhand_admin_tokens", format!("{ADMIN}\n")),
        ("dockhand_tls_cert", pair.cert_pem.clone()),
        ("dockhand_tls_key", pair.key_pem.clone()),
    ] {
        let mut child = std::process::Command::new("docker")
            .env("DOCKER_HOST", &manager)
            .args(["secret", "create", secret, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "docker secret create {secret}");
    }
    // The registry's credentials reach the server the seed's way (its variables), through a
    // second compose file: the stack file itself stays the operator's.
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("test.yml");
    std::fs::write(
        &extra,
        format!(
            "version: \"3.8\"\nservices:\n  server:\n    environment:\n      SWARM_UTILS_REGISTRY_URL: \"{registry}\"\n      \
             SWARM_UTILS_REGISTRY_USER: \"{user}\"\n      SWARM_UTILS_REGISTRY_PASSWORD: \"{password}\"\n      \
             DOCKHAND_SCHEDULE_ENABLED: \"false\"\n"
        ),
    )
    .unwrap();
    let stack = workspace_file("deploy/stack.yml");
    // The test image is loaded on every node, not pulled: a tag, named for helpers too.
    let deployed = docker(
        &manager,
        &[
            "stack",
            "deploy",
            "--detach=true",
            "-c",
            stack.to_str().unwrap(),
            "-c",
            extra.to_str().unwrap(),
            "dhstack",
        ],
        &[
            ("DOCKHAND_IMAGE", dockhand_e2e::HELPER_IMAGE),
            ("DOCKHAND_HELPER_IMAGE", dockhand_e2e::HELPER_IMAGE),
            ("DOCKHAND_DOCKER_SOCKET", socket_path(&manager)),
        ],
    );
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));
    // The seed's GitLab job, over HTTPS: a container on the overlay network POSTs its JSON to
    // the server by the seed's name, checking the certificate against the CA.
    let body = dockhand_e2e::seed_update_body("tok-ci-6a0", &name, &v2);
    // A clean-node of another test may have pruned the CI job's image on the manager.
    dockhand_e2e::ensure_test_image(&manager, dockhand_e2e::CURL_IMAGE);
    let ci_job = |ca_pem: &str| {
        docker(
            &manager,
            &[
                "run",
                "--rm",
                "--network",
                "dockhand",
                "-e",
                &format!("CA={ca_pem}"),
                "-e",
                &format!("BODY={body}"),
                "-e",
                "URL=https://swarm-utils:3000/api/update/service",
                dockhand_e2e::CURL_IMAGE,
                "sh",
                "-c",
                dockhand_e2e::OVERLAY_HTTPS_SCRIPT,
            ],
            &[],
        )
    };
    let ran = ci_job(ca.cert_pem());
    let answer = String::from_utf8_lossy(&ran.stdout).into_owned();
    let logs = docker(&manager, &["service", "logs", "--raw", "dhstack_server"], &[]);
    let server_log =
        format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    assert!(ran.status.success(), "{answer}\n{}\n{server_log}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(answer.trim_end().lines().last(), Some("200"), "{answer}\n{server_log}");
    assert!(answer.contains(r#""message":"Ok""#), "{answer}");
    // A CA that did not sign the server's certificate: curl stops at the handshake (60),
    // before the token leaves the container.
    let stranger = dockhand_e2e::pki::TestCa::new("another CA");
    let refused = ci_job(stranger.cert_pem());
    assert_eq!(refused.status.code(), Some(60), "{}", String::from_utf8_lossy(&refused.stderr));
    let updated = s.manager().service(&name).await.unwrap();
    assert!(
        updated.spec.task_template.container_spec.image.starts_with(&v2),
        "{:?}",
        updated.spec.task_template.container_spec.image
    );
    let key_body: String = pair.key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    for secret in [ADMIN, "tok-ci-6a0", password.as_str(), key_body.as_str()] {
        assert!(!server_log.contains(secret), "a secret appears in the server's log");
        assert!(!answer.contains(secret), "a secret appears in the answer");
    }
}

fn workspace_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// An OIDC issuer on loopback over HTTPS (a test CA): its discovery document and its JWKS,
/// counting the JWKS fetches.
struct Issuer {
    url: String,
    ca: PathBuf,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Issuer {
    async fn start(jwks: String) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = dockhand_e2e::pki::TestCa::new("dockhand test issuer CA");
        let issued = ca.server();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let config =
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://localhost:{}", listener.local_addr().unwrap().port());
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (issuer, counter) = (url.clone(), fetches.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, issuer, counter, jwks) =
                    (acceptor.clone(), issuer.clone(), counter.clone(), jwks.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let (status, body) = match path.as_str() {
                        "/.well-known/openid-configuration" => (
                            "200 OK",
                            serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")})
                                .to_string(),
                        ),
                        "/jwks" => {
                            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            ("200 OK", jwks)
                        }
                        _ => ("404 Not Found", "{}".to_owned()),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { url, ca: ca_path, fetches, _dir: dir }
    }
}

/// An ES256 key: it signs JWTs and is published as a JWK.
struct SigningKey {
    kid: String,
    pair: ring::signature::EcdsaKeyPair,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    fn new(kid: &str) -> Self {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        Self { kid: kid.to_owned(), pair }
    }

    fn jwk(&self) -> Value {
        use ring::signature::KeyPair;
        let point = self.pair.public_key().as_ref();
        serde_json::json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }

    fn sign(&self, claims: &Value) -> String {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let rng = ring::rand::SystemRandom::new();
        let sig = self.pair.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ci_identity_tokens_are_checked_against_the_issuers_keys_fetched_over_https() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let key = SigningKey::new("k1");
    let stranger = SigningKey::new("k-unknown");
    let issuer = Issuer::start(serde_json::json!({"keys": [key.jwk()]}).to_string()).await;
    // Two trusted issuers: the service's bindings name theirs (R3-10); the second cannot
    // be reached (R3-15).
    let unreachable = format!("https://127.0.0.1:{}", free_port());
    let (web, _guard) = service(
        &s,
        "srv-oidc",
        &[
            ("dockhand.update.enable", "true"),
            ("dockhand.update.oidc.project_path", "group/app"),
            ("dockhand.update.oidc.iss", issuer.url.as_str()),
        ],
    )
    .await;
    let config = format!(
        "server:\n  oidc:\n    - issuer: {}\n      audience: dockhand\n      ca_file: {}\n    - issuer: {unreachable}\n      audience: dockhand\n",
        issuer.url,
        issuer.ca.display()
    );
    let server = Server::start(s.manager_url(), &config, &[]).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = |project: &str, aud: &str, exp: u64| {
        serde_json::json!({"iss": issuer.url, "aud": aud, "iat": now - 10, "exp": exp,
            "project_path": project, "ref": "main", "sub": format!("project_path:{project}:ref_type:branch:ref:main")})
    };
    let path = format!("/v1/services/{web}/update");
    let right = key.sign(&claims("group/app", "dockhand", now + 300));
    let rows: Vec<(&str, String, u16, &str)> = vec![
        ("the right project", right.clone(), 200, ""),
        ("another project", key.sign(&claims("group/other", "dockhand", now + 300)), 403, "forbidden"),
        ("expired", key.sign(&claims("group/app", "dockhand", now - 3600)), 401, "unauthorized"),
        (
            "the wrong audience",
            key.sign(&claims("group/app", "someone-else", now + 300)),
            401,
            "unauthorized",
        ),
        ("an unknown key", stranger.sign(&claims("group/app", "dockhand", now + 300)), 401, "unauthorized"),
    ];
    for (row, token, status, code) in &rows {
        let (got, answer) = server.post(&path, Some(token), &update_body()).await;
        assert_eq!(got, *status, "{row}: {answer}\n{}", server.log());
        if code.is_empty() {
            assert_eq!(answer["status"], "succeeded", "{row}: {answer}");
            assert!(answer["caller"].as_str().unwrap().contains("group/app"), "{row}: {answer}");
        } else {
            assert_eq!(answer["code"], *code, "{row}: {answer}");
        }
    }
    // An unknown key asks for the keys again, at most once per 30 s: a flood of made-up key
    // IDs does not make the server hammer the issuer.
    for _ in 0..5 {
        let (got, _) = server
            .post(&path, Some(&stranger.sign(&claims("group/app", "dockhand", now + 300))), &update_body())
            .await;
        assert_eq!(got, 401);
    }
    let fetched = issuer.fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=2).contains(&fetched), "the JWKS was fetched {fetched} times");
    // An issuer that cannot be reached: a 401 that names no internal URL.
    let mut elsewhere = claims("group/app", "dockhand", now + 300);
    elsewhere["iss"] = Value::String(unreachable.clone());
    let (got, answer) = server.post(&path, Some(&key.sign(&elsewhere)), &update_body()).await;
    assert_eq!(got, 401, "{answer}");
    let text = answer.to_string();
    assert!(!text.contains("/.well-known/openid-configuration") && !text.contains("error sending"), "{text}");
    let tokens: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    let secrets: Vec<&str> = tokens.iter().map(String::as_str).chain([ADMIN]).collect();
    server.assert_no_leaks(&secrets);
}

/// `curl` of the seed's update request over HTTPS to `url`, trusting `ca`: its exit code
/// and what it printed.
fn curl_seed_update(url: &str, ca: &Path, body: &str) -> (i32, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(["-H", "Content-Type: application/json", "--data", body])
        .arg(format!("{url}/api/update/service"))
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), said)
}

/// R3-03: HTTPS from two files, the seed's request through curl with the CA, refused by
/// curl with another CA, and a certificate that changes under SIGHUP (a broken one is not
/// taken); plain HTTP still serves, with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_serves_the_seeds_request_to_curl_with_the_ca_and_reloads_on_sighup() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let token = "tok-https-41c9e7";
    let (web, _guard) =
        service(&s, "srv-https", &[("dockhand.update.enable", "true"), ("dockhand.update.token", token)])
            .await;
    let pki = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = pki.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (ca1, ca2) =
        (dockhand_e2e::pki::TestCa::new("dockhand-ca-1"), dockhand_e2e::pki::TestCa::new("dockhand-ca-2"));
    let ca1_file = write("ca1.pem", ca1.cert_pem());
    let ca2_file = write("ca2.pem", ca2.cert_pem());
    let first = ca1.server();
    let cert = write("cert.pem", &first.cert_pem);
    let key = write("key.pem", &first.key_pem);
    let env = [
        ("DOCKHAND_TLS_CERT_FILE", cert.to_str().unwrap()),
        ("DOCKHAND_TLS_KEY_FILE", key.to_str().unwrap()),
        ("DH_TEST_CA", ca1_file.to_str().unwrap()),
    ];
    let server = Server::start(s.manager_url(), "{}\n", &env).await;
    assert!(!server.log().contains("serving plain HTTP"), "{}", server.log());
    let body =
        serde_json::json!({"token": token, "serviceName": web, "image": BUSYBOX_IMAGE, "isForce": true})
            .to_string();
    let (code, said) = curl_seed_update(&server.url, &ca1_file, &body);
    assert_eq!(code, 0, "{said}\n{}", server.log());
    assert!(said.contains("\"status\":\"succeeded\"") || said.contains("succeeded"), "{said}");
    // Another CA: curl refuses the server before it sends a byte of the request.
    let jobs_before = server.call("GET", "/v1/jobs", Some(ADMIN), None).await.1.as_array().unwrap().len();
    let (code, said) = curl_seed_update(&server.url, &ca2_file, &body);
    assert_eq!(code, 60, "curl's 'peer certificate cannot be authenticated': {said}");
    let jobs_after = server.call("GET", "/v1/jobs", Some(ADMIN), None).await.1.as_array().unwrap().len();
    assert_eq!(jobs_before, jobs_after, "the refused request reached nothing");

    // A new pair from the other CA, then SIGHUP: the next handshakes use it.
    let second = ca2.server();
    std::fs::write(&cert, &second.cert_pem).unwrap();
    std::fs::write(&key, &second.key_pem).unwrap();
    let hup = |pid: u32| {
        let ok =
            std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap().success();
        assert!(ok, "kill -HUP {pid}");
    };
    hup(server.child.id().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A body without a service: answered 422 once the handshake passes.
        let (code, said) = curl_seed_update(&server.url, &ca2_file, "{}");
        if code == 0 {
            break;
        }
        assert_eq!(code, 60, "{said}");
        assert!(Instant::now() < deadline, "the new certificate was not taken: {said}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(curl_seed_update(&server.url, &ca1_file, &body).0, 60, "the old certificate is gone");
    // A broken file under SIGHUP: the pair in use stays, and the log says why.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    hup(server.child.id().unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, said) = curl_seed_update(&server.url, &ca2_file, &body);
    assert_eq!(code, 0, "{said}\n{}", server.log());
    assert!(server.log().contains("the old pair stays"), "{}", server.log());
    server.assert_no_leaks(&[token, ADMIN, &first.key_pem, &second.key_pem]);

    // Plain HTTP still serves the seed's pipelines, with a warning that names the risk.
    let plain = Server::start(s.manager_url(), "{}\n", &[]).await;
    assert!(plain.log().contains("serving plain HTTP"), "{}", plain.log());
}

/// R3-14: a secret the server was given (here a registry password) that a job's command
/// prints is masked in the stored job, the API's answers, its events and the log, not only
/// for admin tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configured_secret_printed_by_a_job_is_masked_everywhere() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let secret = "zq-registry-pw-8841";
    let (web, _guard) = service(
        &s,
        "srv-mask",
        &[
            ("dockhand.clean.enable", "true"),
            ("dockhand.clean.exec", &format!("echo the key is {secret} and done")),
        ],
    )
    .await;
    dockhand_e2e::wait_for_task(s.manager(), &web, "running").await;
    let config = "registries:\n  ci:\n    url: registry.example.com\n    username: bot\n    password_env: DH_MASK_PW\n";
    let server = Server::start(s.manager_url(), config, &[("DH_MASK_PW", secret)]).await;
    let (status, job) = server.post(&format!("/v1/services/{web}/clean?wait=true"), Some(ADMIN), "{}").await;
    assert_eq!(status, 200, "{job}");
    let tail = job["steps"][0]["output_tail"].as_str().unwrap_or_default().to_owned();
    assert!(tail.contains("the key is") && !tail.contains(secret), "{job}");
    let id = job["id"].as_str().unwrap();
    let (_, stored) = server.call("GET", &format!("/v1/jobs/{id}"), Some(ADMIN), None).await;
    assert!(stored.to_string().contains("the key is"), "{stored}");
    let events = server
        .client()
        .get(format!("{}/v1/jobs/{id}/events", server.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(events.contains("job-finished") && !events.contains(secret), "{events}");
    server.assert_no_leaks(&[secret, ADMIN]);
}

/// R3-12: one address cannot hold every connection: past its share it is closed at accept,
/// and another address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_holds_only_its_share_of_the_connections() {
    let s = dockhand_e2e::swarm().await;
    let server = Server::start(s.manager_url(), "{}\n", &[]).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let (held, closed) = tokio::task::spawn_blocking(move || {
        let mut held = Vec::new();
        let mut closed = 0;
        for _ in 0..100 {
            let mut c = std::net::TcpStream::connect(&address).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut buf = [0u8; 256];
            match c.read(&mut buf) {
                Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200") => held.push(c),
                _ => closed += 1,
            }
        }
        (held, closed)
    })
    .await
    .unwrap();
    assert_eq!(held.len(), dockhand_server::CONNECTIONS_PER_CLIENT, "kept alive, up to the share");
    assert_eq!(closed, 100 - dockhand_server::CONNECTIONS_PER_CLIENT);
    let other = reqwest::Client::builder()
        .local_address("127.0.1.77".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let answer = other.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200, "another address is served while the first holds its share");
    drop(held);
}

/// R3-06: every route that checks a credential counts its failures in the one throttle,
/// and in `dockhand_auth_failures_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_and_listings_count_failed_credentials_in_the_throttle() {
    let s = dockhand_e2e::swarm().await;
    let (web, _guard) =
        service(&s, "srv-throttle", &[("dockhand.clean.enable", "true"), ("dockhand.clean.exec", "true")])
            .await;
    let server = Server::start(s.manager_url(), "{}\n", &[]).await;
    let (status, job) = server.post(&format!("/v1/services/{web}/clean?wait=true"), Some(ADMIN), "{}").await;
    assert_eq!(status, 200, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let failures = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with("dockhand_auth_failures_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let metrics = || async {
        http().get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap()
    };
    let before = failures(&metrics().await);
    let routes =
        ["/v1/services".to_owned(), "/v1/nodes".to_owned(), "/v1/jobs".to_owned(), format!("/v1/jobs/{id}")];
    for (i, path) in routes.iter().enumerate() {
        // Each route from an address of its own: the throttle is per address.
        let from: std::net::IpAddr = format!("127.0.1.{}", 10 + i).parse().unwrap();
        let client = reqwest::Client::builder().local_address(from).build().unwrap();
        let get = |token: String| client.get(format!("{}{path}", server.url)).bearer_auth(token).send();
        for n in 0..dockhand_server::THROTTLE_LIMIT {
            let status = get(format!("wrong-{n}")).await.unwrap().status().as_u16();
            assert_eq!(status, 403, "{path}");
        }
        let answer = get(ADMIN.to_owned()).await.unwrap();
        assert_eq!(answer.status().as_u16(), 429, "{path}: guessing is throttled");
    }
    let counted = failures(&metrics().await) - before;
    assert_eq!(counted, u64::from(dockhand_server::THROTTLE_LIMIT) * routes.len() as u64);
    server.assert_no_leaks(&[ADMIN]);
}

/// schemathesis's `st`: `DOCKHAND_TEST_SCHEMATHESIS` (set by `cargo xtask ci`), else the one
/// `cargo xtask ci` installs under `target/tools/`.
fn schemathesis() -> PathBuf {
    if let Some(st) = std::env::var_os("DOCKHAND_TEST_SCHEMATHESIS") {
        return PathBuf::from(st);
    }
    let st = workspace_file("target/tools/schemathesis/bin/st");
    assert!(
        st.is_file(),
        "schemathesis is not installed: `cargo xtask ci` installs it into {}",
        st.display()
    );
    st
}

/// The API's document is valid OpenAPI 3.1 by the reference validator (openapi-spec-validator,
/// from PyPI; `cargo xtask ci` installs it), so that generated clients work. The served
/// document is the checked-in one (a unit test).
#[test]
fn the_document_is_valid_openapi() {
    let validator = std::env::var_os("DOCKHAND_TEST_OPENAPI_VALIDATOR").map_or_else(
        || workspace_file("target/tools/openapi-spec-validator/bin/openapi-spec-validator"),
        PathBuf::from,
    );
    assert!(
        validator.is_file(),
        "openapi-spec-validator is not installed: `cargo xtask ci` installs it into {}",
        validator.display()
    );
    let out =
        std::process::Command::new(&validator).arg(workspace_file("docs/openapi.yaml")).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("OK"), "the document is not valid OpenAPI:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    // On the private one-node engine, not the test swarm: its admin requests start real jobs
    // (node backups, volume listings and moves), whose helpers would land on the swarm's
    // nodes while the serial tests check that nothing is left there.
    let e = dockhand_e2e::engine().await;
    let server = Server::start(&e.url, "{}\n", &[]).await;
    let run = |phases: &'static str| {
        let (st, url) = (schemathesis(), server.url.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(st)
                .args(["run", &format!("{url}/openapi.json"), "--checks"])
                .arg("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,unsupported_method")
                .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
                .args(["--phases", phases, "--max-examples", "25", "--workers", "2"])
                .args(["--max-time", "120", "--suppress-health-check", "all"])
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        })
    };
    let text = |out: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let mut out = run("examples,coverage,fuzzing").await.unwrap();
    let mut report = text(&out);
    // schemathesis itself sometimes crashes in its coverage phase, inside hypothesis, while
    // it describes a filtered strategy ("AST constructor recursion depth mismatch", a
    // SystemError of CPython 3.11's `ast`, seen twice in a row on one run): a crash of the
    // tool, no finding about the server. Then, and only when no check failed, it runs again
    // without that phase: the examples and the fuzzing of every operation must pass.
    if !out.status.success()
        && report.contains("AST constructor recursion depth mismatch")
        && !report.contains("FAILURES")
    {
        out = run("examples,fuzzing").await.unwrap();
        report = text(&out);
    }
    assert!(out.status.success(), "schemathesis failed:\n{report}\n{}", server.log());
    assert!(report.contains("passed") || report.contains("PASSED"), "schemathesis ran nothing:\n{report}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
    server.assert_no_leaks(&[ADMIN]);
}

/// The cron jobs of `action` the server recorded, oldest first.
async fn cron_jobs(server: &Server, action: &str) -> Vec<Value> {
    let (status, jobs) =
        server.call("GET", &format!("/v1/jobs?action={action}&limit=500"), Some(ADMIN), None).await;
    assert_eq!(status, 200, "{jobs}");
    let mut jobs: Vec<Value> =
        jobs.as_array().unwrap().iter().filter(|j| j["trigger"] == "cron").cloned().collect();
    jobs.reverse();
    jobs
}

/// One target's cron jobs: one per tick, `period` apart, none missing; each succeeded, or
/// is among the last two ticks and still runs, or found an earlier tick's job still holding
/// the target and recorded `busy` (the lock's answer, on a swarm busy with the suites that
/// run beside this one) without running; most ran, and the steps of those never overlap.
///
/// Jobs are listed in the order they were recorded, which is not always the order of their
/// ticks: a replica that claimed a tick runs its due targets `concurrency` at a time, so on a
/// loaded machine it may record one target's job after the other replica recorded the next
/// tick's. The ticks are checked in tick order, the work in the order it ran.
fn assert_every_tick_once(runs: &[&Value], period: i64) {
    let mut by_tick: Vec<&Value> = runs.to_vec();
    by_tick.sort_by_key(|j| tick_ms(j));
    let ticks: Vec<i64> = by_tick.iter().map(|j| tick_ms(j)).collect();
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], period, "every tick once, none missing: {ticks:?}");
    }
    for (i, job) in by_tick.iter().enumerate() {
        let recent = i + 2 >= by_tick.len();
        let status = &job["status"];
        assert!(status == "succeeded" || status == "busy" || (recent && status == "running"), "{job}");
    }
    let ran: Vec<&Value> = by_tick.iter().copied().filter(|j| j["status"] != "busy").collect();
    assert!(ran.len() * 2 >= by_tick.len(), "most ticks ran: {by_tick:?}");
    // A job's start and end stamps lie outside its lock (taken after the start, released
    // before the end is stamped): its steps, all inside it, are what never overlap. A job
    // with no step yet is still starting; one with no end still runs and must be the last.
    let work = |job: &Value| -> Option<(i64, Option<i64>)> {
        let steps = job["steps"].as_array()?;
        let first = steps.first()?["started_ms"].as_i64()?;
        let last = steps.last()?;
        let end = match (last["started_ms"].as_i64(), last["duration_ms"].as_i64()) {
            (Some(start), Some(took)) if job["ended_ms"].is_u64() => Some(start + took),
            _ => None,
        };
        Some((first, end))
    };
    let mut spans: Vec<(i64, Option<i64>, &Value)> =
        ran.iter().filter_map(|j| work(j).map(|(start, end)| (start, end, *j))).collect();
    spans.sort_by_key(|(start, _, _)| *start);
    for pair in spans.windows(2) {
        let (_, ended, job) = pair[0];
        let ended = ended.unwrap_or_else(|| panic!("only the last may still run: {job} then {}", pair[1].2));
        assert!(ended <= pair[1].0, "never twice at once: {job} then {}", pair[1].2);
    }
    for job in &ran {
        assert!(
            work(job).is_some() || !job["ended_ms"].is_u64() || job["status"] != "succeeded",
            "a job that ran has steps: {job}"
        );
    }
}

fn tick_ms(job: &Value) -> i64 {
    let text = job["scheduled_at"].as_str().unwrap_or_else(|| panic!("no scheduled_at: {job}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cron_runs_each_target_once_a_tick_in_its_scope_and_skips_a_missed_tick() {
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let tenant = unique_name("tenant");
    let clean = |extra: Option<(&'static str, &'static str)>, tenant: &str| {
        let mut labels = vec![
            ("dockhand.clean.enable".to_owned(), "true".to_owned()),
            ("dockhand.clean.exec".to_owned(), "true".to_owned()),
            ("dockhand.tenant".to_owned(), tenant.to_owned()),
        ];
        labels.extend(extra.map(|(k, v)| (k.to_owned(), v.to_owned())));
        labels
    };
    let mut guards = Vec::new();
    let mut names = Vec::new();
    for (prefix, extra, owner) in [
        ("cron-5s", None, tenant.as_str()),
        ("cron-10s", Some(("dockhand.clean.schedule", "*/10 * * * * *")), tenant.as_str()),
        ("cron-off", Some(("dockhand.clean.schedule", "off")), tenant.as_str()),
        ("cron-other", None, "another-tenant"),
    ] {
        let labels = clean(extra, owner);
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (name, guard) = service(&s, prefix, &labels).await;
        names.push(name);
        guards.push(guard);
    }
    let config = format!(
        "scope:\n  selector: dockhand.tenant={tenant}\nschedule:\n  clean-service: '*/5 * * * * *'\n  clean-node: 'off'\n  backup-service: 'off'\n  min_interval: 10s\n"
    );
    let manager = s.manager_url();
    let cron = [("DOCKHAND_SCHEDULE_ENABLED", "true")];
    let server = Server::start(manager, &config, &cron).await;
    tokio::time::sleep(Duration::from_secs(22)).await;

    let jobs = cron_jobs(&server, "clean-service").await;
    let of =
        |name: &str| -> Vec<Value> { jobs.iter().filter(|j| j["target"]["name"] == name).cloned().collect() };
    let every5 = of(&names[0]);
    let every10 = of(&names[1]);
    assert!(of(&names[2]).is_empty(), "clean.schedule=off runs nothing: {jobs:?}");
    assert!(of(&names[3]).is_empty(), "a service of another tenant is out of scope: {jobs:?}");
    assert!(every5.len() >= 3, "a 5 s schedule over 22 s: {every5:?}");
    assert!(!every10.is_empty(), "{every10:?}");
    for (runs, period) in [(&every5, 5_000), (&every10, 10_000)] {
        let runs: Vec<&Value> = runs.iter().collect();
        assert_every_tick_once(&runs, period);
        for job in &runs {
            assert_eq!(tick_ms(job) % period, 0, "{job}");
            assert_eq!(job["caller"], "cron", "{job}");
        }
    }

    // Down for longer than a tick and its grace: the tick is recorded as skipped, not run.
    let killed = now_ms();
    let server = server.kill_and_restart(manager, &cron, Duration::from_secs(9)).await;
    let restarted = now_ms();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let every5 = cron_jobs(&server, "clean-service").await;
    let every5: Vec<Value> =
        every5.into_iter().filter(|j| j["target"]["name"] == names[0].as_str()).collect();
    let down: Vec<&Value> =
        every5.iter().filter(|j| tick_ms(j) > killed && tick_ms(j) < restarted - 2_500).collect();
    assert!(!down.is_empty(), "a missed tick is recorded: {every5:?}");
    for job in &down {
        assert_eq!(job["status"], "skipped", "a missed tick is not run late: {job}");
        let why = job["steps"][0]["error"].as_str().unwrap();
        assert!(why.contains("missed"), "{job}");
    }
    // The restarted replica recorded the missed tick itself, and counted it.
    let text = http().get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("dockhand_jobs_total{")
            && l.contains("action=\"clean-service\"")
            && l.contains("status=\"skipped\"")),
        "the skipped job is counted: {text}"
    );
    let after: Vec<&Value> = every5.iter().filter(|j| tick_ms(j) > restarted).collect();
    assert!(
        after.iter().any(|j| j["status"] == "succeeded"),
        "cron runs again after the restart: {every5:?}"
    );
    server.assert_no_leaks(&[ADMIN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tenants_in_one_swarm_never_touch_each_others_services() {
    use dockhand_e2e::postgres::{PG_PASSWORD, PgPeer};
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    // One shared store, as operations.md advises for overlapping instances: the scope, not
    // the store, keeps each tenant's jobs its own (R3-07).
    let pg = PgPeer::start();
    let manager = s.manager_url();
    let (a, b) = (unique_name("tenant-a"), unique_name("tenant-b"));
    let labels = |tenant: &str| {
        vec![
            ("dockhand.clean.enable".to_owned(), "true".to_owned()),
            ("dockhand.clean.exec".to_owned(), "true".to_owned()),
            ("dockhand.tenant".to_owned(), tenant.to_owned()),
        ]
    };
    let mut guards = Vec::new();
    let mut names = Vec::new();
    for tenant in [&a, &b] {
        let labels = labels(tenant);
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (name, guard) = service(&s, "tenant-svc", &labels).await;
        names.push(name);
        guards.push(guard);
    }
    let config = |tenant: &str| {
        format!(
            "{}scope:\n  selector: dockhand.tenant={tenant}\nschedule:\n  clean-service: '*/5 * * * * *'\n  clean-node: 'off'\n  backup-service: 'off'\n",
            pg_store(&pg)
        )
    };
    let (admin_a, admin_b) = ("admin-of-a-5d1c9e", "admin-of-b-7f3a2b");
    let on = ("DOCKHAND_SCHEDULE_ENABLED", "true");
    let pw = ("DH_TEST_PG_PASSWORD", PG_PASSWORD);
    let server_a = Server::start(manager, &config(&a), &[("DOCKHAND_ADMIN_TOKENS", admin_a), on, pw]).await;
    let server_b = Server::start(manager, &config(&b), &[("DOCKHAND_ADMIN_TOKENS", admin_b), on, pw]).await;
    for (server, own, other, own_token, other_token) in [
        (&server_a, &names[0], &names[1], admin_a, admin_b),
        (&server_b, &names[1], &names[0], admin_b, admin_a),
    ] {
        let (status, listed) = server.call("GET", "/v1/services", Some(own_token), None).await;
        assert_eq!(status, 200, "{listed}");
        let listed: Vec<&str> =
            listed.as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
        assert!(listed.contains(&own.as_str()) && !listed.contains(&other.as_str()), "{listed:?}");
        let (status, body) =
            server.post(&format!("/v1/services/{other}/clean?wait=true"), Some(own_token), "{}").await;
        assert_eq!(status, 404, "out of scope is no such service, to admins too: {body}");
        assert!(!body.to_string().contains("scope"), "{body}");
        let (status, body) =
            server.post(&format!("/v1/services/{other}/clean?wait=true"), Some(other_token), "{}").await;
        assert_eq!(status, 403, "the other tenant's admin token is no credential here: {body}");
        let (status, body) =
            server.post(&format!("/v1/services/{own}/clean?wait=true"), Some(other_token), "{}").await;
        assert_eq!(status, 403, "{body}");
        let (status, body) =
            server.post(&format!("/v1/services/{own}/clean?wait=true"), Some(own_token), "{}").await;
        // Allowed: it runs, or its own cron holds the target at that moment.
        assert!(status == 200 || (status == 409 && body["code"] == "busy"), "{status} {body}");
    }
    // Cron, too, stays in each instance's scope.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for (server, own, token) in [(&server_a, &names[0], admin_a), (&server_b, &names[1], admin_b)] {
        let (status, jobs) = server.call("GET", "/v1/jobs?limit=500", Some(token), None).await;
        assert_eq!(status, 200, "{jobs}");
        let jobs = jobs.as_array().unwrap();
        assert!(jobs.iter().any(|j| j["trigger"] == "cron"), "cron ran: {jobs:?}");
        for job in jobs {
            assert_eq!(
                job["target"]["name"].as_str(),
                Some(own.as_str()),
                "only its own tenant's services: {job}"
            );
        }
    }
    // Each admin reads only its own tenant's jobs from the shared store, by ID and as events.
    for (server, token, other, other_token) in
        [(&server_a, admin_a, &server_b, admin_b), (&server_b, admin_b, &server_a, admin_a)]
    {
        let (_, theirs) = other.call("GET", "/v1/jobs?limit=5", Some(other_token), None).await;
        let id = theirs[0]["id"].as_str().unwrap().to_owned();
        for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/events")] {
            let (status, body) = server.call("GET", &path, Some(token), None).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        server.assert_no_leaks(&[admin_a, admin_b]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_job_is_notified_redacted_and_a_receiver_that_is_down_is_only_counted() {
    use dockhand_e2e::webhook::{WebhookReceiver, free_port};
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let receiver = WebhookReceiver::start();
    let down = format!("http://127.0.0.1:{}/hooks/T0DOWNSECRET", free_port());
    let secret = "hunter2-notify-secret";
    let failing = [
        ("dockhand.clean.enable", "true"),
        ("dockhand.clean.exec", "echo connecting with password=hunter2-notify-secret; exit 3"),
    ];
    let (bad, _g1) = service(&s, "notify-bad", &failing).await;
    let (good, _g2) =
        service(&s, "notify-good", &[("dockhand.clean.enable", "true"), ("dockhand.clean.exec", "true")])
            .await;
    let config = "notifications:\n  webhooks:\n    - name: ops\n      url_env: DH_TEST_HOOK\n    - name: down\n      url_env: DH_TEST_HOOK_DOWN\n      on: [succeeded]\n";
    let server = Server::start(
        s.manager_url(),
        config,
        &[("DH_TEST_HOOK", &receiver.url), ("DH_TEST_HOOK_DOWN", &down)],
    )
    .await;
    for name in [&bad, &good] {
        dockhand_e2e::wait_for_task(s.manager(), name, "running").await;
    }
    let (status, body) = server.post(&format!("/v1/services/{bad}/clean?wait=true"), Some(ADMIN), "{}").await;
    assert_eq!((status, body["code"].as_str()), (500, Some("job_failed")), "{body}");
    let id = body["job"]["id"].as_str().unwrap().to_owned();
    let (status, body) =
        server.post(&format!("/v1/services/{good}/clean?wait=true"), Some(ADMIN), "{}").await;
    assert_eq!(status, 200, "the job succeeds whatever becomes of its notification: {body}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let notified = loop {
        let bodies = receiver.bodies();
        if let Some(b) = bodies.iter().find(|b| b["job"]["id"] == id.as_str()) {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "the failure was not notified: {bodies:?}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(notified["job"]["status"], "failed");
    assert!(notified["text"].as_str().unwrap().contains(&bad), "{notified}");
    assert!(!notified.to_string().contains(secret), "a secret in the notification: {notified}");
    assert!(receiver.bodies().iter().all(|b| b["job"]["status"] == "failed"), "ops hears of failures only");

    let counted = "dockhand_notifications_total{webhook=\"down\",result=\"failed\"} 1";
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let text = http().get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
        if text.contains(counted) {
            break;
        }
        assert!(Instant::now() < deadline, "the failed delivery is not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = server.log();
    assert!(log.contains("notification not delivered"), "{log}");
    assert!(!log.contains("T0DOWNSECRET") && !log.contains("T0SECRETPATH"), "a webhook URL in the log");
    server.assert_no_leaks(&[ADMIN, secret]);
}

/// The store section for `pg`, its password from a variable.
fn pg_store(pg: &dockhand_e2e::postgres::PgPeer) -> String {
    format!("store:\n  url: {}\n  password_env: DH_TEST_PG_PASSWORD\n", pg.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgresql_run_every_tick_once_and_see_each_others_jobs() {
    use dockhand_e2e::postgres::{PG_PASSWORD, PgPeer};
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let pg = PgPeer::start();
    let tenant = unique_name("replicas");
    let labels = [
        ("dockhand.clean.enable", "true"),
        ("dockhand.clean.exec", "true"),
        ("dockhand.tenant", tenant.as_str()),
    ];
    let mut names = Vec::new();
    let mut guards = Vec::new();
    for _ in 0..10 {
        let (name, guard) = on_manager(&s, "replica-svc", &labels, None).await;
        names.push(name);
        guards.push(guard);
    }
    for name in &names {
        dockhand_e2e::wait_for_task(s.manager(), name, "running").await;
    }
    let config = format!(
        "{}scope:\n  selector: dockhand.tenant={tenant}\nschedule:\n  clean-service: '*/5 * * * * *'\n  clean-node: 'off'\n  backup-service: 'off'\n",
        pg_store(&pg)
    );
    let env = [("DOCKHAND_SCHEDULE_ENABLED", "true"), ("DH_TEST_PG_PASSWORD", PG_PASSWORD)];
    let manager = s.manager_url();
    let (a, b) = tokio::join!(Server::start(manager, &config, &env), Server::start(manager, &config, &env));
    tokio::time::sleep(Duration::from_secs(60)).await;

    let cutoff = now_ms() - 10_000;
    let from_a = cron_jobs(&a, "clean-service").await;
    let from_b = cron_jobs(&b, "clean-service").await;
    let settled = |jobs: &[Value]| -> std::collections::BTreeSet<String> {
        jobs.iter().filter(|j| tick_ms(j) < cutoff).map(|j| j["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(settled(&from_a), settled(&from_b), "both replicas list the same jobs");
    assert!(from_a.len() >= 10 * 9, "10 services, every 5 s, for 60 s: {}", from_a.len());
    let mut ran_by = std::collections::BTreeSet::new();
    for name in &names {
        let runs: Vec<&Value> = from_a.iter().filter(|j| j["target"]["name"] == name.as_str()).collect();
        assert_every_tick_once(&runs, 5_000);
        for job in &runs {
            // The job ID carries its process: both replicas ran some.
            ran_by.insert(job["id"].as_str().unwrap()[17..21].to_owned());
        }
    }
    assert_eq!(ran_by.len(), 2, "both replicas ran ticks: {ran_by:?}");
    // Any replica answers for a job the other ran.
    for job in from_a.iter().take(20) {
        let id = job["id"].as_str().unwrap();
        let (status, got) = b.call("GET", &format!("/v1/jobs/{id}"), Some(ADMIN), None).await;
        assert_eq!(status, 200, "{got}");
    }
    for server in [&a, &b] {
        server.assert_no_leaks(&[ADMIN, PG_PASSWORD]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_backup_is_marked_interrupted_and_the_service_comes_back() {
    use dockhand_e2e::postgres::{PG_PASSWORD, PgPeer};
    let s = dockhand_e2e::swarm().await;
    let _few = FEW.acquire().await.unwrap();
    let pg = PgPeer::start();
    let volume = unique_name("replica-vol");
    let labels = [
        ("dockhand.backup.enable", "true"),
        ("dockhand.backup.stop", "true"),
        ("dockhand.backup.volume-list-upload", volume.as_str()),
    ];
    let (name, _guard) = on_manager(&s, "replica-bk", &labels, Some(&volume)).await;
    let task = dockhand_e2e::wait_for_task(s.manager(), &name, "running").await;
    let container = task.status.container_status.map(|c| c.container_id).unwrap();
    let fill = dockhand_engine::ExecSpec::new([
        "sh",
        "-c",
        "dd if=/dev/urandom of=/data/big bs=1M count=300 2>/dev/null",
    ]);
    let mut out = s.manager().exec(&container, &fill).await.unwrap();
    while out.next().await.is_some() {}
    assert_eq!(out.exit_code().await.unwrap(), 0);

    let config = pg_store(&pg);
    let env = [("DH_TEST_PG_PASSWORD", PG_PASSWORD)];
    let manager = s.manager_url();
    let a = Server::start(manager, &config, &env).await;
    let b = Server::start(manager, &config, &env).await;
    let (status, body) = a.post(&format!("/v1/services/{name}/backup?wait=false"), Some(ADMIN), "{}").await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    // B follows the job A runs, from the shared store, until it ends.
    let follow = {
        let url = format!("{}/v1/jobs/{id}/events", b.url);
        tokio::spawn(async move {
            let response = http().get(url).bearer_auth(ADMIN).send().await.unwrap();
            tokio::time::timeout(Duration::from_secs(240), response.text()).await.unwrap().unwrap()
        })
    };
    // Once the service is stopped, A dies.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = a.call("GET", &format!("/v1/jobs/{id}"), Some(ADMIN), None).await;
        let stopped = job["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|st| st["kind"] == "stop" && st["status"] == "succeeded");
        if stopped {
            assert_eq!(job["status"], "running", "killed mid-backup: {job}");
            break;
        }
        assert!(Instant::now() < deadline, "the backup did not stop the service: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut a = a;
    a.child.kill().await.unwrap();
    let stopped = s.manager().service(&name).await.unwrap();
    assert!(stopped.spec.labels.contains_key("dockhand.backup.restore-replicas"), "the intent is recorded");

    // B sees the lease expire, marks the job, removes what it left and starts the service.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, job) = b.call("GET", &format!("/v1/jobs/{id}"), Some(ADMIN), None).await;
        let service = s.manager().service(&name).await.unwrap();
        let replicas = service.spec.replicas();
        if job["status"] == "interrupted"
            && replicas == Some(1)
            && !service.spec.labels.contains_key("dockhand.backup.restore-replicas")
        {
            let last = job["steps"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["kind"], "interrupted", "{job}");
            break;
        }
        assert!(Instant::now() < deadline, "not recovered: job {job}, replicas {replicas:?}\n{}", b.log());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    dockhand_e2e::wait_for_task(s.manager(), &name, "running").await;
    let events = follow.await.unwrap();
    assert!(events.contains("event: step-finished"), "the steps A recorded reach B's follower: {events}");
    let last = events.lines().rfind(|l| l.starts_with("data:")).unwrap_or_default();
    assert!(last.contains("job-finished") && last.contains("interrupted"), "{events}");
    let helpers =
        s.manager().services(&Filters::new().with("label", format!("dockhand.helper={id}"))).await.unwrap();
    assert!(helpers.is_empty(), "{helpers:?}");
    b.assert_no_leaks(&[ADMIN, PG_PASSWORD]);
}
