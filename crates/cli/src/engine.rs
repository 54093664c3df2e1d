//! `dockhand engine ping | version | info`.

use std::process::ExitCode;

use anyhow::Context;
use dockhand_engine::{Client, Endpoint};
use serde::Serialize;

use crate::args::{EngineCommand, Global};
use crate::output;

pub(crate) async fn run(global: &Global, cmd: EngineCommand) -> anyhow::Result<ExitCode> {
    let client = connect(global)?;
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

/// The client for `-H`/`DOCKER_HOST`, or the default socket.
fn connect(global: &Global) -> anyhow::Result<Client> {
    let endpoint = match global.host.as_deref().filter(|h| !h.is_empty()) {
        Some(url) => url.parse::<Endpoint>().context("in -H/--host or DOCKER_HOST")?,
        None => Endpoint::default(),
    };
    Ok(Client::new(endpoint)?)
}
