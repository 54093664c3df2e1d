//! Swarm-wide locks against the real engine: one holder among many contenders in two
//! processes, busy naming the holder, a live holder never displaced, a dead one taken over,
//! and nothing left behind.

use std::process::{Command, Stdio};
use std::time::Duration;

use dockhand_e2e::{engine, unique_name};
use dockhand_jobs::{LockError, LockSettings, LockTarget, Locks};

fn locks(client: &dockhand_engine::Client, settings: LockSettings) -> Locks {
    Locks::new(client.clone(), Locks::process_holder("test"), settings)
}

/// No lock object of this target is left.
async fn assert_no_lock(client: &dockhand_engine::Client, target: &LockTarget) {
    let left = locks(client, LockSettings::default()).list().await.unwrap();
    assert!(left.iter().all(|l| l.target != target.label()), "a lock was left: {left:?}");
}

#[tokio::test]
async fn twenty_acquires_from_two_processes_give_one_holder() {
    let e = engine().await;
    let service = unique_name("lock");
    // Each process starts 10 acquires at once; the winner holds for 8 s, far longer than
    // the others wait (1 s), so exactly one wins even when one process starts late.
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_lock_contender"))
            .args([&e.url, &service, "10", "8000", "1000"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let mut lines = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a contender failed: {}", String::from_utf8_lossy(&out.stdout));
        lines.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect::<Vec<_>>());
    }
    assert_eq!(lines.len(), 20, "{lines:?}");
    let held = lines.iter().filter(|l| *l == "held").count();
    assert_eq!(held, 1, "exactly one holder: {lines:?}");
    assert!(lines.iter().filter(|l| l.starts_with("busy job-")).count() == 19, "{lines:?}");
    assert_no_lock(&e.client, &LockTarget::Service(service)).await;
}

#[tokio::test]
async fn a_live_holder_is_never_displaced_and_busy_names_its_job() {
    let e = engine().await;
    let target = LockTarget::Service(unique_name("lock"));
    // A short lease, renewed every second: the holder keeps it through a wait of more than
    // two leases while it lives.
    let holder = locks(&e.client, LockSettings::default().with_lease(Duration::from_secs(3)));
    let guard = holder.acquire(&target, "job-holder").await.unwrap();
    let waiter = locks(&e.client, LockSettings::default().with_acquire_timeout(Duration::from_secs(7)));
    match waiter.acquire(&target, "job-waiter").await {
        Err(LockError::Busy { job, waited, .. }) => {
            assert_eq!(job, "job-holder");
            assert!(waited >= Duration::from_secs(7), "{waited:?}");
        }
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(!guard.is_lost());
    let listed = holder.list().await.unwrap();
    let mine = listed.iter().find(|l| l.target == target.label()).expect("the lock is listed");
    assert_eq!(mine.job, "job-holder");
    assert!(!mine.expired, "{mine:?}");
    guard.release().await.unwrap();
    assert_no_lock(&e.client, &target).await;
}

#[tokio::test]
async fn a_dead_holders_lock_is_taken_over_once_its_lease_ends() {
    let e = engine().await;
    let target = LockTarget::Service(unique_name("lock"));
    let dead = locks(&e.client, LockSettings::default().with_lease(Duration::from_millis(1500)));
    // Dropped without release: renewal stops, as when the process is killed.
    drop(dead.acquire(&target, "job-dead").await.unwrap());
    let next = locks(&e.client, LockSettings::default().with_acquire_timeout(Duration::from_secs(20)));
    let guard = next.acquire(&target, "job-next").await.expect("taken over after the lease");
    let listed = next.list().await.unwrap();
    assert_eq!(listed.iter().find(|l| l.target == target.label()).unwrap().job, "job-next");
    guard.release().await.unwrap();
    assert_no_lock(&e.client, &target).await;
}

/// Rewrites the lock object of `target` as another holder would after a takeover.
async fn take_over_by_hand(client: &dockhand_engine::Client, target: &LockTarget) {
    let name = format!("dockhand-lock-{}", target.label().replace('/', "-"));
    let current = client.config(&name).await.unwrap();
    let mut spec = current.spec.clone();
    spec.labels.insert("dockhand.lock.holder".into(), "elsewhere/1/x".into());
    spec.labels.insert("dockhand.lock.job".into(), "job-usurper".into());
    client.update_config(&current.id, current.version.index, &spec).await.unwrap();
}

/// R3-08: a holder that finds its lock taken over at a renewal cancels its job at once, and
/// its release, compare-and-swap on the version, never removes the new holder's lock.
#[tokio::test]
async fn a_lost_lock_cancels_its_job_and_its_release_leaves_the_new_holders() {
    let e = engine().await;
    let target = LockTarget::Service(unique_name("lock"));
    let holder = locks(&e.client, LockSettings::default().with_lease(Duration::from_secs(3)));
    let job = tokio_util::sync::CancellationToken::new();
    let guard = holder.acquire_cancelling(&target, "job-first", job.clone()).await.unwrap();
    take_over_by_hand(&e.client, &target).await;
    tokio::time::timeout(Duration::from_secs(5), job.cancelled())
        .await
        .expect("the job is cancelled within a renewal period");
    assert!(guard.is_lost());
    guard.release().await.unwrap();
    let listed = holder.list().await.unwrap();
    let theirs = listed.iter().find(|l| l.target == target.label()).expect("the usurper's lock stays");
    assert_eq!(theirs.job, "job-usurper");
    // Cleaned up by hand: it is nobody's.
    let name = format!("dockhand-lock-{}", target.label().replace('/', "-"));
    e.client.remove_config(&name).await.unwrap();
    assert_no_lock(&e.client, &target).await;
}

/// R3-09: a job whose lease looks stale in the store (a store outage, a skewed clock) is not
/// marked while its owner still holds its target's lock: the reaper must take that lock
/// first. Its helpers stay. Once the lock is free, the job is marked, once, and its helpers
/// go.
#[tokio::test]
async fn the_reaper_leaves_a_job_whose_lock_is_held() {
    use dockhand_jobs::store::JobStore;
    use dockhand_jobs::{Action, Job, Status, Target, Trigger};
    let e = engine().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dockhand_jobs::store::SqliteStore::open(&dir.path().join("jobs.sqlite")).unwrap();
    let service = unique_name("reap");
    let target = LockTarget::Service(service.clone());
    let started = std::time::SystemTime::now() - Duration::from_secs(120);
    let job = Job::start(
        Action::CleanService,
        Target::Service { id: service.clone(), name: service.clone() },
        Trigger::Api,
        "api:admin#1",
        started,
    );
    store.record(&job).await.unwrap();
    // Its owner is alive: it holds the lock (it could not reach the store to heartbeat).
    let owner = locks(&e.client, LockSettings::default().with_lease(Duration::from_secs(6)));
    let held = owner.acquire(&target, &job.id).await.unwrap();
    // One of its helpers, still working.
    let helper = unique_name("reap-helper");
    let spec = dockhand_engine::ServiceSpec::new(&helper, dockhand_e2e::BUSYBOX_IMAGE)
        .with_args(["sleep", "600"])
        .with_label(dockhand_jobs::HELPER_LABEL, &job.id);
    e.client.create_service(&spec).await.unwrap();
    let _helper = dockhand_e2e::ServiceGuard::new(&e.url, &helper);

    let mut ctx = dockhand_jobs::JobContext::new(e.client.clone(), "reaper", Trigger::Api, "api");
    ctx.locks = locks(&e.client, LockSettings::default().with_acquire_timeout(Duration::ZERO));
    let lease = Duration::from_secs(45);
    assert_eq!(store.stale(lease).await.unwrap().len(), 1, "a candidate by the store");
    let marked = dockhand_jobs::reap_stale(&ctx, &store, lease, "reaped").await.unwrap();
    assert!(marked.is_empty(), "its owner holds the lock: {marked:?}");
    assert_eq!(store.get(&job.id).await.unwrap().unwrap().status, Status::Running);
    assert!(e.client.service(&helper).await.is_ok(), "its helper is kept");

    // The owner really is gone now: the lock frees, and the job is marked, once.
    held.release().await.unwrap();
    let marked = dockhand_jobs::reap_stale(&ctx, &store, lease, "reaped").await.unwrap();
    assert_eq!(marked.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [job.id.as_str()]);
    assert_eq!(store.get(&job.id).await.unwrap().unwrap().status, Status::Interrupted);
    assert!(e.client.service(&helper).await.is_err(), "its helper is removed");
    assert!(dockhand_jobs::reap_stale(&ctx, &store, lease, "again").await.unwrap().is_empty());
    assert_no_lock(&e.client, &target).await;
}
