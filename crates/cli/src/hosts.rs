//! `dockhand hosts ls | check` and `dockhand config show`.

use std::process::ExitCode;

use dockhand_host::{Check, HostRegistry, HostsConfig, System};

use crate::args::{ConfigCommand, Global, HostsCommand};
use crate::engine::environment;
use crate::output;

/// The configuration from `--config` or the default file, with env overrides.
pub(crate) fn load(global: &Global) -> anyhow::Result<HostsConfig> {
    Ok(HostsConfig::load(global.config.as_deref(), &environment())?)
}

pub(crate) fn registry(global: &Global) -> anyhow::Result<HostRegistry> {
    Ok(HostRegistry::new(load(global)?, environment()))
}

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
                None => registry.config().hosts().filter(|h| !h.disabled).map(|h| h.id.clone()).collect(),
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

/// One host's checks, for printing.
#[derive(serde::Serialize)]
pub(crate) struct HostReport {
    pub(crate) id: String,
    pub(crate) ok: bool,
    pub(crate) checks: Vec<Check>,
}

pub(crate) fn config(global: &Global, cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show = cmd;
    let config = load(global)?;
    output::print(global.json, &config, || output::config(&config))?;
    Ok(ExitCode::SUCCESS)
}
