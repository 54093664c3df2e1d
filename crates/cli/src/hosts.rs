//! `dockhand hosts ls | check` and `dockhand config show`.

use std::process::ExitCode;

use dockhand_host::{HostRegistry, HostsConfig};

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
            let mut failed = false;
            let mut lines = Vec::new();
            for id in ids {
                let result = match registry.connect(&id).await {
                    Ok(client) => {
                        client.api_version().await.map(|v| v.to_string()).map_err(anyhow::Error::from)
                    }
                    Err(e) => Err(e.into()),
                };
                failed |= result.is_err();
                lines.push((id, result.map_err(|e: anyhow::Error| format!("{e:#}"))));
            }
            output::print(global.json, &output::checks_json(&lines), || output::checks(&lines))?;
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

pub(crate) fn config(global: &Global, cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show = cmd;
    let config = load(global)?;
    output::print(global.json, &config, || output::config(&config))?;
    Ok(ExitCode::SUCCESS)
}
