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

mod config;
mod expand;
mod preflight;
mod registry;
mod resolve;
pub mod supervisor;

pub use crate::config::{
    ClientTls, DEFAULT_CONFIG, ENV_PREFIX, HostConfig, HostType, HostsConfig, ManagedSettings, Origin,
    default_path, env_id,
};
pub use crate::expand::expand;
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
    pub(crate) fn new(origin: impl Into<String>, key: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { origin: origin.into(), key: key.into(), detail: detail.into() }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file cannot be read.
    #[error("cannot read the configuration {}: {detail}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        detail: String,
    },
    /// The configuration is not valid YAML or TOML.
    #[error("{origin}: {detail}")]
    Parse {
        /// Where.
        origin: String,
        /// The parser's message.
        detail: String,
    },
    /// The configuration has problems; each names its file, host and key.
    #[error("invalid configuration:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<ConfigError>),
    /// A host cannot be used.
    #[error("host {id:?}: {detail}")]
    Host {
        /// The host id.
        id: String,
        /// Why.
        detail: String,
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
    /// The engine of a host failed.
    #[error("host {id:?}: {source}")]
    Engine {
        /// The host id.
        id: String,
        /// The engine's error.
        source: Box<dockhand_engine::Error>,
    },
}

impl From<ResolveError> for Error {
    fn from(e: ResolveError) -> Self {
        Self::Resolve(Box::new(e))
    }
}
