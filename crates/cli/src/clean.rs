//! `dockhand clean node|service`: runs the jobs, records them, and maps how they ended to
//! an exit code. Ctrl-C cancels: helpers are removed and locks released.

use std::process::ExitCode;

use dockhand_jobs::Job;

use crate::args::{CleanCommand, Global};
use crate::context::{cancel_on_signal, finish, job_context};
use crate::output;

pub(crate) async fn run(global: &Global, cmd: CleanCommand) -> anyhow::Result<ExitCode> {
    let opts = match &cmd {
        CleanCommand::Node { jobs, .. } | CleanCommand::Service { jobs, .. } => jobs.clone(),
    };
    let ctx = job_context(global, &opts).await?;
    cancel_on_signal(ctx.cancel.clone())?;
    let printer = output::JobPrinter::new(global.json);
    let jobs: Vec<Job> = match cmd {
        CleanCommand::Node { all: true, .. } => dockhand_jobs::clean::clean_all_nodes(&ctx, &printer).await?,
        CleanCommand::Node { node, .. } => {
            vec![dockhand_jobs::clean::clean_node(&ctx, node.as_deref(), &printer).await?]
        }
        CleanCommand::Service { all: true, .. } => {
            dockhand_jobs::clean::clean_all_services(&ctx, &printer).await?
        }
        CleanCommand::Service { service, .. } => {
            let service = service.unwrap_or_default();
            vec![dockhand_jobs::clean::clean_service(&ctx, &service, &printer).await?]
        }
    };
    finish(&printer, &jobs).await
}
