//! `cargo xtask`: every piece of dockhand's automation, in Rust rather than shell.
//!
//! - `cargo xtask ci`: the README's test command: format, lints, the whole test suite
//!   against a private engine, cargo-deny and the documentation;
//! - `cargo xtask test [SUITE…]`: the test binaries side by side against the private
//!   engine and the test swarm;
//! - `cargo xtask engine up | down | env | status`: the private test engine;
//! - `cargo xtask swarm up [--nodes N] | down | env`: the test swarm of several nodes;
//! - `cargo xtask demo`: the README's "main job" on embedded defaults;
//! - `cargo xtask bench engine`: benchmarks with ratios against same-run baselines;
//! - `cargo xtask soak [--minutes N]`: faults and load, with nothing lost.

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[cfg(test)]
mod alerts;
mod bench;
mod bench_page;
mod bench_server;
mod bench_store;
mod bench_watch;
mod ci;
mod demo;
mod engine;
mod fuzz;
mod images;
mod local_registry;
#[cfg(test)]
mod modgraph;
mod proc;
mod soak;
mod suites;
mod swarm;
#[cfg(test)]
mod tidy;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dockhand's automation.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything CI checks: fmt, clippy, tests against a private engine, deny, docs.
    Ci,
    /// Build every test binary and run them side by side against the private engine and the
    /// test swarm (brought up if they are not, and left up); names like `dockhand-cli/backup`
    /// choose some.
    Test {
        /// Test binaries to run, as `<package>/<target>`; all when none is named.
        suites: Vec<String>,
    },
    /// Manage the private Docker engine the tests use.
    #[command(subcommand)]
    Engine(EngineCommand),
    /// Manage the test swarm of several nodes, each a dockerd in namespaces of its own.
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Bring the private engine up and run dockhand's main job against it.
    Demo,
    /// Run every fuzz target for a bounded time (default 60 s each).
    Fuzz {
        /// Seconds per target.
        #[arg(default_value_t = 60)]
        seconds: u64,
    },
    /// Build dockhand's image, `dockhand/dockhand:<version>` (both static binaries, from
    /// scratch), on the private engine, and save it to `target/dockhand-image-<version>.tar`.
    Image,
    /// Build the static `dockhand` and `dockhand-server` release binaries into `target/dist/`.
    Dist,
    /// Write the `dockhand` man pages (one per command) into `target/man/`.
    Man,
    /// Faults and load against the test swarm with two server replicas on PostgreSQL over
    /// HTTPS; fails unless nothing was lost or left behind.
    Soak {
        /// How long the load runs, in minutes.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
    },
    /// Run a benchmark against baselines measured in the same run.
    Bench {
        /// Which benchmark: `engine`, `jobs`, `backup`, `update`, `server`, `store`, `watch`.
        what: String,
    },
}

#[derive(Debug, Subcommand)]
enum SwarmCommand {
    /// Start the swarm (idempotent) and put the test images on every node; prints its env.
    Up {
        /// How many nodes (2 to 9); node1 is the manager.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
    /// Stop every node and remove its processes, namespaces, mounts and state.
    Down,
    /// Print `export DOCKER_HOST=<manager>` and `export DOCKHAND_TEST_NODE_<i>=<url>`.
    Env,
}

#[derive(Debug, Subcommand)]
enum EngineCommand {
    /// Start the engine (idempotent), initialize a swarm and create the test images.
    Up,
    /// Stop the engine and remove its processes, mounts and state.
    Down,
    /// Print `export DOCKER_HOST=...`, for `eval "$(cargo xtask engine env)"`.
    Env,
    /// Say whether the engine runs, and what it reports.
    Status,
}

/// `cargo xtask man`: `dockhand man --dir target/man` from the workspace's build.
fn man() -> anyhow::Result<()> {
    let dir = project_root().join("target").join("man");
    proc::run(
        cargo()
            .args([
                "run",
                "--quiet",
                "--locked",
                "--package",
                "dockhand-cli",
                "--bin",
                "dockhand",
                "--",
                "man",
                "--dir",
            ])
            .arg(&dir),
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Ci => ci::run(),
        Command::Test { suites } => suites::command(&suites),
        Command::Engine(EngineCommand::Up) => engine::up().map(|_| ()),
        Command::Engine(EngineCommand::Down) => engine::down(),
        Command::Engine(EngineCommand::Env) => {
            println!("export DOCKER_HOST={}", engine::Layout::new().url());
            Ok(())
        }
        Command::Engine(EngineCommand::Status) => engine::status(),
        Command::Swarm(SwarmCommand::Up { nodes }) => swarm::up(nodes),
        Command::Swarm(SwarmCommand::Down) => swarm::down(),
        Command::Swarm(SwarmCommand::Env) => swarm::env(),
        Command::Demo => demo::run(),
        Command::Image => images::release(),
        Command::Dist => images::dist(),
        Command::Man => man(),
        Command::Bench { what } => bench::run(&what),
        Command::Fuzz { seconds } => fuzz::run(seconds),
        Command::Soak { minutes } => soak::run(minutes),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// The `cargo` that runs us.
fn cargo() -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(project_root());
    cmd
}
