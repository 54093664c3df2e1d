//! backup-service, restore, and the reconciliation that brings a service back when a
//! dockhand stopped mid-backup.
//!
//! A backup runs, in order: the optional `backup.exec` in every running task; the optional
//! stop (replicated services: the intent label [`INTENT_LABEL`] and the scale to 0 in one
//! update, with the service's version as compare-and-swap); one upload per volume of
//! `backup.volume-list-upload`; the start (the replicas back to the label's count and the
//! label removed, again in one update); and retention. The start runs on every path once the
//! stop did: a failed exec or upload, a timeout, cancellation, a dropped job future (a
//! background task) and, for a `kill -9`, the next dockhand command ([`reconcile`]).
//!
//! The objects are `<service>/<node>_<volume>_<UTC timestamp>.tar.zst` under the target's
//! prefix, each with `<same>.manifest.json` beside it ([`Manifest`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use dockhand_engine::{Filters, Service};
use dockhand_policy::{BackupPolicy, Defaults, LabelPrefixes, TargetLabels, service_policy};

use crate::job::{Action, Job, Sink, Status, Target, failed};
use crate::lock::LockTarget;
use crate::runner::{JobContext, JobError, Running};
use crate::steps::catalog::retention_on_each;
use crate::steps::lookup::{budget_source, find_service, manager};
use crate::steps::scale::{start, stop};
use crate::steps::transfer::container::Owner;
use crate::steps::transfer::io::{EngineVolumes, VolumeIo};
use crate::steps::volume::{Subject, locate, note_stored, upload_volume};
use crate::storage::Storage;
use crate::storage::{StorageTargets, TargetSettings};
use crate::swarm::Connected;

/// What a backup of one service does: from its labels and the targets.
struct BackupPlan<'a> {
    policy: BackupPolicy,
    targets: Vec<TargetSettings>,
    labels: TargetLabels<'a>,
}

fn plan_backup<'a>(
    defaults: &Defaults,
    prefixes: &'a LabelPrefixes,
    service: &'a Service,
    targets: &StorageTargets,
) -> Result<BackupPlan<'a>, String> {
    let labels = &service.spec.labels;
    let view = TargetLabels::resolve(labels, prefixes);
    let (policy, diagnostics) = service_policy(labels, service.spec.is_global(), defaults, prefixes);
    let name = &service.spec.name;
    let Some(policy) = policy.backup else {
        // A global service with backup.stop=true is refused by the policy with its reason.
        if let Some(d) = diagnostics.iter().find(|d| d.key.contains("backup.")) {
            return Err(format!("service {name}: {} {}: {}", d.key, d.value, d.message));
        }
        return Err(format!(
            "service {name} does not allow backup-service: it needs the label {}=true",
            view.key_for("backup.enable")
        ));
    };
    if policy.volumes.is_empty() {
        return Err(format!(
            "service {name} has no {} label: there is nothing to back up",
            view.key_for("backup.volume-list-upload")
        ));
    }
    let targets = targets.for_service(&policy).map_err(|e| format!("service {name}: {e}"))?;
    Ok(BackupPlan { policy, targets, labels: view })
}

/// Backs up `service` (a name or ID) to the targets its labels name.
pub async fn backup_service(
    ctx: &JobContext,
    service: &str,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    let connected = manager(ctx).await?;
    let found = find_service(ctx, service).await?;
    let names = crate::steps::lookup::hostnames(ctx).await?;
    Ok(backup_one(ctx, &EngineVolumes, &connected, &names, &found, targets, sink).await)
}

/// Backs up every service whose labels enable it, one job each, sorted by name, one at a
/// time (a backup's bandwidth is the bottleneck).
pub async fn backup_all_services(
    ctx: &JobContext,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Result<Vec<Job>, JobError> {
    let connected = manager(ctx).await?;
    let mut services = ctx.swarm.services(&Filters::new()).await?;
    services.retain(|s| {
        let (policy, _) = service_policy(&s.spec.labels, s.spec.is_global(), &ctx.defaults, &ctx.prefixes);
        policy.backup.is_some()
    });
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let names = crate::steps::lookup::hostnames(ctx).await?;
    let mut jobs = Vec::new();
    for s in &services {
        jobs.push(backup_one(ctx, &EngineVolumes, &connected, &names, s, targets, sink).await);
    }
    Ok(jobs)
}

/// One service's backup, its volumes' bytes through `io`.
pub(crate) async fn backup_one(
    ctx: &JobContext,
    io: &dyn VolumeIo,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    service: &Service,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Job {
    let target = Target::Service { id: service.id.clone(), name: service.spec.name.clone() };
    let mut run = Running::start(ctx, sink, Action::BackupService, target);
    let plan = match plan_backup(&ctx.defaults, &ctx.prefixes, service, targets) {
        Ok(plan) => plan,
        Err(reason) => {
            run.push_now("policy", Status::Refused, reason);
            return run.finish(Some(Status::Refused)).await;
        }
    };
    let storages = match plan.targets.iter().map(Storage::open).collect::<Result<Vec<_>, _>>() {
        Ok(s) => s,
        Err(e) => {
            run.push_now("storage", Status::Failed, e.to_string());
            return run.finish(None).await;
        }
    };
    if let Err(status) = run.lock(LockTarget::Service(service.id.clone())).await {
        return run.finish(status).await;
    }
    let policy = &plan.policy;
    if let Some(exec) = &policy.exec {
        let argv = vec![policy.shell.clone(), "-c".to_owned(), exec.clone()];
        let budget = crate::agent::protocol::Budget::new(
            policy.exec_timeout,
            budget_source(&plan.labels, "backup.exec.timeout"),
        );
        crate::steps::exec::exec_in_tasks(
            &mut run,
            connected,
            names,
            service,
            &argv,
            &budget,
            Action::BackupService,
        )
        .await;
        if failed(&run.job) {
            return run.finish(None).await;
        }
    }
    // Where each volume is, before anything is stopped: a stopped service has no tasks left
    // to say where it ran, and a volume that cannot be backed up should not cost downtime.
    let mut located = Vec::new();
    for wanted in &policy.volumes {
        let owner = Owner {
            job: &run.job.id,
            target: &LockTarget::Service(service.id.clone()).label(),
            action: Action::BackupService.as_str(),
        };
        match locate(ctx, io, owner, connected, names, service, wanted).await {
            Ok(found) => located.extend(found),
            Err(e) => run.push_now("upload", Status::Failed, format!("volume {wanted}: {e}")),
        }
    }
    if failed(&run.job) {
        return run.finish(None).await;
    }
    if service.spec.is_global()
        && plan.labels.get("backup.stop").is_some_and(|(_, v)| v.trim().eq_ignore_ascii_case("true"))
    {
        // As seed 002: a global service is backed up while it runs; the job says so.
        run.push_now(
            "stop",
            Status::Skipped,
            format!("service {}: {}", service.spec.name, dockhand_policy::GLOBAL_NOT_STOPPED),
        );
    }
    let stopped = if policy.stop {
        let budget = crate::agent::protocol::Budget::new(
            policy.stop_timeout,
            budget_source(&plan.labels, "backup.stop.timeout"),
        );
        match stop(&mut run, &service.id, &budget).await {
            Ok(guard) => Some(guard),
            Err(guard) => {
                // The stop failed after the intent may have been written: bring it back.
                let budget = crate::agent::protocol::Budget::new(
                    policy.start_timeout,
                    budget_source(&plan.labels, "backup.start.timeout"),
                );
                start(&mut run, &service.id, &budget, Some(guard)).await;
                return run.finish(None).await;
            }
        }
    } else {
        None
    };
    let now = SystemTime::now();
    let upload_budget = crate::agent::protocol::Budget::new(
        policy.upload_timeout,
        budget_source(&plan.labels, "backup.volume-list-upload.timeout"),
    );
    let mut uploaded = vec![Vec::new(); storages.len()];
    for found in &located {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let subject = Subject::service(service, Action::BackupService);
        let stored =
            upload_volume(&mut run, io, connected, &subject, &storages, found, now, &upload_budget).await;
        note_stored(&mut uploaded, &stored, &found.volume);
    }
    if let Some(guard) = stopped {
        let budget = crate::agent::protocol::Budget::new(
            policy.start_timeout,
            budget_source(&plan.labels, "backup.start.timeout"),
        );
        start(&mut run, &service.id, &budget, Some(guard)).await;
    }
    if !failed(&run.job) && !ctx.cancel.is_cancelled() {
        retention_on_each(&mut run, &storages, &service.spec.name, &uploaded, policy.s3.retention_days).await;
    }
    run.finish(None).await
}

#[cfg(test)]
mod tests;
