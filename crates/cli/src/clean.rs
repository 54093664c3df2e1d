//! `dockhand clean node|service`: runs the jobs, records them, and maps how they ended to
//! an exit code. Ctrl-C cancels: helpers are removed and locks released.

use std::process::ExitCode;

use dockhand_jobs::{Job, JobStore, Status};

use crate::args::{CleanCommand, Global};
use crate::context::{cancel_on_signal, job_context, store};
use crate::output;

pub(crate) async fn run(global: &Global, cmd: CleanCommand) -> anyhow::Result<ExitCode> {
    let opts = match &cmd {
        CleanCommand::Node { jobs, .. } | CleanCommand::Service { jobs, .. } => jobs.clone(),
    };
    let ctx = job_context(global, &opts).await?;
    cancel_on_signal(ctx.cancel.clone())?;
    let printer = output::JobPrinter::new(global.json);
    let jobs: Vec<Job> = match cmd {
        CleanCommand::Node { all: true, .. } => dockhand_jobs::clean_all_nodes(&ctx, &printer).await?,
        CleanCommand::Node { node, .. } => {
            vec![dockhand_jobs::clean_node(&ctx, node.as_deref(), &printer).await?]
        }
        CleanCommand::Service { all: true, .. } => dockhand_jobs::clean_all_services(&ctx, &printer).await?,
        CleanCommand::Service { service, .. } => {
            let service = service.unwrap_or_default();
            vec![dockhand_jobs::clean_service(&ctx, &service, &printer).await?]
        }
    };
    printer.done();
    // The jobs ran: a store that cannot take their record is reported, not fatal.
    match store() {
        Ok(store) => {
            for job in &jobs {
                if let Err(e) = store.record(job).await {
                    output::warning(&format!("job {} is not recorded: {e:#}", job.id));
                }
            }
        }
        Err(e) => output::warning(&format!("the jobs are not recorded: {e:#}")),
    }
    for job in &jobs {
        printer.summary(job)?;
    }
    Ok(ExitCode::from(exit_code(&jobs)))
}

/// The documented exit codes: 0 succeeded, 1 failed, 3 refused by policy, 4 busy, 130
/// cancelled; for several jobs, the first of cancelled, failed, busy, refused that any has.
fn exit_code(jobs: &[Job]) -> u8 {
    let has = |s: Status| jobs.iter().any(|j| j.status == s);
    if has(Status::Cancelled) {
        130
    } else if has(Status::Failed) || has(Status::Running) {
        1
    } else if has(Status::Busy) {
        4
    } else if has(Status::Refused) {
        3
    } else {
        0
    }
}
