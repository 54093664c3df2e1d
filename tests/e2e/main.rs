//! End-to-end tests against a real engine in swarm mode; one binary, a module per area.

mod cli;
mod engine;
