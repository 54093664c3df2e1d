//! The order of a backup's steps and every way it ends, on the fake swarm with a stand-in
//! for the volumes' bytes: the service is started again on every path once it was stopped,
//! and the lock is released.

use std::sync::Arc;

use super::*;
use crate::job::Collect;
use crate::steps::lookup::{find_service, hostnames};
use crate::steps::transfer::fake::{BytesFault, FakeVolumes};
use crate::swarm::fake::{FakeSwarm, Fault, context};

const LABELS: [(&str, &str); 4] = [
    ("dockhand.backup.enable", "true"),
    ("dockhand.backup.volume-list-upload", "data"),
    ("dockhand.backup.stop", "true"),
    ("dockhand.backup.exec", "pg_dump -f /data/dump"),
];

/// A swarm with the service `db` (two replicas on the manager, mounting `data`, which
/// holds "rows"), its volumes, and storage targets whose `local` is a temporary directory.
fn setup(
    labels: &[(&str, &str)],
) -> (Arc<FakeSwarm>, String, FakeVolumes, StorageTargets, tempfile::TempDir) {
    let swarm = Arc::new(FakeSwarm::manager());
    let id = swarm.add_service("db", 2, labels);
    swarm.mount(&id, "data");
    let volumes = FakeVolumes::new(&swarm);
    volumes.put("n1", "data", b"rows");
    let dir = tempfile::tempdir().unwrap();
    let targets = crate::storage::targets::local_only(&dir.path().join("backups"));
    (swarm, id, volumes, targets, dir)
}

async fn backup(ctx: &JobContext, volumes: &FakeVolumes, targets: &StorageTargets) -> Job {
    let connected = manager(ctx).await.unwrap();
    let service = find_service(ctx, "db").await.unwrap();
    let names = hostnames(ctx).await.unwrap();
    backup_one(ctx, volumes, &connected, &names, &service, targets, &Collect::default()).await
}

/// Files under `dir`, relative, sorted.
fn stored(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The service as it must be after any backup: its replicas, no intent label.
fn assert_running(swarm: &FakeSwarm, id: &str, replicas: u64) {
    let spec = swarm.spec(id);
    assert_eq!(spec.replicas(), Some(replicas), "{spec:?}");
    assert!(!spec.labels.contains_key(crate::steps::scale::INTENT_LABEL), "{:?}", spec.labels);
    assert!(swarm.config_list().is_empty(), "the lock is released");
}

/// A backup, in order: the lock, the exec in every task, the stop (replicas 0 and the
/// intent label in one update), the upload, the start (replicas back, the label gone in
/// one update), the lock released; the archive and its manifest are stored.
#[tokio::test(start_paused = true)]
async fn a_backup_execs_stops_uploads_and_starts_in_that_order() {
    let (swarm, id, volumes, targets, dir) = setup(&LABELS);
    let job = backup(&context(&swarm), &volumes, &targets).await;

    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let log = swarm.log();
    let expected = [
        format!("create_config dockhand-lock-service-{id}"),
        format!("exec {} /bin/sh -c pg_dump -f /data/dump", FakeSwarm::container(&id, 0)),
        format!("exec {} /bin/sh -c pg_dump -f /data/dump", FakeSwarm::container(&id, 1)),
        "update_service db replicas=0 intent=2".to_owned(),
        "upload data from manager-1".to_owned(),
        "update_service db replicas=2 intent=-".to_owned(),
    ];
    let writes: Vec<&String> = log.iter().filter(|w| !w.starts_with("update_config")).collect();
    assert_eq!(&writes[..expected.len()], expected.iter().collect::<Vec<_>>(), "{log:?}");
    assert!(log.last().is_some_and(|w| w.starts_with("remove_config")), "released last: {log:?}");
    let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["exec", "exec", "stop", "upload", "start"]);
    let files = stored(&dir.path().join("backups"));
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with("db/manager-1_data_") && files[0].ends_with(".tar.zst"), "{files:?}");
    assert!(files[1].ends_with(".tar.zst.manifest.json"), "{files:?}");
    assert_running(&swarm, &id, 2);
}

/// Every way the upload can end badly, and the service started again each time: a failed
/// upload fails the job, one past its time limit names the label that set it, and a job
/// cancelled mid-upload is cancelled; nothing is stored in any case.
#[tokio::test(start_paused = true)]
async fn the_service_is_started_again_whichever_way_the_upload_ends() {
    let timed = [LABELS[0], LABELS[1], LABELS[2], ("dockhand.backup.volume-list-upload.timeout", "1s")];
    for (fault, labels, status, says) in [
        (BytesFault::Fails, &LABELS[..3], Status::Failed, "the stand-in's upload failed"),
        (BytesFault::Hangs, &timed[..], Status::Failed, "label dockhand.backup.volume-list-upload.timeout"),
        (BytesFault::Hangs, &LABELS[..3], Status::Cancelled, "cancelled"),
    ] {
        let (swarm, id, volumes, targets, dir) = setup(labels);
        volumes.fail_upload(fault);
        let ctx = context(&swarm);
        if status == Status::Cancelled {
            let cancel = ctx.cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                cancel.cancel();
            });
        }
        let job = backup(&ctx, &volumes, &targets).await;

        assert_eq!(job.status, status, "{fault:?}: {job:?}");
        let upload = job.steps.iter().find(|s| s.kind == "upload").unwrap();
        assert!(upload.error.as_deref().unwrap_or_default().contains(says), "{upload:?}");
        let log = swarm.log();
        let at = |line: &str| log.iter().position(|w| w == line).unwrap_or_else(|| panic!("{line}: {log:?}"));
        assert!(at("upload data from manager-1") < at("update_service db replicas=2 intent=-"), "{log:?}");
        assert_eq!(job.steps.last().map(|s| s.kind.as_str()), Some("start"), "{job:?}");
        assert_running(&swarm, &id, 2);
        assert!(stored(&dir.path().join("backups")).is_empty());
    }
}

/// A failed exec ends the backup before anything is stopped or uploaded; a stop the
/// engine refuses is undone (the start runs) and nothing is uploaded; a volume the node
/// does not have fails before the stop, costing no downtime.
#[tokio::test(start_paused = true)]
async fn failures_before_the_upload_stop_nothing_or_undo_the_stop() {
    let (swarm, id, volumes, targets, _dir) = setup(&LABELS);
    swarm.script_exec(&FakeSwarm::container(&id, 0), Some((1, "no such database")));
    let job = backup(&context(&swarm), &volumes, &targets).await;
    assert_eq!(job.status, Status::Failed, "{job:?}");
    assert!(
        !swarm.log().iter().any(|w| w.starts_with("update_service") || w.starts_with("upload")),
        "{:?}",
        swarm.log()
    );
    assert_running(&swarm, &id, 2);

    let (swarm, id, volumes, targets, _dir) = setup(&LABELS);
    swarm.fail("update_service", 1, Fault::Broken);
    let job = backup(&context(&swarm), &volumes, &targets).await;
    assert_eq!(job.status, Status::Failed, "{job:?}");
    let kinds: Vec<&str> = job.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["exec", "exec", "stop", "start"], "{job:?}");
    assert!(!swarm.log().iter().any(|w| w.starts_with("upload")), "{:?}", swarm.log());
    assert_running(&swarm, &id, 2);

    let (swarm, id, _, targets, _dir) = setup(&LABELS);
    let empty = FakeVolumes::new(&swarm);
    let job = backup(&context(&swarm), &empty, &targets).await;
    assert_eq!(job.status, Status::Failed, "{job:?}");
    let error = job.steps.iter().find_map(|s| s.error.clone()).unwrap_or_default();
    assert!(error.contains("volume data") && error.contains("has no volume data"), "{error}");
    assert!(!swarm.log().iter().any(|w| w.starts_with("update_service")), "{:?}", swarm.log());
    assert_running(&swarm, &id, 2);
}

/// `backup.target=near,far`: the archive goes to both, with an upload step and a manifest
/// on each. When one of them cannot be written, the job fails and the other keeps its
/// complete archive; retention does not run; the service is started again.
#[tokio::test(start_paused = true)]
async fn a_backup_to_several_targets_writes_each_and_one_failing_keeps_the_others() {
    let mut labels = LABELS.to_vec();
    labels.extend([
        ("dockhand.backup.target", "near, far"),
        ("dockhand.backup.volume-list-upload.s3.retention-days", "7"),
    ]);
    let (swarm, id, volumes, _, dir) = setup(&labels);
    let (near, far) = (dir.path().join("near"), dir.path().join("far"));
    let targets =
        crate::storage::targets::locals(&dir.path().join("backups"), &[("near", &near), ("far", &far)]);
    let job = backup(&context(&swarm), &volumes, &targets).await;
    assert_eq!(job.status, Status::Succeeded, "{job:?}");
    let uploads: Vec<_> = job.steps.iter().filter(|s| s.kind == "upload").collect();
    let named: Vec<_> = uploads.iter().map(|s| s.storage.as_deref()).collect();
    assert_eq!(named, [Some("near"), Some("far")], "{job:?}");
    assert_eq!(job.steps.iter().filter(|s| s.kind == "retention").count(), 2, "{job:?}");
    for place in [&near, &far] {
        let files = stored(place);
        assert_eq!(files.len(), 2, "an archive and its manifest on each target: {files:?}");
    }
    assert_eq!(uploads[0].object, uploads[1].object, "the same name on each");

    // The service's directory on `far` becomes a file: nothing can be written under it;
    // `near` still gets the whole archive.
    std::fs::remove_dir_all(far.join("db")).unwrap();
    std::fs::write(far.join("db"), b"not a directory").unwrap();
    let job = backup(&context(&swarm), &volumes, &targets).await;
    assert_eq!(job.status, Status::Failed, "{job:?}");
    let uploads: Vec<_> = job.steps.iter().filter(|s| s.kind == "upload").collect();
    assert_eq!(uploads.len(), 2, "{job:?}");
    assert_eq!((uploads[0].status, uploads[1].status), (Status::Succeeded, Status::Failed), "{job:?}");
    let why = uploads[1].error.as_deref().unwrap_or_default();
    assert!(why.contains("far") && why.contains("volume data"), "{why}");
    // (Two backups within one second share a name: `near` then holds one archive, else two.)
    let manifests: Vec<String> = stored(&near)
        .iter()
        .filter(|f| f.ends_with(crate::steps::catalog::MANIFEST_SUFFIX))
        .map(|f| std::fs::read_to_string(near.join(f)).unwrap())
        .collect();
    assert!(manifests.iter().any(|m| m.contains(&job.id)), "near has this job's archive: {manifests:?}");
    assert!(stored(&near).iter().any(|f| f.ends_with(&uploads[0].object.clone().unwrap())), "{job:?}");
    assert!(job.steps.iter().all(|s| s.kind != "retention"), "no retention after a failure: {job:?}");
    assert_running(&swarm, &id, 2);
}

/// A `backup.target` list that names a target twice, or has an empty name, refuses the
/// backup with the label's value; an unknown name lists the configured ones.
#[tokio::test(start_paused = true)]
async fn a_target_list_names_each_target_once() {
    for (list, says) in [
        ("local,local", "\"local\" is named twice"),
        ("local,,local", "a name is empty"),
        ("local,nowhere", "no such target"),
    ] {
        let mut labels = LABELS.to_vec();
        labels.push(("dockhand.backup.target", list));
        let (swarm, _, volumes, targets, _dir) = setup(&labels);
        let job = backup(&context(&swarm), &volumes, &targets).await;
        assert_eq!(job.status, Status::Refused, "{list}: {job:?}");
        let why = job.steps[0].error.as_deref().unwrap_or_default();
        assert!(why.contains(says) && why.contains("service db"), "{list}: {why}");
        assert!(swarm.config_list().is_empty(), "nothing was locked");
    }
}
