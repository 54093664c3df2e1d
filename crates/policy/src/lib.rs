//! `dockhand-policy` will turn service and node labels and caller credentials into
//! decisions: typed per-action policies, token and CI-identity authorization, image
//! rules, timeout budgets and redaction.
//!
//! Architecture invariant: this crate does no I/O. It takes label maps, image strings and
//! claims, and returns values; no tokio, no filesystem, no network, no environment.
//!
//! Nothing is implemented here yet: see the project's issue tracker for the plan.
