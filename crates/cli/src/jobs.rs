//! `dockhand jobs ls | show`: the jobs dockhand ran, from the job store.

use std::process::ExitCode;

use dockhand_jobs::{JobFilter, JobStore, Status};

use crate::args::{Global, JobsCommand};
use crate::context::store;
use crate::output;

pub(crate) async fn run(global: &Global, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    let store = store()?;
    match cmd {
        JobsCommand::Ls { target, status } => {
            let mut filter = JobFilter::default();
            filter.target = target;
            filter.status =
                status.map(|s| serde_json::from_value::<Status>(serde_json::Value::String(s))).transpose()?;
            let jobs = store.list(&filter).await?;
            output::print(global.json, &jobs, || output::jobs(&jobs, std::time::SystemTime::now()))?;
        }
        JobsCommand::Show { id } => {
            let job = store.get(&id).await?.ok_or_else(|| {
                anyhow::anyhow!("no job {id:?} in {} (dockhand jobs ls lists them)", store.path().display())
            })?;
            output::JobPrinter::new(global.json).summary(&job)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
