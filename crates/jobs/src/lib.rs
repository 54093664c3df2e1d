//! `dockhand-jobs`: the maintenance jobs (clean-node, clean-service, backup-service,
//! update-service), their locks, helper services, storage targets, job store and
//! scheduler. It joins `dockhand-host` (how to reach an engine) with `dockhand-policy`
//! (what labels allow); callers import those crates' items from them.
//!
//! Built so far: the swarm-wide locks ([`Locks`]): one operation per target at a time,
//! across dockhand restarts and across several dockhand processes, kept in the swarm
//! itself. The jobs follow.

mod lock;

pub use crate::lock::{LOCK_LABEL, LockError, LockGuard, LockInfo, LockSettings, LockTarget, Locks};
