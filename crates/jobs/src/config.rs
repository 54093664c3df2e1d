//! The configuration, read once: one [`ConfigFile`] and the environment, turned into typed
//! sections on first use, each once. Both front-ends hold one [`Configuration`]; every
//! section's problem is one [`ConfigError`] (its file or `the environment`, its key, what
//! is wrong), and the hosts' are a list of them ([`dockhand_host::Error::Invalid`]).
//!
//! A section is parsed when it is first asked for, so that a command that needs storage is
//! not stopped by a webhook whose variable is set only where the server runs;
//! [`Configuration::check`] parses every section, which the server does at start.

use std::path::PathBuf;
use std::sync::OnceLock;

use dockhand_host::{ConfigError, ConfigFile, Environment, HostsConfig};
use dockhand_policy::Defaults;

use crate::compat::CompatChoice;
use crate::notify::Webhook;
use crate::registry::Registries;
use crate::runner::ContextChoices;
use crate::schedule::Schedule;
use crate::storage::targets::StorageTargets;
use crate::store::StoreSettings;

/// Where a front-end keeps what the configuration does not place itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatePaths {
    /// Where the built-in `local` storage target writes.
    pub backups: PathBuf,
    /// The SQLite file of the job store when `store.url` is not set.
    pub jobs_db: PathBuf,
}

impl StatePaths {
    /// The local target under `backups`, the job store in `jobs_db`.
    pub fn new(backups: PathBuf, jobs_db: PathBuf) -> Self {
        Self { backups, jobs_db }
    }

    /// `backups/` and `jobs.sqlite` under `dir`, as the server keeps them.
    pub fn under(dir: &std::path::Path) -> Self {
        Self { backups: dir.join("backups"), jobs_db: dir.join("jobs.sqlite") }
    }
}

/// A section as first parsed: kept, with its error, so that it is parsed once.
type Section<T> = OnceLock<Result<T, ConfigError>>;

/// The configuration file and the environment, with their typed sections.
pub struct Configuration {
    file: ConfigFile,
    env: Environment,
    paths: StatePaths,
    storage: Section<StorageTargets>,
    registries: Section<Registries>,
    schedule: Section<Schedule>,
    store: Section<StoreSettings>,
    webhooks: Section<(Vec<Webhook>, Vec<String>)>,
    labels: Section<CompatChoice>,
    defaults: Section<Defaults>,
}

impl std::fmt::Debug for Configuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configuration")
            .field("origin", &self.file.origin())
            .field("paths", &self.paths)
            .finish()
    }
}

/// The section in `slot`, parsed by `load` the first time.
fn section<T>(slot: &Section<T>, load: impl FnOnce() -> Result<T, ConfigError>) -> Result<&T, ConfigError> {
    slot.get_or_init(load).as_ref().map_err(Clone::clone)
}

impl Configuration {
    /// The configuration of `file` with the variables of `env`; the built-in places are
    /// `paths`. Nothing is parsed yet.
    pub fn new(file: ConfigFile, env: Environment, paths: StatePaths) -> Self {
        Self {
            file,
            env,
            paths,
            storage: OnceLock::new(),
            registries: OnceLock::new(),
            schedule: OnceLock::new(),
            store: OnceLock::new(),
            webhooks: OnceLock::new(),
            labels: OnceLock::new(),
            defaults: OnceLock::new(),
        }
    }

    /// The file, for a front-end's own sections (the server's `server`).
    pub fn file(&self) -> &ConfigFile {
        &self.file
    }

    /// The environment the sections read their variables from.
    pub fn env(&self) -> &Environment {
        &self.env
    }

    /// `docker.hosts`, with the `DOCKHAND_HOST_*` variables. An entry that does not
    /// validate is kept aside in it; the section's own problems are listed together.
    pub fn hosts(&self) -> Result<HostsConfig, dockhand_host::Error> {
        HostsConfig::from_file(&self.file, &self.env)
    }

    /// `storage.targets`, the built-in `local` target and the seed's `SWARM_UTILS_S3_*`.
    pub fn storage(&self) -> Result<&StorageTargets, ConfigError> {
        section(&self.storage, || StorageTargets::load(&self.file, &self.env, self.paths.backups.clone()))
    }

    /// `registries`, the seed's `SWARM_UTILS_REGISTRY_*` and the docker CLI's `config.json`.
    pub fn registries(&self) -> Result<&Registries, ConfigError> {
        section(&self.registries, || Registries::load(&self.file, &self.env))
    }

    /// `schedule`, over the seed's `SWARM_UTILS_CRON_EXPR` and `SWARM_UTILS_IS_CRON_*`.
    pub fn schedule(&self) -> Result<&Schedule, ConfigError> {
        section(&self.schedule, || Schedule::load(&self.file, &self.env))
    }

    /// `store` (or `DOCKHAND_STORE_URL`): PostgreSQL, else the SQLite file of the paths.
    pub fn store(&self) -> Result<&StoreSettings, ConfigError> {
        section(&self.store, || StoreSettings::load(&self.file, &self.env, self.paths.jobs_db.clone()))
    }

    /// `notifications.webhooks`, and the warnings their settings deserve (a URL written in
    /// the file).
    pub fn webhooks(&self) -> Result<(&[Webhook], &[String]), ConfigError> {
        section(&self.webhooks, || crate::notify::load_webhooks(&self.file, &self.env))
            .map(|(hooks, warnings)| (hooks.as_slice(), warnings.as_slice()))
    }

    /// `labels.compat` (or `DOCKHAND_LABELS_COMPAT`): the label prefixes read, and why.
    pub fn labels(&self) -> Result<&CompatChoice, ConfigError> {
        section(&self.labels, || crate::compat::compat_choice(&self.file, &self.env))
    }

    /// The seed's defaults with its `SWARM_UTILS_*` variables, and the shortest cron
    /// interval a label may ask for (`schedule.min_interval`).
    pub fn defaults(&self) -> Result<&Defaults, ConfigError> {
        section(&self.defaults, || {
            let mut defaults =
                Defaults::from_vars(|name| self.env.get(name).map(str::to_owned)).map_err(|e| {
                    ConfigError::environment(e.name.clone(), format!("{:?}: {}", e.value, e.problem))
                })?;
            defaults.label_min_interval = self.schedule()?.min_interval;
            Ok(defaults)
        })
    }

    /// What the configuration decides of a job context, for [`crate::JobContext::assemble`]:
    /// the defaults and the label prefixes (their problems are errors), the registries a
    /// configured helper image is pulled with, and a redactor of every secret of the
    /// storage targets, registries and webhooks. A section that does not parse adds no
    /// secret here; it is the error of the job that uses it.
    pub fn context_choices(&self) -> Result<ContextChoices<'_>, ConfigError> {
        let mut choices = ContextChoices::new(self.defaults()?.clone());
        choices.prefixes = self.labels()?.prefixes.clone();
        choices.registries = self.registries().ok();
        choices.redactor = std::sync::Arc::new(self.known_secrets(std::iter::empty()));
        Ok(choices)
    }

    /// The secrets a front-end holds and no job's text may show (R3-14): registry
    /// passwords, S3 keys and webhook URLs of the sections that parse, and `more` (admin
    /// tokens, the store's password). Values shorter than 4 characters are left out:
    /// masking them would garble ordinary text.
    pub fn known_secrets(&self, more: impl IntoIterator<Item = String>) -> dockhand_policy::Redactor {
        let registries = self.registries().map(Registries::secrets).unwrap_or_default();
        let storage = self.storage().map(StorageTargets::secrets).unwrap_or_default();
        let webhooks = self.webhooks().map(|(hooks, _)| hooks).unwrap_or(&[]);
        let all = registries
            .into_iter()
            .chain(storage)
            .chain(webhooks.iter().flat_map(Webhook::secrets))
            .chain(more)
            .filter(|s| s.chars().count() >= 4);
        dockhand_policy::Redactor::new(all)
    }

    /// Every section parsed: the first problem, or the warnings the sections have.
    pub fn check(&self) -> Result<Vec<String>, ConfigError> {
        self.hosts().map_err(|e| match e {
            dockhand_host::Error::Invalid(mut problems) if !problems.is_empty() => problems.swap_remove(0),
            other => ConfigError::new(self.file.origin().to_string(), "docker.hosts", other.to_string()),
        })?;
        self.storage()?;
        self.registries()?;
        self.schedule()?;
        self.store()?;
        self.labels()?;
        self.defaults()?;
        Ok(self.webhooks()?.1.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(yaml: &str, vars: &[(&str, &str)]) -> Configuration {
        let file = ConfigFile::parse(yaml, false).unwrap();
        let env = Environment::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Configuration::new(file, env, StatePaths::under(std::path::Path::new("/state")))
    }

    #[test]
    fn every_section_comes_from_the_one_file_and_the_environment() {
        let config = configuration(
            "schedule:\n  min_interval: 5m\nlabels:\n  compat: swarm-utils\n",
            &[("SWARM_UTILS_LOCK_TIMEOUT", "2000")],
        );
        assert_eq!(config.storage().unwrap().get("local").unwrap().name, "local");
        assert_eq!(config.defaults().unwrap().label_min_interval, std::time::Duration::from_secs(300));
        assert_eq!(config.defaults().unwrap().lock_timeout, std::time::Duration::from_secs(2));
        assert!(config.labels().unwrap().why.contains("labels.compat"));
        assert!(
            matches!(config.store().unwrap(), StoreSettings::Sqlite(path) if path.ends_with("jobs.sqlite"))
        );
        assert!(config.check().unwrap().is_empty());
    }

    #[test]
    fn a_problem_names_its_file_or_variable_and_key_and_stays_in_its_section() {
        let config = configuration(
            "schedule:\n  min_interval: soon\n",
            &[("SWARM_UTILS_IS_CRON_CLEAN_NODE", "maybe"), ("DOCKHAND_LABELS_COMPAT", "both")],
        );
        let schedule = config.schedule().unwrap_err();
        assert_eq!(
            (schedule.origin.as_str(), schedule.key.as_str()),
            ("the environment", "SWARM_UTILS_IS_CRON_CLEAN_NODE")
        );
        let labels = config.labels().unwrap_err();
        assert_eq!(
            labels.to_string(),
            "the environment: DOCKHAND_LABELS_COMPAT: \"both\": must be swarm-utils or none"
        );
        // A broken section does not stop another.
        assert!(config.storage().is_ok());
        // The same error each time: the section is parsed once.
        assert_eq!(config.schedule().unwrap_err(), schedule);
        assert!(config.check().is_err());
        assert_eq!(config.defaults().unwrap_err().key, "SWARM_UTILS_IS_CRON_CLEAN_NODE");
    }

    #[test]
    fn a_file_problem_names_the_file_and_its_key() {
        let config = configuration("schedule:\n  min_interval: soon\n", &[]);
        let err = config.schedule().unwrap_err();
        assert_eq!(err.key, "schedule.min_interval");
        assert!(
            err.to_string().starts_with(&format!("{}: schedule.min_interval: \"soon\": ", err.origin)),
            "{err}"
        );
    }
}
