//! `dockhand engine ping | version | info`.

use std::process::ExitCode;

use serde::Serialize;

use crate::args::{EngineCommand, Global};
use crate::context::connect;
use crate::output;

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
