//! The order of a volume move and every way it ends, on the fake swarm with a stand-in for
//! the volume's bytes: the service is stopped around the copy and started again on every
//! path, and placed on the new node only once its volume is there.

use std::sync::Arc;

use super::*;
use crate::job::Collect;
use crate::steps::transfer::fake::{BytesFault, FakeVolumes};
use crate::swarm::fake::{FakeSwarm, Fault, context};

/// Two nodes, `manager-1` (n1, holding `data` with "rows") and `worker-1` (n2), and the
/// service `db` (one replica) mounting `data`.
fn world() -> (Arc<FakeSwarm>, String, FakeVolumes) {
    let swarm = Arc::new(FakeSwarm::manager());
    swarm.add_node("n2", "worker-1");
    let id = swarm.add_service("db", 1, &[]);
    swarm.mount(&id, "data");
    let volumes = FakeVolumes::new(&swarm);
    volumes.put("n1", "data", b"rows");
    (swarm, id, volumes)
}

async fn move_data(swarm: &Arc<FakeSwarm>, volumes: &FakeVolumes) -> Job {
    let request = MoveRequest::new("data", "manager-1", "worker-1").with_service("db");
    move_with(&context(swarm), volumes, &request, &Collect::default()).await.unwrap()
}

fn writes(swarm: &FakeSwarm) -> Vec<String> {
    swarm.log().into_iter().filter(|w| !w.contains("config")).collect()
}

fn constraints(swarm: &FakeSwarm, id: &str) -> Vec<String> {
    swarm.spec(id).task_template.placement.map(|p| p.constraints).unwrap_or_default()
}

fn assert_running(swarm: &FakeSwarm, id: &str) {
    let spec = swarm.spec(id);
    assert_eq!(spec.replicas(), Some(1), "{spec:?}");
    assert!(!spec.labels.contains_key(crate::steps::scale::INTENT_LABEL), "{:?}", spec.labels);
    assert!(swarm.config_list().is_empty(), "the lock is released");
}

/// In order: the lock, the stop, the copy, the placement on the new node (while stopped),
/// the start, the lock released; the new node's volume holds what the old one did.
#[tokio::test(start_paused = true)]
async fn a_move_stops_copies_places_and_starts_in_that_order() {
    let (swarm, id, volumes) = world();
    let job = move_data(&swarm, &volumes).await;

    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    assert_eq!(
        writes(&swarm),
        [
            "update_service db replicas=0 intent=1",
            "copy data from manager-1 to worker-1",
            "update_service db replicas=0 intent=1",
            "update_service db replicas=1 intent=-",
        ]
    );
    let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["stop", "move", "placement", "start"]);
    assert_eq!(constraints(&swarm, &id), ["node.id==n2"]);
    assert_eq!(volumes.get("n2", "data").as_deref(), Some(&b"rows"[..]));
    assert_running(&swarm, &id);
}

/// A failed copy leaves the placement where it was and starts the service again; a stop
/// the engine refuses copies nothing; a source without the volume is refused before
/// anything is stopped (mounting it would create it empty, and empty the destination).
#[tokio::test(start_paused = true)]
async fn a_failed_move_leaves_the_service_where_it_was_and_running() {
    let (swarm, id, volumes) = world();
    volumes.fail_writes(BytesFault::Fails);
    let job = move_data(&swarm, &volumes).await;
    assert_eq!(job.status, Status::Failed, "{job:?}");
    let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["stop", "move", "start"], "{job:?}");
    assert!(constraints(&swarm, &id).is_empty());
    assert_running(&swarm, &id);

    let (swarm, id, volumes) = world();
    swarm.fail("update_service", 1, Fault::Broken);
    let job = move_data(&swarm, &volumes).await;
    assert_eq!(job.status, Status::Failed, "{job:?}");
    assert!(!writes(&swarm).iter().any(|w| w.starts_with("copy")), "{:?}", swarm.log());
    assert_running(&swarm, &id);

    let (swarm, id, _) = world();
    let empty = FakeVolumes::new(&swarm);
    let job = move_data(&swarm, &empty).await;
    assert_eq!(job.status, Status::Refused, "{job:?}");
    assert!(job.steps[0].error.as_deref().unwrap_or_default().contains("has no volume data"), "{job:?}");
    assert!(writes(&swarm).is_empty(), "{:?}", swarm.log());
    assert_running(&swarm, &id);
}
