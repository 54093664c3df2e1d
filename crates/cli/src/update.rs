//! `dockhand update SERVICE [--image REF] [--force] [--no-rollback]`: the update-service
//! job, with its progress (tasks updated out of the total, the state, the digest). Exit
//! codes as for the clean jobs; Ctrl-C cancels.

use std::process::ExitCode;

use dockhand_jobs::update::UpdateRequest;

use crate::args::{Global, UpdateArgs};
use crate::context::{cancel_on_signal, finish, job_context, registries};
use crate::output;

pub(crate) async fn run(global: &Global, args: UpdateArgs) -> anyhow::Result<ExitCode> {
    let registries = registries(global)?;
    let ctx = job_context(global, &args.jobs).await?;
    cancel_on_signal(ctx.cancel.clone())?;
    let printer = output::JobPrinter::new(global.json);
    let request = UpdateRequest::new(args.image).with_force(args.force).without_rollback(args.no_rollback);
    let job =
        dockhand_jobs::update::update_service(&ctx, &registries, &args.service, &request, &printer).await?;
    finish(&printer, &[job]).await
}
