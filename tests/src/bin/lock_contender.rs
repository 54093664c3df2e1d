//! A process that contends for one swarm lock: `lock_contender URL SERVICE ATTEMPTS HOLD_MS
//! TIMEOUT_MS`. It starts ATTEMPTS acquires at once; each prints `held` (then holds the lock
//! for HOLD_MS and releases it) or `busy <job>`. The lock tests run two of these side by
//! side: across both, exactly one acquire may win.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dockhand_jobs::{LockError, LockSettings, LockTarget, Locks};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, service, attempts, hold_ms, timeout_ms] = args.as_slice() else {
        panic!("usage: lock_contender URL SERVICE ATTEMPTS HOLD_MS TIMEOUT_MS");
    };
    let client = dockhand_engine::Client::new(url.parse().expect("an engine URL")).expect("a client");
    let settings =
        LockSettings::default().with_acquire_timeout(Duration::from_millis(timeout_ms.parse().unwrap()));
    let hold = Duration::from_millis(hold_ms.parse().unwrap());
    let attempts: usize = attempts.parse().unwrap();
    let target = LockTarget::Service(service.clone());
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let locks = Locks::new(client.clone(), Locks::process_holder("contender"), settings);
            let target = target.clone();
            tokio::spawn(async move {
                match locks.acquire(&target, &format!("job-{}-{i}", std::process::id())).await {
                    Ok(guard) => {
                        println!("held");
                        tokio::time::sleep(hold).await;
                        guard.release().await.expect("release");
                    }
                    Err(LockError::Busy { job, .. }) => println!("busy {job}"),
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a contender task");
    }
}
