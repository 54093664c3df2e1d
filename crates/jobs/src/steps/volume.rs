//! A service's volumes as backups see them: which volumes it mounts, which node holds each,
//! and the upload and verified download of one volume between a node and a target.

use std::collections::BTreeMap;
use std::time::SystemTime;

use dockhand_engine::{Filters, Service};
use object_store::ObjectStoreExt;

use crate::job::{Action, Status, Step};
use crate::lock::LockTarget;
use crate::runner::{JobContext, Running};
use crate::steps::catalog::{
    BackupObject, FOREIGN_SUFFIX, MANIFEST_SUFFIX, Manifest, RestoreOptions, archive_key, choose_backups,
    choose_per_node, list_backups, node_dir, parse_foreign_name,
};
use crate::steps::lookup::resolve_volume;
use crate::steps::transfer::container::Owner;
use crate::steps::transfer::io::{Place, VolumeIo};
use crate::steps::transfer::upload::Destination;
use crate::storage::Storage;
use crate::swarm::Connected;

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
pub(crate) async fn locate(
    ctx: &JobContext,
    io: &dyn VolumeIo,
    owner: Owner<'_>,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    service: &Service,
    wanted: &str,
) -> Result<Vec<Located>, String> {
    let (volume, matched) = resolve_volume(service, wanted).map_err(|e| e.to_string())?;
    let nodes = volume_nodes(ctx, io, connected, service, &volume).await?;
    let several = nodes.len() > 1;
    let mut found = Vec::new();
    for node_id in nodes {
        let node_name = names.get(&node_id).cloned().unwrap_or_else(|| node_id.clone());
        let at =
            Place { ctx, owner, connected: &connected.node_id, node_id: &node_id, node_name: &node_name };
        let facts = io.facts(&at, &volume).await?;
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
    io: &dyn VolumeIo,
    connected: &Connected,
    service: &Service,
    volume: &str,
) -> Result<Vec<String>, String> {
    let spread = running_nodes(ctx, service).await?;
    if spread.len() > 1 {
        return Ok(spread);
    }
    volume_node(ctx, io, connected, service, volume).await.map(|node| vec![node])
}

/// The nodes (IDs, sorted) of the tasks of `service` meant to run now.
pub(crate) async fn running_nodes(ctx: &JobContext, service: &Service) -> Result<Vec<String>, String> {
    let tasks = ctx
        .swarm
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
    pub(crate) fn service(service: &Service, action: Action) -> Self {
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

/// Uploads one volume to every target in `storages` at once (archived once); a step per
/// target says how it went. For each target, true when the volume was stored there.
#[allow(clippy::too_many_arguments)] // What a step needs: the job, the bytes' way, whose, where to, which, when, how long.
pub(crate) async fn upload_volume(
    run: &mut Running<'_>,
    io: &dyn VolumeIo,
    connected: &Connected,
    subject: &Subject,
    storages: &[Storage],
    found: &Located,
    at: SystemTime,
    budget: &crate::agent::protocol::Budget,
) -> Vec<bool> {
    let ctx = run.ctx;
    let Located { volume, matched, node_id: holder, node_name } = found;
    let mut steps: Vec<Step> = storages
        .iter()
        .map(|storage| {
            let mut step = Step::start("upload", SystemTime::now());
            step.node = Some(node_name.clone());
            step.storage = Some(storage.settings().name.clone());
            step
        })
        .collect();
    for step in &steps {
        run.started(step);
    }
    let keys: Vec<String> = storages
        .iter()
        .map(|s| archive_key(&subject.dir, node_name, volume, at, !s.settings().recipients.is_empty()))
        .collect();
    let to: Vec<Destination<'_>> = storages
        .iter()
        .zip(&keys)
        .map(|(storage, key)| Destination { storage, key: storage.key(key) })
        .collect();
    let owner = Owner { job: &run.job.id, target: &subject.lock.label(), action: subject.action.as_str() };
    let progress = |t: crate::steps::transfer::upload::Transfer| {
        run.progress(format!("upload {volume}: {}", t.describe()));
    };
    let level = storages.first().map_or(crate::archive::DEFAULT_ZSTD_LEVEL, |s| s.settings().zstd_level);
    let out_of_time = format!(
        "the upload ran out of its {} ({}); nothing was stored",
        dockhand_policy::format_go_duration(budget.timeout),
        budget.source
    );
    let place = Place { ctx, owner, connected: &connected.node_id, node_id: holder, node_name };
    let uploaded = io.upload(&place, volume, &to, level, (budget.timeout, out_of_time), &progress).await;
    let results: Vec<Result<(u64, Vec<String>), String>> = match &uploaded {
        Err(e) => vec![Err(e.clone()); to.len()],
        Ok(uploaded) => {
            let mut results = Vec::new();
            for ((stored, d), relative) in uploaded.stored.iter().zip(&to).zip(&keys) {
                results.push(match stored {
                    Ok(stored) => {
                        let manifest = Manifest {
                            format: 1,
                            service: subject.name.clone(),
                            image: subject.image.clone(),
                            node: node_name.clone(),
                            volume: volume.clone(),
                            created: humantime::format_rfc3339_seconds(at).to_string(),
                            bytes: stored.bytes,
                            sha256: stored.sha256.clone(),
                            compression: "zstd".to_owned(),
                            level,
                            entries: uploaded.stats.entries,
                            content_bytes: uploaded.stats.bytes,
                            encrypted_to: d.storage.settings().recipients.clone(),
                            dockhand_version: env!("CARGO_PKG_VERSION").to_owned(),
                            job: run.job.id.clone(),
                        };
                        write_manifest(d, relative, &manifest)
                            .await
                            .map(|()| (stored.bytes, uploaded.stats.warnings.clone()))
                    }
                    Err(e) => Err(e.clone()),
                });
            }
            results
        }
    };
    let via = uploaded.as_ref().ok().map(|u| u.via.to_owned());
    let mut stored = Vec::new();
    for ((mut step, result), key) in steps.drain(..).zip(results).zip(keys) {
        step.via = via.clone();
        match result {
            Ok((bytes, warnings)) => {
                step.finish(Status::Succeeded, SystemTime::now(), None);
                step.object = Some(key);
                step.bytes = Some(bytes);
                let warnings = warnings.join("\n");
                step.output_tail = Some(if warnings.is_empty() {
                    matched.clone()
                } else {
                    format!("{matched}\n{warnings}")
                });
                stored.push(true);
            }
            Err(e) => {
                let status = if ctx.cancel.is_cancelled() { Status::Cancelled } else { Status::Failed };
                step.finish(status, SystemTime::now(), Some(format!("volume {volume}: {e}")));
                stored.push(false);
            }
        }
        run.push(step);
    }
    stored
}

/// Notes `volume` as stored on each target `stored` says it was (once per target).
pub(crate) fn note_stored(uploaded: &mut [Vec<String>], stored: &[bool], volume: &str) {
    for (list, _) in uploaded.iter_mut().zip(stored).filter(|(_, ok)| **ok) {
        if !list.iter().any(|v| v == volume) {
            list.push(volume.to_owned());
        }
    }
}

/// Writes `manifest` beside the archive of `d` (`relative` to its target's prefix), and
/// makes both private; on failure the archive is deleted (an archive without its manifest is
/// not a backup).
async fn write_manifest(d: &Destination<'_>, relative: &str, manifest: &Manifest) -> Result<(), String> {
    let Destination { storage, key } = d;
    let body = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    let manifest_key = storage.key(&format!("{relative}{MANIFEST_SUFFIX}"));
    if let Err(e) = storage.store().put(&manifest_key, body.into()).await {
        let _ = storage.delete(key).await;
        return Err(storage.error(format!("write {manifest_key}"), &e).to_string());
    }
    for written in [key, &manifest_key] {
        storage.make_private(written).map_err(|e| e.to_string())?;
    }
    Ok(())
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
pub(crate) async fn volume_node(
    ctx: &JobContext,
    io: &dyn VolumeIo,
    connected: &Connected,
    service: &Service,
    volume: &str,
) -> Result<String, String> {
    let tasks = ctx
        .swarm
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
    if (here || nodes.is_empty()) && io.here(ctx, volume).await {
        return Ok(connected.node_id.clone());
    }
    match nodes.first() {
        Some((_, node)) => Ok((*node).to_owned()),
        None => Err(format!("volume {volume} is on no node where service {} ran", service.spec.name)),
    }
}

/// The identity that decrypts `object`: none when it is not encrypted, else the one named
/// on the command line or the target's, read now; an error says how to name one.
fn identity_for(
    object: &BackupObject,
    storage: &Storage,
    options: &RestoreOptions,
    read: &mut Option<crate::seal::AgeIdentity>,
) -> Result<Option<crate::seal::AgeIdentity>, String> {
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
    let identity = crate::seal::AgeIdentity::read(path).map_err(|e| e.to_string())?;
    *read = Some(identity.clone());
    Ok(Some(identity))
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
) -> Option<Vec<(BackupObject, crate::steps::transfer::download::Staged)>> {
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
            let key = storage.key(&object.key);
            let staged = crate::steps::transfer::download::stage_object(
                storage,
                &key,
                identity,
                Some(&manifest.sha256),
            )
            .await
            .map_err(|e| format!("{}: {e}", object.key))?;
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
) -> Result<(BackupObject, crate::steps::transfer::download::Staged, String), String> {
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
    let (staged, found, stored) =
        crate::steps::transfer::download::stage_foreign(storage, &storage.key(key), volume)
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
    io: &dyn VolumeIo,
    connected: &Connected,
    names: &BTreeMap<String, String>,
    subject: &Subject,
    (object, staged): (&BackupObject, &crate::steps::transfer::download::Staged),
    node: &str,
) {
    let ctx = run.ctx;
    let mut step = Step::start("restore", SystemTime::now());
    step.object = Some(object.key.clone());
    // A node given by ID is shown by its hostname; it is still resolved as given.
    let shown = names.get(node).cloned().unwrap_or_else(|| node.to_owned());
    step.node = Some(shown.clone());
    run.started(&step);
    let node = node.to_owned();
    let mut via = None;
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
        let progress = |t: crate::steps::transfer::upload::Transfer| {
            run.progress(format!("restore {volume}: {}", t.describe()));
        };
        let timeout = ctx.defaults.backup_upload_timeout;
        let at = Place { ctx, owner, connected: &connected.node_id, node_id: &node_id, node_name: &shown };
        let moved = io.download(&at, &object.volume, staged, timeout, &progress).await?;
        via = Some(moved.via.to_owned());
        let crate::steps::transfer::download::Downloaded { sha256, stats, .. } = moved;
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
    step.via = via;
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
