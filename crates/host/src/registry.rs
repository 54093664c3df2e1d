//! The host registry: ids to clients.

use dockhand_engine::{Client, ConnectOptions, Environment, resolve};

use crate::{Error, HostConfig, HostType, HostsConfig};

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

/// Named hosts, and how to reach them.
#[derive(Debug, Clone)]
pub struct HostRegistry {
    config: HostsConfig,
    env: Environment,
}

impl HostRegistry {
    /// A registry over `config`; `env` is used for external hosts without `host`, which
    /// follow the docker CLI's rules (`DOCKER_HOST`, contexts, the default socket).
    pub fn new(config: HostsConfig, env: Environment) -> Self {
        Self { config, env }
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

    /// A client for the host `id`. A disabled host is refused. A managed host is used
    /// while its engine answers; starting it needs the supervisor, which is not built yet.
    pub async fn connect(&self, id: &str) -> Result<Client, Error> {
        let host = self.get(id)?;
        if host.disabled {
            return Err(Error::Host {
                id: id.to_owned(),
                detail: format!(
                    "disabled in {} (set docker.hosts.{id}.disabled: false, or {}{}_DISABLED=false)",
                    host.origin,
                    crate::ENV_PREFIX,
                    crate::env_id(id)
                ),
            });
        }
        let client = self.client(host)?;
        if host.kind == HostType::Managed {
            client.ping().await.map_err(|e| Error::Host {
                id: id.to_owned(),
                detail: format!(
                    "the managed engine does not answer ({e}); dockhand cannot start managed hosts yet"
                ),
            })?;
        }
        Ok(client)
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
            None => resolve(&ConnectOptions::default(), &self.env).and_then(|r| r.client()).map_err(engine),
        }
    }

    /// Checks the host `id`: a managed host's preflight checks, then whether its engine
    /// answers (the `engine` check). All checks are returned, passed or not.
    pub async fn check(&self, id: &str, system: &crate::System) -> Result<Vec<crate::Check>, Error> {
        let host = self.get(id)?;
        let mut checks = crate::preflight(host, system);
        let engine = match self.connect(id).await {
            Ok(client) => match client.api_version().await {
                Ok(version) => crate::Check::pass_engine(format!(
                    "{} answers, API {version}",
                    crate::redact_url(&client.endpoint().to_string())
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
                    state.url = crate::redact_url(&client.endpoint().to_string());
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
