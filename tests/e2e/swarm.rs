//! Services, nodes and tasks against the real single-node swarm.

use dockhand_e2e::{BUSYBOX_IMAGE, ServiceGuard, engine, unique_name, wait_for_task};
use dockhand_engine::{Filters, ServiceSpec};

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
