//! `dockhand jobs ls | show`: the jobs dockhand ran, from the job store; `dockhand plan`:
//! the jobs cron would run now; `dockhand volumes unused`.

use std::process::ExitCode;

use dockhand_jobs::Status;
use dockhand_jobs::store::{JobFilter, JobStore};

use crate::args::{Global, JobOptions, JobsCommand};
use crate::context::{connect, job_context, store};
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

pub(crate) async fn plan(global: &Global) -> anyhow::Result<ExitCode> {
    let client = connect(global).await?;
    let services = client.services(&dockhand_engine::Filters::new()).await?;
    let nodes = client.nodes(&dockhand_engine::Filters::new()).await?;
    let services: Vec<_> = services
        .into_iter()
        .map(|s| {
            // The tasks the service should have: what a cron run finds in steady state.
            let tasks = s.service_status.as_ref().map_or(0, |st| st.desired_tasks.max(st.running_tasks));
            (s, usize::try_from(tasks).unwrap_or(usize::MAX))
        })
        .collect();
    let configuration = crate::context::configuration(global)?;
    let defaults = configuration.defaults()?;
    let prefixes = &configuration.labels()?.prefixes;
    let schedule = configuration.schedule()?;
    let plain: Vec<_> = services.iter().map(|(s, _)| s.clone()).collect();
    let scheduled = dockhand_jobs::schedule::scheduled_targets(&plain, &nodes, schedule, defaults, prefixes);
    let mut rows = dockhand_jobs::schedule::plan(&services, &nodes, defaults, prefixes);
    dockhand_jobs::schedule::with_next_runs(&mut rows, &scheduled, schedule, chrono::Utc::now());
    // Watched services (`update.auto`): the registries, the job store and the registry
    // are read only when there are some.
    if dockhand_jobs::update::any_watched(&plain, defaults, prefixes) {
        let registries = configuration.registries()?;
        let jobs = store()?;
        let watched = {
            let once = dockhand_jobs::update::Watcher::new()?;
            dockhand_jobs::update::watch_look(&client, registries, &jobs, &plain, defaults, prefixes, &once)
                .await
                .rows
        };
        dockhand_jobs::schedule::with_watch(&mut rows, watched);
    }
    output::print(global.json, &rows, || output::plan(&rows))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn unused_volumes(global: &Global, opts: &JobOptions) -> anyhow::Result<ExitCode> {
    let ctx = job_context(global, opts).await?;
    let (volumes, failed) = dockhand_jobs::clean::unused_volumes_everywhere(&ctx).await?;
    output::print(global.json, &volumes, || output::unused_volumes(&volumes))?;
    for (node, why) in &failed {
        output::warning(&format!("node {node} not read: {why}"));
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `dockhand helper-image push REPOSITORY [--registry NAME]`: prints the digest reference.
pub(crate) async fn push_helper_image(
    global: &Global,
    repository: &str,
    registry: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let image = dockhand_policy::ImageRef::parse(repository)
        .map_err(|e| anyhow::anyhow!("helper-image push: REPOSITORY {repository:?}: {e}"))?;
    let named = repository.rsplit('/').next().unwrap_or_default();
    if named.contains(':') || repository.contains('@') {
        anyhow::bail!(
            "helper-image push: REPOSITORY {repository:?} takes no tag or digest (the tag is dockhand's version and build)"
        );
    }
    let credential = crate::context::registries(global)?.credential_for_push(&image, registry).await?;
    let client = connect(global).await?;
    let exe = dockhand_jobs::OwnExecutable::running();
    let pushed = dockhand_jobs::push_own_image(
        &client,
        &exe,
        &image.repository(),
        credential.as_ref().map(|c| &c.auth),
    )
    .await?;
    output::line(&pushed)?;
    Ok(ExitCode::SUCCESS)
}
