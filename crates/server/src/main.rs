//! `dockhand-server`: the HTTP front-end that CI pipelines and cron drive.
//!
//! The routes arrive with the jobs; until then the binary only answers `--help` and
//! `--version`, and refuses to start rather than pretend to serve.

use clap::Parser;

/// dockhand's HTTP service, deployed inside the swarm it maintains.
#[derive(Debug, Parser)]
#[command(name = "dockhand-server", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let Args {} = Args::parse();
    anyhow::bail!("dockhand-server has no routes yet; use the dockhand CLI")
}
