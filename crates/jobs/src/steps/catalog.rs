//! What is stored: object keys (`<service>/<node>_<volume>_<UTC timestamp>.tar.zst`), their
//! manifests, listings (ours and the seed's `.tar.gz`), the choice of what to restore, and
//! retention.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use dockhand_engine::Service;
use dockhand_policy::service_policy;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::job::{Status, Step};
use crate::runner::Running;
use crate::steps::lookup::{mounted, resolve_volume};
use crate::storage::Storage;
use crate::storage::{StorageTargets, TargetSettings};

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

impl BackupObject {
    /// An archive of the seed's tool at `key`, with the parts of its name.
    pub(crate) fn foreign(key: &str, (node, volume, date): (&str, &str, &str), size: u64) -> Self {
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
) -> Result<Vec<BackupObject>, crate::storage::error::StorageError> {
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
) -> Result<Vec<BackupObject>, crate::storage::error::StorageError> {
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

/// Where a node's archives go under the target's prefix: `node/<hostname>`.
pub fn node_dir(hostname: &str) -> String {
    format!("node/{}", hostname.replace('_', "-"))
}

/// No archive matches what a restore asked: what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoBackup(String);

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
    /// The storage target to restore from (default: the one the labels name, else `local`).
    pub target: Option<String>,
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

    /// From the storage target called `name`, whatever the labels name.
    pub fn from_target(mut self, name: impl Into<String>) -> Self {
        self.target = Some(name.into());
        self
    }

    /// The target `options` names, else `labelled` (the one the labels name).
    /// The target named by `--target`, else the first of those the labels name.
    pub(crate) fn chosen_target(
        &self,
        targets: &StorageTargets,
        labelled: impl FnOnce() -> Result<Vec<TargetSettings>, crate::storage::error::StorageError>,
    ) -> Result<TargetSettings, crate::storage::error::StorageError> {
        match &self.target {
            Some(name) => targets.get(name).cloned(),
            None => labelled()?.into_iter().next().ok_or_else(|| crate::storage::error::StorageError::List {
                list: String::new(),
                problem: "names no target".to_owned(),
            }),
        }
    }

    /// Decrypting with the age identity file at `path`.
    pub fn with_identity(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.identity = Some(path.into());
        self
    }
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

/// Retention on each target of a backup that did not fail: `uploaded` holds, per target in
/// `storages`' order, the volumes stored there; the days are `labelled` (the seed's
/// `s3.retention-days`), else the target's own.
pub(crate) async fn retention_on_each(
    run: &mut Running<'_>,
    storages: &[Storage],
    dir: &str,
    uploaded: &[Vec<String>],
    labelled: Option<u32>,
) {
    for (storage, volumes) in storages.iter().zip(uploaded) {
        let target = storage.settings();
        if let Some(days) = labelled.or(target.retention_days) {
            retention(run, storage, dir, volumes, days, target.keep_last).await;
        }
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

/// `SystemTime` as the key's UTC timestamp: `20261128T083939Z`.
pub fn key_timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string().replace(['-', ':'], "")
}

/// A key timestamp back as a time.
pub fn parse_key_timestamp(ts: &str) -> Option<SystemTime> {
    let b = ts.as_bytes();
    // ASCII digits only: a name from a target is anyone's bytes, and a multi-byte character
    // would make the slices below cut inside it (found by the `restore` fuzz target).
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !digits(0..8) || !digits(9..15) {
        return None;
    }
    let rfc =
        format!("{}-{}-{}T{}:{}:{}Z", &ts[0..4], &ts[4..6], &ts[6..8], &ts[9..11], &ts[11..13], &ts[13..15]);
    humantime::parse_rfc3339(&rfc).ok()
}

/// The storage targets of `service`'s backups: those its labels name (or the seed's), else
/// `local`, as for a service that does not exist any more.
pub fn service_targets(
    service: Option<&Service>,
    targets: &StorageTargets,
    defaults: &dockhand_policy::Defaults,
    prefixes: &dockhand_policy::LabelPrefixes,
) -> Result<Vec<TargetSettings>, crate::storage::error::StorageError> {
    let policy =
        service.and_then(|s| service_policy(&s.spec.labels, s.spec.is_global(), defaults, prefixes).0.backup);
    match policy {
        Some(backup) => targets.for_service(&backup),
        None => Ok(vec![targets.get(crate::storage::targets::DEFAULT_TARGET)?.clone()]),
    }
}

#[cfg(test)]
mod tests;
