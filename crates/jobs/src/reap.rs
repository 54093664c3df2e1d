//! The reaper: jobs whose process stopped renewing their lease in the job store. A stale
//! lease is only a candidate (the store may have been down, or the owner's clock off): a
//! job is marked interrupted, and its helpers removed, only once its target's swarm lock
//! can be taken, which a live owner keeps renewing (security review R3-09).

use std::time::Duration;

use crate::job::{Job, Target};
use crate::lock::{LockError, LockTarget};
use crate::runner::JobContext;
use crate::store::{JobStore, StoreError};

/// Marks the jobs of `store` whose lease is older than `lease` (by the store's clock) and
/// whose target's lock is free as interrupted, with a step saying `why`, and removes their
/// helpers; targets outside `ctx.scope` are another instance's to reap. Returns the jobs
/// marked by this caller.
pub async fn reap_stale(
    ctx: &JobContext,
    store: &dyn JobStore,
    lease: Duration,
    why: &str,
) -> Result<Vec<Job>, StoreError> {
    let mut marked = Vec::new();
    for job in store.stale(lease).await? {
        let lock = match &job.target {
            Target::Service { id, .. } => LockTarget::Service(id.clone()),
            Target::Node { id, .. } => LockTarget::Node(id.clone()),
        };
        if !in_scope(ctx, &job.target).await {
            continue;
        }
        // A live owner still renews the target's lock (its store was out of reach, or its
        // clock is off): its job is left alone.
        let guard = match ctx.locks.acquire(&lock, &job.id).await {
            Ok(guard) => guard,
            Err(LockError::Busy { .. }) => continue,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "cannot check the lock of a stale job");
                continue;
            }
        };
        if let Some(done) = store.interrupt(&job.id, lease, why).await? {
            match crate::helper::remove_job_helpers(&ctx.client, &job.id).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(job = %job.id, helpers = n, "removed the helpers of an interrupted job")
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "cannot remove the helpers of an interrupted job")
                }
            }
            marked.push(done);
        }
        if let Err(e) = guard.release().await {
            tracing::warn!(job = %job.id, error = %e, "cannot release a lock; it frees itself when its lease ends");
        }
    }
    Ok(marked)
}

/// True when `target` is in `ctx.scope` by its current labels; a target that is gone is
/// nobody's, and anyone may close its books.
async fn in_scope(ctx: &JobContext, target: &Target) -> bool {
    let Some((key, value)) = &ctx.scope else { return true };
    let labels = match target {
        Target::Service { id, .. } => match ctx.swarm.service(id).await {
            Ok(s) => s.spec.labels,
            Err(e) if e.is_not_found() => return true,
            Err(_) => return false,
        },
        Target::Node { id, .. } => match ctx.client.node(id).await {
            Ok(n) => n.spec.labels,
            Err(e) if e.is_not_found() => return true,
            Err(_) => return false,
        },
    };
    labels.get(key) == Some(value)
}
