//! Volumes on other nodes: helpers, relays, several nodes, `volume move`, node backups.

use super::*;

/// A task's container on whatever node, and that node's client.
async fn task_container(s: &TestSwarm, service: &str) -> (Client, String) {
    let container = running_container(s.manager(), service).await;
    for (_, node) in &s.nodes {
        if node.container(&container).await.is_ok() {
            return (node.clone(), container);
        }
    }
    panic!("no node has container {container}");
}

/// Tests that move bytes between nodes run two at a time: each makes and removes overlay
/// networks, and on a 2-core machine a dozen of them at once mostly measure the scheduler.
static BETWEEN_NODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A backed-up service pinned to the node `node_id`, its volume filled with the test tree
/// of `mib` MiB: the guard that removes it, and the volume's listing.
async fn on_worker(
    s: &TestSwarm,
    node_id: &str,
    name: &str,
    volume: &str,
    labels: &[(&str, &str)],
    mib: u32,
) -> (ServiceGuard, String) {
    let mut spec = backed_up(name, volume, labels);
    spec.task_template.placement = None;
    let spec = spec.with_constraint(format!("node.id=={node_id}"));
    s.manager().create_service(&spec).await.unwrap();
    let guard = ServiceGuard::new(s.manager_url(), name);
    let (node, container) = task_container(s, name).await;
    sh(&node, &container, &tree_script(mib)).await;
    (guard, sh(&node, &container, LISTING).await)
}

/// With only the `dockhand` binary, a first backup and restore on the node dockhand is
/// connected to need no image of ours (issue 23, defect 4): helpers there run an image
/// dockhand makes from its own executable, `dockhand/helper:<version>-<build>`, by its ID.
/// On another node nothing can be made: the job fails before it stops anything, saying
/// what to run.
#[tokio::test]
async fn a_first_backup_needs_no_image_of_ours() {
    let s = dockhand_e2e::swarm().await;
    let (name, _volume, _guard) = stopping_service(&s, "bk-own").await;
    let mut setup = Setup::new("    {}\n");
    setup.own_helper = true;
    let job = round_trip(&s, &setup, &name).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let made = s.manager().images(&Filters::new().with("reference", "dockhand/helper")).await.unwrap();
    let version = format!("dockhand/helper:{}-", env!("CARGO_PKG_VERSION"));
    assert!(made.iter().any(|i| i.repo_tags.iter().any(|t| t.starts_with(&version))), "{made:?}");

    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (worker, volume) = (unique_name("bk-own-worker"), unique_name("bk-own-worker-vol"));
    let (_worker_guard, _) =
        on_worker(&s, &ids[1].0, &worker, &volume, &[("dockhand.backup.stop", "true")], 1).await;
    let out = setup.run(&s, &["backup", &worker, "--json"]);
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("dockhand helper-image push") && text.contains("DOCKHAND_HELPER_IMAGE"), "{text}");
    assert_eq!(replicas_and_intent(s.manager(), &worker).await, (Some(1), None), "{text}");
    let target = format!("service/{}", s.manager().service(&worker).await.unwrap().id);
    assert_nothing_left(s.manager(), &[target]).await;
}

/// `dockhand helper-image push REPOSITORY` makes the same image, pushes it with the
/// registry's credential from `config.json` and prints the digest reference to configure;
/// a worker that lacks it pulls it with that credential when a helper needs it. Without
/// the credential the registry refuses the push, and the error says so.
#[tokio::test]
async fn a_pushed_helper_image_is_pulled_by_a_worker_with_the_registrys_credential() {
    let s = dockhand_e2e::swarm().await;
    let (registry, _, _) = dockhand_e2e::swarm_registry();
    let repository = format!("{registry}/{}", unique_name("dh-helper"));
    let push = |config: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_dockhand"))
            .args(["-H", s.manager_url(), "helper-image", "push", &repository])
            .env("DOCKER_CONFIG", config)
            .env_remove("DOCKHAND_HELPER_IMAGE")
            .output()
            .unwrap()
    };
    let nowhere = tempfile::tempdir().unwrap();
    let refused = push(nowhere.path());
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(stderr(&refused).contains(&format!("push {repository}:")), "{}", stderr(&refused));
    let out = push(&dockhand_e2e::swarm_docker_config());
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let pushed = stdout(&out).trim().to_owned();
    let digest = pushed.strip_prefix(&format!("{repository}@sha256:")).unwrap_or_default();
    assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()), "{pushed}");

    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let worker = &s.nodes[2].1;
    assert!(worker.image(&pushed).await.is_err(), "node3 does not have {pushed} yet");
    let (name, volume) = (unique_name("bk-pushed"), unique_name("bk-pushed-vol"));
    let (_guard, _) = on_worker(&s, &ids[2].0, &name, &volume, &[], 1).await;
    let mut setup = Setup::new("    {}\n");
    setup.extra = vec![("DOCKHAND_HELPER_IMAGE".into(), pushed.clone())];
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert!(worker.image(&pushed).await.is_ok(), "node3 pulled {pushed}");
}

#[tokio::test]
async fn a_volume_on_a_worker_round_trips_byte_exact_through_a_helper() {
    let s = dockhand_e2e::swarm().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (name, volume) = (unique_name("bk-worker"), unique_name("bk-worker-vol"));
    let (_guard, before) =
        on_worker(&s, &ids[1].0, &name, &volume, &[("dockhand.backup.stop", "true")], 200).await;
    let setup = Setup::new("    {}\n");

    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let upload = &job["steps"][1];
    assert_eq!(upload["node"], ids[1].1.as_str(), "{job}");
    assert!(upload["object"].as_str().unwrap().contains(&format!("/{}_{volume}_", ids[1].1)), "{job}");
    assert_eq!(upload["via"], "channel", "the relay beside dockhand writes to its channel: {job}");

    let (node, container) = task_container(&s, &name).await;
    sh(&node, &container, "rm -rf /data/* && echo junk > /data/junk").await;
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let restored = last_job(&out);
    assert_eq!(restored["steps"][2]["via"], "network", "the relay sends it to the node's helper: {restored}");
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(before, sh(&node, &container, LISTING).await, "the worker's volume came back byte for byte");

    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    assert_nothing_left(s.manager(), std::slice::from_ref(&target)).await;
    let label = format!("dockhand.helper.target={target}");
    let networks = s.manager().networks(&Filters::new().with("label", label.clone())).await.unwrap();
    assert!(networks.is_empty(), "transfer networks left: {networks:?}");
    let relays = s.manager().containers(&Filters::new().with("label", label)).await.unwrap();
    assert!(relays.is_empty(), "relay containers left: {relays:?}");
}

/// The running container of `service` on the node `client` talks to.
async fn container_on(client: &Client, service: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let filters = Filters::new()
            .with("label", format!("com.docker.swarm.service.name={service}"))
            .with("status", "running");
        if let Some(c) = client.containers(&filters).await.unwrap().into_iter().next() {
            return c.id;
        }
        assert!(Instant::now() < deadline, "no running task of {service} on this node within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `local` volume is one per node: a service whose tasks run on several nodes (here a
/// global service on the two workers) is backed up from every one of them, one archive per
/// node (the seed's `node_volume_date`), and `restore` brings each node's copy back to its
/// own node.
#[tokio::test]
async fn a_volume_on_several_nodes_is_backed_up_and_restored_per_node() {
    let s = dockhand_e2e::swarm().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (name, volume) = (unique_name("bk-spread"), unique_name("bk-spread-vol"));
    let mut spec = backed_up(&name, &volume, &[]).global();
    spec.task_template.placement = None;
    s.manager().create_service(&spec.with_constraint("node.role==worker")).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    for i in [1, 2] {
        let container = container_on(&s.nodes[i].1, &name).await;
        sh(&s.nodes[i].1, &container, &format!("echo {} > /data/who", ids[i].1)).await;
    }
    let setup = Setup::new("    {}\n");
    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let uploads: Vec<&serde_json::Value> =
        job["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "upload").collect();
    assert_eq!(uploads.len(), 2, "one archive per node: {job}");
    for i in [1, 2] {
        let host = ids[i].1.as_str();
        let upload =
            uploads.iter().find(|u| u["node"] == host).unwrap_or_else(|| panic!("none of {host}: {job}"));
        assert!(upload["object"].as_str().unwrap().contains(&format!("/{host}_{volume}_")), "{job}");
    }
    for i in [1, 2] {
        let container = container_on(&s.nodes[i].1, &name).await;
        sh(&s.nodes[i].1, &container, "rm -f /data/who && echo junk > /data/junk").await;
    }
    // A global service is restored under its running tasks only with --force.
    let out = setup.run(&s, &["restore", &name, "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let kinds: Vec<String> = steps(&job).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["verify", "restore", "restore"], "{job}");
    for i in [1, 2] {
        let container = container_on(&s.nodes[i].1, &name).await;
        let back = sh(&s.nodes[i].1, &container, "cat /data/who; ls /data").await;
        assert_eq!(back, format!("{}\nwho\n", ids[i].1), "node {}'s own copy, and only it: {job}", ids[i].1);
    }
    let target = format!("service/{}", s.manager().service(&name).await.unwrap().id);
    assert_nothing_left(s.manager(), &[target]).await;
}

#[tokio::test]
async fn volume_move_streams_node_to_node_and_moves_the_service() {
    let s = dockhand_e2e::swarm().await;
    let _node_jobs = dockhand_e2e::node_jobs_turn().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (name, volume) = (unique_name("mv"), unique_name("mv-vol"));
    let (_guard, before) = on_worker(&s, &ids[1].0, &name, &volume, &[], 64).await;
    let setup = Setup::new("    {}\n");

    let args =
        ["volume", "move", &volume, "--from", &ids[1].1, "--to", &ids[2].1, "--service", &name, "--json"];
    let out = setup.run(&s, &args);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let kinds: Vec<String> = steps(&job).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["stop", "move", "placement", "start"], "{job}");

    let service = s.manager().service(&name).await.unwrap();
    let constraints = service.spec.task_template.placement.map(|p| p.constraints).unwrap_or_default();
    assert_eq!(constraints, [format!("node.id=={}", ids[2].0)]);
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(node.info().await.unwrap().swarm.node_id, ids[2].0, "the service runs on the new node");
    assert_eq!(before, sh(&node, &container, LISTING).await, "the volume moved byte for byte");
    let target = format!("service/{}", service.id);
    assert_nothing_left(s.manager(), std::slice::from_ref(&target)).await;
    let networks = s
        .manager()
        .networks(&Filters::new().with("label", format!("dockhand.helper.target={target}")))
        .await
        .unwrap();
    assert!(networks.is_empty(), "transfer networks left: {networks:?}");
}

/// A volume on a worker, through its helper, to the remote target type `kind` and back,
/// encrypted with age on the way out and decrypted with the target's identity file.
pub(crate) async fn worker_round_trip_through(kind: &str) {
    use age::secrecy::ExposeSecret;
    let s = dockhand_e2e::swarm().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let key = age::x25519::Identity::generate();
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("identity.txt");
    std::fs::write(&identity, format!("{}\n", key.to_string().expose_secret())).unwrap();
    let encryption = format!(
        "      encryption:\n        recipients: [{}]\n        identity_file: {}\n",
        key.to_public(),
        identity.display()
    );
    let peer = Remote::start(kind);
    let (name, volume) = (unique_name(&format!("bk-w{kind}")), unique_name(&format!("bk-w{kind}-vol")));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "offsite")];
    let (_guard, before) = on_worker(&s, &ids[2].0, &name, &volume, &labels, 64).await;
    let mut setup = Setup::new(&format!("{}{encryption}", peer.target_yaml("offsite", "swarm-a")));
    setup.extra = peer.credentials();

    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{kind}: {}\n{}\n{}", stdout(&out), stderr(&out), peer.log());
    let job = last_job(&out);
    assert_eq!(job["steps"][1]["node"], ids[2].1.as_str());
    assert!(job["steps"][1]["object"].as_str().unwrap().ends_with(".tar.zst.age"), "{kind}: {job}");
    let (node, container) = task_container(&s, &name).await;
    sh(&node, &container, "rm -rf /data/*").await;
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{kind}: {}\n{}", stdout(&out), stderr(&out));
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(before, sh(&node, &container, LISTING).await, "{kind}: byte for byte through the peer");
}

#[tokio::test]
async fn an_encrypted_backup_on_a_worker_is_no_readable_tar_and_restores_with_the_identity() {
    use age::secrecy::ExposeSecret;
    let s = dockhand_e2e::swarm().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public().to_string();
    let (name, volume) = (unique_name("bk-age"), unique_name("bk-age-vol"));
    let labels = [("dockhand.backup.stop", "true"), ("dockhand.backup.target", "vault")];
    let (_guard, before) = on_worker(&s, &ids[1].0, &name, &volume, &labels, 200).await;
    let setup = Setup::new("");
    let vault = setup.dir.path().join("vault");
    config(
        setup.dir.path(),
        &format!(
            "    vault:\n      type: local\n      path: {}\n      encryption:\n        recipients: [{recipient}]\n",
            vault.display()
        ),
    );
    let identity = setup.dir.path().join("identity.txt");
    std::fs::write(&identity, format!("{}\n", key.to_string().expose_secret())).unwrap();

    let out = setup.run(&s, &["backup", &name, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let object = last_job(&out)["steps"][1]["object"].as_str().unwrap().to_owned();
    assert!(object.ends_with(".tar.zst.age"), "{object}");
    let archive = std::fs::read(vault.join(&object)).unwrap();
    assert!(archive.starts_with(b"age-encryption.org/v1\n"), "an age file");
    assert!(
        dockhand_jobs::backup::verify(archive.as_slice()).is_err(),
        "the object is not a readable archive"
    );
    assert!(!archive.windows(9).any(|w| w == b"big.bin\0\0"), "no tar header in the clear");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vault.join(format!("{object}.manifest.json"))).unwrap())
            .unwrap();
    assert_eq!(manifest["encrypted_to"], serde_json::json!([recipient]), "{manifest}");
    assert_eq!(manifest["bytes"].as_u64(), Some(archive.len() as u64));
    let text = serde_json::to_string(&manifest).unwrap();
    assert!(!text.contains("AGE-SECRET-KEY"), "{text}");

    let (node, container) = task_container(&s, &name).await;
    sh(&node, &container, "rm -rf /data/* && echo junk > /data/junk").await;
    let damaged = sh(&node, &container, LISTING).await;
    // Without the identity: refused before the service is touched.
    let out = setup.run(&s, &["restore", &name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    let error = job["steps"][0]["error"].as_str().unwrap();
    assert!(error.contains("--identity") && error.contains(&recipient), "{job}");
    assert_eq!(task_container(&s, &name).await.1, container, "the same task still runs");
    // With another identity: refused too, naming the file.
    let wrong = setup.dir.path().join("wrong.txt");
    let other = age::x25519::Identity::generate();
    std::fs::write(&wrong, format!("{}\n", other.to_string().expose_secret())).unwrap();
    let out = setup.run(&s, &["restore", &name, "--identity", wrong.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert!(job["steps"][0]["error"].as_str().unwrap().contains("wrong.txt"), "{job}");
    assert!(!stdout(&out).contains("AGE-SECRET-KEY") && !stderr(&out).contains("AGE-SECRET-KEY"));
    assert_eq!(sh(&node, &container, LISTING).await, damaged, "untouched");

    let out = setup.run(&s, &["restore", &name, "--identity", identity.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(before, sh(&node, &container, LISTING).await, "decrypted byte for byte");
}

/// Sets (or, with `None`, removes) `dockhand.*` labels on a node.
async fn label_node(s: &TestSwarm, id: &str, labels: &[(&str, Option<&str>)]) {
    let node = s.manager().node(id).await.unwrap();
    let mut spec = node.spec.clone();
    for (key, value) in labels {
        match value {
            Some(v) => spec.labels.insert(format!("dockhand.{key}"), (*v).to_owned()),
            None => spec.labels.remove(&format!("dockhand.{key}")),
        };
    }
    s.manager().update_node(id, node.version.index, &spec).await.unwrap();
}

#[tokio::test]
async fn a_nodes_labelled_volume_is_backed_up_after_its_exec_and_restored() {
    let s = dockhand_e2e::swarm().await;
    let _node_jobs = dockhand_e2e::node_jobs_turn().await;
    let _between_nodes = BETWEEN_NODES.acquire().await.unwrap();
    let ids = dockhand_e2e::node_ids(&s).await;
    let (node_id, hostname) = ids[2].clone();
    let (name, volume) = (unique_name("nb"), unique_name("nb-vol"));
    let (guard, _) = on_worker(&s, &node_id, &name, &volume, &[], 8).await;
    let exec = format!("echo dumped > /volumes/{volume}/dump.txt && ls /volumes && ls / | grep -c . ");
    // The exec writes its dump into the volume: read-write, which a label must ask for.
    let keys = [
        "backup.enable",
        "backup.volume-list-upload",
        "backup.exec",
        "backup.exec.image",
        "backup.exec.read-write",
    ];
    label_node(
        &s,
        &node_id,
        &[
            (keys[0], Some("true")),
            (keys[1], Some(volume.as_str())),
            (keys[2], Some(exec.as_str())),
            (keys[3], Some(BUSYBOX_IMAGE)),
            (keys[4], Some("true")),
        ],
    )
    .await;
    let setup = Setup::new("    {}\n");

    let out = setup.run(&s, &["backup", "node", &hostname, "--json"]);
    label_node(&s, &node_id, &keys.map(|k| (k, None))).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(job["action"], "backup-node", "{job}");
    let kinds: Vec<String> = steps(&job).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["exec", "upload"], "{job}");
    // The exec ran on the node, in its own image, with the volume and nothing else mounted.
    let said = job["steps"][0]["output_tail"].as_str().unwrap();
    assert!(said.contains(&volume), "{job}");
    assert_eq!(job["steps"][0]["node"], hostname.as_str(), "{job}");
    let object = job["steps"][1]["object"].as_str().unwrap().to_owned();
    assert!(object.starts_with(&format!("node/{hostname}/{hostname}_{volume}_")), "{object}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(setup.local_dir().join(format!("{object}.manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["service"], "node", "{manifest}");
    let out = setup.run(&s, &["backups", "ls", "node", &hostname]);
    assert!(out.status.success() && stdout(&out).contains(&object), "{}\n{}", stdout(&out), stderr(&out));

    let (node, container) = task_container(&s, &name).await;
    let before = sh(&node, &container, LISTING).await;
    assert!(before.contains("dump.txt"), "the exec wrote into the volume before the upload: {before}");
    sh(&node, &container, "rm -rf /data/* && echo junk > /data/junk").await;
    // A volume a running container mounts is refused, and left alone.
    let out = setup.run(&s, &["restore", "node", &hostname, "--json"]);
    assert_ne!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let job = last_job(&out);
    assert_eq!(steps(&job).last().unwrap(), &("restore".to_owned(), "refused".to_owned()), "{job}");
    assert!(job["steps"][1]["error"].as_str().unwrap().contains("running containers"), "{job}");
    assert!(sh(&node, &container, LISTING).await.contains("junk"));

    // With nothing mounting it, the volume comes back byte for byte.
    drop(guard);
    let deadline = Instant::now() + Duration::from_secs(60);
    let in_use = Filters::new().with("volume", volume.as_str()).with("status", "running");
    while !node.containers(&in_use).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the service's container did not stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = setup.run(&s, &["restore", "node", &hostname, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let name = unique_name("nb-after");
    let mut spec = backed_up(&name, &volume, &[]);
    spec.task_template.placement = None;
    s.manager().create_service(&spec.with_constraint(format!("node.id=={node_id}"))).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let (node, container) = task_container(&s, &name).await;
    assert_eq!(before, sh(&node, &container, LISTING).await, "the node's volume came back byte for byte");
    assert_nothing_left(s.manager(), &[format!("node/{node_id}")]).await;
}
