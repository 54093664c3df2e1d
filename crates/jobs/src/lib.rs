//! `dockhand-jobs`: the maintenance jobs (clean-node, clean-service, backup-service,
//! update-service), their locks, helper services, storage targets, job store and
//! scheduler. It joins `dockhand-host` (how to reach an engine) with `dockhand-policy`
//! (what labels allow); callers import those crates' items from them.
//!
//! Built so far: the swarm-wide locks ([`Locks`]): one operation per target at a time,
//! across dockhand restarts and across several dockhand processes, kept in the swarm
//! itself; and the job model ([`Job`], its [`Step`]s, the [`Event`]s a runner reports to a
//! caller's [`Sink`]); and clean-node ([`clean_node`]) on the engine dockhand is
//! connected to; and the job store ([`JobStore`], embedded as [`SqliteStore`]). The helpers
//! for other nodes, clean-service and the rest follow.

mod clean_node;
mod job;
mod lock;
mod plan;
mod store;
mod volumes;

pub use crate::clean_node::{CleanNodeError, JobContext, NodePlan, Prune, clean_node, plan_clean_node};
pub use crate::job::{Action, Collect, Event, Job, Sink, Status, Step, Target, Trigger, aggregate, epoch_ms};
pub use crate::lock::{LOCK_LABEL, LockError, LockGuard, LockInfo, LockSettings, LockTarget, Locks};
pub use crate::plan::{PlanRow, plan};
pub use crate::store::{JobFilter, JobStore, KEEP_JOBS, SqliteStore, StoreError, default_store_path};
pub use crate::volumes::{UnusedVolume, unused_volumes};
