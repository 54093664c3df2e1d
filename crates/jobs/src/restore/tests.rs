//! The order of a restore's steps and every way it ends, on the fake swarm with a stand-in
//! for the volumes' bytes: nothing is stopped before every archive is verified, and once
//! the service is stopped it is started again on every path.

use std::sync::Arc;

use super::*;
use crate::job::Collect;
use crate::steps::lookup::{find_service, hostnames};
use crate::steps::transfer::fake::{BytesFault, FakeVolumes};
use crate::swarm::fake::{FakeSwarm, Fault, context};

const LABELS: [(&str, &str); 3] = [
    ("dockhand.backup.enable", "true"),
    ("dockhand.backup.volume-list-upload", "data"),
    ("dockhand.backup.stop", "true"),
];

struct World {
    swarm: Arc<FakeSwarm>,
    id: String,
    volumes: FakeVolumes,
    targets: StorageTargets,
    dir: tempfile::TempDir,
}

/// The service `db` (two replicas on the manager, mounting `data`), backed up once while
/// `data` held "rows", then changed to "later": the log starts after the backup.
async fn backed_up() -> World {
    let swarm = Arc::new(FakeSwarm::manager());
    let id = swarm.add_service("db", 2, &LABELS);
    swarm.mount(&id, "data");
    let volumes = FakeVolumes::new(&swarm);
    volumes.put("n1", "data", b"rows");
    let dir = tempfile::tempdir().unwrap();
    let targets = crate::storage::targets::local_only(&dir.path().join("backups"));
    let ctx = context(&swarm);
    let connected = manager(&ctx).await.unwrap();
    let service = find_service(&ctx, "db").await.unwrap();
    let names = hostnames(&ctx).await.unwrap();
    let job = crate::backup_service::backup_one(
        &ctx,
        &volumes,
        &connected,
        &names,
        &service,
        &targets,
        &Collect::default(),
    )
    .await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    volumes.put("n1", "data", b"later");
    let world = World { swarm, id, volumes, targets, dir };
    world.swarm.note("-- backed up".to_owned());
    world
}

impl World {
    async fn restore(&self, ctx: &JobContext) -> Job {
        restore_with(ctx, &self.volumes, "db", &self.targets, &RestoreOptions::new(), &Collect::default())
            .await
            .unwrap()
    }

    /// The log since the backup, renewals left out.
    fn log(&self) -> Vec<String> {
        let log = self.swarm.log();
        let from = log.iter().position(|w| w == "-- backed up").unwrap() + 1;
        log[from..].iter().filter(|w| !w.starts_with("update_config")).cloned().collect()
    }

    fn assert_running(&self) {
        let spec = self.swarm.spec(&self.id);
        assert_eq!(spec.replicas(), Some(2), "{spec:?}");
        assert!(!spec.labels.contains_key(crate::steps::scale::INTENT_LABEL), "{:?}", spec.labels);
        assert!(self.swarm.config_list().is_empty(), "the lock is released");
    }

    /// The one archive's path on disk.
    fn archive(&self) -> std::path::PathBuf {
        let dir = self.dir.path().join("backups").join("db");
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
            .unwrap()
    }
}

/// A restore, in order: verify (nothing written to the swarm), the lock, the stop, the
/// volume's contents replaced from the verified archive, the start, the lock released.
#[tokio::test(start_paused = true)]
async fn a_restore_verifies_then_stops_restores_and_starts_in_that_order() {
    let world = backed_up().await;
    let job = world.restore(&context(&world.swarm)).await;

    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let log = world.log();
    assert_eq!(
        log,
        [
            format!("create_config dockhand-lock-service-{}", world.id),
            "update_service db replicas=0 intent=2".to_owned(),
            "restore data on manager-1".to_owned(),
            "update_service db replicas=2 intent=-".to_owned(),
            log.last().cloned().unwrap_or_default(),
        ]
    );
    assert!(log.last().is_some_and(|w| w.starts_with("remove_config")), "{log:?}");
    let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["verify", "stop", "restore", "start"]);
    assert_eq!(world.volumes.get("n1", "data").as_deref(), Some(&b"rows"[..]));
    world.assert_running();
}

/// An archive changed after its backup fails the verify step: nothing is locked, stopped
/// or written, and the volume keeps what it holds.
#[tokio::test(start_paused = true)]
async fn a_changed_archive_stops_the_restore_before_anything_is_touched() {
    let world = backed_up().await;
    let path = world.archive();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let job = world.restore(&context(&world.swarm)).await;

    assert_eq!(job.status, Status::Failed, "{job:?}");
    let verify = &job.steps[0];
    assert_eq!((verify.kind.as_str(), verify.status), ("verify", Status::Failed));
    assert!(verify.error.as_deref().unwrap_or_default().contains("SHA-256"), "{verify:?}");
    assert!(world.log().is_empty(), "{:?}", world.log());
    assert_eq!(world.volumes.get("n1", "data").as_deref(), Some(&b"later"[..]));
}

/// Once stopped, the service is started again whichever way the restore ends: a failed
/// write, a cancelled job; a stop the engine refuses writes nothing and is undone.
#[tokio::test(start_paused = true)]
async fn the_service_is_started_again_whichever_way_the_restore_ends() {
    for (fault, status) in [(BytesFault::Fails, Status::Failed), (BytesFault::Hangs, Status::Cancelled)] {
        let world = backed_up().await;
        world.volumes.fail_writes(fault);
        let ctx = context(&world.swarm);
        // A hung write ends when the job is cancelled mid-restore, with the service stopped.
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            cancel.cancel();
        });
        let job = world.restore(&ctx).await;
        assert_eq!(job.status, status, "{fault:?}: {job:?}");
        let kinds: Vec<(&str, Status)> = job.steps.iter().map(|s| (s.kind.as_str(), s.status)).collect();
        let ok = Status::Succeeded;
        assert_eq!(kinds, [("verify", ok), ("stop", ok), ("restore", status), ("start", ok)], "{fault:?}");
        world.assert_running();
    }

    let world = backed_up().await;
    world.swarm.fail("update_service", 1, Fault::Broken);
    let job = world.restore(&context(&world.swarm)).await;
    assert_eq!(job.status, Status::Failed, "{job:?}");
    assert!(!world.log().iter().any(|w| w.starts_with("restore ")), "{:?}", world.log());
    assert_eq!(world.volumes.get("n1", "data").as_deref(), Some(&b"later"[..]));
    world.assert_running();
}
