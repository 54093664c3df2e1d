//! The host registry: ids to clients.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use dockhand_engine::{Client, ClientBuilder};

use crate::supervisor::{OsProcesses, ProcessEffects, Supervisor, SupervisorOptions};
use crate::{ConnectOptions, Environment, Error, HostEntry, HostType, HostsConfig, resolve};

type Supervisors = Arc<tokio::sync::Mutex<HashMap<String, Arc<Supervisor>>>>;

/// What a host is doing now, for listings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct HostState {
    /// The host id.
    pub id: String,
    /// Its type; `None` for an entry that does not validate.
    #[serde(rename = "type")]
    pub kind: Option<HostType>,
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
#[derive(Clone)]
pub struct HostRegistry {
    config: HostsConfig,
    env: Environment,
    /// Managed engines this registry started, kept running while it lives: when the last
    /// clone is dropped, their parent-death signal stops them; `shutdown` stops them in
    /// stages.
    started: Supervisors,
    /// The connect and response timeout of every client it builds; `None` for the engine
    /// crate's defaults.
    timeout: Option<Duration>,
    /// The operating system, as the supervisors of managed hosts see it.
    effects: Arc<dyn ProcessEffects>,
}

/// How long `list` waits for each host when no timeout is set.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl std::fmt::Debug for HostRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRegistry")
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HostRegistry {
    /// A registry over `config`; `env` is used for external hosts without `host`, which
    /// follow the docker CLI's rules (`DOCKER_HOST`, contexts, the default socket).
    pub fn new(config: HostsConfig, env: Environment) -> Self {
        Self { config, env, started: Arc::default(), timeout: None, effects: Arc::new(OsProcesses::new()) }
    }

    /// Managed hosts are supervised through `effects` instead of the real system.
    pub fn with_effects(mut self, effects: Arc<dyn ProcessEffects>) -> Self {
        self.effects = effects;
        self
    }

    /// Every client this registry builds waits at most `timeout` to connect and for each
    /// answer (the global `--timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn with_timeouts(&self, builder: ClientBuilder) -> ClientBuilder {
        match self.timeout {
            Some(t) => builder.connect_timeout(Some(t)).response_timeout(Some(t)),
            None => builder,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HostsConfig {
        &self.config
    }

    /// A host by id; unknown ids are an error listing the known ones, and an entry that
    /// does not validate is an error listing its problems.
    pub fn get(&self, id: &str) -> Result<&HostEntry, Error> {
        if let Some((_, problems)) = self.config.broken().find(|(broken, _)| *broken == id) {
            return Err(Error::Invalid(problems.to_vec()));
        }
        self.config.get(id).ok_or_else(|| Error::UnknownHost {
            id: id.to_owned(),
            known: self.ids().into_iter().map(str::to_owned).collect(),
        })
    }

    /// A client for the engine `choice` names: the single entry point of "which engine".
    pub async fn connect_to(&self, choice: &EngineChoice) -> Result<Client, Error> {
        match choice {
            EngineChoice::Named(id) => self.connect(id).await,
            EngineChoice::Docker(opts) => {
                let resolved = resolve(opts, &self.env)?;
                tracing::info!(endpoint = %resolved.endpoint, origin = %resolved.origin, "engine chosen");
                self.with_timeouts(resolved.builder()).build().map_err(|e| Error::Client(Box::new(e)))
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
                    Supervisor::new(host, Arc::clone(&self.effects), SupervisorOptions::default())?;
                supervisor.start().await?;
                started.insert(id.to_owned(), Arc::new(supervisor));
            }
        }
        Ok(client)
    }

    /// The managed host `id`, ready to be started in the foreground (`dockhand host run`):
    /// refused when it is disabled (with the same message as [`HostRegistry::connect`]) or
    /// not managed, or when a preflight check fails (each failure naming its fix).
    pub fn prepare_run(&self, id: &str, system: &crate::System) -> Result<&HostEntry, Error> {
        let host = self.get(id)?;
        if host.disabled {
            return Err(disabled(host));
        }
        if host.kind != HostType::Managed {
            return Err(Error::NotManaged { id: id.to_owned(), kind: host.kind });
        }
        let failed: Vec<crate::Check> =
            crate::preflight(host, system).into_iter().filter(|c| !c.ok).collect();
        if failed.is_empty() { Ok(host) } else { Err(Error::Preflight { id: id.to_owned(), failed }) }
    }

    /// Keeps every managed engine this registry started alive until `shutdown` completes,
    /// with the liveness checks and restarts of `dockhand host run` ([`Supervisor::supervise`]),
    /// then stops each in stages. With none started (the engine already answered), it only
    /// waits for `shutdown`. The first error of a supervision that gave up is returned.
    pub async fn supervise(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), Error> {
        let supervisors: Vec<Arc<Supervisor>> = self.started.lock().await.values().cloned().collect();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut running = tokio::task::JoinSet::new();
        for supervisor in supervisors {
            let mut stopped = stopped.clone();
            running.spawn(async move {
                let until = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                let result = supervisor.supervise(until).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "the supervision of a managed engine stopped");
                }
                result
            });
        }
        shutdown.await;
        let _ = stop.send(true);
        let mut first_error = None;
        while let Some(done) = running.join_next().await {
            if let Ok(Err(e)) = done {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
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

    fn client(&self, host: &HostEntry) -> Result<Client, Error> {
        let engine = |source| Error::Engine { id: host.id.clone(), source: Box::new(source) };
        match &host.host {
            Some(endpoint) => {
                let mut builder = Client::builder(endpoint.clone());
                if let Some(tls) = &host.clienttls {
                    builder = builder.tls(tls.settings());
                }
                self.with_timeouts(builder).build().map_err(engine)
            }
            None => {
                let resolved = resolve(&ConnectOptions::default(), &self.env)?;
                self.with_timeouts(resolved.builder()).build().map_err(engine)
            }
        }
    }

    /// Checks the host `id`: a managed host's preflight checks, then whether its engine
    /// answers (the `engine` check). Nothing is started. All checks are returned, passed or
    /// not.
    pub async fn check(&self, id: &str, system: &crate::System) -> Result<Vec<crate::Check>, Error> {
        let host = match self.get(id) {
            Ok(host) => host,
            // An entry that does not validate fails its check; the others are still checked.
            Err(e @ Error::Invalid(_)) => return Ok(vec![crate::Check::fail_config(e.to_string())]),
            Err(e) => return Err(e),
        };
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

    /// Every configured host id, valid or not, in order.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .config
            .hosts()
            .map(|h| h.id.as_str())
            .chain(self.config.broken().map(|(id, _)| id))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every host with its state: disabled hosts are listed but not contacted. The others
    /// are probed at once, each for at most the registry's timeout (its clients' own
    /// deadline, naming the request), or [`PROBE_TIMEOUT`] when none is set, so one engine
    /// that never answers holds up nothing else.
    pub async fn list(&self) -> Vec<HostState> {
        // With a registry timeout, the clients' own deadlines answer first (naming the
        // request); this one is only the net under them. Without, it is the probe deadline.
        let deadline = self.timeout.map_or(PROBE_TIMEOUT, |t| t.saturating_add(Duration::from_secs(1)));
        let mut probes = tokio::task::JoinSet::new();
        let mut out = Vec::new();
        for (index, host) in self.config.hosts().enumerate() {
            let mut state = HostState {
                id: host.id.clone(),
                kind: Some(host.kind),
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
                        probes.spawn(async move {
                            let answer = tokio::time::timeout(deadline, client.api_version()).await;
                            (index, answer)
                        });
                    }
                }
            }
            out.push(state);
        }
        for (id, problems) in self.config.broken() {
            out.push(HostState {
                id: id.to_owned(),
                kind: None,
                url: String::new(),
                disabled: false,
                reachable: false,
                api_version: None,
                error: Some(Error::Invalid(problems.to_vec()).to_string()),
            });
        }
        while let Some(done) = probes.join_next().await {
            let Ok((index, answer)) = done else { continue };
            let state = &mut out[index];
            match answer {
                Ok(Ok(v)) => {
                    state.reachable = true;
                    state.api_version = Some(v.to_string());
                }
                Ok(Err(e)) => state.error = Some(e.to_string()),
                Err(_) => {
                    state.error =
                        Some(format!("no answer within {}", dockhand_policy::format_go_duration(deadline)));
                }
            }
        }
        out
    }
}

/// The error for using a disabled host, saying how to enable it.
fn disabled(host: &HostEntry) -> Error {
    Error::Disabled {
        id: host.id.clone(),
        origin: host.origin.to_string(),
        variable: format!("{}{}_DISABLED", crate::ENV_PREFIX, crate::env_id(&host.id)),
    }
}
