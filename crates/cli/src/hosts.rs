//! `dockhand hosts ls | check` and `dockhand config show`.

use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context;
use dockhand_host::System;
use dockhand_host::supervisor::{OnLeftover, OsProcesses, Supervisor, SupervisorOptions};

use crate::args::{ConfigCommand, Global, HostCommand, HostsCommand};
use crate::context::{environment, load, registry};
use crate::output::{self, HostReport};

pub(crate) async fn run(global: &Global, cmd: HostsCommand) -> anyhow::Result<ExitCode> {
    let registry = registry(global)?;
    match cmd {
        HostsCommand::Ls => {
            let states = registry.list().await;
            output::print(global.json, &states, || output::hosts(&states))?;
            Ok(ExitCode::SUCCESS)
        }
        HostsCommand::Check { id } => {
            let ids: Vec<String> = match id {
                Some(id) => vec![id],
                None => registry
                    .ids()
                    .into_iter()
                    .filter(|id| registry.config().get(id).is_none_or(|h| !h.disabled))
                    .map(str::to_owned)
                    .collect(),
            };
            let system = System::current(&environment());
            let mut reports = Vec::new();
            for id in ids {
                let checks = registry.check(&id, &system).await?;
                reports.push(HostReport { ok: checks.iter().all(|c| c.ok), id, checks });
            }
            let failed = reports.iter().any(|r| !r.ok);
            output::print(global.json, &reports, || output::checks(&reports))?;
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

pub(crate) fn config(global: &Global, cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show = cmd;
    let config = load(global)?;
    for note in crate::context::config_file(global)?.notes() {
        output::note(note);
    }
    output::print(global.json, &config, || output::config(&config))?;
    // The valid part is shown; invalid entries (listed in the output) fail the command.
    Ok(if config.broken().next().is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub(crate) async fn host(global: &Global, cmd: HostCommand) -> anyhow::Result<ExitCode> {
    let HostCommand::Run { id, on_leftover, grace } = cmd;
    let registry = registry(global)?;
    let host = registry.prepare_run(&id, &System::current(&environment()))?.clone();
    let mut options = SupervisorOptions::default();
    options.on_leftover = match on_leftover.as_str() {
        "replace" => OnLeftover::Replace,
        "fail" => OnLeftover::Fail,
        _ => OnLeftover::Adopt,
    };
    options.grace = dockhand_policy::parse_go_duration(&grace).context("--grace")?;
    // The handlers go in before anything starts: a signal that arrives while the engine
    // starts must stop it cleanly, not kill dockhand with the engine still running.
    let shutdown = shutdown()?;
    let supervisor = Supervisor::new(&host, Arc::new(OsProcesses::new()), options)?;
    supervisor.start().await?;
    tracing::info!(host = %id, url = %supervisor.client().endpoint(), "ready; Ctrl-C stops it");
    supervisor.supervise(shutdown).await?;
    tracing::info!(host = %id, "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM. Both handlers are registered now, when this is
/// called, not when the future is first polled.
fn shutdown() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
