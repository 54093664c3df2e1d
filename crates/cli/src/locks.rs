//! `dockhand locks ls`: the swarm-wide locks that jobs hold.

use std::process::ExitCode;

use dockhand_jobs::{LockSettings, Locks};

use crate::args::{Global, LocksCommand};
use crate::context::connect;
use crate::output;

pub(crate) async fn run(global: &Global, cmd: LocksCommand) -> anyhow::Result<ExitCode> {
    let LocksCommand::Ls = cmd;
    let locks = Locks::new(connect(global).await?, "dockhand-cli", LockSettings::default()).list().await?;
    output::print(global.json, &locks, || output::locks(&locks, std::time::SystemTime::now()))?;
    Ok(ExitCode::SUCCESS)
}
