//! Node backups (seed idea 7): the named volumes a node's `backup.*` labels list, whatever
//! service uses them, through the same transfer, archive, manifest and retention as a
//! service's backup, under `<prefix>/node/<hostname>/`.
//!
//! A node's optional `backup.exec` runs first in a helper container on that node, of the
//! image `backup.exec.image`, with the listed volumes at `/volumes/<name>` and no other
//! mount: no engine socket, no host path. Nothing is stopped: a node has no replicas to
//! scale, so consistency is the exec's job (or the operator's).

use std::collections::BTreeMap;
use std::time::SystemTime;

use dockhand_engine::{Filters, Node};
use dockhand_policy::{BackupPolicy, Severity, TargetLabels, node_backup_policy};

use crate::job::{Action, Job, Sink, Status, Step, Target};
use crate::runner::{JobContext, JobError, Running};
use crate::steps::catalog::{RestoreOptions, node_dir};
use crate::steps::transfer::container::Owner;
use crate::steps::transfer::io::{EngineVolumes, Place, VolumeIo};
use crate::steps::volume::{Located, Subject};
use crate::storage::Storage;
use crate::storage::{StorageTargets, TargetSettings};
use crate::swarm::Connected;

/// Backs up the volumes of `node` (an ID or a hostname) that its labels list.
pub async fn backup_node(
    ctx: &JobContext,
    node: &str,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    let connected = crate::steps::lookup::manager(ctx).await?;
    let nodes = ctx.swarm.nodes(&Filters::new()).await?;
    let found = crate::steps::lookup::find_node(&nodes, node)?;
    Ok(backup_one(ctx, &EngineVolumes, &connected, found, targets, sink).await)
}

/// Backs up every node whose labels enable it, one job each, sorted by hostname, one at a
/// time.
pub async fn backup_all_nodes(
    ctx: &JobContext,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Result<Vec<Job>, JobError> {
    let connected = crate::steps::lookup::manager(ctx).await?;
    let mut nodes = ctx.swarm.nodes(&Filters::new()).await?;
    nodes.retain(|n| node_backup_policy(&n.spec.labels, &ctx.defaults, &ctx.prefixes).0.is_some());
    nodes.sort_by(|a, b| a.description.hostname.cmp(&b.description.hostname));
    let mut jobs = Vec::new();
    for node in &nodes {
        jobs.push(backup_one(ctx, &EngineVolumes, &connected, node, targets, sink).await);
    }
    Ok(jobs)
}

fn target_of(node: &Node) -> Target {
    Target::Node { id: node.id.clone(), hostname: node.description.hostname.clone() }
}

/// The node's backup policy and targets, or why it has none.
fn plan(
    ctx: &JobContext,
    node: &Node,
    targets: &StorageTargets,
) -> Result<(BackupPolicy, Vec<TargetSettings>), String> {
    let hostname = &node.description.hostname;
    let view = TargetLabels::resolve(&node.spec.labels, &ctx.prefixes);
    let (policy, diagnostics) = node_backup_policy(&node.spec.labels, &ctx.defaults, &ctx.prefixes);
    if let Some(d) = diagnostics.iter().find(|d| d.severity == Severity::Error) {
        return Err(format!("node {hostname}: label {} {:?}: {}", d.key, d.value, d.message));
    }
    let Some(policy) = policy else {
        return Err(format!(
            "node {hostname} does not allow backups: it needs the label {}=true",
            view.key_for("backup.enable")
        ));
    };
    if policy.volumes.is_empty() {
        return Err(format!(
            "node {hostname} has no {} label: there is nothing to back up",
            view.key_for("backup.volume-list-upload")
        ));
    }
    let target = targets.for_service(&policy).map_err(|e| format!("node {hostname}: {e}"))?;
    Ok((policy, target))
}

fn budget(
    ctx: &JobContext,
    node: &Node,
    label: &str,
    timeout: std::time::Duration,
) -> crate::agent::protocol::Budget {
    let view = TargetLabels::resolve(&node.spec.labels, &ctx.prefixes);
    crate::agent::protocol::Budget::new(timeout, crate::steps::lookup::budget_source(&view, label))
}

async fn backup_one(
    ctx: &JobContext,
    io: &dyn VolumeIo,
    connected: &Connected,
    node: &Node,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Job {
    let hostname = node.description.hostname.clone();
    let mut run = Running::start(ctx, sink, Action::BackupNode, target_of(node));
    let (policy, settings) = match plan(ctx, node, targets) {
        Ok(plan) => plan,
        Err(reason) => {
            run.push_now("policy", Status::Refused, reason);
            return run.finish(Some(Status::Refused)).await;
        }
    };
    let storages = match settings.iter().map(Storage::open).collect::<Result<Vec<_>, _>>() {
        Ok(s) => s,
        Err(e) => {
            run.push_now("storage", Status::Failed, e.to_string());
            return run.finish(None).await;
        }
    };
    let subject = Subject::node(&node.id, &hostname, Action::BackupNode);
    if let Err(status) = run.lock(subject.lock.clone()).await {
        return run.finish(status).await;
    }
    // Every volume must be there, local, before the exec runs: mounting a missing one in
    // the exec's helper would create it.
    let mut located = Vec::new();
    for volume in &policy.volumes {
        let lock = subject.lock.label();
        let owner = Owner { job: &run.job.id, target: &lock, action: subject.action.as_str() };
        let at = Place { ctx, owner, connected: &connected.node_id, node_id: &node.id, node_name: &hostname };
        let found = match io.facts(&at, volume).await {
            Ok(facts) if !facts.exists => Err(format!("node {hostname} has no volume {volume}")),
            Ok(facts) => crate::steps::volume::refuse_driver(volume, &facts.driver),
            Err(e) => Err(e),
        };
        match found {
            Ok(()) => located.push(Located {
                volume: volume.clone(),
                matched: format!("volume {volume} on node {hostname}"),
                node_id: node.id.clone(),
                node_name: hostname.clone(),
            }),
            Err(e) => run.push_now("upload", Status::Failed, format!("volume {volume}: {e}")),
        }
    }
    if crate::job::failed(&run.job) {
        return run.finish(None).await;
    }
    if let (Some(exec), Some(image)) = (&policy.exec, &policy.exec_image) {
        let budget = budget(ctx, node, "backup.exec.timeout", policy.exec_timeout);
        let started = SystemTime::now();
        let mut step = Step::start("exec", started);
        step.node = Some(hostname.clone());
        run.started(&step);
        let command = crate::helper::CommandRun {
            job: &run.job.id,
            action: subject.action.as_str(),
            target: subject.lock.label(),
            node_id: &node.id,
            node_name: &hostname,
            image,
            argv: vec![policy.shell.clone(), "-c".to_owned(), exec.clone()],
            volumes: &policy.volumes,
            read_write: policy.exec_read_write,
            timeout: budget.timeout,
        };
        match crate::helper::run_command_helper(&ctx.client, &ctx.helpers, &command, &ctx.cancel).await {
            Ok(said) => {
                step.finish(Status::Succeeded, SystemTime::now(), None);
                step.output_tail = (!said.is_empty()).then_some(said);
                run.push(step);
            }
            Err(e) => {
                run.helper_failed("exec", &hostname, started, &e);
                return run.finish(None).await;
            }
        }
    }
    let now = SystemTime::now();
    let upload_budget = budget(ctx, node, "backup.volume-list-upload.timeout", policy.upload_timeout);
    let mut uploaded = vec![Vec::new(); storages.len()];
    for found in &located {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let stored = crate::steps::volume::upload_volume(
            &mut run,
            io,
            connected,
            &subject,
            &storages,
            found,
            now,
            &upload_budget,
        )
        .await;
        crate::steps::volume::note_stored(&mut uploaded, &stored, &found.volume);
    }
    if !crate::job::failed(&run.job) && !ctx.cancel.is_cancelled() {
        let days = policy.s3.retention_days;
        crate::steps::catalog::retention_on_each(&mut run, &storages, &subject.dir, &uploaded, days).await;
    }
    run.finish(None).await
}

/// The targets of `node`'s backups: those its labels name, else `local`.
pub fn node_targets(
    node: &Node,
    targets: &StorageTargets,
    defaults: &dockhand_policy::Defaults,
    prefixes: &dockhand_policy::LabelPrefixes,
) -> Result<Vec<TargetSettings>, crate::storage::error::StorageError> {
    match node_backup_policy(&node.spec.labels, defaults, prefixes).0 {
        Some(policy) => targets.for_service(&policy),
        None => Ok(vec![targets.get(crate::storage::targets::DEFAULT_TARGET)?.clone()]),
    }
}

/// Restores `node`'s volumes from its backups: verifies each archive first, then replaces
/// each volume's contents on the node the backup was taken on (or `options.node`). Nothing
/// is stopped; a volume that a running container mounts is refused unless `options.force`.
pub async fn restore_node(
    ctx: &JobContext,
    node: &str,
    targets: &StorageTargets,
    options: &RestoreOptions,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    restore_node_with(ctx, &EngineVolumes, node, targets, options, sink).await
}

/// [`restore_node`] with the volumes' bytes through `io`.
pub(crate) async fn restore_node_with(
    ctx: &JobContext,
    io: &dyn VolumeIo,
    node: &str,
    targets: &StorageTargets,
    options: &RestoreOptions,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    let connected = crate::steps::lookup::manager(ctx).await?;
    let nodes = ctx.swarm.nodes(&Filters::new()).await?;
    let found = crate::steps::lookup::find_node(&nodes, node)?;
    let hostname = found.description.hostname.clone();
    let names: BTreeMap<String, String> =
        nodes.iter().map(|n| (n.id.clone(), n.description.hostname.clone())).collect();
    let mut run = Running::start(ctx, sink, Action::Restore, target_of(found));
    let storage = match options
        .chosen_target(targets, || node_targets(found, targets, &ctx.defaults, &ctx.prefixes))
        .and_then(|t| Storage::open(&t))
    {
        Ok(s) => s,
        Err(e) => {
            run.push_now("storage", Status::Failed, e.to_string());
            return Ok(run.finish(None).await);
        }
    };
    let dir = node_dir(&hostname);
    let own =
        |object: &crate::steps::catalog::BackupObject| crate::steps::catalog::manifest_names(object, "node");
    let Some(verified) = crate::steps::volume::verify_chosen(
        &mut run,
        &storage,
        &dir,
        options,
        options.volume.as_deref(),
        &[],
        &own,
    )
    .await
    else {
        return Ok(run.finish(None).await);
    };
    let subject = Subject::node(&found.id, &hostname, Action::Restore);
    if let Err(status) = run.lock(subject.lock.clone()).await {
        return Ok(run.finish(status).await);
    }
    let mut refused = false;
    for (object, staged) in &verified {
        if ctx.cancel.is_cancelled() {
            break;
        }
        // The node restored, or --node: never the node an object's key names (R3-02).
        let on = options.node.clone().unwrap_or_else(|| hostname.clone());
        if !options.force {
            let on_id = names.iter().find(|(id, name)| **name == on || **id == on).map(|(id, _)| id.clone());
            if let Some(on_id) = on_id {
                let lock = subject.lock.label();
                let owner = Owner { job: &run.job.id, target: &lock, action: subject.action.as_str() };
                let at = Place { ctx, owner, connected: &connected.node_id, node_id: &on_id, node_name: &on };
                match io.facts(&at, &object.volume).await {
                    Ok(facts) if !facts.users.is_empty() => {
                        run.push_now(
                            "restore",
                            Status::Refused,
                            format!(
                                "volume {} on node {on} is mounted by running containers ({}): stop them first, \
                                 or pass --force to restore under them",
                                object.volume,
                                facts.users.join(", ")
                            ),
                        );
                        refused = true;
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        run.push_now("restore", Status::Failed, format!("volume {}: {e}", object.volume));
                        continue;
                    }
                }
            }
        }
        crate::steps::volume::download_volume(
            &mut run,
            io,
            &connected,
            &names,
            &subject,
            (object, staged),
            &on,
        )
        .await;
    }
    // A refused volume makes the job refused, unless something failed outright.
    let status = (refused && !crate::job::failed(&run.job)).then_some(Status::Refused);
    Ok(run.finish(status).await)
}

#[cfg(test)]
mod tests;
