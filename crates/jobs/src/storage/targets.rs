//! The configured storage targets: `storage.targets` from the configuration file, the
//! embedded `local`, and the seed's `swarm-utils` from its variables and labels, each
//! validated with its credentials read ([`StorageTargets`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dockhand_host::{ConfigError, ConfigFile, Environment};
use dockhand_policy::BackupPolicy;
use serde::Deserialize;

use crate::archive::DEFAULT_ZSTD_LEVEL;
use crate::secret::{Secret, read_credential};
use crate::storage::error::StorageError;

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
    pub fn load(file: &ConfigFile, env: &Environment, local_path: PathBuf) -> Result<Self, ConfigError> {
        let origin = file.origin().to_string();
        let mut targets = BTreeMap::new();
        let mut broken = BTreeMap::new();
        targets.insert(
            DEFAULT_TARGET.to_owned(),
            local_target(DEFAULT_TARGET, "the built-in defaults", local_path),
        );
        let dict = file
            .map("storage.targets", "a map of target names")
            .map_err(|e| ConfigError::new(origin.clone(), "storage.targets", e.to_string()))?;
        for (name, value) in dict.unwrap_or_default() {
            let key = format!("storage.targets.{name}");
            let config = |detail: String| ConfigError::new(origin.clone(), key.clone(), detail);
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
            return Ok(seed_target(&self.env, s3)?);
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
) -> Result<TargetSettings, ConfigError> {
    let err =
        |field: &str, detail: String| ConfigError::new(origin.to_owned(), format!("{key}.{field}"), detail);
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
             -> Result<Secret, ConfigError> {
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

/// The built-in targets alone, `local` writing under `dir`: the configuration of a test.
#[cfg(test)]
pub(crate) fn local_only(dir: &Path) -> StorageTargets {
    let file = ConfigFile::parse("{}", false).unwrap_or_else(|e| panic!("an empty configuration: {e}"));
    let env = Environment::from_vars::<&str, &str>([]);
    StorageTargets::load(&file, &env, dir.to_owned()).unwrap_or_else(|e| panic!("{e}"))
}

/// `SWARM_UTILS_S3_RETENTION_DAYS` when it is not set, as seed 002's table says.
pub(crate) const SEED_RETENTION_DAYS: u32 = 5;

/// The seed's implicit target: `SWARM_UTILS_S3_*` variables, overridden by a service's
/// `backup.volume-list-upload.s3.*` labels.
fn seed_target(
    env: &BTreeMap<String, String>,
    labels: &dockhand_policy::S3Labels,
) -> Result<TargetSettings, ConfigError> {
    let var = |name: &str| env.get(&format!("SWARM_UTILS_S3_{name}")).filter(|v| !v.is_empty()).cloned();
    let missing = |what: &str, label: &str| {
        ConfigError::environment(
            format!("SWARM_UTILS_S3_{what}"),
            format!("not set, and no backup.volume-list-upload.s3.{label} label names it"),
        )
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
    check_endpoint(&endpoint).map_err(|detail| ConfigError::environment("SWARM_UTILS_S3_URL", detail))?;
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
        return Err(ConfigError::new(
            "its labels",
            format!("backup.volume-list-upload.s3.{label}"),
            format!(
                "names {place}, which the server's SWARM_UTILS_S3_* settings do not: such a label must carry its \
                 own keys (backup.volume-list-upload.s3.access-key and .s3.secret-key); the server's keys go \
                 only to its own endpoint and bucket"
            ),
        ));
    }
    let retention_days = match labels.retention_days {
        Some(days) => Some(days),
        None => match var("RETENTION_DAYS") {
            // The seed's table gives 5 as the variable's default: a migrated cluster keeps
            // the retention it had.
            None => Some(SEED_RETENTION_DAYS),
            Some(v) => Some(v.replace('_', "").parse().map_err(|_| {
                ConfigError::environment(
                    "SWARM_UTILS_S3_RETENTION_DAYS",
                    format!("{v:?} is not a number of days"),
                )
            })?),
        },
    };
    Ok(TargetSettings {
        name: SEED_TARGET.to_owned(),
        origin: ConfigError::ENVIRONMENT.to_owned(),
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
