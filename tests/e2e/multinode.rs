//! The test swarm of several nodes (`cargo xtask swarm up`): each node is its own engine,
//! with its own hostname and `/var/run/docker.sock`, and swarm work lands where it is
//! pinned. What the jobs build on.

use dockhand_e2e::{BUSYBOX_IMAGE, ServiceGuard, swarm, unique_name, wait_for_task};
use dockhand_engine::{Filters, ServiceSpec};

#[tokio::test]
async fn every_node_is_ready_with_its_own_hostname() {
    let s = swarm().await;
    assert!(s.nodes.len() >= 3, "a swarm of several nodes: {}", s.nodes.len());
    let nodes = s.manager().nodes(&Filters::new()).await.unwrap();
    assert_eq!(nodes.len(), s.nodes.len());
    assert!(nodes.iter().all(|n| n.status.state == "ready"), "{nodes:?}");
    for (url, client) in &s.nodes {
        let info = client.info().await.unwrap();
        assert!(info.swarm.is_active(), "{url} is not in the swarm");
        assert!(
            nodes.iter().any(|n| n.id == info.swarm.node_id && n.description.hostname == info.name),
            "{url}"
        );
        assert!(client.image(BUSYBOX_IMAGE).await.is_ok(), "{url} lacks {BUSYBOX_IMAGE}");
    }
    let hostnames: std::collections::BTreeSet<String> =
        nodes.iter().map(|n| n.description.hostname.clone()).collect();
    assert_eq!(hostnames.len(), nodes.len(), "hostnames must differ: {hostnames:?}");
}

/// A one-off service (one replica, never restarted) pinned to the last node runs there,
/// with that node's engine socket mounted: the shape of every helper the jobs start. Once
/// the service is removed, its container is gone from the worker too (a swarm *job*'s
/// would stay: moby/moby#42789).
#[tokio::test]
async fn a_one_off_pinned_to_a_worker_runs_there_with_its_engine_and_leaves_nothing() {
    let s = swarm().await;
    let (worker_url, worker) = s.nodes.last().unwrap();
    let worker_id = worker.info().await.unwrap().swarm.node_id;
    let name = unique_name("pinned");
    let spec = ServiceSpec::new(&name, BUSYBOX_IMAGE)
        .with_restart_condition("none")
        .with_constraint(format!("node.id=={worker_id}"))
        .with_bind("/var/run/docker.sock", "/var/run/docker.sock")
        .with_args(["sh", "-c", "test -S /var/run/docker.sock && hostname"]);
    s.manager().create_service(&spec).await.unwrap();
    let _guard = ServiceGuard::new(s.manager_url(), &name);
    let task = wait_for_task(s.manager(), &name, "complete").await;
    assert_eq!(task.node_id, worker_id, "the job ran elsewhere");
    // Its container is on the worker's engine, not the manager's.
    let container = task.status.container_status.map(|c| c.container_id).unwrap_or_default();
    assert!(worker.container(&container).await.is_ok(), "{container} not on {worker_url}");
    assert!(s.manager().container(&container).await.is_err(), "{container} on the manager");
    s.manager().remove_service(&name).await.unwrap();
    for _ in 0..60 {
        if worker.container(&container).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("the container {container} of the removed service {name} is still on {worker_url}");
}
