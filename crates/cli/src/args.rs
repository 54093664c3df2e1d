//! The command line, as clap types.

use clap::{Args as ClapArgs, Parser, Subcommand};

/// Keeps Docker hosts and swarms in order.
#[derive(Debug, Parser)]
#[command(name = "dockhand", version, about, propagate_version = true)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, ClapArgs)]
pub(crate) struct Global {
    /// The engine to talk to, as a URL such as unix:///var/run/docker.sock.
    #[arg(short = 'H', long = "host", env = "DOCKER_HOST", global = true, value_name = "URL")]
    pub(crate) host: Option<String>,

    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Talk to one engine directly.
    #[command(subcommand)]
    Engine(EngineCommand),
}

/// `dockhand engine ...`
#[derive(Debug, Subcommand)]
pub(crate) enum EngineCommand {
    /// Check that the engine answers, and show what its ping says.
    Ping,
    /// Show the engine's version and the API version in use.
    Version,
    /// Show what the engine knows about its host and swarm.
    Info,
}
