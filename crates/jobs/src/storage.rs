//! Storage targets: where backups go. Named targets come from the configuration file's
//! `storage.targets.<name>` (a local directory or an S3-compatible bucket); `local` is the
//! embedded default; the seed's `SWARM_UTILS_S3_*` variables and
//! `backup.volume-list-upload.s3.*` labels form an implicit target named `swarm-utils`.
//!
//! Credentials are read from variables or files (`*_env`, `*_file`) when the configuration
//! is loaded and kept in [`Secret`]s, which never print. Every error names the target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dockhand_host::{ConfigFile, Environment};
use dockhand_policy::BackupPolicy;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;

use crate::archive::DEFAULT_ZSTD_LEVEL;
use crate::secret::{Secret, read_credential};

/// The target used when a service names none and no seed settings exist.
pub const DEFAULT_TARGET: &str = "local";
/// The implicit target of the seed's `SWARM_UTILS_S3_*` variables and `s3.*` labels.
pub const SEED_TARGET: &str = "swarm-utils";
/// Where `dockhand-server` keeps the `local` target.
pub const SERVER_LOCAL_PATH: &str = "/var/lib/dockhand/backups";

/// One storage target, validated, with its credentials read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetSettings {
    /// Its name.
    pub name: String,
    /// Where it was defined: a file, `the built-in defaults` or `the environment`.
    pub origin: String,
    /// Where the objects go.
    pub kind: TargetKind,
    /// zstd level of the archives (`compression_level`, default 3).
    pub zstd_level: i32,
    /// Days a backup is kept (`retention_days`); `None` keeps them all.
    pub retention_days: Option<u32>,
    /// Backups per volume never deleted by retention, the newest (`keep_last`, default 1).
    pub keep_last: u32,
    /// age recipients the archives are encrypted to (`encryption.recipients`).
    pub recipients: Vec<String>,
    /// The age identity file restore decrypts with (`encryption.identity_file`).
    pub identity_file: Option<PathBuf>,
}

/// A local directory or an S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetKind {
    /// A directory on the machine dockhand runs on.
    Local {
        /// The directory.
        path: PathBuf,
    },
    /// An S3-compatible bucket.
    S3(S3Target),
}

/// An S3-compatible bucket and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Target {
    /// `http(s)://host[:port]`.
    pub endpoint: String,
    /// The region (default `us-east-1`).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket (no leading or trailing `/`).
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`), the default; virtual-hosted when false.
    pub path_style: bool,
    /// The access key id.
    pub access_key_id: Secret,
    /// The secret access key.
    pub secret_access_key: Secret,
}

impl std::fmt::Display for TargetSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            TargetKind::Local { path } => {
                write!(f, "storage target {:?} (local {})", self.name, path.display())
            }
            TargetKind::S3(s3) => {
                write!(f, "storage target {:?} (s3 {}, bucket {}", self.name, s3.endpoint, s3.bucket)?;
                if !s3.prefix.is_empty() {
                    write!(f, ", prefix {}", s3.prefix)?;
                }
                f.write_str(")")
            }
        }
    }
}

/// What can go wrong with storage targets. Every message names the target, and where it
/// was defined or what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A target's configuration is wrong.
    #[error("{origin}: {key}: {detail}")]
    Config {
        /// The file, or `the environment`.
        origin: String,
        /// The key or variable, such as `storage.targets.offsite.bucket`.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// No target has this name.
    #[error("storage target {name:?}: no such target (configured: {})", known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// The target is configured, but its entry is wrong.
    #[error("storage target {name:?} cannot be used: {problem}")]
    Broken {
        /// Its name.
        name: String,
        /// The configuration error.
        problem: String,
    },
    /// An operation on the target failed.
    #[error("{target}: {operation}: {problem}: {detail}")]
    Operation {
        /// The target, as displayed.
        target: String,
        /// What was being done, such as `write the probe object`.
        operation: String,
        /// What kind of failure it was.
        problem: Problem,
        /// The store's own message (it never holds a credential).
        detail: String,
    },
}

/// The kind of a storage failure, for a message that says where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Problem {
    /// The endpoint's name does not resolve.
    Dns,
    /// Nothing answers at the endpoint.
    Unreachable,
    /// The TLS handshake or certificate failed.
    Tls,
    /// The access key or secret key was refused.
    Credentials,
    /// The bucket does not exist.
    Bucket,
    /// The credentials are valid but not allowed this operation.
    Permissions,
    /// The endpoint did not answer in time.
    Timeout,
    /// The object is not there.
    NotFound,
    /// The local directory cannot be used.
    Filesystem,
    /// Anything else.
    Other,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Dns => "DNS: the endpoint's host name does not resolve",
            Self::Unreachable => "the endpoint is unreachable",
            Self::Tls => "TLS failed (certificate or handshake)",
            Self::Credentials => "credentials refused (check the access key and the secret key)",
            Self::Bucket => "the bucket does not exist or its name is not valid",
            Self::Permissions => "permission denied",
            Self::Timeout => "timed out",
            Self::NotFound => "no such object",
            Self::Filesystem => "the directory cannot be used",
            Self::Other => "failed",
        })
    }
}

/// A target as written in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    path_style: Option<bool>,
    access_key_id: Option<String>,
    access_key_id_env: Option<String>,
    access_key_id_file: Option<PathBuf>,
    secret_access_key: Option<String>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    compression_level: Option<i32>,
    retention_days: Option<u32>,
    keep_last: Option<u32>,
    encryption: Option<RawEncryption>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    #[serde(default)]
    recipients: Vec<String>,
    identity_file: Option<PathBuf>,
}

/// The configured targets, plus `local` and, when the seed's variables are set,
/// `swarm-utils`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageTargets {
    targets: BTreeMap<String, TargetSettings>,
    /// Targets whose entry does not validate: using one is its error; the others still work.
    broken: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
}

impl StorageTargets {
    /// The targets of `file`, with credentials read from `env` and files. `local_path` is
    /// where the default `local` target writes when the file does not define it. A target
    /// whose entry is wrong is kept aside with its error ([`StorageTargets::problems`]), so
    /// that a credential missing for one target does not stop jobs using another.
    pub fn load(file: &ConfigFile, env: &Environment, local_path: PathBuf) -> Result<Self, StorageError> {
        let origin = file.origin().to_string();
        let mut targets = BTreeMap::new();
        let mut broken = BTreeMap::new();
        targets.insert(
            DEFAULT_TARGET.to_owned(),
            local_target(DEFAULT_TARGET, "the built-in defaults", local_path),
        );
        let dict =
            file.map("storage.targets", "a map of target names").map_err(|e| StorageError::Config {
                origin: origin.clone(),
                key: "storage.targets".into(),
                detail: e.to_string(),
            })?;
        for (name, value) in dict.unwrap_or_default() {
            let key = format!("storage.targets.{name}");
            let config =
                |detail: String| StorageError::Config { origin: origin.clone(), key: key.clone(), detail };
            let built = if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                Err(config("a target name is letters, digits, '-' and '_'".into()))
            } else {
                value
                    .deserialize::<RawTarget>()
                    .map_err(|e| config(e.kind.to_string()))
                    .and_then(|raw| build(&name, &origin, &key, raw, env))
            };
            match built {
                Ok(settings) => {
                    targets.insert(name, settings);
                }
                Err(e) => {
                    targets.remove(&name);
                    broken.insert(name, e.to_string());
                }
            }
        }
        let seed: BTreeMap<String, String> =
            env.vars_with_prefix("SWARM_UTILS_S3_").map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        if !targets.contains_key(SEED_TARGET) && seed.contains_key("SWARM_UTILS_S3_URL") {
            let target = seed_target(&seed, &dockhand_policy::S3Labels::default())?;
            targets.insert(SEED_TARGET.to_owned(), target);
        }
        Ok(Self { targets, broken, env: seed })
    }

    /// The target called `name`; a broken one is its configuration error.
    pub fn get(&self, name: &str) -> Result<&TargetSettings, StorageError> {
        if let Some(problem) = self.broken.get(name) {
            return Err(StorageError::Broken { name: name.to_owned(), problem: problem.clone() });
        }
        self.targets.get(name).ok_or_else(|| StorageError::Unknown {
            name: name.to_owned(),
            known: self.targets.keys().chain(self.broken.keys()).cloned().collect(),
        })
    }

    /// The targets whose entry does not validate, with their errors.
    pub fn problems(&self) -> impl Iterator<Item = (&str, &str)> {
        self.broken.iter().map(|(name, problem)| (name.as_str(), problem.as_str()))
    }

    /// The S3 keys it holds (each target's, and the seed's `SWARM_UTILS_S3_*`): for the
    /// redactor, which masks them wherever text leaves dockhand.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .targets
            .values()
            .filter_map(|t| match &t.kind {
                TargetKind::S3(s3) => {
                    Some([s3.secret_access_key.expose().to_owned(), s3.access_key_id.expose().to_owned()])
                }
                TargetKind::Local { .. } => None,
            })
            .flatten()
            .collect();
        for var in ["SWARM_UTILS_S3_SECRET_KEY", "SWARM_UTILS_S3_ACCESS_KEY"] {
            out.extend(self.env.get(var).cloned());
        }
        out
    }

    /// Every target, by name.
    pub fn iter(&self) -> impl Iterator<Item = &TargetSettings> {
        self.targets.values()
    }

    /// The target a service's backup goes to: `backup.target`; else, when the service has
    /// seed `s3.{url,bucket,access-key,secret-key}` labels or the seed's variables are set,
    /// `swarm-utils` (labels over variables); else `local`.
    pub fn for_service(&self, policy: &BackupPolicy) -> Result<TargetSettings, StorageError> {
        if let Some(name) = &policy.target {
            return self.get(name).cloned();
        }
        let s3 = &policy.s3;
        // `s3.retention-days` and `s3.https` alone do not name a place: they apply to
        // whichever target is used.
        let labelled =
            s3.url.is_some() || s3.bucket.is_some() || s3.access_key.is_some() || s3.secret_key.is_some();
        if labelled {
            return seed_target(&self.env, s3);
        }
        self.get(if self.targets.contains_key(SEED_TARGET) { SEED_TARGET } else { DEFAULT_TARGET }).cloned()
    }
}

/// The CLI's `local` directory: `$XDG_DATA_HOME/dockhand/backups` (default
/// `~/.local/share`).
pub fn default_local_path(env: &Environment) -> Option<PathBuf> {
    let base = match env.get("XDG_DATA_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env.get("HOME")?).join(".local").join("share"),
    };
    Some(base.join("dockhand").join("backups"))
}

pub(crate) fn local_target(name: &str, origin: &str, path: PathBuf) -> TargetSettings {
    TargetSettings {
        name: name.to_owned(),
        origin: origin.to_owned(),
        kind: TargetKind::Local { path },
        zstd_level: DEFAULT_ZSTD_LEVEL,
        retention_days: None,
        keep_last: 1,
        recipients: Vec::new(),
        identity_file: None,
    }
}

fn build(
    name: &str,
    origin: &str,
    key: &str,
    raw: RawTarget,
    env: &Environment,
) -> Result<TargetSettings, StorageError> {
    let err = |field: &str, detail: String| StorageError::Config {
        origin: origin.to_owned(),
        key: format!("{key}.{field}"),
        detail,
    };
    let level = raw.compression_level.unwrap_or(DEFAULT_ZSTD_LEVEL);
    if !(1..=19).contains(&level) {
        return Err(err("compression_level", format!("{level} is not a zstd level from 1 to 19")));
    }
    let (recipients, identity_file) = match raw.encryption {
        None => (Vec::new(), None),
        Some(RawEncryption { recipients, identity_file }) => {
            // An identity alone would mean "encrypt" to a reader of the file but encrypt
            // nothing: say so rather than write plaintext.
            if recipients.is_empty() {
                return Err(err(
                    "encryption.recipients",
                    "encryption needs at least one age recipient (age1…) to encrypt to".into(),
                ));
            }
            crate::seal::recipients(&recipients).map_err(|d| err("encryption.recipients", d))?;
            if let Some(path) = &identity_file
                && !path.is_absolute()
            {
                return Err(err(
                    "encryption.identity_file",
                    format!("{} is not an absolute path", path.display()),
                ));
            }
            (recipients.iter().map(|r| r.trim().to_owned()).collect(), identity_file)
        }
    };
    let kind = match raw.kind.as_str() {
        "local" => {
            let Some(path) = raw.path else { return Err(err("path", "a local target needs a path".into())) };
            if !path.is_absolute() {
                return Err(err("path", format!("{} is not an absolute path", path.display())));
            }
            let s3_only = [raw.endpoint.is_some(), raw.bucket.is_some(), raw.region.is_some()];
            if s3_only.iter().any(|x| *x) {
                return Err(err("type", "endpoint, bucket and region belong to `type: s3`".into()));
            }
            TargetKind::Local { path }
        }
        "s3" => {
            let endpoint =
                raw.endpoint.ok_or_else(|| err("endpoint", "an s3 target needs an endpoint URL".into()))?;
            check_endpoint(&endpoint).map_err(|d| err("endpoint", d))?;
            let bucket = raw.bucket.ok_or_else(|| err("bucket", "an s3 target needs a bucket".into()))?;
            let credential = |field: &str,
                              literal: Option<String>,
                              var: Option<String>,
                              file: Option<PathBuf>,
                              default_var: &str|
             -> Result<Secret, StorageError> {
                if literal.is_some() {
                    return Err(err(
                        field,
                        format!(
                            "a credential is not written in the configuration: use {field}_env or {field}_file"
                        ),
                    ));
                }
                read_credential(env, var.as_deref(), file.as_deref(), default_var)
                    .map_err(|d| err(&format!("{field}{}", if file.is_some() { "_file" } else { "_env" }), d))
            };
            let access_key_id = credential(
                "access_key_id",
                raw.access_key_id,
                raw.access_key_id_env,
                raw.access_key_id_file,
                "AWS_ACCESS_KEY_ID",
            )?;
            let secret_access_key = credential(
                "secret_access_key",
                raw.secret_access_key,
                raw.secret_access_key_env,
                raw.secret_access_key_file,
                "AWS_SECRET_ACCESS_KEY",
            )?;
            TargetKind::S3(S3Target {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                region: raw.region.unwrap_or_else(|| "us-east-1".into()),
                bucket,
                prefix: raw.prefix.unwrap_or_default().trim_matches('/').to_owned(),
                path_style: raw.path_style.unwrap_or(true),
                access_key_id,
                secret_access_key,
            })
        }
        other => return Err(err("type", format!("{other:?} is not a target type (local, s3)"))),
    };
    Ok(TargetSettings {
        name: name.to_owned(),
        origin: origin.to_owned(),
        kind,
        zstd_level: level,
        retention_days: raw.retention_days,
        keep_last: raw.keep_last.unwrap_or(1),
        recipients,
        identity_file,
    })
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| format!("{endpoint:?} is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains('@') {
        return Err(format!("{endpoint:?} has no host (credentials do not go in the URL)"));
    }
    Ok(())
}

/// `SWARM_UTILS_S3_RETENTION_DAYS` when it is not set, as seed 002's table says.
pub(crate) const SEED_RETENTION_DAYS: u32 = 5;

/// The seed's implicit target: `SWARM_UTILS_S3_*` variables, overridden by a service's
/// `backup.volume-list-upload.s3.*` labels.
fn seed_target(
    env: &BTreeMap<String, String>,
    labels: &dockhand_policy::S3Labels,
) -> Result<TargetSettings, StorageError> {
    let var = |name: &str| env.get(&format!("SWARM_UTILS_S3_{name}")).filter(|v| !v.is_empty()).cloned();
    let missing = |what: &str, label: &str| StorageError::Config {
        origin: "the environment".into(),
        key: format!("SWARM_UTILS_S3_{what}"),
        detail: format!("not set, and no backup.volume-list-upload.s3.{label} label names it"),
    };
    let url = labels.url.clone().or_else(|| var("URL")).ok_or_else(|| missing("URL", "url"))?;
    let https = match labels.https {
        Some(https) => https,
        None => match var("HTTPS").as_deref() {
            None => true,
            Some(v) => v.eq_ignore_ascii_case("true") || v == "1",
        },
    };
    let endpoint = if url.starts_with("http://") || url.starts_with("https://") {
        url
    } else {
        format!("{}://{url}", if https { "https" } else { "http" })
    };
    check_endpoint(&endpoint).map_err(|detail| StorageError::Config {
        origin: "the environment".into(),
        key: "SWARM_UTILS_S3_URL".into(),
        detail,
    })?;
    // R3-05: the server's keys go only to the endpoint and bucket its variables name. A
    // label that moves either must carry its own keys, or the operator's key would sign
    // requests to wherever a service's owner points it.
    let bucket =
        labels.bucket.clone().or_else(|| var("BUCKET")).ok_or_else(|| missing("BUCKET", "bucket"))?;
    let env_endpoint = var("URL").map(|u| {
        let u = if u.starts_with("http://") || u.starts_with("https://") {
            u
        } else {
            let https = var("HTTPS").as_deref().is_none_or(|v| v.eq_ignore_ascii_case("true") || v == "1");
            format!("{}://{u}", if https { "https" } else { "http" })
        };
        u.trim_end_matches('/').to_owned()
    });
    let moved_endpoint =
        labels.url.is_some() && env_endpoint.as_deref() != Some(endpoint.trim_end_matches('/'));
    let moved_bucket = labels.bucket.is_some() && var("BUCKET").as_deref() != labels.bucket.as_deref();
    let own_keys = labels.access_key.is_some() && labels.secret_key.is_some();
    if (moved_endpoint || moved_bucket) && !own_keys {
        let (label, place) = if moved_endpoint {
            ("url", format!("the endpoint {endpoint}"))
        } else {
            ("bucket", format!("the bucket {bucket}"))
        };
        return Err(StorageError::Config {
            origin: "its labels".into(),
            key: format!("backup.volume-list-upload.s3.{label}"),
            detail: format!(
                "names {place}, which the server's SWARM_UTILS_S3_* settings do not: such a label must carry its \
                 own keys (backup.volume-list-upload.s3.access-key and .s3.secret-key); the server's keys go \
                 only to its own endpoint and bucket"
            ),
        });
    }
    let retention_days = match labels.retention_days {
        Some(days) => Some(days),
        None => match var("RETENTION_DAYS") {
            // The seed's table gives 5 as the variable's default: a migrated cluster keeps
            // the retention it had.
            None => Some(SEED_RETENTION_DAYS),
            Some(v) => Some(v.replace('_', "").parse().map_err(|_| StorageError::Config {
                origin: "the environment".into(),
                key: "SWARM_UTILS_S3_RETENTION_DAYS".into(),
                detail: format!("{v:?} is not a number of days"),
            })?),
        },
    };
    Ok(TargetSettings {
        name: SEED_TARGET.to_owned(),
        origin: "the environment".into(),
        kind: TargetKind::S3(S3Target {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: "us-east-1".into(),
            bucket,
            prefix: String::new(),
            path_style: true,
            access_key_id: Secret::new(
                labels
                    .access_key
                    .clone()
                    .or_else(|| var("ACCESS_KEY"))
                    .ok_or_else(|| missing("ACCESS_KEY", "access-key"))?,
            ),
            secret_access_key: Secret::new(
                labels
                    .secret_key
                    .clone()
                    .or_else(|| var("SECRET_KEY"))
                    .ok_or_else(|| missing("SECRET_KEY", "secret-key"))?,
            ),
        }),
        zstd_level: DEFAULT_ZSTD_LEVEL,
        retention_days,
        keep_last: 1,
        recipients: Vec::new(),
        identity_file: None,
    })
}

/// An opened target: the object store and the key prefix everything goes under.
#[derive(Clone)]
pub struct Storage {
    settings: TargetSettings,
    store: Arc<dyn ObjectStore>,
    prefix: Option<Key>,
    /// A local target's file system, to make what it writes private.
    local: Option<Arc<object_store::local::LocalFileSystem>>,
}

/// Creates `path` (and its parents) for a local target, the target's own directory 0700.
/// One that exists is left as it is (it may be a mount point an operator chose); what
/// dockhand writes below it is made private by [`Storage::make_private`].
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("target", &self.settings.name).finish_non_exhaustive()
    }
}

/// What `storage check` did, step by step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// The target's name.
    pub target: String,
    /// The steps that passed: write, read, list, delete.
    pub passed: Vec<String>,
}

impl Storage {
    /// Opens a target: creates a local directory, or builds the S3 client (no request yet).
    pub fn open(settings: &TargetSettings) -> Result<Self, StorageError> {
        let fail = |problem, detail: String| StorageError::Operation {
            target: settings.to_string(),
            operation: "open".into(),
            problem,
            detail,
        };
        let mut local = None;
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match &settings.kind {
            TargetKind::Local { path } => {
                private_dir(path)
                    .map_err(|e| fail(Problem::Filesystem, format!("{}: {e}", path.display())))?;
                let store = Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(path)
                        .map_err(|e| fail(Problem::Filesystem, e.to_string()))?,
                );
                local = Some(store.clone());
                (store, String::new())
            }
            TargetKind::S3(s3) => {
                // reqwest's rustls takes the process's provider: ring, as for the engine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = object_store::ClientOptions::new()
                    .with_allow_http(s3.endpoint.starts_with("http://"))
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(120));
                let retry = object_store::RetryConfig {
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(30),
                    ..Default::default()
                };
                let store = object_store::aws::AmazonS3Builder::new()
                    .with_endpoint(&s3.endpoint)
                    .with_region(&s3.region)
                    .with_bucket_name(&s3.bucket)
                    .with_access_key_id(s3.access_key_id.expose())
                    .with_secret_access_key(s3.secret_access_key.expose())
                    .with_virtual_hosted_style_request(!s3.path_style)
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| fail(Problem::Other, e.to_string()))?;
                (Arc::new(store), s3.prefix.clone())
            }
        };
        let prefix = (!prefix.is_empty()).then(|| Key::from(prefix));
        Ok(Self { settings: settings.clone(), store, prefix, local })
    }

    /// On a local target, makes the object `key` readable by its owner alone (0600), and
    /// the directories that lead to it 0700 (R3-16): archives hold whole volumes. Nothing
    /// to do on S3.
    pub fn make_private(&self, key: &Key) -> Result<(), StorageError> {
        use std::os::unix::fs::PermissionsExt;
        let (Some(local), TargetKind::Local { path: root }) = (&self.local, &self.settings.kind) else {
            return Ok(());
        };
        let fail = |detail: String| StorageError::Operation {
            target: self.settings.to_string(),
            operation: format!("make {key} private"),
            problem: Problem::Filesystem,
            detail,
        };
        let file = local.path_to_filesystem(key).map_err(|e| fail(e.to_string()))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail(format!("{}: {e}", file.display())))?;
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root.as_path()) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| fail(format!("{}: {e}", d.display())))?;
            dir = d.parent();
        }
        Ok(())
    }

    /// The target's settings.
    pub fn settings(&self) -> &TargetSettings {
        &self.settings
    }

    /// The object store, for streaming reads and writes.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full key of `relative` (`a/b/c`), under the target's prefix.
    pub fn key(&self, relative: &str) -> Key {
        let mut parts: Vec<String> =
            self.prefix.iter().flat_map(|p| p.parts().map(|x| x.as_ref().to_owned())).collect();
        parts.extend(relative.split('/').filter(|p| !p.is_empty()).map(str::to_owned));
        Key::from_iter(parts)
    }

    /// `key` relative to the target's prefix.
    pub fn relative(&self, key: &Key) -> String {
        let full = key.as_ref();
        match &self.prefix {
            Some(prefix) => {
                full.strip_prefix(prefix.as_ref()).unwrap_or(full).trim_start_matches('/').to_owned()
            }
            None => full.to_owned(),
        }
    }

    /// An error for `operation` on this target, classified.
    pub fn error(&self, operation: impl Into<String>, err: &object_store::Error) -> StorageError {
        StorageError::Operation {
            target: self.settings.to_string(),
            operation: operation.into(),
            problem: classify(err),
            detail: describe(err),
        }
    }

    /// Every object under `relative` (a directory-like prefix), oldest key first.
    pub async fn list(&self, relative: &str) -> Result<Vec<object_store::ObjectMeta>, StorageError> {
        use futures_util::TryStreamExt;
        let prefix = self.key(relative);
        let mut objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.error(format!("list {prefix}"), &e))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Writes `bytes` at `relative` in one request (small objects: a manifest, a test's).
    pub async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        use object_store::ObjectStoreExt;
        let key = self.key(relative);
        self.store.put(&key, bytes.into()).await.map(drop).map_err(|e| self.error(format!("write {key}"), &e))
    }

    /// Deletes `key`; one already gone counts as deleted.
    pub async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(format!("delete {key}"), &e)),
        }
    }

    /// Writes, reads back, lists and deletes a probe object; the first step that fails is
    /// named with what kind of failure it was.
    pub async fn check(&self) -> Result<CheckReport, StorageError> {
        let nonce = crate::job::job_id(std::time::SystemTime::now());
        let key = self.key(&format!(".dockhand-probe/{nonce}"));
        let body = bytes::Bytes::from(format!("dockhand storage probe {nonce}\n"));
        let mut passed = Vec::new();
        self.store
            .put(&key, body.clone().into())
            .await
            .map_err(|e| self.error(format!("write the probe object {key}"), &e))?;
        passed.push("write".to_owned());
        let read = async {
            let got = self.store.get(&key).await?.bytes().await?;
            Ok::<_, object_store::Error>(got)
        };
        let got = read.await.map_err(|e| self.error(format!("read the probe object {key}"), &e))?;
        if got != body {
            return Err(StorageError::Operation {
                target: self.settings.to_string(),
                operation: format!("read the probe object {key}"),
                problem: Problem::Other,
                detail: format!("read {} bytes that differ from the {} written", got.len(), body.len()),
            });
        }
        passed.push("read".to_owned());
        let listed = self.list(".dockhand-probe").await?;
        if !listed.iter().any(|o| o.location == key) {
            return Err(StorageError::Operation {
                target: self.settings.to_string(),
                operation: format!("list {}", self.key(".dockhand-probe")),
                problem: Problem::Other,
                detail: format!("the probe object {key} was written but is not listed"),
            });
        }
        passed.push("list".to_owned());
        self.store
            .delete(&key)
            .await
            .map_err(|e| self.error(format!("delete the probe object {key}"), &e))?;
        passed.push("delete".to_owned());
        Ok(CheckReport { target: self.settings.name.clone(), passed })
    }
}

/// The error and its causes, one line.
fn describe(err: &object_store::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

/// What kind of failure an object store error is, from its variant and its causes' text
/// (S3 error codes, resolver and TLS messages).
pub(crate) fn classify(err: &object_store::Error) -> Problem {
    let text = describe(err).to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if has(&["signaturedoesnotmatch", "invalidaccesskeyid", "invalid access key", "signature we calculated"])
    {
        return Problem::Credentials;
    }
    if has(&["nosuchbucket", "invalidbucketname", "bucket does not exist", "the specified bucket"]) {
        return Problem::Bucket;
    }
    if has(&["dns error", "failed to lookup address", "name or service not known", "no address associated"]) {
        return Problem::Dns;
    }
    if has(&["certificate", "invalidcertificate", "handshake", "tls"]) {
        return Problem::Tls;
    }
    if has(&["connection refused", "error trying to connect", "tcp connect error", "connection reset"]) {
        return Problem::Unreachable;
    }
    if has(&["timed out", "timeout", "deadline"]) {
        return Problem::Timeout;
    }
    match err {
        object_store::Error::NotFound { .. } => Problem::NotFound,
        object_store::Error::PermissionDenied { .. } => Problem::Permissions,
        object_store::Error::Unauthenticated { .. } => Problem::Credentials,
        _ if has(&["accessdenied", "access denied", "forbidden"]) => Problem::Permissions,
        _ if has(&["permission denied", "read-only file system", "no space left"]) => Problem::Filesystem,
        _ => Problem::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    /// The targets, or the first error: a broken target's included.
    fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<StorageTargets, StorageError> {
        let file = ConfigFile::parse(yaml, false).unwrap();
        let targets = StorageTargets::load(&file, &env(vars), PathBuf::from("/data/backups"))?;
        if let Some((name, _)) = targets.problems().next() {
            return Err(targets.get(name).unwrap_err());
        }
        Ok(targets)
    }

    #[test]
    fn local_is_the_embedded_default() {
        let targets = load("{}", &[]).unwrap();
        let local = targets.get("local").unwrap();
        assert_eq!(local.kind, TargetKind::Local { path: "/data/backups".into() });
        assert_eq!(targets.for_service(&policy(None)).unwrap().name, "local");
    }

    fn policy(target: Option<&str>) -> BackupPolicy {
        let mut labels = BTreeMap::new();
        labels.insert("dockhand.backup.enable".to_owned(), "true".to_owned());
        if let Some(t) = target {
            labels.insert("dockhand.backup.target".to_owned(), t.to_owned());
        }
        let defaults = dockhand_policy::Defaults::default();
        let prefixes = dockhand_policy::LabelPrefixes::default();
        dockhand_policy::service_policy(&labels, false, &defaults, &prefixes).0.backup.unwrap()
    }

    #[test]
    fn s3_credentials_come_from_files_or_variables_never_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").unwrap();
        let yaml = format!(
            "storage:\n  targets:\n    offsite:\n      type: s3\n      endpoint: http://127.0.0.1:8333\n      bucket: b\n      \
             prefix: /swarm-a/\n      access_key_id_env: MY_KEY\n      secret_access_key_file: {}\n",
            secret.display()
        );
        let targets = load(&yaml, &[("MY_KEY", "AKIA1")]).unwrap();
        let offsite = targets.get("offsite").unwrap();
        let TargetKind::S3(s3) = &offsite.kind else { panic!("not s3") };
        assert_eq!(s3.secret_access_key.expose(), "s3cr3t");
        assert_eq!(s3.prefix, "swarm-a");
        assert!(!format!("{offsite:?}").contains("s3cr3t"), "a secret printed: {offsite:?}");
        assert_eq!(targets.for_service(&policy(Some("offsite"))).unwrap().name, "offsite");

        let literal = "storage:\n  targets:\n    x:\n      type: s3\n      endpoint: http://h\n      bucket: b\n      \
                       secret_access_key: hunter2\n";
        let err = load(literal, &[("AWS_ACCESS_KEY_ID", "AKIA1")]).unwrap_err().to_string();
        assert!(err.contains("storage.targets.x.secret_access_key") && !err.contains("hunter2"), "{err}");
        let unset =
            "storage:\n  targets:\n    x:\n      type: s3\n      endpoint: http://h\n      bucket: b\n";
        let err = load(unset, &[]).unwrap_err().to_string();
        assert!(
            err.contains("storage.targets.x.access_key_id_env") && err.contains("AWS_ACCESS_KEY_ID"),
            "{err}"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        for (yaml, want) in [
            ("storage:\n  targets:\n    x:\n      type: ftp\n", "storage.targets.x.type"),
            ("storage:\n  targets:\n    x:\n      type: local\n", "storage.targets.x.path"),
            ("storage:\n  targets:\n    x:\n      type: local\n      path: rel\n", "not an absolute path"),
            (
                "storage:\n  targets:\n    x:\n      type: local\n      path: /a\n      colour: red\n",
                "colour",
            ),
            (
                "storage:\n  targets:\n    x:\n      type: s3\n      endpoint: s3.example.com\n      bucket: b\n",
                "http://",
            ),
            (
                "storage:\n  targets:\n    x:\n      type: local\n      path: /a\n      compression_level: 40\n",
                "zstd level",
            ),
            ("storage:\n  targets: [1]\n", "storage.targets"),
            (
                "storage:\n  targets:\n    x:\n      type: local\n      path: /a\n      encryption:\n        recipients: [age1x]\n",
                "storage.targets.x.encryption.recipients: entry 0 (\"age1x\") is not an age X25519 recipient",
            ),
            (
                "storage:\n  targets:\n    x:\n      type: local\n      path: /a\n      encryption:\n        identity_file: /k\n",
                "storage.targets.x.encryption.recipients: encryption needs at least one age recipient",
            ),
        ] {
            let err = load(yaml, &[]).unwrap_err().to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
        let err = load("{}", &[]).unwrap().get("nope").unwrap_err().to_string();
        assert!(err.contains("\"nope\"") && err.contains("local"), "{err}");
    }

    #[test]
    fn the_seed_variables_and_labels_form_a_target() {
        let vars = [
            ("SWARM_UTILS_S3_URL", "s3-api.example.com"),
            ("SWARM_UTILS_S3_HTTPS", "false"),
            ("SWARM_UTILS_S3_BUCKET", "seed-bucket"),
            ("SWARM_UTILS_S3_ACCESS_KEY", "AK"),
            ("SWARM_UTILS_S3_SECRET_KEY", "SK"),
            ("SWARM_UTILS_S3_RETENTION_DAYS", "5"),
        ];
        let targets = load("{}", &vars).unwrap();
        let seed = targets.for_service(&policy(None)).unwrap();
        assert_eq!(seed.name, SEED_TARGET);
        assert_eq!(seed.retention_days, Some(5));
        let TargetKind::S3(s3) = &seed.kind else { panic!("not s3") };
        assert_eq!(s3.endpoint, "http://s3-api.example.com");

        let mut labels = BTreeMap::new();
        labels.insert("swarm-utils.backup.enable".to_owned(), "true".to_owned());
        labels.insert("swarm-utils.backup.volume-list-upload.s3.bucket".to_owned(), "other".to_owned());
        let prefixes = dockhand_policy::LabelPrefixes::with_swarm_utils();
        let defaults = dockhand_policy::Defaults::default();
        let p = dockhand_policy::service_policy(&labels, false, &defaults, &prefixes).0.backup.unwrap();
        // R3-05: another bucket takes its own keys, never the server's.
        let err = targets.for_service(&p).unwrap_err().to_string();
        assert!(err.contains("backup.volume-list-upload.s3.bucket") && err.contains("own keys"), "{err}");
        labels.insert("swarm-utils.backup.volume-list-upload.s3.access-key".to_owned(), "AK2".to_owned());
        labels.insert("swarm-utils.backup.volume-list-upload.s3.secret-key".to_owned(), "SK2".to_owned());
        let p = dockhand_policy::service_policy(&labels, false, &defaults, &prefixes).0.backup.unwrap();
        let TargetKind::S3(s3) = targets.for_service(&p).unwrap().kind else { panic!("not s3") };
        assert_eq!((s3.bucket.as_str(), s3.access_key_id.expose()), ("other", "AK2"));

        // Without the variable, the seed's default of 5 days, not "keep all".
        let unset: Vec<_> =
            vars.iter().copied().filter(|(k, _)| *k != "SWARM_UTILS_S3_RETENTION_DAYS").collect();
        let seed = load("{}", &unset).unwrap().for_service(&policy(None)).unwrap();
        assert_eq!(seed.retention_days, Some(SEED_RETENTION_DAYS));

        let err = load("{}", &[("SWARM_UTILS_S3_URL", "h")]).unwrap_err().to_string();
        assert!(err.contains("SWARM_UTILS_S3_BUCKET"), "{err}");
    }

    /// R3-05: a label may not point the server's keys at another endpoint or bucket.
    #[test]
    fn labels_never_send_the_servers_keys_elsewhere() {
        let service = |pairs: &[(&str, &str)]| {
            let mut labels: BTreeMap<String, String> =
                pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            labels.insert("dockhand.backup.enable".into(), "true".into());
            let (prefixes, defaults) =
                (dockhand_policy::LabelPrefixes::default(), dockhand_policy::Defaults::default());
            dockhand_policy::service_policy(&labels, false, &defaults, &prefixes).0.backup.unwrap()
        };
        let url = "dockhand.backup.volume-list-upload.s3.url";
        let no_url = [
            ("SWARM_UTILS_S3_BUCKET", "b"),
            ("SWARM_UTILS_S3_ACCESS_KEY", "AK"),
            ("SWARM_UTILS_S3_SECRET_KEY", "SK"),
        ];
        let targets = load("{}", &no_url).unwrap();
        let err = targets.for_service(&service(&[(url, "https://evil.example")])).unwrap_err().to_string();
        assert!(
            err.contains("s3.url") && err.contains("https://evil.example") && !err.contains("SK"),
            "{err}"
        );
        let with_url = [("SWARM_UTILS_S3_URL", "s3.example.com"), no_url[0], no_url[1], no_url[2]];
        let targets = load("{}", &with_url).unwrap();
        assert!(targets.for_service(&service(&[(url, "http://10.0.0.5:9000")])).is_err());
        // The server's own endpoint, written out, moves nothing.
        let same = targets.for_service(&service(&[(url, "s3.example.com")])).unwrap();
        let TargetKind::S3(s3) = same.kind else { panic!("not s3") };
        assert_eq!(s3.access_key_id.expose(), "AK");
        // With its own keys, a label may name its own place.
        let own = targets
            .for_service(&service(&[
                (url, "https://other.example"),
                ("dockhand.backup.volume-list-upload.s3.access-key", "AK2"),
                ("dockhand.backup.volume-list-upload.s3.secret-key", "SK2"),
            ]))
            .unwrap();
        let TargetKind::S3(s3) = own.kind else { panic!("not s3") };
        assert_eq!((s3.endpoint.as_str(), s3.access_key_id.expose()), ("https://other.example", "AK2"));
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = local_target("t", "test", dir.path().to_owned());
        let storage = Storage::open(&settings).unwrap();
        assert_eq!(storage.key("app/n_v_1.tar.zst").as_ref(), "app/n_v_1.tar.zst");
        settings.kind = TargetKind::Local { path: dir.path().join("sub") };
        assert!(Storage::open(&settings).is_ok());
    }

    #[tokio::test]
    async fn a_local_target_passes_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&local_target("t", "test", dir.path().join("b"))).unwrap();
        let report = storage.check().await.unwrap();
        assert_eq!(report.passed, ["write", "read", "list", "delete"]);
    }
}
