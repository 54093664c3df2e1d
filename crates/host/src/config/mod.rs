//! The configuration: one file loaded once ([`ConfigFile`], `file.rs`), and the sections
//! built from it. Today that is seed 000's `docker.hosts` (`hosts.rs`: the model and how it
//! is built; `env.rs`: its `DOCKHAND_DOCKER_HOSTS_*` overrides and `${VAR}` variables;
//! `validate.rs`: one entry's checks). A new section is a module beside these that takes
//! its map from [`ConfigFile::map`] and validates it, plus its page in the docs.

mod entry;
mod env;
mod file;
mod hosts;
mod validate;

pub use entry::{ClientTls, HostEntry, HostType, ManagedSettings};
pub use env::{ENV_PREFIX, env_id};
pub use file::{ConfigFile, Origin, default_path};
pub use hosts::{DEFAULT_CONFIG, HostsConfig};
