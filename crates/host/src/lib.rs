//! `dockhand-host` will hold the named-hosts configuration (seed 000's `docker.hosts`
//! section), its environment overrides and `${VAR}` expansion, and the supervisor of a
//! managed rootless engine. It builds on [`dockhand_engine`], which it re-exports so that
//! front-ends depend on one crate for connections.
//!
//! Nothing is implemented here yet: see the project's issue tracker for the plan.

pub use dockhand_engine as engine;
