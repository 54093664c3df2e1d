//! `dockhand-jobs` will hold the maintenance jobs (clean-node, clean-service,
//! backup-service, update-service), their locks, helper services, storage targets, job
//! store and scheduler. It joins [`dockhand_host`] (how to reach an engine) with
//! [`dockhand_policy`] (what labels allow).
//!
//! Nothing is implemented here yet: see the project's issue tracker for the plan.

pub use dockhand_host as host;
pub use dockhand_policy as policy;
