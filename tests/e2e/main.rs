//! End-to-end tests of the libraries against a real engine in swarm mode; one binary, a
//! module per area. The `dockhand` binary's own tests are in `crates/cli/tests/`.

mod engine;
mod exec;
mod swarm;
mod transport;
