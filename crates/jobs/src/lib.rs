//! `dockhand-jobs` will hold the maintenance jobs (clean-node, clean-service,
//! backup-service, update-service), their locks, helper services, storage targets, job
//! store and scheduler. It joins `dockhand-host` (how to reach an engine) with
//! `dockhand-policy` (what labels allow); callers import those crates' items from them.
//!
//! Nothing is implemented here yet: see the project's issue tracker for the plan.
