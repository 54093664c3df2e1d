//! The command context: the process environment, the configuration, the host registry, and
//! the engine a command talks to. Every command module takes what it needs from here; this
//! module prints nothing.

use dockhand_engine::Client;
use dockhand_host::{ConnectOptions, EngineChoice, Environment, HostRegistry, HostsConfig};

use crate::args::Global;

/// The process environment. Variables that are not UTF-8 cannot name an engine or a
/// setting; skipping them beats a panic.
pub(crate) fn environment() -> Environment {
    Environment::from_vars(
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
}

/// The configuration from `--config` (which must exist and parse) or the default file,
/// with env overrides. A host entry that does not validate is kept aside: using it is an
/// error, but it does not stop the others.
pub(crate) fn load(global: &Global) -> anyhow::Result<HostsConfig> {
    Ok(HostsConfig::load_partial(global.config.as_deref(), &environment())?)
}

/// The host registry over that configuration, with the global `--timeout`.
pub(crate) fn registry(global: &Global) -> anyhow::Result<HostRegistry> {
    let registry = HostRegistry::new(load(global)?, environment());
    Ok(match global.timeout {
        Some(timeout) => registry.with_timeout(timeout),
        None => registry,
    })
}

/// The job store: `$XDG_STATE_HOME/dockhand/jobs.sqlite` (default `~/.local/state`).
pub(crate) fn store() -> anyhow::Result<dockhand_jobs::SqliteStore> {
    let path = dockhand_jobs::default_store_path(&environment()).ok_or_else(|| {
        anyhow::anyhow!("neither XDG_STATE_HOME nor HOME is set: no place for the job store")
    })?;
    Ok(dockhand_jobs::SqliteStore::open(&path)?)
}

/// Which engine the flags name: `--host-id`, else the docker CLI's flags, variables and
/// contexts.
pub(crate) fn choice(global: &Global) -> EngineChoice {
    if let Some(id) = &global.host_id {
        return EngineChoice::Named(id.clone());
    }
    let mut opts = ConnectOptions::default();
    opts.host = global.host.clone();
    opts.context = global.context.clone();
    opts.tls = global.tls;
    opts.tls_verify = global.tlsverify;
    opts.tls_ca_cert = global.tlscacert.clone();
    opts.tls_cert = global.tlscert.clone();
    opts.tls_key = global.tlskey.clone();
    EngineChoice::Docker(opts)
}

/// The client for the engine the flags name.
pub(crate) async fn connect(global: &Global) -> anyhow::Result<Client> {
    Ok(registry(global)?.connect_to(&choice(global)).await?)
}
