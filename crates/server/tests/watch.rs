//! Watch mode (`update.auto`) in a `dockhand-server` process against the test swarm and its
//! registry with htpasswd (`cargo xtask swarm up`): a tag that moves is followed within a
//! tick, pinned; a broken image is rolled back once and then skipped with a recorded
//! reason; a good one is followed again; `notify` records and notifies without touching
//! the service; twenty services on one tag cost one registry request a tick, counted on the
//! registry's access log.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dockhand_e2e::webhook::WebhookReceiver;
use dockhand_e2e::{ServiceGuard, unique_name};
use dockhand_engine::{RegistryAuth, ServiceSpec};
use serde_json::Value;

mod common;
use common::*;

/// The test registry, and the tags of `team/app` this test moves.
struct Registry {
    address: String,
    auth: RegistryAuth,
    manager: String,
}

impl Registry {
    fn new(manager: &str) -> Self {
        let (address, user, password) = dockhand_e2e::swarm_registry();
        let auth = RegistryAuth::password(&user, &password, &address);
        Self { address, auth, manager: manager.to_owned() }
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/team/app:{tag}", self.address)
    }

    /// Points `to` at what `from` is, the way a CI pipeline pushes.
    fn point(&self, to: &str, from: &str) {
        dockhand_e2e::push_as(&self.manager, &self.image(from), &self.image(to));
    }

    /// How many manifest requests by `tag` the registry's access log holds.
    fn heads_of(&self, tag: &str) -> usize {
        let log = std::fs::read_to_string(dockhand_e2e::swarm_registry_log()).unwrap();
        let asked = format!("\"HEAD /v2/team/app/manifests/{tag} ");
        log.lines().filter(|l| l.contains(&asked)).count()
    }
}

/// The update-service jobs of `service`, newest first.
async fn jobs_of(server: &Server, service: &str) -> Vec<Value> {
    let path = format!("/v1/jobs?target=service/{service}&action=update-service&limit=500");
    let (status, jobs) = server.call("GET", &path, Some(ADMIN), None).await;
    assert_eq!(status, 200, "{jobs}");
    jobs.as_array().unwrap().clone()
}

/// Waits for a job of `service` with `status` and `image`; answers it.
async fn job_with(server: &Server, service: &str, status: &str, image: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let jobs = jobs_of(server, service).await;
        if let Some(job) = jobs.iter().find(|j| j["status"] == status && j["image"] == image) {
            return job.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} job for {image} on {service}: {jobs:#?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn metrics_of(server: &Server) -> String {
    let answer = server.client().get(format!("{}/metrics", server.url)).send().await.unwrap();
    answer.text().await.unwrap()
}

async fn image_of(s: &dockhand_e2e::TestSwarm, service: &str) -> String {
    s.manager().service(service).await.unwrap().spec.task_template.container_spec.image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watched_tag_is_followed_a_bad_digest_skipped_and_notify_only_tells() {
    let s = dockhand_e2e::swarm().await;
    let reg = Registry::new(s.manager_url());
    let tenant = unique_name("watch");
    let (live, steady) = (format!("live-{}", std::process::id()), format!("steady-{}", std::process::id()));
    reg.point(&live, "v1");
    reg.point(&steady, "v1");
    let mut digests = Vec::new();
    for tag in ["v1", "v2", "broken"] {
        digests.push(
            s.manager().distribution(&reg.image(tag), Some(&reg.auth)).await.unwrap().descriptor.digest,
        );
    }
    let (d1, d2, bad) = (digests[0].clone(), digests[1].clone(), digests[2].clone());
    let pinned = |tag: &str, digest: &str| format!("{}@{digest}", reg.image(tag));

    // web follows `live` and updates; news follows it and only tells; twenty services of
    // no replicas follow `steady`, which never moves.
    let mut guards = Vec::new();
    let mut create = |prefix: &str, image: String, replicas: u64, mode: &str| {
        let name = unique_name(prefix);
        let spec = ServiceSpec::new(&name, &image)
            .with_replicas(replicas)
            .with_label("dockhand.tenant", &tenant)
            .with_label("dockhand.update.enable", "true")
            .with_label("dockhand.update.auto", mode);
        guards.push(ServiceGuard::new(s.manager_url(), &name));
        (name, spec)
    };
    let web = create("watch-web", pinned(&live, &d1), 1, "true");
    let news = create("watch-news", pinned(&live, &d1), 0, "notify");
    let many: Vec<_> =
        (0..20).map(|i| create(&format!("watch-many{i}"), pinned(&steady, &d1), 0, "true")).collect();
    for (_, spec) in [&web, &news].into_iter().chain(&many) {
        s.manager().create_service_with_auth(spec, &reg.auth).await.unwrap();
    }
    let (web, news) = (web.0, news.0);
    dockhand_e2e::wait_for_task(s.manager(), &web, "running").await;

    let receiver = WebhookReceiver::start();
    let config = format!(
        "scope:\n  selector: dockhand.tenant={tenant}\nschedule:\n  update-service: '*/2 * * * * *'\n  \
         clean-node: 'off'\n  clean-service: 'off'\n  backup-service: 'off'\n  backup-node: 'off'\n\
         notifications:\n  webhooks:\n    - name: ops\n      url_env: DH_TEST_HOOK\n"
    );
    let docker_config = dockhand_e2e::swarm_docker_config();
    let env = [
        ("DOCKHAND_SCHEDULE_ENABLED", "true"),
        ("DOCKER_CONFIG", docker_config.to_str().unwrap()),
        ("DH_TEST_HOOK", receiver.url.as_str()),
    ];
    let heads_before = reg.heads_of(&steady);
    let server = Server::start(s.manager_url(), &config, &env).await;

    // The tag moves: web follows, pinned; news is told, and left alone.
    reg.point(&live, "v2");
    let moved = job_with(&server, &web, "succeeded", &pinned(&live, &d2)).await;
    assert_eq!(
        (moved["trigger"].as_str(), moved["caller"].as_str()),
        (Some("cron"), Some("cron")),
        "{moved}"
    );
    assert_eq!(image_of(&s, &web).await, pinned(&live, &d2));
    let told = job_with(&server, &news, "available", &pinned(&live, &d2)).await;
    assert_eq!(told["steps"][0]["kind"], "watch", "{told}");
    assert_eq!(image_of(&s, &news).await, pinned(&live, &d1), "notify never updates");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !receiver.bodies().iter().any(|b| b["job"]["status"] == "available") {
        assert!(Instant::now() < deadline, "the webhook heard nothing: {:?}", receiver.bodies());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let body = receiver.bodies().into_iter().find(|b| b["job"]["status"] == "available").unwrap();
    assert_eq!(body["job"]["image"], pinned(&live, &d2), "{body}");
    assert!(body["text"].as_str().unwrap().starts_with("🆕"), "{body}");
    let metrics = metrics_of(&server).await;
    let line = format!("dockhand_update_available{{service=\"{news}\"}} 1");
    assert!(metrics.contains(&line), "{metrics}");

    // A broken image under the tag: rolled back once, then skipped with a reason, once.
    reg.point(&live, "broken");
    job_with(&server, &web, "failed", &pinned(&live, &bad)).await;
    let skipped = job_with(&server, &web, "skipped", &pinned(&live, &bad)).await;
    let why = skipped["steps"][0]["error"].as_str().unwrap();
    assert!(why.contains("failed or was rolled back"), "{skipped}");
    assert_eq!(image_of(&s, &web).await, pinned(&live, &d2), "rolled back to what it ran");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let on_bad: Vec<Value> =
        jobs_of(&server, &web).await.into_iter().filter(|j| j["image"] == pinned(&live, &bad)).collect();
    let statuses: Vec<&str> = on_bad.iter().map(|j| j["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["skipped", "failed"], "tried once, skipped once over three ticks: {on_bad:#?}");

    // The status route shows what the watch sees.
    let (status, seen) = server.call("GET", &format!("/v1/services/{web}/status"), Some(ADMIN), None).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["watch"]["latest"], bad.as_str(), "{seen}");
    assert!(seen["watch"]["next"].as_str().unwrap().starts_with("skip: "), "{seen}");

    // A good image again: followed.
    reg.point(&live, "v1");
    job_with(&server, &web, "succeeded", &pinned(&live, &d1)).await;
    assert_eq!(image_of(&s, &web).await, pinned(&live, &d1));

    // Metrics: the tag is back at what news runs; one registry request a tick for the
    // twenty services on `steady`.
    let available = |metrics: &str, service: &str| {
        let line = format!("dockhand_update_available{{service=\"{service}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(line.as_str())).map(str::to_owned)
    };
    let metrics = metrics_of(&server).await;
    assert_eq!(available(&metrics, &news).as_deref(), Some("0"), "{metrics}");
    let ok = format!("dockhand_registry_requests_total{{registry=\"{}\",result=\"ok\"}}", reg.address);
    assert!(metrics.contains(&ok), "{metrics}");
    let looks_before = server.log().matches("watch: looked").count();
    let heads = reg.heads_of(&steady);
    drop(server);
    assert!(looks_before >= 10, "{looks_before} ticks");
    // One request a tick for the twenty services; a `dockhand plan` of another test run
    // beside this one looks at every service of the swarm, these too, so the log may hold
    // a few more: never near the twenty a tick of one request per service.
    let asked = heads - heads_before;
    eprintln!("{asked} registry requests for {steady} in {looks_before} ticks, for 20 services");
    assert!(asked >= looks_before, "{asked} requests in {looks_before} ticks: each tick asks");
    assert!(asked < 2 * looks_before, "{asked} requests in {looks_before} ticks for 20 services on one tag");
    drop(guards);
}

/// `POST /v1/images/update`: every service in the server's scope that runs the repository
/// with `update.enable=true` is updated, each its own job, and the answer lists each one's
/// answer; a service's own token updates that service alone; a caller that may update none
/// gets the same 403 whether anything runs the image or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_call_updates_every_service_of_an_image_the_caller_may_update() {
    let s = dockhand_e2e::swarm().await;
    let reg = Registry::new(s.manager_url());
    let tenant = unique_name("images");
    let mut guards = Vec::new();
    let mut create = |prefix: &str, labels: &[(&str, &str)]| {
        let name = unique_name(prefix);
        let mut spec =
            ServiceSpec::new(&name, reg.image("v1")).with_replicas(0).with_label("dockhand.tenant", &tenant);
        for (k, v) in labels {
            spec = spec.with_label(*k, *v);
        }
        guards.push(ServiceGuard::new(s.manager_url(), &name));
        (name, spec)
    };
    let enabled = ("dockhand.update.enable", "true");
    let services = [
        create("img-a", &[enabled, ("dockhand.update.token", "tok-img-a-41")]),
        create("img-b", &[enabled]),
        create("img-off", &[]),
    ];
    for (_, spec) in &services {
        s.manager().create_service_with_auth(spec, &reg.auth).await.unwrap();
    }
    let config = format!("scope:\n  selector: dockhand.tenant={tenant}\n");
    let docker_config = dockhand_e2e::swarm_docker_config();
    let server =
        Server::start(s.manager_url(), &config, &[("DOCKER_CONFIG", docker_config.to_str().unwrap())]).await;
    let d2 = s.manager().distribution(&reg.image("v2"), Some(&reg.auth)).await.unwrap().descriptor.digest;
    let body = |image: &str| serde_json::json!({ "image": image }).to_string();

    let (status, answer) = server.post("/v1/images/update", Some(ADMIN), &body(&reg.image("v2"))).await;
    assert_eq!(status, 200, "{answer}");
    let listed: Vec<(&str, u64)> = answer["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["service"].as_str().unwrap(), s["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(listed, [(services[0].0.as_str(), 200), (services[1].0.as_str(), 200)], "{answer}");
    for part in answer["services"].as_array().unwrap() {
        assert_eq!(part["answer"]["status"], "succeeded", "{part}");
    }
    for (name, _) in &services[..2] {
        assert_eq!(image_of(&s, name).await, format!("{}@{d2}", reg.image("v2")));
    }
    assert_eq!(image_of(&s, &services[2].0).await, reg.image("v1"), "no update.enable");

    // img-a's own token: img-a alone.
    let (status, answer) =
        server.post("/v1/images/update?wait=true", Some("tok-img-a-41"), &body(&reg.image("v1"))).await;
    assert_eq!(status, 200, "{answer}");
    let listed: Vec<&str> =
        answer["services"].as_array().unwrap().iter().map(|s| s["service"].as_str().unwrap()).collect();
    assert_eq!(listed, [services[0].0.as_str()], "{answer}");
    assert!(image_of(&s, &services[0].0).await.starts_with(&format!("{}@", reg.image("v1"))));
    assert!(
        image_of(&s, &services[1].0).await.starts_with(&format!("{}@", reg.image("v2"))),
        "not its token's"
    );

    // The token of a service that runs something else, and an image nothing runs: one 403.
    let (a, first) =
        server.post("/v1/images/update", Some("tok-img-a-41"), &body("registry.example.com/x/y:1")).await;
    assert_eq!((a, first["code"].as_str()), (403, Some("forbidden")), "{first}");
    let (status, answer) =
        server.post("/v1/images/update", Some(ADMIN), &body("registry.example.com/x/y:1")).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = server.post("/v1/images/update", Some(ADMIN), r#"{"image": ""}"#).await;
    assert_eq!((status, answer["code"].as_str()), (422, Some("invalid_field")), "{answer}");
    assert!(answer["message"].as_str().unwrap().starts_with("image: "), "{answer}");
    server.assert_no_leaks(&[ADMIN, "tok-img-a-41"]);
    drop(guards);
}
