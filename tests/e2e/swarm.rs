//! Services, nodes and tasks against the real single-node swarm.

use dockhand_e2e::{BUSYBOX_IMAGE, ServiceGuard, engine, unique_name, wait_for_task};
use dockhand_engine::{Filters, LogsOptions, RegistryAuth, ServiceSpec, StreamKind, UpdateOptions};

#[tokio::test]
async fn a_service_is_created_listed_by_label_inspected_and_removed() {
    let e = engine().await;
    let name = unique_name("svc");
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE)
        .with_label("dockhand.test", &name)
        .with_label("dockhand.clean.enable", "true")
        .with_args(["sleep", "3600"]);
    let created = e.client.create_service(&spec).await.unwrap();
    let _cleanup = ServiceGuard::new(&e.url, &name);
    assert!(!created.id.is_empty());

    let listed =
        e.client.services(&Filters::new().with("label", format!("dockhand.test={name}"))).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, created.id);
    assert!(listed[0].service_status.is_some(), "status=true must bring task counts");

    let none = e.client.services(&Filters::new().with("label", "dockhand.test=nobody")).await.unwrap();
    assert!(none.is_empty());

    let by_name = e.client.service(&name).await.unwrap();
    assert_eq!(by_name.id, created.id);
    assert_eq!(by_name.spec.labels.get("dockhand.clean.enable").map(String::as_str), Some("true"));
    assert_eq!(by_name.spec.replicas(), Some(1));
    assert!(by_name.version.index > 0);

    // The task is scheduled on our only node and runs.
    let tasks = wait_for_task(&e.client, &name, "running").await;
    let node = e.client.info().await.unwrap().swarm.node_id;
    assert_eq!(tasks.node_id, node);
    assert_eq!(tasks.slot, Some(1));
    assert!(tasks.status.container_status.is_some_and(|c| !c.container_id.is_empty()));
    assert_eq!(e.client.task(&tasks.id).await.unwrap().service_id, created.id);

    e.client.remove_service(&name).await.unwrap();
    let gone = e.client.service(&name).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
}

#[tokio::test]
async fn the_node_is_a_ready_leader() {
    let e = engine().await;
    let nodes = e.client.nodes(&Filters::new()).await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let node = &nodes[0];
    assert_eq!(node.status.state, "ready");
    assert_eq!(node.spec.role, "manager");
    assert!(node.manager_status.as_ref().is_some_and(|m| m.leader));
    assert!(!node.description.engine.engine_version.is_empty());
    assert_eq!(e.client.node(&node.id).await.unwrap().id, node.id);

    let workers = e.client.nodes(&Filters::new().with("role", "worker")).await.unwrap();
    assert!(workers.is_empty());
}

#[tokio::test]
async fn missing_objects_are_not_found() {
    let e = engine().await;
    for err in [
        e.client.service("dockhand-no-such-service").await.unwrap_err(),
        e.client.node("dockhand-no-such-node").await.unwrap_err(),
        e.client.task("dockhand-no-such-task").await.unwrap_err(),
    ] {
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("dockhand-no-such-"), "{err}");
    }
}

#[tokio::test]
async fn update_rollback_and_a_stale_version() {
    let e = engine().await;
    let name = unique_name("upd");
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE).with_label("stage", "one").with_args(["sleep", "3600"]);
    e.client.create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(&e.url, &name);

    let before = e.client.service(&name).await.unwrap();
    let changed = before.spec.clone().with_label("stage", "two");
    // Credentials travel in X-Registry-Auth; the engine accepts them for a local image.
    let options =
        UpdateOptions::new().with_registry_auth(RegistryAuth::password("ci", "pw", "registry.invalid"));
    e.client.update_service(&name, before.version.index, &changed, &options).await.unwrap();
    let after = e.client.service(&name).await.unwrap();
    assert_eq!(after.spec.labels["stage"], "two");
    assert!(after.version.index > before.version.index);

    // The version read before the update is stale now: the engine refuses it.
    let err = e
        .client
        .update_service(&name, before.version.index, &changed, &UpdateOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("out of sequence"), "{err}");

    // The engine bumps the version while the update settles: modify_service re-reads.
    e.client.modify_service(&name, &UpdateOptions::new().rollback(), |_| Ok(())).await.unwrap();
    assert_eq!(e.client.service(&name).await.unwrap().spec.labels["stage"], "one");
}

#[tokio::test]
async fn scale_keeps_the_spec_and_refuses_global_services() {
    let e = engine().await;
    let name = unique_name("scale");
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE).with_label("keep", "me").with_args(["sleep", "3600"]);
    e.client.create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(&e.url, &name);
    e.client.scale_service(&name, 2).await.unwrap();
    let scaled = e.client.service(&name).await.unwrap();
    assert_eq!(scaled.spec.replicas(), Some(2));
    assert_eq!(scaled.spec.labels["keep"], "me");
    e.client.scale_service(&name, 0).await.unwrap();
    assert_eq!(e.client.service(&name).await.unwrap().spec.replicas(), Some(0));

    let global = unique_name("global");
    e.client
        .create_service(&ServiceSpec::new(&global, BUSYBOX_IMAGE).global().with_args(["sleep", "3600"]))
        .await
        .unwrap();
    let _g = ServiceGuard::new(&e.url, &global);
    let err = e.client.scale_service(&global, 3).await.unwrap_err();
    assert!(err.to_string().contains("only a replicated service"), "{err}");
}

#[tokio::test]
async fn logs_arrive_demultiplexed() {
    let e = engine().await;
    let name = unique_name("logs");
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE).with_args([
        "sh",
        "-c",
        "echo hello; echo oops >&2; sleep 3600",
    ]);
    e.client.create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(&e.url, &name);
    wait_for_task(&e.client, &name, "running").await;
    // The log driver may lag the task by a moment: read until both lines are there.
    for _ in 0..100 {
        let mut logs = e.client.service_logs(&name, &LogsOptions::default()).await.unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        while let Some(chunk) = logs.next().await {
            let chunk = chunk.unwrap();
            let text = String::from_utf8_lossy(&chunk.data).into_owned();
            match chunk.stream {
                StreamKind::Stderr => err.push_str(&text),
                _ => out.push_str(&text),
            }
        }
        if out.contains("hello") && err.contains("oops") {
            assert!(!out.contains("oops") && !err.contains("hello"), "streams mixed: {out:?} {err:?}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the service's logs never showed both lines");
}
