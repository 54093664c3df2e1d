//! `dockhand`: the operator's command line. It parses arguments, calls the crates and
//! prints; all behaviour lives in the libraries.

mod agent;
mod args;
mod backup;
mod clean;
mod completions;
mod context;
mod engine;
mod exec;
mod hosts;
mod jobs;
mod locks;
mod output;
mod storage;
mod swarm;
mod token;
mod update;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Args, Command};

fn main() -> ExitCode {
    // One crypto provider for the process, ring, as every TLS of dockhand's uses: the S3
    // client's reqwest takes the process's (the libraries never install one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    // In the foreground, a supervised engine's output is the point: show it.
    let floor = u8::from(matches!(args.command, Command::Host(_)));
    init_tracing(args.global.verbose.max(floor));
    match run(args) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(&err);
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let result = command(args).await;
        // A managed engine started for this command stops with it, whatever it did.
        if let Err(e) = context::stop_started_hosts().await {
            output::warning(&format!("cannot stop the managed engine this command started: {e:#}"));
        }
        result
    })
}

async fn command(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Engine(cmd) => engine::run(&args.global, cmd).await,
        Command::Services(cmd) => swarm::services(&args.global, cmd).await,
        Command::Nodes(cmd) => swarm::nodes(&args.global, cmd).await,
        Command::Tasks(cmd) => swarm::tasks(&args.global, cmd).await,
        Command::Exec(cmd) => exec::run(&args.global, cmd).await,
        Command::Hosts(cmd) => hosts::run(&args.global, cmd).await,
        Command::Host(cmd) => hosts::host(&args.global, cmd).await,
        Command::Config(cmd) => hosts::config(&args.global, cmd),
        Command::Token(args::TokenCommand::Hash) => token::hash(),
        Command::HelperImage(args::HelperImageCommand::Push { repository, registry }) => {
            jobs::push_helper_image(&args.global, &repository, registry.as_deref()).await
        }
        Command::Locks(cmd) => locks::run(&args.global, cmd).await,
        Command::Clean(cmd) => clean::run(&args.global, cmd).await,
        Command::Jobs(cmd) => jobs::run(&args.global, cmd).await,
        Command::Plan => jobs::plan(&args.global).await,
        Command::Volumes(args::VolumesCommand::Move { volume, from, to, service, jobs }) => {
            let mut request = dockhand_jobs::backup::MoveRequest::new(volume, from, to);
            if let Some(service) = service {
                request = request.with_service(service);
            }
            backup::move_volume(&args.global, &jobs, &request).await
        }
        Command::Volumes(args::VolumesCommand::Unused { jobs }) => {
            jobs::unused_volumes(&args.global, &jobs).await
        }
        Command::Storage(cmd) => storage::run(&args.global, cmd).await,
        Command::Backup(cmd) => backup::backup(&args.global, cmd).await,
        Command::Backups(cmd) => backup::list(&args.global, cmd).await,
        Command::Restore(cmd) => backup::restore(&args.global, cmd).await,
        Command::Update(cmd) => update::run(&args.global, cmd).await,
        Command::Completions { shell } => completions::completions(shell),
        Command::Man { dir } => completions::man(&dir),
        Command::Agent { args: agent_args } => agent::run(&agent_args).await,
    }
}

/// Logs go to stderr; `DOCKHAND_LOG` takes a `tracing` filter, `-v` raises the default.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKHAND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// `dockhand ... | head` must not end in an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().filter_map(|e| e.downcast_ref::<std::io::Error>()).any(|e| e.kind() == ErrorKind::BrokenPipe)
}
