//! The jobs on the multi-node test swarm (`cargo xtask swarm up`), through the `dockhand`
//! binary: clean-node and clean-service on any node through helper services, locks across
//! processes, pending helpers, cancellation, a killed CLI, bounded output. Every test ends
//! with the shared check that no helper and no lock is left on its targets.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dockhand_e2e::{
    BUSYBOX_IMAGE, ServiceGuard, TestSwarm, assert_nothing_left, last_job, node_ids, stderr, stdout,
    unique_name, wait_for_task,
};
use dockhand_engine::{Client, ExecSpec, Filters, NewContainer, ServiceSpec};

use dockhand_e2e::HELPER_IMAGE;

/// The pending test pauses node3 for a moment; the tests that need every node schedulable
/// hold this for reading, that test for writing.
static NODE3_SCHEDULABLE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn every_node_schedulable() -> tokio::sync::RwLockReadGuard<'static, ()> {
    NODE3_SCHEDULABLE.read().await
}

/// Runs `dockhand` against the swarm's manager with the test image for helpers and a job
/// store of the test's own.
fn dockhand(s: &TestSwarm, state: &tempfile::TempDir, args: &[&str]) -> Output {
    let mut all = vec!["-H", s.manager_url()];
    all.extend_from_slice(args);
    dockhand_e2e::run(env!("CARGO_BIN_EXE_dockhand").as_ref(), &all, &pairs(&env(state)))
}

/// The helper image is the one `dockhand helper-image push` put in the test registry,
/// which nodes pull with the credentials of the swarm's `config.json`.
fn env(state: &tempfile::TempDir) -> [(&'static str, String); 3] {
    [
        ("XDG_STATE_HOME", state.path().to_str().unwrap().to_owned()),
        ("DOCKHAND_HELPER_IMAGE", helper_image()),
        ("DOCKER_CONFIG", dockhand_e2e::swarm_docker_config().display().to_string()),
    ]
}

fn helper_image() -> String {
    dockhand_e2e::pushed_helper_image(env!("CARGO_BIN_EXE_dockhand").as_ref())
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Starts `dockhand` in the background, as [`dockhand`] runs it.
fn spawn(s: &TestSwarm, state: &tempfile::TempDir, args: &[&str], extra: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockhand"));
    cmd.env_remove("DOCKER_HOST")
        .args(["-H", s.manager_url()])
        .args(args)
        .envs(env(state))
        .envs(extra.iter().copied());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// A sleeping busybox service with clean-service labels running `exec`.
fn cleanable(name: &str, exec: &str) -> ServiceSpec {
    ServiceSpec::new(name, BUSYBOX_IMAGE)
        .with_label("dockhand.clean.enable", "true")
        .with_label("dockhand.clean.exec", exec)
        .with_args(["sleep", "3600"])
}

async fn service_id(client: &Client, name: &str) -> String {
    client.service(name).await.unwrap().id
}

/// Waits up to 30 s for `n` running tasks of `service`; returns `(task, node, container)`.
async fn running_tasks(client: &Client, service: &str, n: usize) -> Vec<(String, String, String)> {
    let filters = Filters::new().with("service", service).with("desired-state", "running");
    for _ in 0..300 {
        let tasks = client.tasks(&filters).await.unwrap();
        let running: Vec<_> = tasks
            .iter()
            .filter(|t| t.status.state == "running")
            .filter_map(|t| {
                Some((t.id.clone(), t.node_id.clone(), t.status.container_status.clone()?.container_id))
            })
            .collect();
        if running.len() == n {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{service} does not have {n} running tasks after 30 s");
}

/// Runs `cmd` in `container` through `client` and returns its output.
async fn exec_text(client: &Client, container: &str, cmd: &[&str]) -> String {
    let mut out = client.exec(container, &ExecSpec::new(cmd.iter().copied())).await.unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = out.next().await {
        text.extend_from_slice(&chunk.unwrap().data);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Waits up to 30 s for a helper service of `target` whose task runs.
async fn wait_for_running_helper(client: &Client, target: &str) {
    let filters = Filters::new().with("label", format!("dockhand.helper.target={target}"));
    for _ in 0..300 {
        for helper in client.services(&filters).await.unwrap() {
            let tasks = client.tasks(&Filters::new().with("service", &helper.id)).await.unwrap();
            if tasks.iter().any(|t| t.status.state == "running") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no helper of {target} ran within 30 s");
}

/// clean-node on a worker, asked of the manager: a helper on node2 prunes its stopped
/// containers (not another job's finished helper) and unused images, its volumes (dangling
/// ones included) stay, another node is untouched, and the reclaimed space is reported.
#[tokio::test]
async fn clean_node_prunes_a_worker_through_a_helper() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let ((node2_id, node2_name), (node3_id, _)) = (ids[1].clone(), ids[2].clone());
    let (node2, node3) = (&s.nodes[1].1, &s.nodes[2].1);
    let volume = unique_name("clean-vol");
    // A job that leaves a stopped container (with a named volume) on each node.
    let stopped = |node: &str, name: &str| {
        ServiceSpec::new(name, BUSYBOX_IMAGE)
            .replicated_job(1)
            .with_restart_condition("none")
            .with_constraint(format!("node.id=={node}"))
            .with_volume(&volume, "/data")
            .with_args(["sh", "-c", "echo x > /data/x"])
    };
    let (on2, on3) = (unique_name("clean-2"), unique_name("clean-3"));
    // busybox stays in use on node2 (other tests need it): a sleeper pinned there.
    let sleeper = unique_name("clean-keep");
    let keep = ServiceSpec::new(&sleeper, BUSYBOX_IMAGE)
        .with_constraint(format!("node.id=={node2_id}"))
        .with_args(["sleep", "3600"]);
    for spec in [stopped(&node2_id, &on2), stopped(&node3_id, &on3), keep] {
        s.manager().create_service(&spec).await.unwrap();
    }
    let _guards: Vec<ServiceGuard> =
        [&on2, &on3, &sleeper].iter().map(|n| ServiceGuard::new(s.manager_url(), n)).collect();
    let c2 = wait_for_task(s.manager(), &on2, "complete").await.status.container_status.unwrap().container_id;
    let c3 = wait_for_task(s.manager(), &on3, "complete").await.status.container_status.unwrap().container_id;
    wait_for_task(s.manager(), &sleeper, "running").await;
    // An image of the test's own, used by nothing: prune must take it.
    let unused = format!("{}:x", unique_name("clean-img"));
    let tar = dockhand_e2e::one_file_tar("marker", &vec![b'x'; 64 * 1024]);
    node2.import_image(&unused, &[], tar.into()).await.unwrap();
    assert!(node2.image(&unused).await.is_ok(), "the unused image to prune is there");

    // Another job's finished helper: its stopped container holds the report that job has
    // yet to read from its logs, so the prune must spare it.
    let finished_helper = NewContainer::new(BUSYBOX_IMAGE, ["true"])
        .with_label("dockhand.helper", "true")
        .with_label("dockhand.helper.target", "service/another-jobs");
    let helper = node2.run_container(&unique_name("clean-helper"), &finished_helper).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node2.container(&helper).await.unwrap().state.running {
        assert!(Instant::now() < deadline, "the finished helper's container did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let state = tempfile::tempdir().unwrap();
    let out = dockhand(&s, &state, &["clean", "node", &node2_name, "--json"]);
    let spared = node2.container(&helper).await;
    let _ = node2.remove_container(&helper).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["target"]["id"], node2_id.as_str());
    assert!(spared.is_ok(), "the prune took another job's finished helper: {spared:?}");
    let steps = job["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["container-prune", "image-prune", "builder-prune"], "{job}");
    assert!(steps.iter().all(|s| s["node"] == node2_name.as_str() && s["reclaimed_bytes"].is_u64()), "{job}");
    assert!(steps[1]["reclaimed_bytes"].as_u64().unwrap() > 0, "the unused image freed space: {job}");
    // The job is recorded in the store, and read back.
    let id = job["id"].as_str().unwrap();
    let out = dockhand(&s, &state, &["jobs", "show", id]);
    assert!(stdout(&out).contains("image-prune") && stdout(&out).contains(id), "{}", stdout(&out));

    assert!(node2.container(&c2).await.unwrap_err().is_not_found(), "the stopped container is gone");
    assert!(node2.image(&unused).await.unwrap_err().is_not_found(), "the unused image is gone");
    assert!(node2.image(BUSYBOX_IMAGE).await.is_ok(), "an image in use stays");
    assert!(node2.image(&helper_image()).await.is_ok(), "the helper's own image was in use");
    assert!(node2.volume(&volume).await.is_ok(), "volumes, dangling ones too, are never touched");
    assert!(node3.container(&c3).await.is_ok(), "another node is untouched");
    assert_nothing_left(s.manager(), &[format!("node/{node2_id}")]).await;

    // An engine that is not a manager cleans only itself, and says so.
    let out = dockhand_e2e::run(
        env!("CARGO_BIN_EXE_dockhand").as_ref(),
        &["-H", &s.nodes[1].0, "clean", "node", "node3"],
        &pairs(&env(&state)),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a swarm manager") && stderr(&out).contains("node3"),
        "{}",
        stderr(&out)
    );
}

/// clean-service execs in every task, each on its own node, and each task's marker is read
/// back through that node's engine.
async fn clean_service_reaches_every_task(global: bool) {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let name = unique_name(if global { "cs-global" } else { "cs-spread" });
    let spec = cleanable(&name, "hostname > /tmp/dh-marker; echo marked");
    let spec = if global { spec.global() } else { spec.with_replicas(3) };
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let tasks = running_tasks(s.manager(), &name, 3).await;
    let mut nodes: Vec<&str> = tasks.iter().map(|(_, n, _)| n.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "the tasks are spread over the 3 nodes: {tasks:?}");

    let state = tempfile::tempdir().unwrap();
    let out = dockhand(&s, &state, &["clean", "service", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "succeeded", "{job}");
    let steps = job["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{job}");
    for (task, node, container) in &tasks {
        let step =
            steps.iter().find(|s| s["task"] == task.as_str()).unwrap_or_else(|| panic!("{task}: {job}"));
        let i = ids.iter().position(|(id, _)| id == node).unwrap();
        assert_eq!(step["node"], ids[i].1.as_str(), "{step}");
        assert_eq!(step["exit_code"], 0, "{step}");
        assert!(step["output_tail"].as_str().unwrap().contains("marked"), "{step}");
        // Read through the task's own node.
        let marker = exec_text(&s.nodes[i].1, container, &["cat", "/tmp/dh-marker"]).await;
        assert_eq!(marker.trim(), &container[..12], "the marker of task {task} on node {}", ids[i].1);
    }
    assert_nothing_left(s.manager(), &[format!("service/{}", service_id(s.manager(), &name).await)]).await;
}

#[tokio::test]
async fn clean_service_execs_in_every_replica_on_three_nodes() {
    clean_service_reaches_every_task(false).await;
}

#[tokio::test]
async fn clean_service_execs_in_every_task_of_a_global_service() {
    clean_service_reaches_every_task(true).await;
}

/// Without `clean.enable=true` clean-service is refused (exit 3), naming the label; an
/// engine that is not a manager says so; a failing command fails the job (exit 1).
#[tokio::test]
async fn clean_service_refusals_and_failures_say_why() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let state = tempfile::tempdir().unwrap();
    let plain = unique_name("cs-plain");
    s.manager()
        .create_service(&ServiceSpec::new(&plain, BUSYBOX_IMAGE).with_args(["sleep", "3600"]))
        .await
        .unwrap();
    let failing = unique_name("cs-fail");
    // A secret in the output and a token label: neither may reach the job store.
    let spec = cleanable(&failing, "echo oops >&2; echo password=Sup3rSecretValue; exit 7")
        .with_label("dockhand.update.token", "TokTokSecret123");
    s.manager().create_service(&spec).await.unwrap();
    let _guards = [ServiceGuard::new(s.manager_url(), &plain), ServiceGuard::new(s.manager_url(), &failing)];

    let out = dockhand(&s, &state, &["clean", "service", &plain, "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "refused");
    assert!(job["steps"][0]["error"].as_str().unwrap().contains("dockhand.clean.enable=true"), "{job}");

    running_tasks(s.manager(), &failing, 1).await;
    let out = dockhand(&s, &state, &["clean", "service", &failing]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("exited with 7"), "{}", stdout(&out));
    let out = dockhand(&s, &state, &["jobs", "show", "--json", &last_id(&s, &state, "failed")]);
    assert!(stdout(&out).contains("oops"), "the output tail is recorded: {}", stdout(&out));
    for file in ["jobs.sqlite", "jobs.sqlite-wal"] {
        let bytes = std::fs::read(state.path().join("dockhand").join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["Sup3rSecretValue", "TokTokSecret123"] {
            assert!(!text.contains(secret), "{secret} is in {file}");
        }
    }

    let out = dockhand(&s, &state, &["clean", "service", "no-such-service"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no service \"no-such-service\""), "{}", stderr(&out));
    let out = dockhand_e2e::run(
        env!("CARGO_BIN_EXE_dockhand").as_ref(),
        &["-H", &s.nodes[1].0, "clean", "service", &failing],
        &pairs(&env(&state)),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a swarm manager"), "{}", stderr(&out));
    for name in [&plain, &failing] {
        assert_nothing_left(s.manager(), &[format!("service/{}", service_id(s.manager(), name).await)]).await;
    }
}

/// The newest job with `status` in the test's store.
fn last_id(s: &TestSwarm, state: &tempfile::TempDir, status: &str) -> String {
    let out = dockhand(s, state, &["jobs", "ls", "--json", "--status", status]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    jobs[0]["id"].as_str().unwrap_or_else(|| panic!("no {status} job: {jobs}")).to_owned()
}

/// While one clean-service runs (its task on a worker), a second exits 4 naming the first.
#[tokio::test]
async fn a_second_clean_service_while_one_runs_is_busy() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let name = unique_name("cs-busy");
    // Longer than the 10 s the second waits for the lock.
    let spec = cleanable(&name, "sleep 14").with_constraint(format!("node.id=={}", ids[1].0));
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    running_tasks(s.manager(), &name, 1).await;
    let target = format!("service/{}", service_id(s.manager(), &name).await);
    let state = tempfile::tempdir().unwrap();
    let first = spawn(&s, &state, &["clean", "service", &name, "--json"], &[]);
    wait_for_running_helper(s.manager(), &target).await;
    let locks =
        s.manager().configs(&Filters::new().with("label", format!("dockhand.lock={target}"))).await.unwrap();
    let holder = locks[0].spec.labels["dockhand.lock.job"].clone();
    let second = dockhand(&s, &state, &["clean", "service", &name, "--json"]);
    assert_eq!(second.status.code(), Some(4), "{}\n{}", stdout(&second), stderr(&second));
    let job = last_job(&second);
    assert_eq!(job["status"], "busy");
    assert!(job["steps"][0]["error"].as_str().unwrap().contains(&holder), "names the holder {holder}: {job}");
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}\n{}", stdout(&first), stderr(&first));
    assert_eq!(last_job(&first)["id"], holder.as_str());
    assert_nothing_left(s.manager(), &[target]).await;
}

/// A helper that cannot be scheduled (its node is paused) fails after the pending timeout,
/// naming the node and the scheduler's reason, and leaves nothing behind.
#[tokio::test]
async fn a_helper_that_stays_pending_fails_naming_the_node() {
    let _paused = NODE3_SCHEDULABLE.write().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let (node3_id, node3_name) = ids[2].clone();
    let set_availability = |availability: &'static str| {
        let (client, id) = (s.manager().clone(), node3_id.clone());
        async move {
            let node = client.node(&id).await.unwrap();
            let mut spec = node.spec.clone();
            spec.availability = availability.to_owned();
            client.update_node(&id, node.version.index, &spec).await.unwrap();
        }
    };
    set_availability("pause").await;
    // The scheduler learns of the pause a moment after the update.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = dockhand(&s, &state, &["clean", "node", &node3_name, "--pending-timeout", "2s", "--json"]);
    set_availability("active").await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "failed");
    let error = job["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains(&node3_name) && error.contains("pending"), "{job}");
    assert!(error.contains("no suitable node"), "the scheduler's own message: {job}");
    assert!(started.elapsed() < Duration::from_secs(60), "it did not wait for the whole budget");
    assert_nothing_left(s.manager(), &[format!("node/{node3_id}")]).await;
    // Once the node is free again, the swarm may still start the removed helper's task:
    // its agent must then do nothing, as it starts after its start-by time.
    let node3 = &s.nodes[2].1;
    let name = format!("dh-helper-{}", job["id"].as_str().unwrap());
    let mine = Filters::new().with("name", &name);
    for _ in 0..50 {
        for c in node3.containers(&mine).await.unwrap() {
            let inspect = node3.container(&c.id).await.unwrap();
            if !inspect.state.running && inspect.state.status != "created" {
                assert_ne!(inspect.state.exit_code, 0, "a helper dockhand gave up on did its work");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGINT while a helper works cancels the job: exit 130, recorded as cancelled, no helper
/// and no lock left.
#[tokio::test]
async fn sigint_cancels_cleanly() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let name = unique_name("cs-cancel");
    let spec = cleanable(&name, "sleep 30").with_constraint(format!("node.id=={}", ids[1].0));
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    running_tasks(s.manager(), &name, 1).await;
    let target = format!("service/{}", service_id(s.manager(), &name).await);
    let state = tempfile::tempdir().unwrap();
    let child = spawn(&s, &state, &["clean", "service", &name, "--json"], &[]);
    wait_for_running_helper(s.manager(), &target).await;
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(last_job(&out)["status"], "cancelled");
    assert!(!last_id(&s, &state, "cancelled").is_empty());
    assert_nothing_left(s.manager(), &[target]).await;
}

/// After `kill -9` of the CLI mid-job, the next run succeeds once the lease has expired and
/// the helper the dead one left has finished; nothing is left.
#[tokio::test]
async fn after_kill_9_the_next_run_succeeds_and_nothing_is_left() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let name = unique_name("cs-kill");
    let spec = cleanable(&name, "sleep 3").with_constraint(format!("node.id=={}", ids[1].0));
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    running_tasks(s.manager(), &name, 1).await;
    let target = format!("service/{}", service_id(s.manager(), &name).await);
    let state = tempfile::tempdir().unwrap();
    let lease = [("DOCKHAND_LOCK_LEASE", "2s")];
    let mut child = spawn(&s, &state, &["clean", "service", &name], &lease);
    wait_for_running_helper(s.manager(), &target).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut codes = Vec::new();
    loop {
        let out = dockhand(&s, &state, &["clean", "service", &name, "--lock-lease", "2s"]);
        codes.push(out.status.code());
        if out.status.code() == Some(0) {
            break;
        }
        assert_eq!(out.status.code(), Some(4), "only busy until then: {}\n{}", stdout(&out), stderr(&out));
        assert!(Instant::now() < deadline, "still busy after 60 s: {codes:?}");
    }
    assert_nothing_left(s.manager(), &[target]).await;
}

/// Peak resident memory of a process, sampled until it exits, and its output.
fn peak_rss_kib(child: Child) -> (u64, Output) {
    let status = format!("/proc/{}/status", child.id());
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while let Ok(text) = std::fs::read_to_string(&status) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            match hwm {
                Some(v) => peak = peak.max(v),
                None => break, // a zombie has no memory lines
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    });
    let out = child.wait_with_output().unwrap();
    (sampler.join().unwrap(), out)
}

/// 10 MiB of exec output keeps the CLI's memory bounded (its peak grows by far less than
/// the output) and records only the tail, with how much was cut.
#[tokio::test]
async fn ten_mib_of_output_keeps_memory_bounded_and_the_tail_recorded() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let pinned =
        |name: &str, exec: &str| cleanable(name, exec).with_constraint(format!("node.id=={}", ids[0].0));
    let (big, small) = (unique_name("cs-big"), unique_name("cs-small"));
    s.manager()
        .create_service(&pinned(&big, "head -c 10485760 /dev/zero | tr '\\0' x; echo; echo THE-END"))
        .await
        .unwrap();
    s.manager().create_service(&pinned(&small, "echo THE-END")).await.unwrap();
    let _guards = [ServiceGuard::new(s.manager_url(), &big), ServiceGuard::new(s.manager_url(), &small)];
    running_tasks(s.manager(), &big, 1).await;
    running_tasks(s.manager(), &small, 1).await;
    let state = tempfile::tempdir().unwrap();
    let (small_peak, out) = peak_rss_kib(spawn(&s, &state, &["clean", "service", &small, "--json"], &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (big_peak, out) = peak_rss_kib(spawn(&s, &state, &["clean", "service", &big, "--json"], &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let job = last_job(&out);
    let tail = job["steps"][0]["output_tail"].as_str().unwrap();
    // The kept end starts after its first newline: the 4 KiB of the long line before it were
    // cut from the front, and a partial line is never shown (R3-14).
    assert!(
        tail.starts_with("[10485761 earlier bytes not kept]\nTHE-END"),
        "{}",
        &tail[..80.min(tail.len())]
    );
    assert!(tail.trim_end().ends_with("THE-END") && tail.len() < 4200, "{} bytes", tail.len());
    assert!(small_peak > 0 && big_peak > 0);
    assert!(
        big_peak < small_peak + 4 * 1024,
        "10 MiB of output grew the peak from {small_peak} KiB to {big_peak} KiB"
    );
    for name in [&big, &small] {
        assert_nothing_left(s.manager(), &[format!("service/{}", service_id(s.manager(), name).await)]).await;
    }
}

/// clean-node of a node whose lock another job holds exits 4, naming that job, and touches
/// nothing.
#[tokio::test]
async fn clean_node_of_a_locked_node_exits_4_naming_the_holder() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let node1 = s.manager().info().await.unwrap().swarm.node_id;
    let locks = dockhand_jobs::Locks::new(
        s.manager().clone(),
        dockhand_jobs::Locks::process_holder("cli-test"),
        dockhand_jobs::LockSettings::default(),
    );
    let guard = locks.acquire(&dockhand_jobs::LockTarget::Node(node1), "job-holding-node1").await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = dockhand(&s, &state, &["clean", "node", "--json"]);
    guard.release().await.unwrap();
    assert_eq!(out.status.code(), Some(4), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["status"], "busy");
    assert!(job["steps"][0]["error"].as_str().unwrap().contains("job-holding-node1"), "{job}");
    assert!(job["steps"].as_array().unwrap().iter().all(|s| !s["kind"].as_str().unwrap().ends_with("prune")));
}

/// dockhand running as a swarm service (as the server will) gives helpers its own image:
/// `volumes unused` run in a service of the test image reaches node2 and node3 through
/// helpers of that image, without `--helper-image` (the default image does not exist here).
#[tokio::test]
async fn inside_a_service_helpers_run_dockhands_own_image_by_digest() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let pinned = dockhand_e2e::pinned_helper_image();
    assert!(pinned.contains("@sha256:"), "{pinned}");
    let (address, user, password) = dockhand_e2e::swarm_registry();
    // Every node holds the pinned image while the test runs (a clean-node elsewhere must
    // not prune it): a global holder, created with the registry's credentials.
    let holder = unique_name("pinned-hold");
    let hold = ServiceSpec::new(&holder, &pinned).global().with_args(["agent", "hold", "--seconds", "600"]);
    let auth = dockhand_engine::RegistryAuth::password(&user, &password, &address);
    s.manager().create_service_with_auth(&hold, &auth).await.unwrap();
    let _hold = ServiceGuard::new(s.manager_url(), &holder);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tasks = s.manager().tasks(&Filters::new().with("service", &holder)).await.unwrap();
        if tasks.iter().filter(|t| t.status.state == "running").count() == ids.len() {
            break;
        }
        assert!(Instant::now() < deadline, "the holder did not run on every node: {tasks:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Deployed by digest, as an operator deploys it: its helpers run that digest on every
    // node, with no --helper-image.
    let (state, text) = volumes_unused_in_a_service(&s, &pinned, &ids[0].0).await;
    assert_eq!(state, "complete", "{text}");
    assert!(!text.contains("not read"), "every node was read: {text}");
    for (id, _) in &ids {
        assert_nothing_left(s.manager(), &[format!("volumes/{id}")]).await;
    }
    // R3-04: a tag is not what dockhand can vouch for: a node could pull another image of
    // that name. The helpers are refused, saying what to set, and none is created.
    let (_, text) = volumes_unused_in_a_service(&s, HELPER_IMAGE, &ids[0].0).await;
    assert!(text.contains("not pinned by digest") && text.contains("DOCKHAND_HELPER_IMAGE"), "{text}");
    for (id, _) in &ids {
        assert_nothing_left(s.manager(), &[format!("volumes/{id}")]).await;
    }
}

/// `dockhand volumes unused --json` run as a one-off swarm service of `image` on `node`,
/// with the node's engine socket: its task's end state and its output.
async fn volumes_unused_in_a_service(s: &TestSwarm, image: &str, node: &str) -> (String, String) {
    let name = unique_name("in-service");
    let spec = ServiceSpec::new(&name, image)
        .replicated_job(1)
        .with_restart_condition("none")
        .with_constraint(format!("node.id=={node}"))
        .with_bind("/var/run/docker.sock", "/var/run/docker.sock")
        .with_log_driver("json-file")
        .with_args(["volumes", "unused", "--json"]);
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let mut task = None;
    for _ in 0..1200 {
        let tasks = s.manager().tasks(&Filters::new().with("service", &name)).await.unwrap();
        task =
            tasks.into_iter().find(|t| matches!(t.status.state.as_str(), "complete" | "failed" | "rejected"));
        if task.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let task = task.expect("the service's task ended within 120 s");
    let mut logs = s.manager().service_logs(&name, &dockhand_engine::LogsOptions::new()).await.unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = logs.next().await {
        text.extend_from_slice(&chunk.unwrap().data);
    }
    let text = format!("{} {}", task.status.err, String::from_utf8_lossy(&text));
    (task.status.state, text)
}

/// A task whose container dies mid-exec is a failed step that names the task.
#[tokio::test]
async fn a_task_that_dies_mid_exec_fails_its_step_naming_it() {
    let _schedulable = every_node_schedulable().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let name = unique_name("cs-dies");
    // PID 1 is a shell that exits on TERM: the exec kills its own container.
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE)
        .with_label("dockhand.clean.enable", "true")
        .with_label("dockhand.clean.exec", "kill 1; sleep 20")
        .with_constraint(format!("node.id=={}", ids[1].0))
        .with_args(["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]);
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let (task, _, _) = running_tasks(s.manager(), &name, 1).await.remove(0);
    let state = tempfile::tempdir().unwrap();
    let out = dockhand(&s, &state, &["clean", "service", &name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let step = &job["steps"][0];
    assert_eq!(step["status"], "failed", "{job}");
    assert!(step["error"].as_str().unwrap().contains(&task), "names task {task}: {job}");
    assert_nothing_left(s.manager(), &[format!("service/{}", service_id(s.manager(), &name).await)]).await;
}

/// `--all`: clean-node runs one job per node (here with image prunes switched off by node
/// label, so the other tests' images stay), and clean-service one job per service whose
/// labels enable it. Runs alone: it touches every node.
/// A node's `clean.exec` runs after the prunes, in a helper of its `clean.exec.image` on
/// that node, as a step of its own with its output; with `clean.exec.host=true` in the
/// node's own namespaces; without the image the step fails naming the label. (It was parsed
/// and documented, and never run.)
#[tokio::test]
async fn a_nodes_clean_exec_runs_after_the_prunes_in_its_image_on_that_node() {
    let _alone = NODE3_SCHEDULABLE.write().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let (node3_id, node3_name) = ids[2].clone();
    let set = |labels: Vec<(&'static str, Option<&'static str>)>| {
        let (client, id) = (s.manager().clone(), node3_id.clone());
        async move {
            let node = client.node(&id).await.unwrap();
            let mut spec = node.spec.clone();
            for (key, value) in labels {
                match value {
                    Some(v) => spec.labels.insert(key.to_owned(), v.to_owned()),
                    None => spec.labels.remove(key),
                };
            }
            client.update_node(&id, node.version.index, &spec).await.unwrap();
        }
    };
    // The prunes are off: the other tests' images on node3 stay.
    let labels = vec![
        ("dockhand.clean.container.enable", Some("false")),
        ("dockhand.clean.image.enable", Some("false")),
        ("dockhand.clean.builder.enable", Some("false")),
        ("dockhand.clean.exec", Some("echo cleaned on $(hostname) && test -d /proc")),
        ("dockhand.clean.exec.image", Some(BUSYBOX_IMAGE)),
    ];
    set(labels).await;
    let state = tempfile::tempdir().unwrap();
    let out = dockhand(&s, &state, &["clean", "node", &node3_name, "--json"]);
    let job = last_job(&out);
    // `clean.exec.host=true`: the same label's command in the node's own namespaces, made
    // by the helper's agent through node3's engine (a swarm service cannot be privileged):
    // it writes where the node's mount namespace has /tmp and reads the node's hostname.
    let marker = format!("/tmp/{}", unique_name("dh-host-exec"));
    let host_command: &'static str =
        Box::leak(format!("echo from-the-host > {marker} && cat /proc/sys/kernel/hostname").into_boxed_str());
    set(vec![("dockhand.clean.exec", Some(host_command)), ("dockhand.clean.exec.host", Some("true"))]).await;
    let on_host = dockhand(&s, &state, &["clean", "node", &node3_name, "--json"]);
    let written = std::fs::read_to_string(&marker);
    let _ = std::fs::remove_file(&marker);
    set(vec![("dockhand.clean.exec.host", None), ("dockhand.clean.exec.image", None)]).await;
    let without_image = dockhand(&s, &state, &["clean", "node", &node3_name, "--json"]);
    set(vec![
        ("dockhand.clean.container.enable", None),
        ("dockhand.clean.image.enable", None),
        ("dockhand.clean.builder.enable", None),
        ("dockhand.clean.exec", None),
    ])
    .await;
    assert_eq!(on_host.status.code(), Some(0), "{}\n{}", stdout(&on_host), stderr(&on_host));
    let host_job = last_job(&on_host);
    let host_exec =
        host_job["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "exec").unwrap().clone();
    assert_eq!(host_exec["status"], "succeeded", "{host_job}");
    assert_eq!(host_exec["node"], node3_name.as_str(), "{host_job}");
    assert_eq!(
        host_exec["output_tail"].as_str().unwrap_or_default().trim(),
        node3_name,
        "the node's own hostname: {host_job}"
    );
    assert_eq!(written.ok().as_deref(), Some("from-the-host\n"), "written in the node's mount namespace");
    let privileged = s.nodes[2]
        .1
        .containers(&dockhand_engine::Filters::new().with("label", "dockhand.host-exec"))
        .await
        .unwrap();
    assert!(privileged.is_empty(), "the privileged container is removed: {privileged:?}");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let steps = job["steps"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> =
        steps.iter().map(|s| (s["kind"].as_str().unwrap(), s["status"].as_str().unwrap())).collect();
    assert_eq!(
        kinds,
        [
            ("container-prune", "skipped"),
            ("image-prune", "skipped"),
            ("builder-prune", "skipped"),
            ("exec", "succeeded")
        ],
        "{job}"
    );
    let exec = &steps[3];
    assert_eq!(exec["node"], node3_name.as_str(), "{job}");
    assert!(exec["output_tail"].as_str().unwrap_or_default().contains("cleaned on "), "{job}");

    assert_eq!(
        without_image.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&without_image),
        stderr(&without_image)
    );
    let job = last_job(&without_image);
    let exec = job["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "exec").unwrap().clone();
    assert_eq!(exec["status"], "failed", "{job}");
    assert!(exec["error"].as_str().unwrap().contains("dockhand.clean.exec.image"), "{job}");
    assert_nothing_left(s.manager(), &[format!("node/{node3_id}")]).await;
}

#[tokio::test]
async fn all_runs_one_job_per_node_and_per_enabled_service() {
    let _alone = NODE3_SCHEDULABLE.write().await;
    let s = dockhand_e2e::swarm().await;
    let ids = node_ids(&s).await;
    let label = |value: Option<&'static str>| {
        let (client, ids) = (s.manager().clone(), ids.clone());
        async move {
            for (id, _) in &ids {
                let node = client.node(id).await.unwrap();
                let mut spec = node.spec.clone();
                match value {
                    Some(v) => spec.labels.insert("dockhand.clean.image.enable".to_owned(), v.to_owned()),
                    None => spec.labels.remove("dockhand.clean.image.enable"),
                };
                client.update_node(id, node.version.index, &spec).await.unwrap();
            }
        }
    };
    label(Some("false")).await;
    let state = tempfile::tempdir().unwrap();
    let out = dockhand(&s, &state, &["clean", "node", "--all", "--json"]);
    label(None).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let jobs: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("action").is_some())
        .collect();
    let mut cleaned: Vec<&str> = jobs.iter().map(|j| j["target"]["hostname"].as_str().unwrap()).collect();
    cleaned.sort_unstable();
    let mut names: Vec<&str> = ids.iter().map(|(_, n)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(cleaned, names, "one job per node");
    for job in &jobs {
        assert_eq!(job["status"], "succeeded", "{job}");
        let image = job["steps"].as_array().unwrap().iter().find(|s| s["kind"] == "image-prune").unwrap();
        assert_eq!(image["status"], "skipped", "{job}");
        assert!(image["error"].as_str().unwrap().contains("dockhand.clean.image.enable=false"), "{job}");
    }

    let (a, b, plain) = (unique_name("all-a"), unique_name("all-b"), unique_name("all-plain"));
    for spec in [
        cleanable(&a, "echo a"),
        cleanable(&b, "echo b"),
        ServiceSpec::new(&plain, BUSYBOX_IMAGE).with_args(["sleep", "3600"]),
    ] {
        s.manager().create_service(&spec).await.unwrap();
    }
    let _guards = [&a, &b, &plain].map(|n| ServiceGuard::new(s.manager_url(), n));
    for name in [&a, &b] {
        running_tasks(s.manager(), name, 1).await;
    }
    let out = dockhand(&s, &state, &["clean", "service", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let finished: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("action").is_some())
        .collect();
    let services: Vec<&str> = finished.iter().map(|j| j["target"]["name"].as_str().unwrap()).collect();
    assert!(services.contains(&a.as_str()) && services.contains(&b.as_str()), "{services:?}");
    assert!(!services.contains(&plain.as_str()), "a service without the label is not in scope");
    let mut targets: Vec<String> = ids.iter().map(|(id, _)| format!("node/{id}")).collect();
    for name in [&a, &b] {
        targets.push(format!("service/{}", service_id(s.manager(), name).await));
    }
    assert_nothing_left(s.manager(), &targets).await;
}
