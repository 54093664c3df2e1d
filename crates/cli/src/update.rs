//! `dockhand update SERVICE [--image REF] [--force] [--no-rollback]`: the update-service
//! job, with its progress (tasks updated out of the total, the state, the digest). Exit
//! codes as for the clean jobs; Ctrl-C cancels. `dockhand update --image-of REF` runs one
//! such job for every service that runs REF's repository with `update.enable=true`.

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
    let image = args.image_of.clone().or(args.image);
    let request = UpdateRequest::new(image).with_force(args.force).without_rollback(args.no_rollback);
    let names = match (&args.service, &args.image_of) {
        (Some(service), _) => vec![service.clone()],
        (None, Some(image)) => {
            let asked = dockhand_policy::ImageRef::parse(image)
                .map_err(|e| anyhow::anyhow!("--image-of {image:?}: {e}"))?;
            let services = ctx.swarm.services(&dockhand_engine::Filters::new()).await?;
            let (defaults, prefixes) = (&ctx.defaults, &ctx.prefixes);
            let running = dockhand_jobs::update::running_repository(&services, &asked, defaults, prefixes);
            if running.is_empty() {
                anyhow::bail!(
                    "--image-of {image:?}: no service runs {} with update.enable=true",
                    asked.repository()
                );
            }
            running.into_iter().map(|s| s.spec.name.clone()).collect()
        }
        (None, None) => anyhow::bail!("give a service, or --image-of"),
    };
    // Each service its own job under its own lock, up to `--concurrency` at once.
    use futures_util::StreamExt;
    let results: Vec<_> = futures_util::stream::iter(&names)
        .map(|name| dockhand_jobs::update::update_service(&ctx, &registries, name, &request, &printer))
        .buffered(ctx.concurrency.max(1))
        .collect()
        .await;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(job) => done.push(job),
            Err(e) => failed.push((name, e)),
        }
    }
    if done.is_empty() && failed.len() == 1 {
        return Err(failed.remove(0).1.into());
    }
    let code = finish(&printer, &done).await?;
    for (name, e) in &failed {
        output::warning(&format!("service {name}: {e}"));
    }
    Ok(if failed.is_empty() { code } else { ExitCode::FAILURE })
}
