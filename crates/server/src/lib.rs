//! `dockhand-server`: the HTTP front-end over `dockhand-jobs` that CI pipelines call over the
//! swarm's overlay network. It authenticates every request before it looks at anything
//! else, validates names against Docker's rules, authorizes with the target's labels
//! (`dockhand-policy`), and runs the job in a task of its own, one per target.
//!
//! - [`Server::prepare`] reads the configuration and connects to the engine;
//! - [`Server::router`] is the HTTP application (also for tests, without a socket);
//! - [`Server::serve`] accepts connections with header and body timeouts and a connection
//!   bound, and shuts down gracefully: no new requests, running jobs cancelled at their
//!   next safe point, their helpers and locks removed.

mod auth;
mod dispatch;
mod error;
mod limits;
mod logging;
mod metrics;
mod openapi;
mod routes;
mod schema;
mod settings;
mod tls;
mod ui;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use dockhand_host::{ConfigError, ConfigFile, EngineChoice, Environment, HostRegistry};
use tokio::net::TcpListener;
use tracing::Instrument;

pub use crate::auth::{Caller, Gate, JWKS_REFRESH, THROTTLE_LIMIT, THROTTLE_WINDOW, Throttle};
pub use crate::dispatch::{CronLauncher, Dispatcher, JOB_LEASE, LEASE_RENEW, Outcome};
pub use crate::error::{ApiError, ErrorBody};
pub use crate::limits::{CONNECTIONS_PER_CLIENT, STREAM_MAX, STREAMS_PER_CLIENT};
pub use crate::logging::RedactingWriter;
pub use crate::metrics::Metrics;
pub use crate::openapi::{document as openapi_document, json as openapi_json, yaml as openapi_yaml};
pub use crate::routes::input::{valid_node_name, valid_service_name};
pub use crate::routes::{App, BODY_LIMIT, BODY_TIMEOUT};
pub use crate::settings::{
    DEFAULT_LISTEN, DEFAULT_MAX_JOBS, DEFAULT_MAX_QUEUE, DEFAULT_STATE_DIR, OidcIssuer, ServerConfig,
    Settings, SettingsError,
};
pub use crate::tls::{TlsError, TlsFiles};

/// How long a client may take to send a request's headers; also how long an idle
/// keep-alive connection is kept.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long in-flight answers get once the jobs ended at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server cannot start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The settings.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The configuration file or the engine.
    #[error(transparent)]
    Host(#[from] dockhand_host::Error),
    /// The registry credentials.
    #[error(transparent)]
    Registry(#[from] dockhand_jobs::update::RegistryError),
    /// The job store.
    #[error(transparent)]
    Store(#[from] dockhand_jobs::store::StoreError),
    /// An issuer's HTTPS client.
    #[error(transparent)]
    Oidc(#[from] crate::auth::JwksError),
    /// The certificate or key for HTTPS.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Watch mode's registry client.
    #[error("watch mode's registry client: {0}")]
    Watcher(#[from] dockhand_jobs::HttpClientError),
    /// The listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// `dockhand-server --healthcheck`: asks the server listening on `listen` (on loopback when
/// it listens on every address) for `/healthz`; the image has no curl for a healthcheck.
pub async fn healthcheck(listen: SocketAddr, tls: Option<&TlsFiles>) -> Result<(), Unhealthy> {
    healthz(listen, tls).await.map_err(Unhealthy)
}

/// What `--healthcheck` found wrong: the address, and what it answered or why not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(String);

async fn healthz(listen: SocketAddr, tls: Option<&TlsFiles>) -> Result<(), String> {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    async fn ask(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(answer)
    }
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    let client = match tls {
        Some(files) => Some(crate::tls::pinned_client(files).map_err(|e| e.to_string())?),
        None => None,
    };
    let answer = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        match client {
            None => ask(stream).await,
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = rustls::pki_types::ServerName::try_from("localhost")
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                ask(connector.connect(name, stream).await?).await
            }
        }
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .map_err(|_| format!("{addr}: no answer within 5s"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let status = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{addr}: /healthz answered {status:?}"))
    }
}

/// A prepared server.
#[derive(Debug)]
pub struct Server {
    app: Arc<App>,
    scheduler: Arc<dockhand_jobs::schedule::Scheduler>,
    settings: Settings,
    warnings: Vec<String>,
    notes: Vec<String>,
    /// What the log masks: every known secret.
    redactor: Arc<dockhand_policy::Redactor>,
    /// HTTPS, when configured.
    tls: Option<Arc<crate::tls::Reloading>>,
    /// The registry the engine was reached through: a managed engine it started lives and
    /// is supervised as long as the server ([`HostRegistry::supervise`]).
    hosts: Arc<HostRegistry>,
    /// The status page's sessions and the scheduler's plan, for its routes.
    ui: Arc<crate::ui::Ui>,
}

impl Server {
    /// Reads the configuration (`settings.config`, with `env`), opens the job store under
    /// the state directory, and connects to the engine (`settings.host_id`, else the
    /// docker CLI's choice: `DOCKER_HOST`, else `/var/run/docker.sock`).
    pub async fn prepare(settings: Settings, env: Environment) -> Result<Self, ServerError> {
        // The file is read once; every section is parsed at start, so a wrong key stops the
        // server before it serves.
        let file = ConfigFile::load(settings.config.as_deref(), &env)?;
        let paths = dockhand_jobs::config::StatePaths::under(&settings.state_dir);
        let configuration = dockhand_jobs::config::Configuration::new(file, env.clone(), paths);
        let config = ServerConfig::load(&configuration)?;
        let hosts = configuration.hosts()?;
        configuration.check().map_err(SettingsError::Key)?;
        let storage = configuration.storage().map_err(SettingsError::Key)?.clone();
        let registries = Arc::new(configuration.registries().map_err(SettingsError::Key)?.clone());
        let choice = match &settings.host_id {
            Some(id) => EngineChoice::Named(id.clone()),
            None => EngineChoice::Docker(dockhand_host::ConnectOptions::default()),
        };
        let store_settings = configuration.store().map_err(SettingsError::Key)?.clone();
        // Every secret the server holds, masked wherever text leaves it: job records, events
        // and answers, the log and webhook bodies (R3-14).
        let redactor = Arc::new(configuration.known_secrets(
            config.admin_tokens.iter().chain(&config.viewer_tokens).cloned().chain(store_settings.secret()),
        ));
        let hosts = Arc::new(HostRegistry::new(hosts, env));
        let client = hosts.connect_to(&choice).await?;
        let store = store_settings.open().await?;
        // Helpers run an image dockhand can vouch for, or none (R3-04): the server refuses
        // to start rather than let a node pull a public name with its engine socket.
        // Outside a service, the helpers on its own node can run an image made from the
        // `dockhand` installed beside it; nodes pull a configured image with its registry's
        // named credential (or `config.json`'s), when there is one.
        let host = dockhand_jobs::local_hostname();
        let mut choices = configuration.context_choices().map_err(SettingsError::Key)?;
        choices.helper_image = settings.helper_image.as_deref();
        choices.own = dockhand_jobs::OwnExecutable::beside_running();
        choices.redactor = Arc::clone(&redactor);
        // A request is answered 409 at once when another process holds the target.
        choices.locks = dockhand_jobs::LockSettings::default().with_acquire_timeout(Duration::ZERO);
        let mut base =
            dockhand_jobs::JobContext::assemble(client, dockhand_jobs::Trigger::Api, "api", choices).await?;
        if let Err(why) = base.helpers.check() {
            return Err(SettingsError::Key(ConfigError::new(
                "the helper image",
                "DOCKHAND_HELPER_IMAGE",
                why.to_string(),
            ))
            .into());
        }
        base.scope = config.scope.clone();
        // What a request waits for a busy target: `server.lock_wait`, else the seed's
        // `SWARM_UTILS_LOCK_TIMEOUT` (10 s). Cron's jobs do not wait (a busy target is
        // skipped until the next tick).
        if let Some(wait) = config.lock_wait {
            base.defaults.lock_timeout = wait;
        }
        let metrics = Arc::new(Metrics::default());
        let ui = Arc::new(
            crate::ui::Ui::new(&config.viewer_tokens, settings.tls.is_some())
                .with_channels(config.webhooks.iter().map(|hook| (hook.name.clone(), hook.kind()))),
        );
        let (counted, shown) = (Arc::clone(&metrics), Arc::clone(&ui));
        let notifier = dockhand_jobs::notify::Notifier::start(
            config.webhooks.clone(),
            Some(base.client.clone()),
            (*redactor).clone(),
            Duration::from_secs(2),
            Arc::new(move |delivery| {
                counted.notification(&delivery);
                shown.delivered(&delivery);
            }),
        )
        .map_err(|e| SettingsError::Key(ConfigError::new("notifications", "webhooks", e.to_string())))?;
        let dispatcher = Arc::new(Dispatcher::new(
            store,
            config.max_jobs,
            config.max_queue,
            Arc::clone(&metrics),
            notifier.clone(),
            dockhand_jobs::Locks::process_holder(&host),
        ));
        let gate = Gate {
            authorizer: {
                let authorizer =
                    dockhand_policy::Authorizer::new(config.admin_tokens.clone(), &config.prefixes)
                        .with_oidc_issuers(config.oidc.len());
                match &config.scope {
                    Some((key, value)) => authorizer.with_scope(key, value),
                    None => authorizer,
                }
            },
            oidc: crate::auth::Oidc::new(&config.oidc)?,
            throttle: Throttle::default(),
        };
        let mut warnings = config.warnings.clone();
        if config.admin_tokens.is_empty() {
            warnings.push(
                "no admin token is configured: only targets' own tokens and CI identities can act".to_owned(),
            );
        }
        let storage = Arc::new(storage);
        // One registry client for watch mode's ticks and the status route: what it learns
        // of each registry (its challenge, tokens, `ETag`s, back-off) serves both.
        let watcher = Arc::new(dockhand_jobs::update::Watcher::new()?);
        let scheduler = Arc::new(
            dockhand_jobs::schedule::Scheduler::new(
                config.schedule.clone(),
                base.clone(),
                Arc::clone(dispatcher.store()),
                Arc::clone(&storage),
                dockhand_jobs::Locks::process_holder(&host),
            )
            .with_scope(config.scope.clone())
            .with_concurrency(config.max_jobs)
            .with_recorded({
                let metrics = Arc::clone(&metrics);
                Arc::new(move |job| {
                    metrics.job_finished(job);
                    notifier.job_finished(job);
                })
            })
            .with_registries(Arc::clone(&registries))
            .with_watcher(Arc::clone(&watcher))
            .with_looked({
                let metrics = Arc::clone(&metrics);
                Arc::new(move |look| metrics.looked(look))
            })
            .with_planned({
                let (metrics, ui) = (Arc::clone(&metrics), Arc::clone(&ui));
                Arc::new(move |entries: &[dockhand_jobs::schedule::Scheduled], zone| {
                    let now = std::time::SystemTime::now().into();
                    metrics.scheduled(
                        entries
                            .iter()
                            .filter_map(|e| Some((e.action, e.target.describe(), e.interval(zone, now)?))),
                    );
                    ui.planned(entries.iter().filter_map(|e| {
                        let next = e.cron.next_after(now, zone)?;
                        Some((e.action, e.target.describe(), e.interval(zone, now)?, next.into()))
                    }));
                })
            }),
        );
        let tls = match &settings.tls {
            Some(files) => Some(crate::tls::Reloading::new(files.clone())?),
            None => {
                warnings.push(
                    "serving plain HTTP: tokens and CI identity tokens cross the network in clear, and any \
                     container that can claim this service's name on its network can collect them; serve HTTPS \
                     with --tls-cert and --tls-key (docs/operations.md)"
                        .to_owned(),
                );
                None
            }
        };
        let app = Arc::new(App {
            gate,
            dispatcher,
            base,
            storage,
            registries,
            watcher,
            metrics,
            streams: crate::limits::PerClient::new(crate::limits::STREAMS_PER_CLIENT),
            ready: tokio::sync::Mutex::new(None),
        });
        let notes = config.notes.clone();
        Ok(Self { app, scheduler, settings, warnings, notes, redactor, tls, hosts, ui })
    }

    /// What to warn about at start (unsafe but accepted settings).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What to say at start: choices made for the operator, with their reason.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The writer the log goes through: the admin tokens and secret-looking patterns are
    /// redacted from every line.
    pub fn log_writer(&self) -> RedactingWriter {
        RedactingWriter::new((*self.redactor).clone())
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The HTTP application.
    pub fn router(&self) -> Router {
        router(Arc::clone(&self.app), Arc::clone(&self.ui))
    }

    /// Listens on the settings' address and serves until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let addr = self.settings.listen;
        let listener =
            TcpListener::bind(addr).await.map_err(|source| ServerError::Listen { addr, source })?;
        self.serve(listener, shutdown).await;
        Ok(())
    }

    /// Serves on `listener` until `shutdown` resolves; then stops accepting, cancels the
    /// running jobs (each cleans up what it started and releases its lock), waits for
    /// them, and gives in-flight answers [`DRAIN_TIMEOUT`].
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let local = listener.local_addr().ok();
        tracing::info!(listen = ?local, "dockhand-server listening");
        let reconcile = tokio::spawn(reconcile(Arc::clone(&self.app)));
        let leases = tokio::spawn({
            let dispatcher = Arc::clone(&self.app.dispatcher);
            async move { dispatcher.renew_leases().await }
        });
        let reaper = tokio::spawn(reap(Arc::clone(&self.app)));
        let gauges = tokio::spawn(refresh_gauges(Arc::clone(&self.app)));
        // A managed engine started for the server: liveness checks and restarts for its
        // whole life, stopped in stages after the jobs.
        let engine_stop = tokio_util::sync::CancellationToken::new();
        let supervision = tokio::spawn({
            let (hosts, stop) = (Arc::clone(&self.hosts), engine_stop.clone());
            async move { hosts.supervise(stop.cancelled_owned()).await }
        });
        let cron_stop = tokio_util::sync::CancellationToken::new();
        let launcher = Arc::new(crate::dispatch::CronLauncher(Arc::clone(&self.app.dispatcher)));
        let cron = tokio::spawn(Arc::clone(&self.scheduler).run(launcher, cron_stop.clone()));
        let router = self.router();
        let acceptor = match self.tls.as_ref().map(crate::tls::Reloading::server_config).transpose() {
            Ok(config) => config.map(tokio_rustls::TlsAcceptor::from),
            Err(e) => {
                tracing::error!(error = %e, "cannot serve HTTPS");
                return;
            }
        };
        let reloader = self.tls.clone().map(|tls| tokio::spawn(reload_on_sighup(tls)));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let per_client = crate::limits::PerClient::new(crate::limits::CONNECTIONS_PER_CLIENT);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // One address holds at most its share: the rest of the connections stay for
            // everyone else (R3-12).
            let Some(share) = per_client.take(peer.ip()) else {
                tracing::warn!(%peer, "too many connections from this address: closed");
                continue;
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                tracing::warn!(%peer, "too many connections: closed");
                continue;
            };
            let permit = (permit, share);
            let router = router.clone();
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let router = router.clone();
                    async move {
                        use tower::ServiceExt;
                        let response = router.oneshot(request.map(axum::body::Body::new)).await;
                        Ok::<_, Infallible>(response.unwrap_or_else(|e| match e {}))
                    }
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024);
            match &acceptor {
                None => {
                    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _ = connection.await;
                        drop(permit);
                    });
                }
                Some(acceptor) => {
                    // The handshake has the header timeout too: a client that stalls in it
                    // holds a connection no longer than one that stalls in its headers.
                    let handshake = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream));
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        match handshake.await {
                            Ok(Ok(tls)) => {
                                let connection =
                                    builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                                let _ = watcher.watch(connection).await;
                            }
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                        drop(permit);
                    });
                }
            }
        }
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        drop(listener);
        tracing::info!("shutting down: cancelling running jobs");
        reconcile.abort();
        reaper.abort();
        gauges.abort();
        leases.abort();
        cron_stop.cancel();
        self.app.dispatcher.shutdown().await;
        let _ = cron.await;
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}: closed");
        }
        engine_stop.cancel();
        if let Ok(Err(e)) = supervision.await {
            tracing::error!(error = %e, "the managed engine did not stop cleanly");
        }
        tracing::info!("stopped");
    }
}

/// Reads the certificate and key again at each SIGHUP; a pair that does not load is logged
/// and the one in use kept.
async fn reload_on_sighup(tls: Arc<crate::tls::Reloading>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the certificate is read at start only");
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: the TLS certificate and key were read again"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the new TLS certificate or key cannot be used; the old pair stays")
            }
        }
    }
}

/// At start: a service a stopped dockhand left scaled down is brought back, and recorded.
async fn reconcile(app: Arc<App>) {
    let sink = dockhand_jobs::Collect::default();
    match dockhand_jobs::backup::reconcile(&app.base, &sink).await {
        Ok(jobs) => {
            for job in jobs {
                tracing::warn!(job = %job.id, target = %job.target.describe(), "brought back a service a stopped backup or restore left scaled down");
                if let Err(e) = app.dispatcher.store().record(&job).await {
                    tracing::error!(job = %job.id, error = %e, "cannot record the job");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot check for services a stopped backup left scaled down"),
    }
}

/// How often a process looks for jobs whose process died.
const REAP_EVERY: Duration = Duration::from_secs(15);

/// Every [`REAP_EVERY`]: jobs of a process that stopped renewing their leases (another
/// replica killed, or this one before it restarted) are marked interrupted, their helper
/// services removed, and the services they left scaled down are brought back once the
/// dead job's lock has expired (the reconcile, again until it did).
/// How many of the store's newest jobs the per-target gauges are set from.
const GAUGE_WINDOW: usize = 5000;
/// How often they are set again from the store (other replicas' jobs, targets gone).
const GAUGE_EVERY: Duration = Duration::from_secs(60);

/// Sets the per-target gauges from the job store at start, then every [`GAUGE_EVERY`].
async fn refresh_gauges(app: Arc<App>) {
    loop {
        let mut refresh = app.metrics.refreshing();
        let store = app.dispatcher.store();
        match dockhand_jobs::store::newest_by_page(store.as_ref(), GAUGE_WINDOW, |page| refresh.newer(page))
            .await
        {
            Ok(()) => refresh.finish(),
            Err(e) => tracing::warn!(error = %e, "cannot read the job store for the metrics"),
        }
        tokio::time::sleep(GAUGE_EVERY).await;
    }
}

async fn reap(app: Arc<App>) {
    let mut owed = false;
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let interrupted = app.dispatcher.interrupt_stale(&app.base).await;
        owed |= !interrupted.is_empty();
        if owed {
            let sink = dockhand_jobs::Collect::default();
            match dockhand_jobs::backup::reconcile(&app.base, &sink).await {
                Ok(jobs) => {
                    for job in &jobs {
                        if let Err(e) = app.dispatcher.store().record(job).await {
                            tracing::error!(job = %job.id, error = %e, "cannot record the job");
                        }
                    }
                    // Done once nothing is owed any more.
                    owed = app
                        .base
                        .client
                        .services(
                            &dockhand_engine::Filters::new()
                                .with("label", dockhand_jobs::backup::INTENT_LABEL),
                        )
                        .await
                        .map_or(true, |s| !s.is_empty());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot bring back services an interrupted job left scaled down")
                }
            }
        }
    }
}

/// The routes, the fallbacks and the request observer.
fn router(app: Arc<App>, ui: Arc<crate::ui::Ui>) -> Router {
    use crate::routes as r;
    Router::new()
        .route("/v1/nodes/{node}/clean", post(r::v1::clean_node))
        .route("/v1/nodes/{node}/backup", post(r::v1::backup_node))
        .route("/v1/nodes/{node}/restore", post(r::v1::restore_node))
        .route("/v1/services/{service}/clean", post(r::v1::clean_service))
        .route("/v1/services/{service}/backup", post(r::v1::backup_service))
        .route("/v1/services/{service}/update", post(r::v1::update_service))
        .route("/v1/images/update", post(r::images::update_image))
        .route("/v1/services/{service}/restore", post(r::v1::restore_service))
        .route("/v1/jobs", get(r::jobs::list_jobs))
        .route("/v1/jobs/{id}", get(r::jobs::get_job))
        .route("/v1/jobs/{id}/events", get(r::jobs::job_events))
        .route("/v1/services", get(r::listings::list_services))
        .route("/v1/nodes", get(r::listings::list_nodes))
        .route("/v1/services/{service}/status", get(crate::routes::status::service_status))
        .route("/v1/nodes/{node}/status", get(crate::routes::status::node_status))
        .route("/v1/volumes/unused", get(crate::routes::status::unused_volumes))
        .route("/v1/volumes/{volume}/move", post(r::v1::move_volume))
        .route("/api/update/service", post(r::seed::seed_update))
        .route("/api/clean/service", post(r::seed::seed_clean_service))
        .route("/api/backup/service", post(r::seed::seed_backup_service))
        .route("/api/clean/node", post(r::seed::seed_clean_node))
        .route("/healthz", get(r::ops::healthz))
        .route("/readyz", get(r::ops::readyz))
        .route("/metrics", get(r::ops::metrics))
        .route("/openapi.json", get(crate::openapi::openapi))
        .route("/", get(crate::ui::home))
        .route("/ui/login", post(crate::ui::login))
        .route("/ui/logout", post(crate::ui::logout))
        .route("/ui/app.css", get(crate::ui::style))
        .route("/ui/app.js", get(crate::ui::script))
        .route("/ui/jobs", get(crate::ui::history))
        .route("/ui/jobs/{id}", get(crate::ui::job_page))
        .route("/ui/jobs/{id}/events", get(crate::ui::job_events))
        .layer(axum::Extension(ui))
        .method_not_allowed_fallback(r::ops::method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&app), observe))
        .fallback(r::ops::fallback)
        .with_state(app)
}

/// Gives each request an ID (`x-request-id`, and on every log line it causes), logs it
/// (method, route pattern, status, duration; never a header, body or query) and counts it.
async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = format!("{:08x}{:08x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed) ^ 0x5a5a_0000);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    app.metrics.request(&route, status);
    span.in_scope(|| {
        tracing::info!(
            %method,
            %route,
            status,
            ms = started.elapsed().as_millis() as u64,
            client = ?client,
            "request"
        );
    });
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
