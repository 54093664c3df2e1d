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
use crate::storage::kinds::{
    AzureCredential, AzureTarget, S3Target, SftpTarget, TargetKind, TargetSettings, WebDavTarget,
    check_endpoint, parse_sftp_url,
};
use crate::storage::seed::{SEED_TARGET, seed_target};

/// The target used when a service names none and no seed settings exist.
pub const DEFAULT_TARGET: &str = "local";

/// Where `dockhand-server` keeps the `local` target.
pub const SERVER_LOCAL_PATH: &str = "/var/lib/dockhand/backups";

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
    account: Option<String>,
    container: Option<String>,
    access_key: Option<String>,
    access_key_env: Option<String>,
    access_key_file: Option<PathBuf>,
    sas: Option<String>,
    sas_env: Option<String>,
    sas_file: Option<PathBuf>,
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    identity_file: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
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

    /// The keys it holds (each target's, and the seed's `SWARM_UTILS_S3_*`): for the
    /// redactor, which masks them wherever text leaves dockhand.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.targets.values().flat_map(|t| t.kind.secrets()).collect();
        for var in ["SWARM_UTILS_S3_SECRET_KEY", "SWARM_UTILS_S3_ACCESS_KEY"] {
            out.extend(self.env.get(var).cloned());
        }
        out
    }

    /// Every target, by name.
    pub fn iter(&self) -> impl Iterator<Item = &TargetSettings> {
        self.targets.values()
    }

    /// The targets a service's backup goes to: those `backup.target` names (one, or several
    /// separated by commas: `near,far`, each archive written to each); else, when the service
    /// has seed `s3.{url,bucket,access-key,secret-key}` labels or the seed's variables are
    /// set, `swarm-utils` (labels over variables); else `local`.
    pub fn for_service(&self, policy: &BackupPolicy) -> Result<Vec<TargetSettings>, StorageError> {
        if let Some(list) = &policy.target {
            let names = target_names(list)?;
            return names.into_iter().map(|name| self.get(name).cloned()).collect();
        }
        let s3 = &policy.s3;
        // `s3.retention-days` and `s3.https` alone do not name a place: they apply to
        // whichever target is used.
        let labelled =
            s3.url.is_some() || s3.bucket.is_some() || s3.access_key.is_some() || s3.secret_key.is_some();
        if labelled {
            return Ok(vec![seed_target(&self.env, s3)?]);
        }
        let name = if self.targets.contains_key(SEED_TARGET) { SEED_TARGET } else { DEFAULT_TARGET };
        Ok(vec![self.get(name)?.clone()])
    }
}

/// The names of a `backup.target` list, in order: not empty, none twice.
pub(crate) fn target_names(list: &str) -> Result<Vec<&str>, StorageError> {
    let problem = |problem: String| StorageError::List { list: list.to_owned(), problem };
    let mut names: Vec<&str> = Vec::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(problem("a name is empty (names are separated by single commas)".to_owned()));
        }
        if names.contains(&name) {
            return Err(problem(format!("{name:?} is named twice")));
        }
        names.push(name);
    }
    Ok(names)
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
    let credential = |field: &str,
                      literal: Option<String>,
                      var: Option<String>,
                      file: Option<PathBuf>,
                      default_var: &str|
     -> Result<Secret, ConfigError> {
        if literal.is_some() {
            return Err(err(
                field,
                format!("a credential is not written in the configuration: use {field}_env or {field}_file"),
            ));
        }
        read_credential(env, var.as_deref(), file.as_deref(), default_var)
            .map_err(|d| err(&format!("{field}{}", if file.is_some() { "_file" } else { "_env" }), d))
    };
    let foreign = |fields: &[(&str, bool)], owner: &str| -> Result<(), ConfigError> {
        match fields.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(err(field, format!("{field} belongs to `type: {owner}`"))),
            None => Ok(()),
        }
    };
    let s3_fields = [
        ("bucket", raw.bucket.is_some()),
        ("region", raw.region.is_some()),
        ("path_style", raw.path_style.is_some()),
        (
            "access_key_id",
            raw.access_key_id.is_some()
                || raw.access_key_id_env.is_some()
                || raw.access_key_id_file.is_some(),
        ),
        (
            "secret_access_key",
            raw.secret_access_key.is_some()
                || raw.secret_access_key_env.is_some()
                || raw.secret_access_key_file.is_some(),
        ),
    ];
    let azure_fields = [
        ("account", raw.account.is_some()),
        ("container", raw.container.is_some()),
        (
            "access_key",
            raw.access_key.is_some() || raw.access_key_env.is_some() || raw.access_key_file.is_some(),
        ),
        ("sas", raw.sas.is_some() || raw.sas_env.is_some() || raw.sas_file.is_some()),
    ];
    let sftp_fields =
        [("identity_file", raw.identity_file.is_some()), ("known_hosts", raw.known_hosts.is_some())];
    let webdav_fields = [
        ("url", raw.url.is_some()),
        ("username", raw.username.is_some()),
        ("password", raw.password.is_some() || raw.password_env.is_some() || raw.password_file.is_some()),
        ("ca_file", raw.ca_file.is_some()),
    ];
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
            foreign(&azure_fields, "azure")?;
            foreign(&webdav_fields, "webdav")?;
            foreign(&sftp_fields, "sftp")?;
            TargetKind::Local { path }
        }
        "s3" => {
            let endpoint =
                raw.endpoint.ok_or_else(|| err("endpoint", "an s3 target needs an endpoint URL".into()))?;
            check_endpoint(&endpoint).map_err(|d| err("endpoint", d))?;
            foreign(&azure_fields, "azure")?;
            foreign(&webdav_fields, "webdav")?;
            foreign(&sftp_fields, "sftp")?;
            let bucket = raw.bucket.ok_or_else(|| err("bucket", "an s3 target needs a bucket".into()))?;
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
        "azure" => {
            foreign(&s3_fields, "s3")?;
            foreign(&webdav_fields, "webdav")?;
            foreign(&sftp_fields, "sftp")?;
            let account = raw
                .account
                .ok_or_else(|| err("account", "an azure target needs its storage account".into()))?;
            if !(3..=24).contains(&account.len())
                || !account.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return Err(err(
                    "account",
                    format!(
                        "{account:?} is not a storage account name (3 to 24 lowercase letters and digits)"
                    ),
                ));
            }
            let container =
                raw.container.ok_or_else(|| err("container", "an azure target needs a container".into()))?;
            if !valid_container(&container) {
                return Err(err(
                    "container",
                    format!(
                        "{container:?} is not a container name (3 to 63 lowercase letters, digits and single \
                         '-', starting and ending with a letter or digit)"
                    ),
                ));
            }
            let endpoint = match raw.endpoint {
                Some(endpoint) => {
                    check_endpoint(&endpoint).map_err(|d| err("endpoint", d))?;
                    endpoint.trim_end_matches('/').to_owned()
                }
                None => format!("https://{account}.blob.core.windows.net"),
            };
            let [.., (_, by_key), (_, by_sas)] = azure_fields;
            let credential = if by_sas && by_key {
                return Err(err("sas", "give the account's access key or a SAS token, not both".into()));
            } else if by_sas {
                let sas = credential("sas", raw.sas, raw.sas_env, raw.sas_file, "AZURE_STORAGE_SAS_TOKEN")?;
                AzureCredential::Sas(Secret::new(sas.expose().trim_start_matches('?')))
            } else {
                let key_field =
                    if raw.access_key_file.is_some() { "access_key_file" } else { "access_key_env" };
                let key = credential(
                    "access_key",
                    raw.access_key,
                    raw.access_key_env,
                    raw.access_key_file,
                    "AZURE_STORAGE_KEY",
                )?;
                let decoded = {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(key.expose().trim())
                };
                if decoded.is_err() {
                    return Err(err(
                        key_field,
                        "the account key is not base64, as the portal shows it".into(),
                    ));
                }
                AzureCredential::AccessKey(Secret::new(key.expose().trim()))
            };
            TargetKind::Azure(AzureTarget {
                endpoint,
                account,
                container,
                prefix: raw.prefix.unwrap_or_default().trim_matches('/').to_owned(),
                credential,
            })
        }
        "webdav" => {
            foreign(&s3_fields, "s3")?;
            foreign(&azure_fields, "azure")?;
            foreign(&sftp_fields, "sftp")?;
            if raw.endpoint.is_some() {
                return Err(err("endpoint", "a webdav target names its collection with url".into()));
            }
            let url =
                raw.url.ok_or_else(|| err("url", "a webdav target needs the collection's url".into()))?;
            check_endpoint(&url).map_err(|d| err("url", d))?;
            let username =
                raw.username.ok_or_else(|| err("username", "a webdav target needs a username".into()))?;
            let password =
                credential("password", raw.password, raw.password_env, raw.password_file, "WEBDAV_PASSWORD")?;
            if let Some(path) = &raw.ca_file {
                crate::http::tls_config(Some(path)).map_err(|d| err("ca_file", d))?;
            }
            TargetKind::WebDav(WebDavTarget {
                url: url.trim_end_matches('/').to_owned(),
                username,
                password,
                ca_file: raw.ca_file,
                prefix: raw.prefix.unwrap_or_default().trim_matches('/').to_owned(),
            })
        }
        "sftp" => {
            foreign(&s3_fields, "s3")?;
            foreign(&azure_fields, "azure")?;
            // `url` is both WebDAV's and ours.
            foreign(&webdav_fields[1..], "webdav")?;
            if raw.endpoint.is_some() {
                return Err(err("endpoint", "an sftp target names its server and directory with url".into()));
            }
            let url = raw.url.ok_or_else(|| {
                err("url", "an sftp target needs its url, sftp://user@host[:port]/path".into())
            })?;
            let (endpoint, path) = parse_sftp_url(&url).map_err(|d| err("url", d))?;
            for (field, file) in [("identity_file", &raw.identity_file), ("known_hosts", &raw.known_hosts)] {
                if let Some(file) = file {
                    if !file.is_absolute() {
                        return Err(err(field, format!("{} is not an absolute path", file.display())));
                    }
                    std::fs::metadata(file).map_err(|e| err(field, format!("{}: {e}", file.display())))?;
                }
            }
            TargetKind::Sftp(SftpTarget {
                url: url.trim_end_matches('/').to_owned(),
                endpoint,
                path,
                identity_file: raw.identity_file,
                known_hosts: raw.known_hosts,
                prefix: raw.prefix.unwrap_or_default().trim_matches('/').to_owned(),
            })
        }
        other => {
            return Err(err(
                "type",
                format!("{other:?} is not a target type (local, s3, azure, webdav, sftp)"),
            ));
        }
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

/// Azure's rule for container names.
fn valid_container(name: &str) -> bool {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends = |c: Option<char>| c.is_some_and(|c| c != '-');
    (3..=63).contains(&name.len())
        && ok_chars
        && ends(name.chars().next())
        && ends(name.chars().last())
        && !name.contains("--")
}

/// `local` writing under `dir`, and a local target for each of `more` (name, directory):
/// the configuration of a test.
#[cfg(test)]
pub(crate) fn locals(dir: &Path, more: &[(&str, &Path)]) -> StorageTargets {
    let mut yaml = String::from("storage:\n  targets:\n");
    for (name, path) in more {
        yaml.push_str(&format!("    {name}:\n      type: local\n      path: {}\n", path.display()));
    }
    let file = ConfigFile::parse(&yaml, false).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    let env = Environment::from_vars::<&str, &str>([]);
    StorageTargets::load(&file, &env, dir.to_owned()).unwrap_or_else(|e| panic!("{e}"))
}

/// The built-in targets alone, `local` writing under `dir`: the configuration of a test.
#[cfg(test)]
pub(crate) fn local_only(dir: &Path) -> StorageTargets {
    let file = ConfigFile::parse("{}", false).unwrap_or_else(|e| panic!("an empty configuration: {e}"));
    let env = Environment::from_vars::<&str, &str>([]);
    StorageTargets::load(&file, &env, dir.to_owned()).unwrap_or_else(|e| panic!("{e}"))
}
