//! End-to-end tests of the libraries against a real engine in swarm mode; one binary, a
//! module per area. The `dockhand` binary's own tests are in `crates/cli/tests/`.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine;
mod exec;
mod locks;
mod multinode;
mod notify;
mod podman;
mod resources;
mod ssh;
mod store;
mod supervisor;
mod swarm;
mod transport;
