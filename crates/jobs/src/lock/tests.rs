//! The lock protocol: the standing of a held lock (pure), and take, wait, takeover,
//! release, renewal and loss against the in-memory swarm.

use super::*;

fn config(updated_at: &str, labels: &[(&str, &str)]) -> SwarmConfig {
    let labels: std::collections::BTreeMap<String, String> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    serde_json::from_value(serde_json::json!({
        "ID": "c1", "Version": {"Index": 7}, "CreatedAt": updated_at, "UpdatedAt": updated_at,
        "Spec": {"Name": "dockhand-lock-service-x", "Labels": labels, "Data": ""}
    }))
    .unwrap()
}

fn me() -> ProcessId {
    ProcessId { boot: "boot-1".into(), pidns: "pid:[4026531836]".into(), pid: 100, start: 5000 }
}

/// R3-08: a lease is judged by the engine's clock alone. A lock renewed 1 s ago (by the
/// manager's `UpdatedAt`) is live even when the holder's own clock wrote an expiry long
/// past, as from a taker 40 s ahead or a holder 40 s behind.
#[test]
fn a_lease_is_judged_by_the_engines_clock() {
    let at = "2026-12-06T19:00:00.123456789Z";
    let t = parse_engine_time(at).unwrap();
    assert_eq!(t % 1000, 123);
    let stale_by_wall_clock = [(EXPIRES, "1000"), (LEASE, "30000"), (HOLDER, "h/1/x")];
    let c = config(at, &stale_by_wall_clock);
    let lease = Duration::from_secs(30);
    assert_eq!(standing(&c, t + 1_000, lease, &me()), Standing::Live);
    assert_eq!(standing(&c, t + 29_000, lease, &me()), Standing::Live);
    assert_eq!(standing(&c, t + 31_000, lease, &me()), Standing::Expired);
    // The holder's own lease, not the taker's setting.
    let short = config(at, &[(LEASE, "2000")]);
    assert_eq!(standing(&short, t + 3_000, lease, &me()), Standing::Expired);
    // A release in progress is waited for, then cleared if its releaser died.
    let released = config(at, &[(RELEASED, "true"), (LEASE, "30000")]);
    assert_eq!(standing(&released, t + 1_000, lease, &me()), Standing::Released);
    assert_eq!(standing(&released, t + 6_000, lease, &me()), Standing::Expired);
}

/// R3-08: a holder is gone only when proven so: same boot and PID namespace, and its
/// pid is not running with the recorded start time.
#[test]
fn a_holder_is_gone_only_when_proven_so() {
    let holder = |pidns: &str, pid: u32, start: u64| ProcessId {
        boot: "boot-1".into(),
        pidns: pidns.into(),
        pid,
        start,
    };
    let here = me().pidns;
    let none = |_: u32| None;
    let running = |start: u64| move |_: u32| Some(start);
    assert!(holder_gone(&holder(&here, 200, 42), &me(), none), "no such pid here");
    assert!(holder_gone(&holder(&here, 200, 42), &me(), running(43)), "the pid was reused");
    assert!(!holder_gone(&holder(&here, 200, 42), &me(), running(42)), "it runs");
    assert!(!holder_gone(&holder("pid:[4026532999]", 200, 42), &me(), none), "another PID namespace");
    let rebooted = ProcessId { boot: "boot-0".into(), ..holder(&here, 200, 42) };
    assert!(!holder_gone(&rebooted, &me(), none), "another boot (or machine)");
    assert!(!holder_gone(&holder(&here, 100, 5000), &me(), none), "this very process");
    assert!(!holder_gone(&ProcessId::default(), &me(), none), "a lock that records no process");
}

#[test]
fn this_process_reads_its_own_identity() {
    let me = ProcessId::current();
    assert!(!me.boot.is_empty() && me.pidns.starts_with("pid:["), "{me:?}");
    assert_eq!(dockhand_host::procfs::start_time(me.pid), Some(me.start));
    assert!(!holder_gone(&me, &me, dockhand_host::procfs::start_time));
}

// ---------------------------------------------------------------------------------------
// The protocol against the in-memory swarm. Time is tokio's paused clock (renewals, waits)
// and the fake engine's clock (leases), each moved by the test.

use crate::swarm::fake::{FakeSwarm, Fault};

const LEASE_TIME: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(5);
const TARGET: &str = "dockhand-lock-service-web";

fn on(swarm: &Arc<FakeSwarm>, holder: &str) -> Locks {
    let settings = LockSettings::default().with_lease(LEASE_TIME).with_acquire_timeout(WAIT);
    Locks::on(Arc::clone(swarm) as Arc<dyn Swarm>, holder, settings)
}

fn web() -> LockTarget {
    LockTarget::Service("web".to_owned())
}

fn holder_of(swarm: &FakeSwarm) -> Option<String> {
    swarm
        .config_list()
        .iter()
        .find(|c| c.spec.name == TARGET)
        .and_then(|c| c.spec.labels.get(HOLDER).cloned())
}

/// How the lock stands when a second holder, `b`, asks for it.
#[derive(Debug, Clone, Copy)]
enum Before {
    /// Nobody holds it.
    Free,
    /// `a` holds it and renews it.
    Live,
    /// `a` held it and stopped renewing; the engine's clock is past its lease.
    LeaseEnded,
    /// `a` holds it and releases it 2 s into `b`'s wait.
    ReleasedWhileWaiting,
    /// `a` holds it for the very request `b` serves.
    SameRequest,
    /// `a` marked it released (its removal did not happen) long ago.
    ReleasedLongAgo,
}

/// What `b` gets.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    /// The lock, by creating the object.
    Created,
    /// The lock, by taking the object over (compare-and-swap on its version).
    TookOver,
    /// Busy, naming `a`'s job, after waiting `waited` seconds.
    Busy { waited: u64 },
}

/// The lock protocol as a table: each way a lock can stand, and what the next acquire gets.
#[tokio::test(start_paused = true)]
async fn the_next_acquire_gets_what_the_locks_standing_allows() {
    let table = [
        (Before::Free, Got::Created),
        (Before::Live, Got::Busy { waited: WAIT.as_secs() }),
        (Before::LeaseEnded, Got::TookOver),
        (Before::ReleasedWhileWaiting, Got::Created),
        (Before::SameRequest, Got::Busy { waited: 0 }),
        (Before::ReleasedLongAgo, Got::TookOver),
    ];
    for (before, expected) in table {
        let swarm = Arc::new(FakeSwarm::manager());
        let a = on(&swarm, "host/1/a").for_request("fingerprint-1", WAIT);
        let mut held = None;
        match before {
            Before::Free => {}
            Before::Live | Before::SameRequest | Before::ReleasedWhileWaiting => {
                held = Some(a.acquire(&web(), "job-a").await.unwrap());
            }
            Before::LeaseEnded => {
                drop(a.acquire(&web(), "job-a").await.unwrap());
                swarm.advance(LEASE_TIME + Duration::from_secs(1));
            }
            Before::ReleasedLongAgo => {
                drop(a.acquire(&web(), "job-a").await.unwrap());
                swarm.overwrite_config(TARGET, &[(RELEASED, "true")]);
                swarm.advance(Duration::from_millis(RELEASED_GRACE_MS + 1));
            }
        }
        let b = match before {
            Before::SameRequest => on(&swarm, "host/2/b").for_request("fingerprint-1", WAIT),
            _ => on(&swarm, "host/2/b").for_request("fingerprint-2", WAIT),
        };
        if let (Before::ReleasedWhileWaiting, Some(guard)) = (before, held.take()) {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                guard.release().await.unwrap();
            });
        }
        let object =
            |swarm: &FakeSwarm| swarm.config_list().into_iter().find(|c| c.spec.name == TARGET).map(|c| c.id);
        let before_id = object(&swarm);
        let started = tokio::time::Instant::now();
        let got = match b.acquire(&web(), "job-b").await {
            Ok(guard) => {
                assert_eq!(holder_of(&swarm).as_deref(), Some("host/2/b"), "{before:?}");
                let took = before_id.is_some() && before_id == object(&swarm);
                guard.release().await.unwrap();
                assert_eq!(holder_of(&swarm), None, "{before:?}: released, the object is gone");
                if took { Got::TookOver } else { Got::Created }
            }
            Err(LockError::Busy { job, holder, .. }) => {
                assert_eq!((job.as_str(), holder.as_str()), ("job-a", "host/1/a"), "{before:?}");
                Got::Busy { waited: started.elapsed().as_secs() }
            }
            Err(e) => panic!("{before:?}: {e}"),
        };
        assert_eq!(got, expected, "{before:?}");
        drop(held);
    }
}

/// A live holder renews its lease every third of it, so a waiter never judges it expired
/// however long the job runs.
#[tokio::test(start_paused = true)]
async fn a_renewing_holder_is_never_taken_over() {
    let swarm = Arc::new(FakeSwarm::manager());
    let guard = on(&swarm, "host/1/a").acquire(&web(), "job-a").await.unwrap();
    for _ in 0..6 {
        // A lease's worth of time passes, on both clocks; the renewer runs in between.
        tokio::time::sleep(LEASE_TIME / 2).await;
        swarm.advance(LEASE_TIME / 2);
    }
    let renewals = swarm.log().iter().filter(|w| w.starts_with("update_config")).count();
    assert!(renewals >= 8, "renewed {renewals} times in three leases");
    let other = on(&swarm, "host/2/b").for_request("x", Duration::ZERO);
    assert!(matches!(other.acquire(&web(), "job-b").await, Err(LockError::Busy { .. })));
    assert!(!guard.is_lost());
    guard.release().await.unwrap();
}

/// The ways a held lock is lost, each seen at the next renewal: the job's token is
/// cancelled and the guard says so; a lost lock is never removed by its old holder.
#[tokio::test(start_paused = true)]
async fn a_lock_taken_over_gone_or_not_renewed_for_a_lease_is_lost() {
    #[derive(Debug, Clone, Copy)]
    enum Loss {
        TakenOver,
        ObjectGone,
        RenewalsFail,
    }
    for loss in [Loss::TakenOver, Loss::ObjectGone, Loss::RenewalsFail] {
        let swarm = Arc::new(FakeSwarm::manager());
        let token = CancellationToken::new();
        let guard = on(&swarm, "host/1/a").acquire_cancelling(&web(), "job-a", token.clone()).await.unwrap();
        match loss {
            Loss::TakenOver => swarm.overwrite_config(TARGET, &[(HOLDER, "host/9/z"), (JOB, "job-z")]),
            Loss::ObjectGone => swarm.drop_config(TARGET),
            // Two renewals fail (at a third and two thirds of the lease): by the third, a whole
            // lease has passed without one.
            Loss::RenewalsFail => swarm.fail("update_config", 2, Fault::Broken),
        }
        tokio::time::sleep(LEASE_TIME + LEASE_TIME / 2).await;
        assert!(guard.is_lost(), "{loss:?}");
        assert!(token.is_cancelled(), "{loss:?}");
        guard.release().await.unwrap();
        if let Loss::TakenOver = loss {
            assert_eq!(holder_of(&swarm).as_deref(), Some("host/9/z"), "the new holder's lock stays");
        }
    }
}

/// A release is a compare-and-swap. When it loses to a change that left the lock its own
/// (a renewal the release stopped, landing late), it reads again and releases; when the
/// lock keeps changing under it, it gives up and leaves it to its lease.
#[tokio::test(start_paused = true)]
async fn a_release_that_loses_to_its_own_late_renewal_tries_again() {
    let swarm = Arc::new(FakeSwarm::manager());
    let guard = on(&swarm, "host/1/a").acquire(&web(), "job-a").await.unwrap();
    swarm.fail("update_config", 1, Fault::OutOfSequence);
    guard.release().await.unwrap();
    assert_eq!(holder_of(&swarm), None, "released at the second read");

    let guard = on(&swarm, "host/1/a").acquire(&web(), "job-a").await.unwrap();
    swarm.fail("update_config", RELEASE_ATTEMPTS as usize, Fault::OutOfSequence);
    guard.release().await.unwrap();
    assert_eq!(holder_of(&swarm).as_deref(), Some("host/1/a"), "left to its lease after every try lost");
}

/// A lock another holder took over since is never removed by the old holder's release.
#[tokio::test(start_paused = true)]
async fn a_release_after_a_takeover_leaves_the_new_holders_lock() {
    let swarm = Arc::new(FakeSwarm::manager());
    let guard = on(&swarm, "host/1/a").acquire(&web(), "job-a").await.unwrap();
    let id = swarm.configs(&dockhand_engine::Filters::new()).await.unwrap()[0].id.clone();
    let mut taken = swarm.config(&id).await.unwrap();
    taken.spec.labels.insert(HOLDER.to_owned(), "host/9/z".to_owned());
    swarm.update_config(&id, taken.version.index, &taken.spec).await.unwrap();
    guard.release().await.unwrap();
    assert_eq!(holder_of(&swarm).as_deref(), Some("host/9/z"), "the new holder's lock stays");
    assert!(!swarm.log().iter().any(|w| w.starts_with("remove_config")));
}

/// An engine that fails while a lock is taken is an error naming the target, not a hang or
/// a lock the job believes it holds.
#[tokio::test(start_paused = true)]
async fn an_engine_error_while_taking_a_lock_names_the_target() {
    let swarm = Arc::new(FakeSwarm::manager());
    swarm.fail("create_config", 1, Fault::Broken);
    let err = on(&swarm, "host/1/a").acquire(&web(), "job-a").await.unwrap_err();
    assert!(matches!(&err, LockError::Engine { target, .. } if target == "service/web"), "{err}");
    assert_eq!(holder_of(&swarm), None);
}
