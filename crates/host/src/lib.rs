//! `dockhand-host`: named Docker hosts from one configuration file (seed 000's
//! `docker.hosts` section), with environment overrides and `${VAR}` expansion, and a
//! registry that turns a host id into a [`dockhand_engine::Client`].
//!
//! # Example
//!
//! ```
//! use dockhand_host::{Environment, HostType, HostsConfig};
//!
//! let env = Environment::from_vars([("HOME", "/home/ops"), ("DOCKHAND_DOCKER_HOSTS_LOCAL_DISABLED", "false")]);
//! let config = HostsConfig::defaults(&env).unwrap();
//! let local = config.get("local").unwrap();
//! assert_eq!(local.kind, HostType::Managed);
//! assert!(!local.disabled);
//! assert_eq!(
//!     local.host.as_ref().unwrap().to_string(),
//!     "unix:///home/ops/.cache/dockhand-docker-host/dockhand-docker.sock"
//! );
//! ```
//!
//! A managed host (seed 000's rootless engine) is started by [`supervisor::Supervisor`]: on
//! demand by [`HostRegistry::connect`], or in the foreground by `dockhand host run`. Its
//! engine never outlives dockhand: it gets SIGTERM from the kernel when dockhand dies.

mod argv;
mod config;
mod expand;
mod preflight;
pub mod procfs;
mod registry;
mod resolve;
pub mod supervisor;

pub use crate::config::{
    ClientTls, ConfigFile, DEFAULT_CONFIG, ENV_PREFIX, HostEntry, HostType, HostsConfig, ManagedSettings,
    Origin, default_path, env_id,
};
pub use crate::expand::{ExpandError, expand};
pub use crate::preflight::{Check, MAX_SOCKET_PATH, System, preflight};
pub use crate::registry::{EngineChoice, HostRegistry, HostState, PROBE_TIMEOUT};
pub use crate::resolve::{ConnectOptions, EngineOrigin, Environment, ResolveError, Resolved, resolve};

/// `docs/engine.md`, whose Rust example is compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/engine.md")]
pub struct EngineGuide;

/// A setting as shown to people (`config show`, JSON listings): secret-looking values
/// (`password=`, `secret_key=`, `token=`, URL passwords, ...) masked by
/// [`dockhand_policy::Redactor`].
pub fn redact_setting(text: &str) -> String {
    dockhand_policy::Redactor::default().redact(text)
}

/// One problem in the configuration, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{origin}: {key}: {detail}")]
pub struct ConfigError {
    /// The file, `the built-in defaults` or `the environment`.
    pub origin: String,
    /// The key, such as `docker.hosts.remote1.host`, or the variable.
    pub key: String,
    /// What is wrong.
    pub detail: String,
}

impl ConfigError {
    /// A problem at `key` of `origin` (a file, `the built-in defaults`, `the environment`
    /// or a service's labels).
    pub fn new(origin: impl Into<String>, key: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { origin: origin.into(), key: key.into(), detail: detail.into() }
    }

    /// A problem with the variable `name` of the environment.
    pub fn environment(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Self::ENVIRONMENT, name, detail)
    }

    /// The origin of a setting read from a variable.
    pub const ENVIRONMENT: &'static str = "the environment";
}

/// Everything that can go wrong in this crate. Each message is whole on its own, and the
/// cause, where there is one, is also kept as `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file cannot be read.
    #[error("cannot read the configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is not valid YAML or TOML.
    #[error("{origin}: {}", source.kind)]
    Parse {
        /// Where: the file, or `the built-in defaults`.
        origin: String,
        /// The parser's error.
        source: Box<figment::Error>,
    },
    /// The configuration has problems; each names its file, host and key.
    #[error("invalid configuration:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<ConfigError>),
    /// No host has this id.
    #[error("host {id:?}: no such host (configured: {})", known.join(", "))]
    UnknownHost {
        /// The id asked for.
        id: String,
        /// The ids there are.
        known: Vec<String>,
    },
    /// The host is disabled.
    #[error("host {id:?}: disabled in {origin} (set docker.hosts.{id}.disabled: false, or {variable}=false)")]
    Disabled {
        /// The host id.
        id: String,
        /// Where it is defined.
        origin: String,
        /// The environment variable that enables it.
        variable: String,
    },
    /// Only a managed host can be run.
    #[error("host {id:?}: is {kind:?}, not managed: dockhand only runs managed hosts")]
    NotManaged {
        /// The host id.
        id: String,
        /// What it is.
        kind: HostType,
    },
    /// The flags, `DOCKER_*` variables or docker context do not name a usable engine.
    #[error(transparent)]
    Resolve(Box<ResolveError>),
    /// A client for the engine the docker CLI's rules chose cannot be built.
    #[error(transparent)]
    Client(Box<dockhand_engine::Error>),
    /// A managed host's preflight checks failed.
    #[error(
        "host {id:?} cannot start:\n  {}",
        failed.iter().map(|c| format!("{}: {}", c.name, c.detail)).collect::<Vec<_>>().join("\n  ")
    )]
    Preflight {
        /// The host id.
        id: String,
        /// The checks that failed, each naming its fix.
        failed: Vec<Check>,
    },
    /// A managed host's supervisor failed.
    #[error("host {id:?}: {source}")]
    Supervisor {
        /// The host id.
        id: String,
        /// What failed.
        source: SupervisorError,
    },
    /// The engine of a host failed.
    #[error("host {id:?}: {source}")]
    Engine {
        /// The host id.
        id: String,
        /// The engine's error.
        source: Box<dockhand_engine::Error>,
    },
}

/// Why a managed host's supervisor failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The host has no managed settings.
    #[error("is not a managed host")]
    NotManaged,
    /// A managed host is reached over its unix socket.
    #[error("a managed host needs a unix:// host")]
    NeedsUnixSocket,
    /// The socket's directory cannot be created.
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The supervisor's lock file cannot be opened.
    #[error("cannot open the supervisor lock {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another supervisor holds the lock.
    #[error("another dockhand already supervises this host (it holds {})", path.display())]
    AlreadySupervised {
        /// The lock file.
        path: std::path::PathBuf,
    },
    /// What an earlier run left may not be touched, or the policy says fail.
    #[error("{message}")]
    Refused {
        /// What was found and what to do, from [`supervisor::reconcile`].
        message: String,
    },
    /// The engine's program cannot be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The engine exited before it answered.
    #[error("the engine exited before it was ready; its last lines:\n{last_lines}")]
    ExitedAtStart {
        /// Its last output lines.
        last_lines: String,
    },
    /// The engine never answered.
    #[error(
        "the engine did not answer on {} after {checks} checks every {}; its last lines:\n{last_lines}",
        socket.display(),
        dockhand_policy::format_go_duration(*every)
    )]
    NotReady {
        /// Its socket.
        socket: std::path::PathBuf,
        /// How many checks.
        checks: u32,
        /// How far apart.
        every: std::time::Duration,
        /// Its last output lines.
        last_lines: String,
    },
    /// The engine crashed past the restart burst limit.
    #[error(
        "the engine crashed again after {restarts} restarts within {}; giving up. Its last lines:\n{last_lines}",
        dockhand_policy::format_go_duration(*window)
    )]
    GaveUp {
        /// Restarts made.
        restarts: usize,
        /// The window they fell in.
        window: std::time::Duration,
        /// Its last output lines.
        last_lines: String,
    },
    /// Something of the engine outlived the stop.
    #[error(
        "the engine (pid {pid}), its socket {} or rootlesskit's state-dir lock survived the stop",
        socket.display()
    )]
    SurvivedStop {
        /// The engine's pid.
        pid: u32,
        /// Its socket.
        socket: std::path::PathBuf,
    },
    /// A lock inside the supervisor was poisoned by a panic.
    #[error("the supervisor's state is poisoned by an earlier panic")]
    Poisoned,
}

impl From<ResolveError> for Error {
    fn from(e: ResolveError) -> Self {
        Self::Resolve(Box::new(e))
    }
}
