//! The order of a node's backup and restore, on the fake swarm with a stand-in for the
//! volumes' bytes: every volume is checked before anything is uploaded, and a restore goes
//! back to the node the archive is of, refusing a volume that running containers mount.

use std::sync::Arc;

use super::*;
use crate::job::Collect;
use crate::steps::transfer::fake::FakeVolumes;
use crate::swarm::fake::{FakeSwarm, context};

const LABELS: [(&str, &str); 2] =
    [("dockhand.backup.enable", "true"), ("dockhand.backup.volume-list-upload", "logs,spool")];

/// A worker `worker-1` (n2) labelled with `labels`, holding `logs` and `spool`, and
/// storage targets whose `local` is a temporary directory.
fn world(labels: &[(&str, &str)]) -> (Arc<FakeSwarm>, FakeVolumes, StorageTargets, tempfile::TempDir) {
    let swarm = Arc::new(FakeSwarm::manager());
    swarm.add_node("n2", "worker-1");
    swarm.label_node("n2", labels);
    let volumes = FakeVolumes::new(&swarm);
    volumes.put("n2", "logs", b"lines");
    volumes.put("n2", "spool", b"mail");
    let dir = tempfile::tempdir().unwrap();
    let targets = crate::storage::targets::local_only(&dir.path().join("backups"));
    (swarm, volumes, targets, dir)
}

async fn backup(swarm: &Arc<FakeSwarm>, volumes: &FakeVolumes, targets: &StorageTargets) -> Job {
    let ctx = context(swarm);
    let connected = crate::steps::lookup::manager(&ctx).await.unwrap();
    let nodes = ctx.swarm.nodes(&Filters::new()).await.unwrap();
    let node = nodes.iter().find(|n| n.id == "n2").unwrap();
    backup_one(&ctx, volumes, &connected, node, targets, &Collect::default()).await
}

fn stored(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("backups/node/worker-1")).map(|d| d.count()).unwrap_or(0)
}

/// A backup of the node: its lock, an upload per volume in the label's order, the lock
/// released; then a restore of both, each into the node's own volume.
#[tokio::test(start_paused = true)]
async fn a_node_is_backed_up_volume_by_volume_and_restored_onto_itself() {
    let (swarm, volumes, targets, dir) = world(&LABELS);
    let job = backup(&swarm, &volumes, &targets).await;

    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let log = swarm.log();
    let writes: Vec<&String> = log.iter().filter(|w| !w.contains("config")).collect();
    assert_eq!(writes, ["upload logs from worker-1", "upload spool from worker-1"]);
    assert!(log.first().is_some_and(|w| w == "create_config dockhand-lock-node-n2"), "{log:?}");
    assert!(log.last().is_some_and(|w| w.starts_with("remove_config")), "{log:?}");
    assert_eq!(stored(dir.path()), 4, "an archive and a manifest per volume");

    volumes.put("n2", "logs", b"newer");
    volumes.put("n2", "spool", b"newer");
    let ctx = context(&swarm);
    let job =
        restore_node_with(&ctx, &volumes, "worker-1", &targets, &RestoreOptions::new(), &Collect::default())
            .await
            .unwrap();
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["verify", "restore", "restore"], "{job:?}");
    assert_eq!(volumes.get("n2", "logs").as_deref(), Some(&b"lines"[..]));
    assert_eq!(volumes.get("n2", "spool").as_deref(), Some(&b"mail"[..]));
    assert!(!swarm.log().iter().any(|w| w.starts_with("update_service")), "a node's restore stops nothing");
}

/// A volume the node does not have fails the backup before any upload (no partial set of
/// archives), and a node its labels do not enable is refused before anything is locked.
#[tokio::test(start_paused = true)]
async fn a_missing_volume_or_a_node_without_labels_uploads_nothing() {
    let (swarm, volumes, targets, dir) =
        world(&[LABELS[0], ("dockhand.backup.volume-list-upload", "logs,gone")]);
    let job = backup(&swarm, &volumes, &targets).await;
    assert_eq!(job.status, Status::Failed, "{job:?}");
    let error = job.steps.iter().find_map(|s| s.error.clone()).unwrap_or_default();
    assert!(error.contains("node worker-1 has no volume gone"), "{error}");
    assert!(!swarm.log().iter().any(|w| w.starts_with("upload")), "{:?}", swarm.log());
    assert_eq!(stored(dir.path()), 0);
    assert!(swarm.config_list().is_empty(), "the lock is released");

    let (swarm, volumes, targets, _dir) = world(&[]);
    let job = backup(&swarm, &volumes, &targets).await;
    assert_eq!(job.status, Status::Refused, "{job:?}");
    assert!(swarm.log().is_empty(), "{:?}", swarm.log());
}
