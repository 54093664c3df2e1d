//! `dockhand backup`, `backups ls` and `restore`: the backup-service job, what it stored,
//! and the way back. Exit codes as for the clean jobs; Ctrl-C cancels, and a stopped service
//! is started again.

use std::process::ExitCode;

use dockhand_jobs::Job;
use dockhand_jobs::backup::RestoreOptions;
use dockhand_jobs::storage::Storage;

use crate::args::{BackupArgs, BackupsCommand, Global, RestoreArgs};
use crate::context::{cancel_on_signal, connect, finish, job_context, storage_targets};
use crate::output;

pub(crate) async fn backup(global: &Global, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let targets = storage_targets(global)?;
    let ctx = job_context(global, &args.jobs).await?;
    cancel_on_signal(ctx.cancel.clone())?;
    let printer = output::JobPrinter::new(global.json);
    let jobs: Vec<Job> = match (args.service.as_deref(), args.node.as_deref(), args.all) {
        (Some("node"), Some(node), false) => {
            vec![dockhand_jobs::backup::backup_node(&ctx, node, &targets, &printer).await?]
        }
        (Some("node"), None, true) => {
            dockhand_jobs::backup::backup_all_nodes(&ctx, &targets, &printer).await?
        }
        (Some(service), None, false) => {
            vec![dockhand_jobs::backup::backup_service(&ctx, service, &targets, &printer).await?]
        }
        (None, None, true) => dockhand_jobs::backup::backup_all_services(&ctx, &targets, &printer).await?,
        _ => anyhow::bail!(
            "backup takes SERVICE, --all, `node NODE` or `node --all`, not {}",
            [args.service.as_deref(), args.node.as_deref(), args.all.then_some("--all")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    finish(&printer, &jobs).await
}

pub(crate) async fn restore(global: &Global, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let targets = storage_targets(global)?;
    let ctx = job_context(global, &args.jobs).await?;
    cancel_on_signal(ctx.cancel.clone())?;
    let printer = output::JobPrinter::new(global.json);
    let mut options = RestoreOptions::new().force(args.force);
    if let Some(v) = args.volume {
        options = options.with_volume(v);
    }
    if let Some(at) = args.at {
        options = options.at(at);
    }
    if let Some(key) = args.object {
        options = options.object(key);
    }
    if let Some(node) = args.node {
        options = options.on_node(node);
    }
    if let Some(identity) = args.identity {
        options = options.with_identity(identity);
    }
    if let Some(target) = args.target {
        options = options.from_target(target);
    }
    let job = match (args.service.as_str(), &args.node_backup) {
        ("node", Some(node)) => {
            dockhand_jobs::backup::restore_node(&ctx, node, &targets, &options, &printer).await?
        }
        (service, None) => {
            dockhand_jobs::backup::restore_service(&ctx, service, &targets, &options, &printer).await?
        }
        (service, Some(extra)) => {
            anyhow::bail!("restore takes SERVICE or `node NODE`, not {service} {extra}")
        }
    };
    finish(&printer, &[job]).await
}

pub(crate) async fn move_volume(
    global: &Global,
    jobs: &crate::args::JobOptions,
    request: &dockhand_jobs::backup::MoveRequest,
) -> anyhow::Result<ExitCode> {
    let ctx = job_context(global, jobs).await?;
    cancel_on_signal(ctx.cancel.clone())?;
    let printer = output::JobPrinter::new(global.json);
    let job = dockhand_jobs::backup::move_volume(&ctx, request, &printer).await?;
    finish(&printer, &[job]).await
}

pub(crate) async fn list(global: &Global, cmd: BackupsCommand) -> anyhow::Result<ExitCode> {
    let BackupsCommand::Ls { service, node, target, foreign } = cmd;
    let targets = storage_targets(global)?;
    let prefixes = dockhand_policy::LabelPrefixes::default();
    let named = |name: &str| -> anyhow::Result<Vec<_>> { Ok(vec![targets.get(name)?.clone()]) };
    if foreign {
        if node.is_some() {
            anyhow::bail!("backups ls --foreign lists a service's archives of the seed's tool, not a node's");
        }
        let client = connect(global).await?;
        let found = client.service(&service).await.ok();
        let settings = match target {
            Some(name) => named(&name)?,
            None => dockhand_jobs::backup::service_targets(
                found.as_ref(),
                &targets,
                &crate::context::defaults(global)?,
                &prefixes,
            )?,
        };
        let volumes = found.as_ref().map(dockhand_jobs::backup::service_volumes);
        return print_listed(global, &settings, &Listing::Foreign(volumes)).await;
    }
    let (dir, settings) = match (service.as_str(), node) {
        ("node", Some(node)) => {
            // The node's hostname and targets from the swarm, unless a target is named.
            let (hostname, settings) = match target {
                Some(name) => (node, named(&name)?),
                None => {
                    let client = connect(global).await?;
                    let found = client.node(&node).await?;
                    let settings = dockhand_jobs::backup::node_targets(
                        &found,
                        &targets,
                        &crate::context::defaults(global)?,
                        &prefixes,
                    )?;
                    (found.description.hostname, settings)
                }
            };
            (dockhand_jobs::backup::node_dir(&hostname), settings)
        }
        (_, Some(extra)) => anyhow::bail!("backups ls takes SERVICE or `node NODE`, not {service} {extra}"),
        (_, None) => {
            let settings = match target {
                Some(name) => named(&name)?,
                None => {
                    // The targets the service's labels name, when the service still exists.
                    let client = connect(global).await?;
                    let found = client.service(&service).await.ok();
                    dockhand_jobs::backup::service_targets(
                        found.as_ref(),
                        &targets,
                        &crate::context::defaults(global)?,
                        &prefixes,
                    )?
                }
            };
            (service, settings)
        }
    };
    print_listed(global, &settings, &Listing::Own(dir)).await
}

/// What `backups ls` lists on each target.
enum Listing {
    /// The seed's archives, of these volumes when the service still exists.
    Foreign(Option<Vec<String>>),
    /// dockhand's own archives under this directory (a service's, or `node/<host>`).
    Own(String),
}

/// Lists `what` on each target of `settings`, in order, and prints it all.
async fn print_listed(
    global: &Global,
    settings: &[dockhand_jobs::storage::TargetSettings],
    what: &Listing,
) -> anyhow::Result<ExitCode> {
    let mut listed = Vec::new();
    for settings in settings {
        let storage = Storage::open(settings)?;
        let objects = match what {
            Listing::Foreign(volumes) => {
                dockhand_jobs::backup::list_foreign(&storage, volumes.as_deref()).await?
            }
            Listing::Own(dir) => dockhand_jobs::backup::list_backups(&storage, dir).await?,
        };
        listed.extend(
            objects.into_iter().map(|object| output::Listed { target: settings.name.clone(), object }),
        );
    }
    output::print(global.json, &listed, || output::backups(&listed))?;
    Ok(ExitCode::SUCCESS)
}
