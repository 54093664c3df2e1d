//! The `docker.hosts` section of seed 000: its model, how it is shown (secrets masked),
//! and how it is built from a [`ConfigFile`] with the defaults, environment overrides and
//! validation.

use std::collections::BTreeMap;
use std::path::Path;

use figment::value::Dict;

use super::entry::HostEntry;
use super::env::{apply_env, expansion_vars};
use super::file::{ConfigFile, Origin, lowercase_keys};
use super::validate::build_host;
use crate::{ConfigError, Environment, Error};

/// Seed 000's default configuration, with dockhand's names: used when there is no file or
/// the file has no `docker` section.
pub const DEFAULT_CONFIG: &str = r#"docker:
  hosts:
    default:
      type: external
    local:
      type: managed
      host: "unix://${USER_CACHE_DIR}/dockhand-docker-host/dockhand-docker.sock"
      disabled: true
      managed:
        executable: "dockerd-rootless.sh"
        env:
          - "DOCKERD_ROOTLESS_ROOTLESSKIT_STATE_DIR=${USER_CACHE_DIR}/dockhand-docker-host/state-dir/"
        args:
          - "--data-root=${USER_CACHE_DIR}/dockhand-docker-host/data-root/"
          - "--exec-root=${USER_CACHE_DIR}/dockhand-docker-host/exec-root/"
          - "--pidfile=${USER_CACHE_DIR}/dockhand-docker-host/dockhand-docker.pid"
        logLevel: info
        logPrefix: "DOCKER HOST: "
        healthCheck:
          interval: 1s
          retries: 10
"#;

/// The whole `docker.hosts` section, validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostsConfig {
    hosts: BTreeMap<String, HostEntry>,
    /// Entries that did not validate, with their problems: reported, never used.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    broken: BTreeMap<String, Vec<ConfigError>>,
    origin: Origin,
}

impl HostsConfig {
    /// Loads `path` (or the default file, `$XDG_CONFIG_HOME/dockhand/dockhand.yaml`, when it
    /// exists), or the built-in defaults; then applies `DOCKHAND_DOCKER_HOSTS_*` overrides
    /// from `env`, expands `${VAR}` and validates. A file named explicitly must exist.
    ///
    /// Every problem is an error here; [`HostsConfig::load_partial`] keeps the valid hosts.
    pub fn load(path: Option<&Path>, env: &Environment) -> Result<Self, Error> {
        Self::load_partial(path, env)?.validated()
    }

    /// As [`HostsConfig::load`], but a host entry that does not validate does not spoil the
    /// others: it is kept aside ([`HostsConfig::broken`]) and using it is an error that
    /// lists its problems. Problems outside a host entry (the file, its syntax, an
    /// ambiguous override) are still errors.
    pub fn load_partial(path: Option<&Path>, env: &Environment) -> Result<Self, Error> {
        Self::from_file(&ConfigFile::load(path, env)?, env)
    }

    /// Parses configuration text (YAML, or TOML when `toml` is set), as a file would be.
    pub fn parse(text: &str, toml: bool, env: &Environment) -> Result<Self, Error> {
        Self::from_file(&ConfigFile::parse(text, toml)?, env)?.validated()
    }

    /// The built-in defaults, with overrides from `env`.
    pub fn defaults(env: &Environment) -> Result<Self, Error> {
        Self::from_tree(defaults_tree()?, Origin::Defaults, env)?.validated()
    }

    /// The section of `file`, or the built-in defaults when it has no `docker` section;
    /// host entries that do not validate are kept aside.
    pub fn from_file(file: &ConfigFile, env: &Environment) -> Result<Self, Error> {
        match hosts_section(file)? {
            Some(tree) => Self::from_tree(tree, file.origin().clone(), env),
            None => Self::from_tree(defaults_tree()?, Origin::Defaults, env),
        }
    }

    /// Itself when every host entry is valid; else every problem.
    fn validated(self) -> Result<Self, Error> {
        if self.broken.is_empty() {
            Ok(self)
        } else {
            Err(Error::Invalid(self.broken.into_values().flatten().collect()))
        }
    }

    /// The host entries that did not validate, by id, with their problems.
    pub fn broken(&self) -> impl Iterator<Item = (&str, &[ConfigError])> {
        self.broken.iter().map(|(id, problems)| (id.as_str(), problems.as_slice()))
    }

    fn from_tree(mut hosts: Dict, origin: Origin, env: &Environment) -> Result<Self, Error> {
        let mut problems = Vec::new();
        let overrides = apply_env(&mut hosts, env, &mut problems);
        let vars = expansion_vars(env);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let mut out = BTreeMap::new();
        let mut broken = BTreeMap::new();
        for (id, value) in &hosts {
            let by: Vec<String> =
                overrides.iter().filter(|(host, _)| host == id).map(|(_, var)| var.clone()).collect();
            let origin_text =
                if by.is_empty() { origin.to_string() } else { format!("{origin} (with {})", by.join(", ")) };
            match build_host(id, value, &vars, &origin_text) {
                Ok(mut host) => {
                    host.origin = origin.clone();
                    host.overridden_by = by;
                    out.insert(id.clone(), host);
                }
                Err(errs) => {
                    broken.insert(id.clone(), errs);
                }
            }
        }
        Ok(Self { hosts: out, broken, origin })
    }

    /// Where the section came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Every host, by id.
    pub fn hosts(&self) -> impl Iterator<Item = &HostEntry> {
        self.hosts.values()
    }

    /// A host by id.
    pub fn get(&self, id: &str) -> Option<&HostEntry> {
        self.hosts.get(id)
    }

    /// Checks a feature's `docker.hostid`: the host must exist and be enabled. `key` names
    /// the setting that refers to it, for the error.
    pub fn require(&self, id: &str, key: &str) -> Result<&HostEntry, ConfigError> {
        let known = self.hosts.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
        match self.hosts.get(id) {
            None => Err(ConfigError::new(
                self.origin.to_string(),
                key,
                format!("host {id:?} does not exist (hosts: {known})"),
            )),
            Some(host) if host.disabled => Err(ConfigError::new(
                self.origin.to_string(),
                key,
                format!("host {id:?} is disabled (set docker.hosts.{id}.disabled: false to use it)"),
            )),
            Some(host) => Ok(host),
        }
    }
}

/// The built-in `docker.hosts`.
fn defaults_tree() -> Result<Dict, Error> {
    let file = ConfigFile::parse(DEFAULT_CONFIG, false)?;
    hosts_section(&file)?.ok_or_else(|| Error::Parse {
        origin: "the built-in defaults".to_owned(),
        source: Box::new(figment::Error::from("no docker section".to_owned())),
    })
}

/// The `docker.hosts` dictionary with every field name lowercased (host ids are kept), or
/// `None` when there is no `docker` section.
fn hosts_section(file: &ConfigFile) -> Result<Option<Dict>, Error> {
    if file.map("docker", "a map with a hosts key")?.is_none() {
        return Ok(None);
    }
    let hosts = file.map("docker.hosts", "a map of host ids")?.unwrap_or_default();
    Ok(Some(hosts.into_iter().map(|(id, v)| (id, lowercase_keys(v))).collect()))
}
