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
use std::time::{Duration, SystemTime};

use dockhand_engine::{Client, Filters, Service, UpdateOptions};
use dockhand_policy::{BackupPolicy, TargetLabels, service_policy};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::job::{Action, Job, Sink, Status, Step, Target};
use crate::lock::LockTarget;
use crate::runner::{Connected, JobContext, JobError, Running};
use crate::storage::{Storage, StorageTargets, TargetSettings};
use crate::volume_io::{Attach, Owner, Remote, VolumeContainer, key_timestamp, parse_key_timestamp};

/// The label that records, on the service itself, the replica count a backup or restore
/// scaled it down from. While it is there, the service is owed its replicas back.
pub const INTENT_LABEL: &str = "dockhand.backup.restore-replicas";
/// The archive suffix.
pub const ARCHIVE_SUFFIX: &str = ".tar.zst";
/// The manifest suffix, after the archive's key.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// What is recorded beside each archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The manifest's format version (1).
    pub format: u32,
    /// The service's name (or `node` for a node backup).
    pub service: String,
    /// The service's image.
    pub image: String,
    /// The node's hostname.
    pub node: String,
    /// The volume's real name.
    pub volume: String,
    /// When the backup was taken (RFC 3339, UTC).
    pub created: String,
    /// The archive's size in bytes.
    pub bytes: u64,
    /// The archive's SHA-256 (hex), as stored.
    pub sha256: String,
    /// `zstd`.
    pub compression: String,
    /// The zstd level.
    pub level: i32,
    /// Entries in the tar.
    pub entries: u64,
    /// Bytes of file content in the tar.
    pub content_bytes: u64,
    /// age recipients the archive is encrypted to; empty when it is not.
    #[serde(default)]
    pub encrypted_to: Vec<String>,
    /// The dockhand version that wrote it.
    pub dockhand_version: String,
    /// The job that wrote it.
    pub job: String,
}

/// One archive on a target, with what its manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackupObject {
    /// Its key, relative to the target's prefix.
    pub key: String,
    /// The node part of its name.
    pub node: String,
    /// The volume part of its name.
    pub volume: String,
    /// The timestamp part (`20261128T083803Z`).
    pub timestamp: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its manifest, when it has a readable one.
    pub manifest: Option<Manifest>,
    /// `ok` when the manifest's size matches the object's, else what is wrong.
    pub check: String,
}

/// `<node>_<volume>_<timestamp>.tar.zst` (or `.tar.zst.age`, encrypted) back into its
/// parts. Hostnames have no `_`, the timestamp has none; the volume's name may. A name
/// with a `/` lies in a deeper directory (`node/<host>/…` under a service called `node`)
/// and is not an archive of this directory (R3-17).
pub fn parse_archive_name(name: &str) -> Option<(&str, &str, &str)> {
    if name.contains('/') {
        return None;
    }
    let name = name.strip_suffix(crate::seal::AGE_SUFFIX).unwrap_or(name);
    let stem = name.strip_suffix(ARCHIVE_SUFFIX)?;
    let (node, rest) = stem.split_once('_')?;
    let (volume, ts) = rest.rsplit_once('_')?;
    (parse_key_timestamp(ts).is_some() && !volume.is_empty()).then_some((node, volume, ts))
}

/// The archive key of one volume's backup, relative to the target's prefix; `.age` follows
/// `.tar.zst` when it is `encrypted`.
pub fn archive_key(service: &str, node: &str, volume: &str, at: SystemTime, encrypted: bool) -> String {
    let age = if encrypted { crate::seal::AGE_SUFFIX } else { "" };
    format!("{service}/{}_{volume}_{}{ARCHIVE_SUFFIX}{age}", node.replace('_', "-"), key_timestamp(at))
}

/// Which archives of `volume` retention deletes: those older than `days` at `now`, never
/// the `keep_last` newest of each node (a volume backed up from several nodes keeps each
/// node's). `objects` may hold other volumes' archives; they are left alone.
pub fn expired<'a>(
    objects: &'a [BackupObject],
    volume: &str,
    now: SystemTime,
    days: u32,
    keep_last: u32,
) -> Vec<&'a BackupObject> {
    let limit = now - Duration::from_secs(u64::from(days) * 86_400);
    let mut mine: Vec<&BackupObject> = objects.iter().filter(|o| o.volume == volume).collect();
    mine.sort_by(|a, b| a.node.cmp(&b.node).then(b.timestamp.cmp(&a.timestamp)));
    let mut kept: BTreeMap<&str, u32> = BTreeMap::new();
    mine.into_iter()
        .filter(|o| {
            let newer = kept.entry(o.node.as_str()).or_insert(0);
            *newer += 1;
            *newer > keep_last
        })
        .filter(|o| parse_key_timestamp(&o.timestamp).is_some_and(|t| t < limit))
        .collect()
}

/// The most a manifest may weigh (R3-05): a target that answers with an endless one must
/// not exhaust the server's memory.
pub(crate) const MANIFEST_LIMIT: usize = 1 << 20;

/// The manifest at `key`, read up to [`MANIFEST_LIMIT`] bytes whatever its length says;
/// `None` when it is missing, larger, or not a manifest.
async fn read_manifest(storage: &Storage, key: &object_store::path::Path) -> Option<Manifest> {
    use futures_util::StreamExt;
    let got = storage.store().get(key).await.ok()?;
    if got.meta.size > MANIFEST_LIMIT as u64 {
        return None;
    }
    let mut stream = got.into_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if body.len() + chunk.len() > MANIFEST_LIMIT {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).ok()
}

/// Every archive of `service` on `storage`, oldest first, with its manifest read and checked.
pub async fn list_backups(
    storage: &Storage,
    service: &str,
) -> Result<Vec<BackupObject>, crate::StorageError> {
    let listed = storage.list(service).await?;
    let mut objects = Vec::new();
    for meta in &listed {
        let key = storage.relative(&meta.location);
        let Some(name) = key.strip_prefix(&format!("{service}/")) else { continue };
        let Some((node, volume, ts)) = parse_archive_name(name) else { continue };
        let manifest_key = storage.key(&format!("{key}{MANIFEST_SUFFIX}"));
        let manifest = read_manifest(storage, &manifest_key).await;
        let check = match &manifest {
            None => "no readable manifest".to_owned(),
            Some(m) if m.bytes != meta.size => {
                format!("size {} but the manifest says {}", meta.size, m.bytes)
            }
            Some(_) => "ok".to_owned(),
        };
        objects.push(BackupObject {
            key: key.clone(),
            node: node.to_owned(),
            volume: volume.to_owned(),
            timestamp: ts.to_owned(),
            size: meta.size,
            manifest,
            check,
        });
    }
    objects.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.key.cmp(&b.key)));
    Ok(objects)
}

/// The suffix of the archives of the seed's tool (offen/docker-volume-backup).
pub const FOREIGN_SUFFIX: &str = ".tar.gz";
/// What a listing says of such an archive in place of a manifest check.
pub const FOREIGN_CHECK: &str = "the seed's tool's (.tar.gz, no manifest)";

/// `<node>_<volume>_<date>.tar.gz`, the seed's name of an archive, into its parts; the
/// volume's name may hold `_`, the node's and the date's do not.
pub fn parse_foreign_name(name: &str) -> Option<(&str, &str, &str)> {
    let stem = name.strip_suffix(FOREIGN_SUFFIX)?;
    let (node, rest) = stem.split_once('_')?;
    let (volume, date) = rest.rsplit_once('_')?;
    (!node.is_empty() && !volume.is_empty() && !date.is_empty()).then_some((node, volume, date))
}

/// The archives the seed's tool wrote on `storage`, anywhere under the target's prefix, of
/// `volumes` when given, by date. They have no manifest: a restore checks that each is a
/// whole gzip tar holding its volume under `backup/<volume>/` before it touches anything.
pub async fn list_foreign(
    storage: &Storage,
    volumes: Option<&[String]>,
) -> Result<Vec<BackupObject>, crate::StorageError> {
    let mut objects = Vec::new();
    for meta in storage.list("").await? {
        let key = storage.relative(&meta.location);
        let name = key.rsplit('/').next().unwrap_or_default();
        let Some((node, volume, date)) = parse_foreign_name(name) else { continue };
        if volumes.is_some_and(|v| !v.iter().any(|v| v == volume)) {
            continue;
        }
        objects.push(BackupObject::foreign(&key, (node, volume, date), meta.size));
    }
    objects.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.key.cmp(&b.key)));
    Ok(objects)
}

impl BackupObject {
    /// An archive of the seed's tool at `key`, with the parts of its name.
    fn foreign(key: &str, (node, volume, date): (&str, &str, &str), size: u64) -> Self {
        Self {
            key: key.to_owned(),
            node: node.to_owned(),
            volume: volume.to_owned(),
            timestamp: date.to_owned(),
            size,
            manifest: None,
            check: FOREIGN_CHECK.to_owned(),
        }
    }
}

/// The real names of the volumes `service` mounts.
pub fn service_volumes(service: &Service) -> Vec<String> {
    volume_mounts(service).into_iter().map(str::to_owned).collect()
}

/// The real name of volume `wanted` of `service`: as named, or as its stack prefixes it
/// (`<stack>_<volume>`); with how it was matched.
pub fn resolve_volume(service: &Service, wanted: &str) -> Result<(String, String), NotMounted> {
    let mounts = volume_mounts(service);
    if mounts.contains(&wanted) {
        return Ok((wanted.to_owned(), format!("volume {wanted}")));
    }
    if let Some(stack) = service.spec.labels.get("com.docker.stack.namespace") {
        let prefixed = format!("{stack}_{wanted}");
        if mounts.contains(&prefixed.as_str()) {
            return Ok((
                prefixed.clone(),
                format!("volume {wanted} is {prefixed} (stack {stack} prefixes it)"),
            ));
        }
    }
    Err(NotMounted(format!(
        "service {} mounts no volume {wanted:?}{}; it mounts: {}",
        service.spec.name,
        service
            .spec
            .labels
            .get("com.docker.stack.namespace")
            .map(|s| format!(" (nor {s}_{wanted})"))
            .unwrap_or_default(),
        mounted(service)
    )))
}

/// A volume a service does not mount: which, and what it mounts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotMounted(String);

/// No archive matches what a restore asked: what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoBackup(String);

/// The named volumes `service` mounts.
fn volume_mounts(service: &Service) -> Vec<&str> {
    service
        .spec
        .task_template
        .container_spec
        .mounts
        .iter()
        .filter(|m| m.kind == "volume")
        .map(|m| m.source.as_str())
        .collect()
}

/// The storage target of `service`'s backups: the one its labels name (or the seed's), else
/// `local`, as for a service that does not exist any more.
pub fn service_target(
    service: Option<&Service>,
    targets: &StorageTargets,
    defaults: &dockhand_policy::Defaults,
    prefixes: &dockhand_policy::LabelPrefixes,
) -> Result<TargetSettings, crate::StorageError> {
    let policy =
        service.and_then(|s| service_policy(&s.spec.labels, s.spec.is_global(), defaults, prefixes).0.backup);
    match policy {
        Some(backup) => targets.for_service(&backup),
        None => targets.get(crate::storage::DEFAULT_TARGET).cloned(),
    }
}

/// What a backup of one service does: from its labels and the targets.
struct BackupPlan<'a> {
    policy: BackupPolicy,
    target: TargetSettings,
    labels: TargetLabels<'a>,
}

fn plan_backup<'a>(
    ctx: &JobContext,
    service: &'a Service,
    targets: &StorageTargets,
) -> Result<BackupPlan<'a>, String> {
    let labels = &service.spec.labels;
    let view = TargetLabels::resolve(labels, &ctx.prefixes);
    let (policy, diagnostics) =
        service_policy(labels, service.spec.is_global(), &ctx.defaults, &ctx.prefixes);
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
    let target = targets.for_service(&policy).map_err(|e| format!("service {name}: {e}"))?;
    Ok(BackupPlan { policy, target, labels: view })
}

pub(crate) fn budget_source(view: &TargetLabels<'_>, label: &str) -> String {
    match view.get(label) {
        Some((key, _)) => format!("label {key}"),
        None => "the default".to_owned(),
    }
}

/// Backs up `service` (a name or ID) to the target its labels name.
pub async fn backup_service(
    ctx: &JobContext,
    service: &str,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Result<Job, JobError> {
    let connected = manager(ctx).await?;
    let found = find_service(ctx, service).await?;
    let names = crate::clean_service::hostnames(ctx).await?;
    Ok(backup_one(ctx, &connected, &names, &found, targets, sink).await)
}

/// Backs up every service whose labels enable it, one job each, sorted by name, one at a
/// time (a backup's bandwidth is the bottleneck).
pub async fn backup_all_services(
    ctx: &JobContext,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Result<Vec<Job>, JobError> {
    let connected = manager(ctx).await?;
    let mut services = ctx.client.services(&Filters::new()).await?;
    services.retain(|s| {
        let (policy, _) = service_policy(&s.spec.labels, s.spec.is_global(), &ctx.defaults, &ctx.prefixes);
        policy.backup.is_some()
    });
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let names = crate::clean_service::hostnames(ctx).await?;
    let mut jobs = Vec::new();
    for s in &services {
        jobs.push(backup_one(ctx, &connected, &names, s, targets, sink).await);
    }
    Ok(jobs)
}

pub(crate) async fn manager(ctx: &JobContext) -> Result<Connected, JobError> {
    let connected = Connected::read(&ctx.client).await?;
    if !connected.manager {
        return Err(JobError::NotManager(connected.name));
    }
    Ok(connected)
}

/// `service` (a name or ID), or the job error that says there is none.
pub(crate) async fn find_service(ctx: &JobContext, service: &str) -> Result<Service, JobError> {
    match ctx.client.service(service).await {
        Ok(s) => Ok(s),
        Err(e) if e.is_not_found() => Err(JobError::UnknownService(service.to_owned())),
        Err(e) => Err(e.into()),
    }
}

async fn backup_one(
    ctx: &JobContext,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    service: &Service,
    targets: &StorageTargets,
    sink: &dyn Sink,
) -> Job {
    let target = Target::Service { id: service.id.clone(), name: service.spec.name.clone() };
    let mut run = Running::start(ctx, sink, Action::BackupService, target);
    let plan = match plan_backup(ctx, service, targets) {
        Ok(plan) => plan,
        Err(reason) => {
            run.push_now("policy", Status::Refused, reason);
            return run.finish(Some(Status::Refused)).await;
        }
    };
    let storage = match Storage::open(&plan.target) {
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
        let budget =
            crate::Budget::new(policy.exec_timeout, budget_source(&plan.labels, "backup.exec.timeout"));
        crate::clean_service::exec_in_tasks(
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
        match locate(ctx, owner, connected, names, service, wanted).await {
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
        let budget =
            crate::Budget::new(policy.stop_timeout, budget_source(&plan.labels, "backup.stop.timeout"));
        match stop(&mut run, &service.id, &budget).await {
            Ok(guard) => Some(guard),
            Err(guard) => {
                // The stop failed after the intent may have been written: bring it back.
                let budget = crate::Budget::new(
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
    let upload_budget = crate::Budget::new(
        policy.upload_timeout,
        budget_source(&plan.labels, "backup.volume-list-upload.timeout"),
    );
    let mut uploaded = Vec::new();
    for found in &located {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let subject = Subject::service(service, Action::BackupService);
        let stored = upload_volume(&mut run, connected, &subject, &storage, found, now, &upload_budget).await;
        if stored && !uploaded.contains(&found.volume) {
            uploaded.push(found.volume.clone());
        }
    }
    if let Some(guard) = stopped {
        let budget =
            crate::Budget::new(policy.start_timeout, budget_source(&plan.labels, "backup.start.timeout"));
        start(&mut run, &service.id, &budget, Some(guard)).await;
    }
    let days = policy.s3.retention_days.or(plan.target.retention_days);
    if let Some(days) = days.filter(|_| !failed(&run.job) && !ctx.cancel.is_cancelled()) {
        retention(&mut run, &storage, &service.spec.name, &uploaded, days, plan.target.keep_last).await;
    }
    run.finish(None).await
}

pub(crate) fn failed(job: &Job) -> bool {
    job.steps.iter().any(|s| matches!(s.status, Status::Failed | Status::Cancelled))
}

/// Scales the service back if the job future is dropped before [`start`] ran: the start
/// must happen on every path. Disarmed by `start`.
pub(crate) struct StartGuard {
    client: Option<Client>,
    service: String,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let service = std::mem::take(&mut self.service);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = restore_replicas(&client, &service).await {
                    tracing::error!(service, error = %e, "cannot scale a service back after a dropped job; the next dockhand command will");
                }
            });
        }
    }
}

/// The stop: the intent label and replicas 0 in one update (compare-and-swap on the
/// version), then a wait until no task runs. The guard that owes the start either way;
/// `Err` when the stop failed (the step says why) and the caller should start at once.
pub(crate) async fn stop(
    run: &mut Running<'_>,
    service: &str,
    budget: &crate::Budget,
) -> Result<StartGuard, StartGuard> {
    let mut step = Step::start("stop", SystemTime::now());
    run.started(&step);
    let mut replicas = None;
    let updated = run
        .ctx
        .client
        .modify_service(service, &UpdateOptions::default(), |spec| {
            let Some(current) = spec.replicas() else {
                return Err(dockhand_engine::Error::InvalidArgument {
                    what: format!("service {service}"),
                    detail: "a global service cannot be stopped by scaling".to_owned(),
                });
            };
            // An intent already there (a restore or backup a stopped dockhand left) wins:
            // it holds the count to come back to.
            let owed = spec.labels.get(INTENT_LABEL).and_then(|v| v.parse().ok()).unwrap_or(current);
            spec.labels.insert(INTENT_LABEL.to_owned(), owed.to_string());
            *spec = std::mem::take(spec).with_replicas(0);
            replicas = Some(owed);
            Ok(())
        })
        .await;
    let guard = StartGuard { client: Some(run.ctx.client.clone()), service: service.to_owned() };
    if let Err(e) = updated {
        step.finish(Status::Failed, SystemTime::now(), Some(format!("cannot scale the service to 0: {e}")));
        run.push(step);
        return Err(guard);
    }
    if let Some(n) = replicas {
        run.progress(format!("scaled from {n} to 0 replicas: waiting for its tasks to stop"));
    }
    let waited = tokio::time::timeout(budget.timeout, wait_tasks(&run.ctx.client, service, 0)).await;
    match waited {
        Ok(Ok(())) => {
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step.output_tail = replicas.map(|n| format!("scaled from {n} to 0 replicas"));
            run.push(step);
            Ok(guard)
        }
        Ok(Err(e)) => {
            step.finish(Status::Failed, SystemTime::now(), Some(e.to_string()));
            run.push(step);
            Err(guard)
        }
        Err(_) => {
            let message = format!(
                "tasks still ran after the stop timeout {} ({})",
                dockhand_policy::format_go_duration(budget.timeout),
                budget.source
            );
            step.finish(Status::Failed, SystemTime::now(), Some(message));
            run.push(step);
            Err(guard)
        }
    }
}

/// The start: the replicas the intent label holds, and the label removed, in one update;
/// then a wait until they run. Runs whatever the job's cancellation says.
pub(crate) async fn start(
    run: &mut Running<'_>,
    service: &str,
    budget: &crate::Budget,
    guard: Option<StartGuard>,
) {
    let mut step = Step::start("start", SystemTime::now());
    run.started(&step);
    if let Some(mut guard) = guard {
        guard.client = None;
    }
    match restore_replicas(&run.ctx.client, service).await {
        Err(e) => {
            step.finish(
                Status::Failed,
                SystemTime::now(),
                Some(format!("cannot scale the service back: {e}")),
            );
        }
        Ok(None) => step.finish(Status::Succeeded, SystemTime::now(), None),
        Ok(Some(n)) => {
            let waited = tokio::time::timeout(budget.timeout, wait_tasks(&run.ctx.client, service, n)).await;
            let error = match waited {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!(
                    "scaled back to {n} replicas, but they did not all run within the start timeout {} ({})",
                    dockhand_policy::format_go_duration(budget.timeout),
                    budget.source
                )),
            };
            let status = if error.is_some() { Status::Failed } else { Status::Succeeded };
            step.finish(status, SystemTime::now(), error);
            step.output_tail = Some(format!("scaled back to {n} replicas"));
        }
    }
    run.push(step);
}

/// Scales `service` back to the count its intent label holds and removes the label, in one
/// update; `None` when it carries no label (nothing owed).
pub async fn restore_replicas(client: &Client, service: &str) -> Result<Option<u64>, dockhand_engine::Error> {
    let mut owed = None;
    let mut bad = None;
    client
        .modify_service(service, &UpdateOptions::default(), |spec| {
            owed = None;
            let Some(value) = spec.labels.remove(INTENT_LABEL) else { return Ok(()) };
            match value.parse::<u64>() {
                Ok(n) => {
                    *spec = std::mem::take(spec).with_replicas(n);
                    owed = Some(n);
                }
                Err(_) => bad = Some(value),
            }
            Ok(())
        })
        .await?;
    if let Some(value) = bad {
        tracing::warn!(service, value, "the intent label did not hold a replica count; it was removed");
    }
    Ok(owed)
}

/// Waits until exactly `running` tasks of `service` run (0: until none does).
async fn wait_tasks(client: &Client, service: &str, running: u64) -> Result<(), dockhand_engine::Error> {
    let mut pause = Duration::from_millis(100);
    loop {
        let tasks = client.tasks(&Filters::new().with("service", service)).await?;
        let live = tasks
            .iter()
            .filter(|t| {
                matches!(
                    t.status.state.as_str(),
                    "new"
                        | "pending"
                        | "assigned"
                        | "accepted"
                        | "preparing"
                        | "ready"
                        | "starting"
                        | "running"
                )
            })
            .count() as u64;
        let up = tasks.iter().filter(|t| t.status.state == "running" && t.desired_state == "running").count()
            as u64;
        if (running == 0 && live == 0) || (running > 0 && up >= running) {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Uploads one volume of the service from the connected node; the step says how it went.
/// Returns the volume's real name when it was uploaded.
/// A volume of `backup.volume-list-upload`, found: its real name, how the name matched,
/// and the node that holds it.
pub(crate) struct Located {
    pub(crate) volume: String,
    pub(crate) matched: String,
    pub(crate) node_id: String,
    pub(crate) node_name: String,
}

/// Finds `wanted`: its real name, its nodes (from the service's tasks: every node its
/// current tasks run on, when that is several), and that each has it with the `local`
/// driver (through a helper for another node).
async fn locate(
    ctx: &JobContext,
    owner: Owner<'_>,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    service: &Service,
    wanted: &str,
) -> Result<Vec<Located>, String> {
    let (volume, matched) = resolve_volume(service, wanted).map_err(|e| e.to_string())?;
    let nodes = volume_nodes(ctx, connected, service, &volume).await?;
    let several = nodes.len() > 1;
    let mut found = Vec::new();
    for node_id in nodes {
        let node_name = names.get(&node_id).cloned().unwrap_or_else(|| node_id.clone());
        let remote = Remote {
            ctx,
            owner,
            node_id: &node_id,
            node_name: &node_name,
            timeout: ctx.defaults.extra_timeout,
        };
        let facts = remote.volume_facts(&connected.node_id, &volume).await?;
        if !facts.exists {
            let role = if several { "one of the nodes it runs on" } else { "where it ran last" };
            return Err(format!("node {node_name}, {role} of {}, has no volume {volume}", service.spec.name));
        }
        refuse_driver(&volume, &facts.driver)?;
        found.push(Located { volume: volume.clone(), matched: matched.clone(), node_id, node_name });
    }
    Ok(found)
}

/// The nodes holding `volume` for `service`: every node its current tasks run on when that
/// is several (a `local` volume is one per node: the seed's `node_volume_date`), else the
/// one [`volume_node`] finds.
async fn volume_nodes(
    ctx: &JobContext,
    connected: &Connected,
    service: &Service,
    volume: &str,
) -> Result<Vec<String>, String> {
    let spread = running_nodes(ctx, service).await?;
    if spread.len() > 1 {
        return Ok(spread);
    }
    volume_node(ctx, connected, service, volume).await.map(|node| vec![node])
}

/// The nodes (IDs, sorted) of the tasks of `service` meant to run now.
async fn running_nodes(ctx: &JobContext, service: &Service) -> Result<Vec<String>, String> {
    let tasks = ctx
        .client
        .tasks(&Filters::new().with("service", &service.id))
        .await
        .map_err(|e| format!("cannot list the tasks of {}: {e}", service.spec.name))?;
    let mut nodes: Vec<String> = tasks
        .into_iter()
        .filter(|t| t.desired_state == "running" && !t.node_id.is_empty())
        .map(|t| t.node_id)
        .collect();
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

/// Whose volumes a backup or restore works on: a service's, or a node's.
pub(crate) struct Subject {
    /// The directory of its archives under the target's prefix: the service's name, or
    /// `node/<hostname>`.
    pub(crate) dir: String,
    /// The manifest's `service`: the service's name, or `node`.
    pub(crate) name: String,
    /// The manifest's `image`: the service's, or empty for a node.
    pub(crate) image: String,
    pub(crate) lock: LockTarget,
    pub(crate) action: Action,
}

impl Subject {
    fn service(service: &Service, action: Action) -> Self {
        Self {
            dir: service.spec.name.clone(),
            name: service.spec.name.clone(),
            image: service.spec.task_template.container_spec.image.clone(),
            lock: LockTarget::Service(service.id.clone()),
            action,
        }
    }

    pub(crate) fn node(id: &str, hostname: &str, action: Action) -> Self {
        Self {
            dir: node_dir(hostname),
            name: "node".to_owned(),
            image: String::new(),
            lock: LockTarget::Node(id.to_owned()),
            action,
        }
    }
}

/// Where a node's archives go under the target's prefix: `node/<hostname>`.
pub fn node_dir(hostname: &str) -> String {
    format!("node/{}", hostname.replace('_', "-"))
}

/// Uploads one volume; the step says how it went. True when it was stored.
pub(crate) async fn upload_volume(
    run: &mut Running<'_>,
    connected: &Connected,
    subject: &Subject,
    storage: &Storage,
    found: &Located,
    at: SystemTime,
    budget: &crate::Budget,
) -> bool {
    let ctx = run.ctx;
    let wanted = &found.volume;
    let mut step = Step::start("upload", SystemTime::now());
    step.node = Some(found.node_name.clone());
    run.started(&step);
    let mut via = None;
    let result = async {
        let Located { volume, matched, node_id: holder, node_name } = found;
        let (volume, matched, node_name) = (volume.clone(), matched.clone(), node_name.clone());
        let encrypted_to = storage.settings().recipients.clone();
        let key = archive_key(&subject.dir, &node_name, &volume, at, !encrypted_to.is_empty());
        let full = storage.key(&key);
        let owner =
            Owner { job: &run.job.id, target: &subject.lock.label(), action: subject.action.as_str() };
        let progress = |t: crate::volume_io::Transfer| {
            run.progress(format!("upload {volume}: {}", t.describe()));
        };
        let level = storage.settings().zstd_level;
        let out_of_time = format!(
            "the upload ran out of its {} ({}); nothing was stored",
            dockhand_policy::format_go_duration(budget.timeout),
            budget.source
        );
        let uploaded = if *holder == connected.node_id {
            let hold = budget.timeout + ctx.defaults.extra_timeout;
            let container = VolumeContainer::start(
                &ctx.client,
                &ctx.helpers.image_here().await?,
                owner,
                Attach::Volume(&volume, true),
                hold,
            )
            .await?;
            // At the deadline the upload is aborted, not dropped: no part is left behind.
            let deadline = crate::volume_io::Deadline::after(budget.timeout, out_of_time);
            let moved = crate::volume_io::upload(
                &container,
                storage,
                &full,
                level,
                &ctx.cancel,
                &deadline,
                &progress,
            )
            .await;
            container.remove().await;
            moved?
        } else {
            // On another node: a helper there serves it to a relay beside dockhand over the
            // job's own network.
            let remote =
                Remote { ctx, owner, node_id: holder, node_name: &node_name, timeout: budget.timeout };
            remote.upload(&volume, storage, &full, level, &progress).await?
        };
        via = Some(uploaded.via.to_owned());
        let job = run.job.id.clone();
        let manifest = Manifest {
            format: 1,
            service: subject.name.clone(),
            image: subject.image.clone(),
            node: node_name.clone(),
            volume: volume.clone(),
            created: humantime::format_rfc3339_seconds(at).to_string(),
            bytes: uploaded.bytes,
            sha256: uploaded.sha256.clone(),
            compression: "zstd".to_owned(),
            level,
            entries: uploaded.stats.entries,
            content_bytes: uploaded.stats.bytes,
            encrypted_to,
            dockhand_version: env!("CARGO_PKG_VERSION").to_owned(),
            job,
        };
        let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        let manifest_key = storage.key(&format!("{key}{MANIFEST_SUFFIX}"));
        if let Err(e) = storage.store().put(&manifest_key, body.into()).await {
            let _ = storage.delete(&full).await;
            return Err(storage.error(format!("write {manifest_key}"), &e).to_string());
        }
        for written in [&full, &manifest_key] {
            storage.make_private(written).map_err(|e| e.to_string())?;
        }
        let warnings = uploaded.stats.warnings.join("\n");
        Ok((volume, key, uploaded.bytes, matched, warnings, node_name))
    }
    .await;
    step.via = via;
    match result {
        Ok((_, key, bytes, matched, warnings, node)) => {
            step.node = Some(node);
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step.object = Some(key);
            step.bytes = Some(bytes);
            step.output_tail =
                Some(if warnings.is_empty() { matched } else { format!("{matched}\n{warnings}") });
            run.push(step);
            true
        }
        Err(e) => {
            let status = if ctx.cancel.is_cancelled() { Status::Cancelled } else { Status::Failed };
            step.finish(status, SystemTime::now(), Some(format!("volume {wanted}: {e}")));
            run.push(step);
            false
        }
    }
}

/// Only the `local` driver keeps a volume's data on its node's disk.
pub(crate) fn refuse_driver(volume: &str, driver: &str) -> Result<(), String> {
    if driver == "local" {
        Ok(())
    } else {
        Err(format!("volume {volume} uses the {driver:?} driver: only local volumes can be backed up"))
    }
}

/// The node holding `volume` for `service`: the connected node when it has the volume and
/// a task of the service ran there, else the node of the most recent task.
async fn volume_node(
    ctx: &JobContext,
    connected: &Connected,
    service: &Service,
    volume: &str,
) -> Result<String, String> {
    let tasks = ctx
        .client
        .tasks(&Filters::new().with("service", &service.id))
        .await
        .map_err(|e| format!("cannot list the tasks of {}: {e}", service.spec.name))?;
    let mut nodes: Vec<(&str, &str)> = tasks
        .iter()
        .filter(|t| !t.node_id.is_empty())
        .map(|t| (t.status.timestamp.as_str(), t.node_id.as_str()))
        .collect();
    nodes.sort_by(|a, b| b.0.cmp(a.0));
    let here = nodes.iter().any(|(_, n)| *n == connected.node_id);
    if (here || nodes.is_empty()) && ctx.client.volume(volume).await.is_ok() {
        return Ok(connected.node_id.clone());
    }
    match nodes.first() {
        Some((_, node)) => Ok((*node).to_owned()),
        None => Err(format!("volume {volume} is on no node where service {} ran", service.spec.name)),
    }
}

/// Deletes the expired archives (and manifests) of the volumes just uploaded, under `service`
/// (a service's name, or a node's [`node_dir`]).
pub(crate) async fn retention(
    run: &mut Running<'_>,
    storage: &Storage,
    service: &str,
    volumes: &[String],
    days: u32,
    keep_last: u32,
) {
    let mut step = Step::start("retention", SystemTime::now());
    run.started(&step);
    let result = async {
        let objects = list_backups(storage, service).await.map_err(|e| e.to_string())?;
        let mut deleted = Vec::new();
        for volume in volumes {
            for object in expired(&objects, volume, SystemTime::now(), days, keep_last) {
                storage.delete(&storage.key(&object.key)).await.map_err(|e| e.to_string())?;
                storage
                    .delete(&storage.key(&format!("{}{MANIFEST_SUFFIX}", object.key)))
                    .await
                    .map_err(|e| e.to_string())?;
                deleted.push(object.key.clone());
            }
        }
        Ok::<_, String>(deleted)
    }
    .await;
    match result {
        Ok(deleted) => {
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step.output_tail = Some(if deleted.is_empty() {
                format!("nothing older than {days} days beyond the newest {keep_last}")
            } else {
                format!("deleted {}", deleted.join(", "))
            });
        }
        Err(e) => step.finish(Status::Failed, SystemTime::now(), Some(e)),
    }
    run.push(step);
}

/// What to restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Only this volume (as labelled, or its real name).
    pub volume: Option<String>,
    /// The backup taken at this timestamp (`20261128T083803Z`), else the newest.
    pub at: Option<String>,
    /// Exactly this object (its key relative to the target).
    pub object: Option<String>,
    /// The node to restore on (default: the backup's own node).
    pub node: Option<String>,
    /// Restore a global service's volumes without stopping it.
    pub force: bool,
    /// The age identity file for encrypted archives (default: the target's
    /// `encryption.identity_file`).
    pub identity: Option<std::path::PathBuf>,
}

impl RestoreOptions {
    /// The newest backup of every volume.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `volume`.
    pub fn with_volume(mut self, volume: impl Into<String>) -> Self {
        self.volume = Some(volume.into());
        self
    }

    /// The backup taken at `timestamp`.
    pub fn at(mut self, timestamp: impl Into<String>) -> Self {
        self.at = Some(timestamp.into());
        self
    }

    /// Exactly `key`.
    pub fn object(mut self, key: impl Into<String>) -> Self {
        self.object = Some(key.into());
        self
    }

    /// On `node`.
    pub fn on_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Without stopping a global service.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Decrypting with the age identity file at `path`.
    pub fn with_identity(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.identity = Some(path.into());
        self
    }
}

/// The identity that decrypts `object`: none when it is not encrypted, else the one named
/// on the command line or the target's, read now; an error says how to name one.
fn identity_for(
    object: &BackupObject,
    storage: &Storage,
    options: &RestoreOptions,
    read: &mut Option<crate::seal::Identity>,
) -> Result<Option<crate::seal::Identity>, String> {
    let to = object.manifest.as_ref().map(|m| m.encrypted_to.clone()).unwrap_or_default();
    if to.is_empty() && !object.key.ends_with(crate::seal::AGE_SUFFIX) {
        return Ok(None);
    }
    if let Some(identity) = read {
        return Ok(Some(identity.clone()));
    }
    let settings = storage.settings();
    let path = options.identity.as_ref().or(settings.identity_file.as_ref()).ok_or_else(|| {
        format!(
            "{} is encrypted with age (to {}): pass --identity FILE, or set \
             storage.targets.{}.encryption.identity_file",
            object.key,
            if to.is_empty() { "recipients not recorded".to_owned() } else { to.join(", ") },
            settings.name
        )
    })?;
    let identity = crate::seal::Identity::read(path).map_err(|e| e.to_string())?;
    *read = Some(identity.clone());
    Ok(Some(identity))
}

/// Which archives a restore uses: one per volume, the chosen or the newest.
pub fn choose_backups<'a>(
    objects: &'a [BackupObject],
    options: &RestoreOptions,
    real_volume: Option<&str>,
) -> Result<Vec<&'a BackupObject>, NoBackup> {
    if let Some(key) = &options.object {
        return objects
            .iter()
            .find(|o| &o.key == key || o.key.ends_with(&format!("/{key}")))
            .map(|o| vec![o])
            .ok_or_else(|| NoBackup(format!("no backup object {key}")));
    }
    let mut by_volume: BTreeMap<&str, &BackupObject> = BTreeMap::new();
    for o in objects {
        if real_volume.is_some_and(|v| v != o.volume) {
            continue;
        }
        if options.at.as_ref().is_some_and(|at| at != &o.timestamp) {
            continue;
        }
        let newer = by_volume.get(o.volume.as_str()).is_none_or(|b| o.timestamp > b.timestamp);
        if newer {
            by_volume.insert(&o.volume, o);
        }
    }
    if by_volume.is_empty() {
        let what = match (&options.volume, &options.at) {
            (Some(v), Some(at)) => format!("of volume {v} at {at}"),
            (Some(v), None) => format!("of volume {v}"),
            (None, Some(at)) => format!("at {at}"),
            (None, None) => String::new(),
        };
        return Err(NoBackup(format!("no backup {what}").trim_end().to_owned()));
    }
    Ok(by_volume.into_values().collect())
}

/// With the service's volumes on several nodes: for each volume, the newest archive (or the
/// one at `--at`) of each of `nodes` (hostnames), by the node its name records. Every node
/// must have one, or none is chosen.
pub(crate) fn choose_per_node<'a>(
    objects: &'a [BackupObject],
    options: &RestoreOptions,
    real: Option<&str>,
    nodes: &[String],
) -> Result<Vec<&'a BackupObject>, NoBackup> {
    let named: Vec<String> = nodes.iter().map(|n| n.replace('_', "-")).collect();
    let mut newest: BTreeMap<(&str, &str), &BackupObject> = BTreeMap::new();
    for o in objects {
        let wanted = real.is_none_or(|v| v == o.volume)
            && options.at.as_ref().is_none_or(|at| at == &o.timestamp)
            && named.contains(&o.node);
        let key = (o.volume.as_str(), o.node.as_str());
        if wanted && newest.get(&key).is_none_or(|b| o.timestamp > b.timestamp) {
            newest.insert(key, o);
        }
    }
    let volumes: std::collections::BTreeSet<&str> = newest.keys().map(|(v, _)| *v).collect();
    if volumes.is_empty() {
        return Err(NoBackup(format!(
            "no backup of any of the nodes the service runs on ({})",
            nodes.join(", ")
        )));
    }
    for volume in &volumes {
        if let Some(missing) = named.iter().find(|n| !newest.contains_key(&(*volume, n.as_str()))) {
            return Err(NoBackup(format!(
                "volume {volume} has no backup of node {missing}, one of the nodes the service runs on: \
                 pass --node to restore one node's copy"
            )));
        }
    }
    Ok(newest.into_values().collect())
}

/// R3-02: an archive a restore of `service` may use: its volume is one `service` mounts,
/// and its manifest says so too (the service, the volume, the format).
pub fn own_archive(service: &Service, object: &BackupObject) -> Result<(), NotOwnArchive> {
    let name = &service.spec.name;
    match resolve_volume(service, &object.volume) {
        Ok((real, _)) if real == object.volume => {}
        _ => {
            return Err(NotOwnArchive(format!(
                "{}: volume {} is not a volume of service {name}, which mounts: {}; it is not restored",
                object.key,
                object.volume,
                mounted(service)
            )));
        }
    }
    manifest_names(object, name).map_err(NotOwnArchive)
}

/// An archive a restore of a service may not use: which, and why (R3-02).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotOwnArchive(String);

/// The manifest of `object` must name `owner` (a service's name, or `node`), the object's
/// own volume, and a format dockhand reads.
pub(crate) fn manifest_names(object: &BackupObject, owner: &str) -> Result<(), String> {
    let Some(m) = &object.manifest else { return Ok(()) }; // verify refuses it, naming why
    let wrong = |what: &str, says: &str, is: &str| {
        Err(format!(
            "{}: its manifest says {what} {says:?}, the archive is of {is:?}; it is not restored",
            object.key
        ))
    };
    if m.format != 1 {
        return wrong("format", &m.format.to_string(), "1");
    }
    if m.service != owner {
        return wrong("service", &m.service, owner);
    }
    if m.volume != object.volume {
        return wrong("volume", &m.volume, &object.volume);
    }
    Ok(())
}

/// What `service` mounts, for messages: its volumes, or "no volume".
fn mounted(service: &Service) -> String {
    let mounts = volume_mounts(service);
    if mounts.is_empty() { "no volume".to_owned() } else { mounts.join(", ") }
}

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
    let connected = manager(ctx).await?;
    let found = find_service(ctx, service).await?;
    let names = crate::clean_service::hostnames(ctx).await?;
    let target = Target::Service { id: found.id.clone(), name: found.spec.name.clone() };
    let mut run = Running::start(ctx, sink, Action::Restore, target);
    let view = TargetLabels::resolve(&found.spec.labels, &ctx.prefixes);
    let chosen_target = service_target(Some(&found), targets, &ctx.defaults, &ctx.prefixes);
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
            None => volume_node(ctx, &connected, &found, &object.volume).await,
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
    let stop_budget =
        crate::Budget::new(ctx.defaults.backup_stop_timeout, budget_source(&view, "backup.stop.timeout"));
    let start_budget =
        crate::Budget::new(ctx.defaults.backup_start_timeout, budget_source(&view, "backup.start.timeout"));
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
        download_volume(&mut run, &connected, &names, &subject, (object, staged), node).await;
    }
    if guard.is_some() {
        start(&mut run, &found.id, &start_budget, guard).await;
    }
    Ok(run.finish(None).await)
}

/// The **verify** step of a restore: chooses the archives under `dir`, refuses any that
/// `own` refuses, and reads each one whole once, into a private staging file, checking it
/// against its manifest (decrypting when it is encrypted). What is restored later is that
/// staged copy: the bytes checked are the bytes unpacked, whatever the target serves
/// afterwards (R3-02). `None` when the restore must stop here (the step says why).
pub(crate) async fn verify_chosen(
    run: &mut Running<'_>,
    storage: &Storage,
    dir: &str,
    options: &RestoreOptions,
    real: Option<&str>,
    spread: &[String],
    own: &(dyn Fn(&BackupObject) -> Result<(), String> + Sync),
) -> Option<Vec<(BackupObject, crate::volume_io::Staged)>> {
    let mut verified = Vec::new();
    let mut check = Step::start("verify", SystemTime::now());
    run.started(&check);
    let checked = async {
        // `--object` naming an archive of the seed's tool: checked whole and re-packed.
        if let Some(key) = options.object.as_ref().filter(|k| k.ends_with(FOREIGN_SUFFIX)) {
            let (object, staged, line) = verify_foreign(storage, key, own).await?;
            verified.push((object, staged));
            return Ok(line);
        }
        let objects = list_backups(storage, dir).await.map_err(|e| e.to_string())?;
        let chosen = if spread.is_empty() {
            choose_backups(&objects, options, real)
        } else {
            choose_per_node(&objects, options, real, spread)
        }
        .map_err(|e| format!("{dir}: {e} on {}", storage.settings()))?;
        for object in &chosen {
            own(object)?;
        }
        let mut lines = Vec::new();
        let mut read = None;
        for object in chosen {
            let manifest = object
                .manifest
                .clone()
                .ok_or_else(|| format!("{}: no readable manifest; it cannot be verified", object.key))?;
            let identity = identity_for(object, storage, options, &mut read)?;
            let staged = crate::volume_io::stage_object(storage, &storage.key(&object.key), identity)
                .await
                .map_err(|e| format!("{}: {e}", object.key))?;
            if staged.sha256 != manifest.sha256 {
                return Err(format!(
                    "{}: its SHA-256 is {}, the manifest says {}: the archive is corrupted; nothing was touched",
                    object.key, staged.sha256, manifest.sha256
                ));
            }
            lines.push(format!("{}: sha256 ok, {} entries", object.key, staged.stats.entries));
            verified.push((object.clone(), staged));
        }
        Ok::<_, String>(lines.join("\n"))
    }
    .await;
    match checked {
        Ok(text) => {
            check.finish(Status::Succeeded, SystemTime::now(), None);
            check.output_tail = Some(text);
            run.push(check);
            Some(verified)
        }
        Err(e) => {
            check.finish(Status::Failed, SystemTime::now(), Some(e));
            run.push(check);
            None
        }
    }
}

/// An archive of the seed's tool named by `--object`: its volume must be one `own`
/// accepts (R3-02: the name in its key chooses nothing else); it is read whole, checked as
/// a gzip tar holding that volume under `backup/<volume>/`, and staged re-packed as
/// dockhand's own archive, which is what the restore writes.
async fn verify_foreign(
    storage: &Storage,
    key: &str,
    own: &(dyn Fn(&BackupObject) -> Result<(), String> + Sync),
) -> Result<(BackupObject, crate::volume_io::Staged, String), String> {
    let name = key.rsplit('/').next().unwrap_or_default();
    let (node, volume, date) = parse_foreign_name(name).ok_or_else(|| {
        format!("{key}: not an archive of the seed's tool (<node>_<volume>_<date>{FOREIGN_SUFFIX})")
    })?;
    let meta = storage
        .store()
        .head(&storage.key(key))
        .await
        .map_err(|e| format!("no backup object {key}: {}", storage.error(format!("read {key}"), &e)))?;
    let object = BackupObject::foreign(key, (node, volume, date), meta.size);
    own(&object)?;
    let (staged, found, stored) = crate::volume_io::stage_foreign(storage, &storage.key(key), volume)
        .await
        .map_err(|e| format!("{key}: {e}; nothing was touched"))?;
    let line = format!(
        "{key}: an archive of the seed's tool (sha256 {stored}, no manifest to check it against): a whole gzip tar, \
         {} entries of volume {volume} under backup/{volume}/{}",
        found.entries,
        if found.skipped > 0 { format!(", {} other entries left out", found.skipped) } else { String::new() }
    );
    Ok((object, staged, line))
}

/// The **restore** step of one volume: the verified, staged archive `object` into its
/// volume on `node` (a hostname or an ID, chosen by the caller: `--node`, or where the
/// volume's owner runs).
pub(crate) async fn download_volume(
    run: &mut Running<'_>,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    subject: &Subject,
    (object, staged): (&BackupObject, &crate::volume_io::Staged),
    node: &str,
) {
    let ctx = run.ctx;
    let mut step = Step::start("restore", SystemTime::now());
    step.object = Some(object.key.clone());
    step.node = Some(node.to_owned());
    run.started(&step);
    let node = node.to_owned();
    let result = async {
        // The node by hostname or ID.
        let node_id = if node == connected.name || node == connected.node_id {
            connected.node_id.clone()
        } else {
            let ids: Vec<&String> =
                names.iter().filter(|(id, name)| **name == node || **id == node).map(|(id, _)| id).collect();
            match ids.as_slice() {
                [id] => (*id).clone(),
                [] => return Err(format!("no node {node} in the swarm: pass --node with one that is")),
                _ => {
                    return Err(format!("several nodes are named {node}: pass --node with one of their IDs"));
                }
            }
        };
        let owner =
            Owner { job: &run.job.id, target: &subject.lock.label(), action: subject.action.as_str() };
        let volume = object.volume.clone();
        let progress = |t: crate::volume_io::Transfer| {
            run.progress(format!("restore {volume}: {}", t.describe()));
        };
        let timeout = ctx.defaults.backup_upload_timeout;
        let moved = if node_id == connected.node_id {
            let hold = timeout + ctx.defaults.extra_timeout;
            let container = VolumeContainer::start(
                &ctx.client,
                &ctx.helpers.image_here().await?,
                owner,
                Attach::Volume(&object.volume, false),
                hold,
            )
            .await?;
            let moved = crate::volume_io::download(&container, staged, &ctx.cancel, &progress).await;
            container.remove().await;
            moved
        } else {
            let remote = Remote { ctx, owner, node_id: &node_id, node_name: &node, timeout };
            remote.download(&object.volume, staged, &progress).await
        };
        let (sha256, stats) = moved?;
        // The staged copy is dockhand's own unlinked file: what was sent is what was checked.
        if sha256 != staged.sha256 {
            return Err(format!(
                "the staged archive changed while it was restored (SHA-256 {sha256}, verified {})",
                staged.sha256
            ));
        }
        Ok(stats)
    }
    .await;
    match result {
        Ok(stats) => {
            step.finish(Status::Succeeded, SystemTime::now(), None);
            step.bytes = Some(object.size);
            step.output_tail = Some(format!(
                "volume {}: {} entries, {} bytes of content",
                object.volume, stats.entries, stats.bytes
            ));
        }
        Err(e) => {
            let status = if ctx.cancel.is_cancelled() { Status::Cancelled } else { Status::Failed };
            step.finish(status, SystemTime::now(), Some(format!("volume {}: {e}", object.volume)));
        }
    }
    run.push(step);
}

/// Brings back every service a stopped dockhand left scaled down: a service with the intent
/// label whose lock no live job holds is scaled back and its label removed, recorded as a
/// `reconcile` job. Called before every command that talks to a manager, and by the server
/// at start.
pub async fn reconcile(ctx: &JobContext, sink: &dyn Sink) -> Result<Vec<Job>, JobError> {
    let connected = Connected::read(&ctx.client).await?;
    if !connected.manager {
        return Ok(Vec::new());
    }
    let owed = ctx.client.services(&Filters::new().with("label", INTENT_LABEL)).await?;
    if owed.is_empty() {
        return Ok(Vec::new());
    }
    let locks = ctx.locks.list().await.map_err(JobError::Lock)?;
    let mut jobs = Vec::new();
    // Another instance's tenants are its own to bring back (R3-07).
    let in_scope =
        |s: &Service| ctx.scope.as_ref().is_none_or(|(key, value)| s.spec.labels.get(key) == Some(value));
    for service in owed.into_iter().filter(in_scope) {
        let lock = LockTarget::Service(service.id.clone()).label();
        if locks.iter().any(|l| l.target == lock && !l.expired) {
            continue; // A live job owns it, and will start it itself.
        }
        let target = Target::Service { id: service.id.clone(), name: service.spec.name.clone() };
        let mut run = Running::start(ctx, sink, Action::Reconcile, target);
        // Busy or cancelled: another job has it. A failure to clear leftovers is recorded,
        // but the service is owed its replicas all the same.
        if let Err(Some(status)) = run.lock(LockTarget::Service(service.id.clone())).await {
            jobs.push(run.finish(Some(status)).await);
            continue;
        }
        let owed = service.spec.labels.get(INTENT_LABEL).cloned().unwrap_or_default();
        tracing::warn!(
            service = %service.spec.name,
            replicas = %owed,
            "a backup or restore stopped before it started this service again: scaling it back"
        );
        let budget =
            crate::Budget::new(ctx.defaults.backup_start_timeout, "the default backup.start.timeout");
        start(&mut run, &service.id, &budget, None).await;
        jobs.push(run.finish(None).await);
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(volume: &str, ts: &str) -> BackupObject {
        BackupObject {
            key: format!("app/n1_{volume}_{ts}{ARCHIVE_SUFFIX}"),
            node: "n1".into(),
            volume: volume.into(),
            timestamp: ts.into(),
            size: 1,
            manifest: None,
            check: "ok".into(),
        }
    }

    #[test]
    fn names_parse_back_with_underscores_in_the_volume() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_855_083);
        let key = archive_key("app", "worker_1", "stack_data_2", at, false);
        assert_eq!(key, "app/worker-1_stack_data_2_20261128T083803Z.tar.zst");
        let name = key.strip_prefix("app/").unwrap();
        assert_eq!(parse_archive_name(name), Some(("worker-1", "stack_data_2", "20261128T083803Z")));
        let sealed = archive_key("app", "n1", "data", at, true);
        assert_eq!(sealed, "app/n1_data_20261128T083803Z.tar.zst.age");
        assert_eq!(parse_archive_name(&sealed["app/".len()..]), Some(("n1", "data", "20261128T083803Z")));
        assert_eq!(parse_archive_name("n_v_notatime.tar.zst"), None);
        assert_eq!(parse_archive_name("n_v_20261128T083803Z.tar.zst.manifest.json"), None);
    }

    /// R3-05: a manifest larger than the limit is not read into memory.
    #[tokio::test]
    async fn an_oversized_manifest_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::open(&crate::storage::local_target("t", "test", dir.path().join("b"))).unwrap();
        let name = "web/n1_data_20260101T000000Z.tar.zst";
        let put = |key: &str, body: Vec<u8>| {
            let (storage, key) = (storage.clone(), storage.key(key));
            async move { storage.store().put(&key, body.into()).await.unwrap() }
        };
        put(name, b"archive".to_vec()).await;
        let mut huge = br#"{"format": 1, "pad": ""#.to_vec();
        huge.resize(MANIFEST_LIMIT + 10, b'x');
        huge.extend_from_slice(br#""}"#);
        put(&format!("{name}{MANIFEST_SUFFIX}"), huge).await;
        let listed = list_backups(&storage, "web").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(
            listed[0].manifest.is_none() && listed[0].check == "no readable manifest",
            "{:?}",
            listed[0].check
        );
    }

    /// R3-02: a restore uses only archives of volumes the service mounts, whose manifest
    /// says the same: never a volume an object's name chose.
    #[test]
    fn a_restore_refuses_volumes_the_service_does_not_mount() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "ID": "s1",
            "Spec": {"Name": "web", "Labels": {"com.docker.stack.namespace": "shop"},
                "TaskTemplate": {"ContainerSpec": {"Image": "x", "Mounts": [
                    {"Type": "volume", "Source": "shop_web_data", "Target": "/data"},
                    {"Type": "bind", "Source": "/etc", "Target": "/etc"}]}}}
        }))
        .unwrap();
        let with_manifest = |volume: &str, says: &str, owner: &str| {
            let mut o = object(volume, "20260101T000000Z");
            o.key = format!("web/n1_{volume}_20260101T000000Z.tar.zst");
            let mut m: Manifest = serde_json::from_value(serde_json::json!({
                "format": 1, "service": owner, "image": "x", "node": "n1", "volume": says,
                "created": "", "bytes": 1, "sha256": "", "compression": "zstd", "level": 3,
                "entries": 1, "content_bytes": 1, "encrypted_to": [], "dockhand_version": "", "job": ""
            }))
            .unwrap();
            m.volume = says.to_owned();
            o.manifest = Some(m);
            o
        };
        assert_eq!(own_archive(&service, &with_manifest("shop_web_data", "shop_web_data", "web")), Ok(()));
        let e = own_archive(&service, &with_manifest("victim", "victim", "web")).unwrap_err().to_string();
        assert!(
            e.contains("volume victim is not a volume of service web") && e.contains("shop_web_data"),
            "{e}"
        );
        let e = own_archive(&service, &with_manifest("/etc", "/etc", "web")).unwrap_err().to_string();
        assert!(e.contains("not a volume of service web"), "{e}");
        let e =
            own_archive(&service, &with_manifest("shop_web_data", "victim", "web")).unwrap_err().to_string();
        assert!(e.contains("manifest says volume \"victim\""), "{e}");
        let e = own_archive(&service, &with_manifest("shop_web_data", "shop_web_data", "other"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("manifest says service \"other\""), "{e}");
    }

    /// R3-17: under a service called `node`, node backups (`node/<host>/…`) are not its own.
    #[test]
    fn a_deeper_key_is_not_an_archive_of_the_directory() {
        assert_eq!(parse_archive_name("host1/host1_data_20260101T000000Z.tar.zst"), None);
        assert_eq!(
            parse_archive_name("host1_data_20260101T000000Z.tar.zst"),
            Some(("host1", "data", "20260101T000000Z"))
        );
    }

    #[test]
    fn retention_keeps_the_newest_and_other_volumes() {
        let now = parse_key_timestamp("20261128T000000Z").unwrap();
        let objects = vec![
            object("data", "20261101T000000Z"),
            object("data", "20261110T000000Z"),
            object("data", "20261127T000000Z"),
            object("other", "20260101T000000Z"),
        ];
        let gone: Vec<&str> =
            expired(&objects, "data", now, 7, 1).iter().map(|o| o.timestamp.as_str()).collect();
        assert_eq!(gone, ["20261110T000000Z", "20261101T000000Z"]);
        // keep-last wins over age: all three are old, the newest two stay.
        let later = parse_key_timestamp("20271128T000000Z").unwrap();
        let gone = expired(&objects, "data", later, 7, 2);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].timestamp, "20261101T000000Z");
    }

    fn on(node: &str, volume: &str, ts: &str) -> BackupObject {
        let mut o = object(volume, ts);
        o.node = node.into();
        o.key = format!("app/{node}_{volume}_{ts}{ARCHIVE_SUFFIX}");
        o
    }

    /// A volume backed up from several nodes: retention keeps each node's newest, a restore
    /// takes each node's newest, and one node without a copy stops it.
    #[test]
    fn a_volume_on_several_nodes_keeps_and_restores_each_nodes_copy() {
        let now = parse_key_timestamp("20261128T000000Z").unwrap();
        let objects = vec![
            on("n1", "data", "20261101T000000Z"),
            on("n1", "data", "20261102T000000Z"),
            on("n2", "data", "20261101T000000Z"),
            on("n3", "data", "20261127T000000Z"),
        ];
        let gone: Vec<&str> = expired(&objects, "data", now, 7, 1).iter().map(|o| o.key.as_str()).collect();
        assert_eq!(gone, ["app/n1_data_20261101T000000Z.tar.zst"], "n2's only copy stays");
        let nodes = ["n1".to_owned(), "n2".to_owned()];
        let chosen: Vec<&str> = choose_per_node(&objects, &RestoreOptions::new(), None, &nodes)
            .unwrap()
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(chosen, ["app/n1_data_20261102T000000Z.tar.zst", "app/n2_data_20261101T000000Z.tar.zst"]);
        let err = choose_per_node(&objects, &RestoreOptions::new(), None, &["n1".into(), "n4".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no backup of node n4") && err.contains("--node"), "{err}");
        let at = RestoreOptions::new().at("20261101T000000Z");
        assert_eq!(choose_per_node(&objects, &at, Some("data"), &nodes).unwrap().len(), 2);
        assert!(choose_per_node(&objects, &RestoreOptions::new(), Some("other"), &nodes).is_err());
    }

    #[test]
    fn a_restore_picks_the_newest_per_volume_or_what_was_asked() {
        let objects = vec![
            object("data", "20261101T000000Z"),
            object("data", "20261110T000000Z"),
            object("logs", "20261105T000000Z"),
        ];
        let newest = choose_backups(&objects, &RestoreOptions::new(), None).unwrap();
        let ts: Vec<&str> = newest.iter().map(|o| o.timestamp.as_str()).collect();
        assert_eq!(ts, ["20261110T000000Z", "20261105T000000Z"]);
        let at =
            choose_backups(&objects, &RestoreOptions::new().at("20261101T000000Z"), Some("data")).unwrap();
        assert_eq!(at[0].timestamp, "20261101T000000Z");
        let err = choose_backups(&objects, &RestoreOptions::new().at("20200101T000000Z"), Some("data"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("20200101T000000Z"), "{err}");
        let by_key =
            choose_backups(&objects, &RestoreOptions::new().object(objects[0].key.clone()), None).unwrap();
        assert_eq!(by_key[0].key, objects[0].key);
    }
}
