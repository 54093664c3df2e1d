//! restore: a service's own volumes back from its own archives, verified before the staged
//! tree replaces the volume, with the service stopped (the intent label) while it happens.

use dockhand_policy::TargetLabels;

use crate::job::{Action, Job, Sink, Status, Target};
use crate::lock::LockTarget;
use crate::runner::{JobContext, JobError, Running};
use crate::steps::catalog::{BackupObject, RestoreOptions, own_archive, service_targets};
use crate::steps::lookup::resolve_volume;
use crate::steps::lookup::{budget_source, find_service, manager};
use crate::steps::scale::{start, stop};
use crate::steps::transfer::io::{EngineVolumes, VolumeIo};
use crate::steps::volume::{Subject, download_volume, running_nodes, verify_chosen, volume_node};
use crate::storage::Storage;
use crate::storage::targets::StorageTargets;

/// Restores `service`'s volumes from its target: checks each archive against its manifest
/// before anything is touched, stops the service (as a backup does), replaces each volume's
/// contents, and starts it again on every path.
pub async fn restore_service(
    ctx: &JobContext,
    service: &str,
    targets: &StorageTargets,
    options: &RestoreOptions,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    restore_with(ctx, &EngineVolumes, service, targets, options, sink).await
}

/// [`restore_service`] with the volumes' bytes through `io`.
pub(crate) async fn restore_with(
    ctx: &JobContext,
    io: &dyn VolumeIo,
    service: &str,
    targets: &StorageTargets,
    options: &RestoreOptions,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    let connected = manager(ctx).await?;
    let found = find_service(ctx, service).await?;
    let names = crate::steps::lookup::hostnames(ctx).await?;
    let target = Target::Service { id: found.id.clone(), name: found.spec.name.clone() };
    let mut run = Running::start(ctx, sink, Action::Restore, target);
    let view = TargetLabels::resolve(&found.spec.labels, &ctx.prefixes);
    let chosen_target = options
        .chosen_target(targets, || service_targets(Some(&found), targets, &ctx.defaults, &ctx.prefixes));
    let storage = match chosen_target.and_then(|t| Storage::open(&t)) {
        Ok(s) => s,
        Err(e) => {
            run.push_now("storage", Status::Failed, e.to_string());
            return Ok(run.finish(None).await);
        }
    };
    if found.spec.is_global() && !options.force {
        run.push_now(
            "policy",
            Status::Refused,
            format!(
                "service {} is global: it cannot be stopped by scaling, so a restore would write under running \
                 tasks; pass --force to restore anyway",
                found.spec.name
            ),
        );
        return Ok(run.finish(Some(Status::Refused)).await);
    }
    // Which archives, and are they whole: all before the service is touched. A volume is
    // one the service mounts (R3-02), never a raw name from a request or an object's key.
    let real = match options.volume.as_ref().map(|v| resolve_volume(&found, v)).transpose() {
        Ok(real) => real.map(|(real, _)| real),
        Err(e) => {
            run.push_now("verify", Status::Failed, e.to_string());
            return Ok(run.finish(None).await);
        }
    };
    // On several nodes (a local volume each), each node's own copy goes back to it.
    let spread: Vec<String> = if options.node.is_none() && options.object.is_none() {
        match running_nodes(ctx, &found).await {
            Ok(ids) if ids.len() > 1 => {
                ids.iter().map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone())).collect()
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                run.push_now("verify", Status::Failed, e);
                return Ok(run.finish(None).await);
            }
        }
    } else {
        Vec::new()
    };
    let own = |object: &BackupObject| own_archive(&found, object).map_err(|e| e.to_string());
    let Some(verified) =
        verify_chosen(&mut run, &storage, &found.spec.name, options, real.as_deref(), &spread, &own).await
    else {
        return Ok(run.finish(None).await);
    };
    // Where each volume is: --node, else where the service's tasks run (an object's key
    // names a node, but never decides where a restore writes; on several nodes it says
    // which of the service's own nodes a copy belongs to).
    let mut nodes = Vec::new();
    for (object, _) in &verified {
        let node = match &options.node {
            Some(node) => Ok(node.clone()),
            None if !spread.is_empty() => Ok(object.node.clone()),
            None => volume_node(ctx, io, &connected, &found, &object.volume).await,
        };
        match node {
            Ok(node) => nodes.push(node),
            Err(e) => {
                run.push_now("verify", Status::Failed, format!("volume {}: {e}: pass --node", object.volume));
                return Ok(run.finish(None).await);
            }
        }
    }
    if let Err(status) = run.lock(LockTarget::Service(found.id.clone())).await {
        return Ok(run.finish(status).await);
    }
    let stop_budget = crate::agent::protocol::Budget::new(
        ctx.defaults.backup_stop_timeout,
        budget_source(&view, "backup.stop.timeout"),
    );
    let start_budget = crate::agent::protocol::Budget::new(
        ctx.defaults.backup_start_timeout,
        budget_source(&view, "backup.start.timeout"),
    );
    let guard = if found.spec.is_global() {
        None
    } else {
        match stop(&mut run, &found.id, &stop_budget).await {
            Ok(guard) => Some(guard),
            Err(guard) => {
                start(&mut run, &found.id, &start_budget, Some(guard)).await;
                return Ok(run.finish(None).await);
            }
        }
    };
    for ((object, staged), node) in verified.iter().zip(&nodes) {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let subject = Subject::service(&found, Action::Restore);
        download_volume(&mut run, io, &connected, &names, &subject, (object, staged), node).await;
    }
    if guard.is_some() {
        start(&mut run, &found.id, &start_budget, guard).await;
    }
    Ok(run.finish(None).await)
}

#[cfg(test)]
mod tests;
