//! The host registry: ids to clients.

use std::collections::HashMap;
use std::sync::Arc;

use dockhand_engine::Client;

use crate::supervisor::{OsProcesses, Supervisor, SupervisorOptions};
use crate::{ConnectOptions, Environment, Error, HostConfig, HostType, HostsConfig, resolve};

type Supervisors = Arc<tokio::sync::Mutex<HashMap<String, Arc<Supervisor<OsProcesses>>>>>;

/// What a host is doing now, for listings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HostState {
    /// The host id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: HostType,
    /// Its URL, passwords masked (the resolved one for an external host without `host`).
    pub url: String,
    /// Disabled in the configuration.
    pub disabled: bool,
    /// Whether the engine answered a ping.
    pub reachable: bool,
    /// The API version in use, when reachable.
    pub api_version: Option<String>,
    /// Why it is not reachable.
    pub error: Option<String>,
}

/// Which engine a command, a job or a request talks to: the one decision every front-end
/// hands to [`HostRegistry::connect_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineChoice {
    /// A named host of the configuration (`--host-id`).
    Named(String),
    /// Flags, `DOCKER_*` variables and docker contexts, decided as the docker CLI does.
    Docker(ConnectOptions),
}

impl Default for EngineChoice {
    /// The docker CLI's choice with no flags: `DOCKER_HOST`, contexts, the default socket.
    fn default() -> Self {
        Self::Docker(ConnectOptions::default())
    }
}

/// Named hosts, and how to reach them. Clones share the managed engines they started.
#[derive(Debug, Clone)]
pub struct HostRegistry {
    config: HostsConfig,
    env: Environment,
    /// Managed engines this registry started, kept running while it lives: when the last
    /// clone is dropped, their parent-death signal stops them; `shutdown` stops them in
    /// stages.
    started: Supervisors,
}

impl HostRegistry {
    /// A registry over `config`; `env` is used for external hosts without `host`, which
    /// follow the docker CLI's rules (`DOCKER_HOST`, contexts, the default socket).
    pub fn new(config: HostsConfig, env: Environment) -> Self {
        Self { config, env, started: Arc::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &HostsConfig {
        &self.config
    }

    /// A host by id; unknown ids are an error listing the known ones.
    pub fn get(&self, id: &str) -> Result<&HostConfig, Error> {
        self.config.get(id).ok_or_else(|| Error::Host {
            id: id.to_owned(),
            detail: format!(
                "no such host (configured: {})",
                self.config.hosts().map(|h| h.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// A client for the engine `choice` names: the single entry point of "which engine".
    pub async fn connect_to(&self, choice: &EngineChoice) -> Result<Client, Error> {
        match choice {
            EngineChoice::Named(id) => self.connect(id).await,
            EngineChoice::Docker(opts) => {
                let resolved = resolve(opts, &self.env)?;
                tracing::info!(endpoint = %resolved.endpoint, origin = %resolved.origin, "engine chosen");
                resolved.client().map_err(|e| Error::Client(Box::new(e)))
            }
        }
    }

    /// A client for the host `id`. A disabled host is refused. A managed host whose engine
    /// does not answer is started first (adopting a healthy one an earlier run left), and
    /// kept running while this registry lives.
    pub async fn connect(&self, id: &str) -> Result<Client, Error> {
        let host = self.get(id)?;
        if host.disabled {
            return Err(disabled(host));
        }
        let client = self.client(host)?;
        if host.kind == HostType::Managed && client.ping().await.is_err() {
            let mut started = self.started.lock().await;
            if !started.contains_key(id) {
                let supervisor =
                    Supervisor::new(host, Arc::new(OsProcesses::new()), SupervisorOptions::default())?;
                supervisor.start().await?;
                started.insert(id.to_owned(), Arc::new(supervisor));
            }
        }
        Ok(client)
    }

    /// Stops, in stages, the managed engines this registry started.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let supervisors: Vec<_> = self.started.lock().await.drain().map(|(_, s)| s).collect();
        let mut first_error = None;
        for supervisor in supervisors {
            if let Err(e) = supervisor.stop().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn client(&self, host: &HostConfig) -> Result<Client, Error> {
        let engine = |source| Error::Engine { id: host.id.clone(), source: Box::new(source) };
        match &host.host {
            Some(endpoint) => {
                let mut builder = Client::builder(endpoint.clone());
                if let Some(tls) = &host.clienttls {
                    builder = builder.tls(tls.settings());
                }
                builder.build().map_err(engine)
            }
            None => resolve(&ConnectOptions::default(), &self.env)?.client().map_err(engine),
        }
    }

    /// Checks the host `id`: a managed host's preflight checks, then whether its engine
    /// answers (the `engine` check). Nothing is started. All checks are returned, passed or
    /// not.
    pub async fn check(&self, id: &str, system: &crate::System) -> Result<Vec<crate::Check>, Error> {
        let host = self.get(id)?;
        let mut checks = crate::preflight(host, system);
        // A check looks and starts nothing: a managed host that is not running fails here.
        let client = if host.disabled { Err(disabled(host)) } else { self.client(host) };
        let engine = match client {
            Ok(client) => match client.api_version().await {
                Ok(version) => crate::Check::pass_engine(format!(
                    "{} answers, API {version}",
                    dockhand_policy::redact_url(&client.endpoint().to_string())
                )),
                Err(e) if host.kind == HostType::Managed => crate::Check::fail_engine(format!(
                    "{e}; the managed engine is not running: start it with `dockhand host run {id}`"
                )),
                Err(e) => crate::Check::fail_engine(e.to_string()),
            },
            Err(e) => crate::Check::fail_engine(e.to_string()),
        };
        checks.push(engine);
        Ok(checks)
    }

    /// Every host with its state: disabled hosts are listed but not contacted.
    pub async fn list(&self) -> Vec<HostState> {
        let mut out = Vec::new();
        for host in self.config.hosts() {
            let mut state = HostState {
                id: host.id.clone(),
                kind: host.kind,
                url: String::new(),
                disabled: host.disabled,
                reachable: false,
                api_version: None,
                error: None,
            };
            match self.client(host) {
                Err(e) => state.error = Some(e.to_string()),
                Ok(client) => {
                    state.url = dockhand_policy::redact_url(&client.endpoint().to_string());
                    if !host.disabled {
                        match client.api_version().await {
                            Ok(v) => {
                                state.reachable = true;
                                state.api_version = Some(v.to_string());
                            }
                            Err(e) => state.error = Some(e.to_string()),
                        }
                    }
                }
            }
            out.push(state);
        }
        out
    }
}

/// The error for using a disabled host, saying how to enable it.
fn disabled(host: &HostConfig) -> Error {
    let id = &host.id;
    Error::Host {
        id: id.clone(),
        detail: format!(
            "disabled in {} (set docker.hosts.{id}.disabled: false, or {}{}_DISABLED=false)",
            host.origin,
            crate::ENV_PREFIX,
            crate::env_id(id)
        ),
    }
}
