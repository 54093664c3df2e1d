//! `dockhand engine ping | version | info`.

use std::process::ExitCode;

use dockhand_engine::{Client, ConnectOptions, Environment, resolve};
use serde::Serialize;

use crate::args::{EngineCommand, Global};
use crate::output;

/// The process environment. Variables that are not UTF-8 cannot name an engine or a
/// setting; skipping them beats a panic.
pub(crate) fn environment() -> Environment {
    Environment::from_vars(
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
}

pub(crate) async fn run(global: &Global, cmd: EngineCommand) -> anyhow::Result<ExitCode> {
    let client = connect(global).await?;
    match cmd {
        EngineCommand::Ping => {
            let ping = client.ping().await?;
            let api = client.api_version().await?;
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Out<'a> {
                endpoint: String,
                #[serde(flatten)]
                ping: &'a dockhand_engine::Ping,
                negotiated_api_version: String,
            }
            let out = Out {
                endpoint: client.endpoint().to_string(),
                ping: &ping,
                negotiated_api_version: api.to_string(),
            };
            output::print(global.json, &out, || output::ping(&out.endpoint, &ping, api))?;
        }
        EngineCommand::Version => {
            let version = client.version().await?;
            let api = client.api_version().await?;
            output::print(global.json, &version, || output::version(&version, api))?;
        }
        EngineCommand::Info => {
            let info = client.info().await?;
            let api = client.api_version().await?;
            output::print(global.json, &info, || output::info(&info, api))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The client for the engine `--host-id`, or else the flags, environment and docker
/// contexts, name.
pub(crate) async fn connect(global: &Global) -> anyhow::Result<Client> {
    if let Some(id) = &global.host_id {
        return Ok(crate::hosts::registry(global)?.connect(id).await?);
    }
    let mut opts = ConnectOptions::default();
    opts.host = global.host.clone();
    opts.context = global.context.clone();
    opts.tls = global.tls;
    opts.tls_verify = global.tlsverify;
    opts.tls_ca_cert = global.tlscacert.clone();
    opts.tls_cert = global.tlscert.clone();
    opts.tls_key = global.tlskey.clone();
    let resolved = resolve(&opts, &environment())?;
    tracing::info!(endpoint = %resolved.endpoint, origin = %resolved.origin, "engine chosen");
    Ok(resolved.client()?)
}
