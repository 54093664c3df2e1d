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
