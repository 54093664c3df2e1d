//! The shared job store: PostgreSQL, for several `dockhand-server` replicas. The same
//! records as the embedded SQLite store (the job as JSON, redacted on the way in), and the
//! same tick claims, so a cron tick runs once across replicas.
//!
//! Migrations run at connect, under a PostgreSQL advisory lock: replicas that start at
//! once run each migration once. A store holds up to four connections, used in turn, each
//! made when first needed and made again on the next call after it broke.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dockhand_host::{ConfigError, ConfigFile, Environment};
use tokio::sync::Mutex;

use super::{JobFilter, JobStore, JobSummary, StoreError, interrupted, redacted, status_text};
use crate::job::{Action, Job};

/// The migrations, in order; `dockhand_migrations` records which ran.
const MIGRATIONS: [&str; 2] = [
    "CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        started_ms BIGINT NOT NULL,
        ended_ms BIGINT,
        job TEXT NOT NULL
    );
    CREATE INDEX jobs_started ON jobs (started_ms);
    CREATE INDEX jobs_target ON jobs (target);
    CREATE INDEX jobs_action ON jobs (action, id);
    CREATE TABLE ticks (
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        scheduled_ms BIGINT NOT NULL,
        claimed_by TEXT NOT NULL,
        claimed_ms BIGINT NOT NULL,
        PRIMARY KEY (action, target, scheduled_ms)
    )",
    "ALTER TABLE jobs ADD COLUMN owner TEXT, ADD COLUMN heartbeat_ms BIGINT",
];

/// The advisory lock migrations run under (any constant all replicas agree on).
const MIGRATION_LOCK: i64 = 0x646f_636b_6861_6e64; // "dockhand"

/// Where jobs are kept, as the configuration says.
#[derive(Clone)]
#[non_exhaustive]
pub enum StoreSettings {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// A shared PostgreSQL database.
    Postgres {
        /// The URL as shown: no password.
        shown: String,
        /// The connection settings, password included.
        config: Box<tokio_postgres::Config>,
        /// TLS (`sslmode=require`), verifying the server against
        /// `store.ca_file` or the system's roots.
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    },
}

impl StoreSettings {
    /// The PostgreSQL password, for the redactor alone.
    pub fn secret(&self) -> Option<String> {
        match self {
            Self::Postgres { config, .. } => {
                config.get_password().map(|p| String::from_utf8_lossy(p).into_owned())
            }
            Self::Sqlite(_) => None,
        }
    }
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres { shown, .. } => {
                f.debug_struct("Postgres").field("url", shown).finish_non_exhaustive()
            }
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    ca_file: Option<PathBuf>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
}

impl StoreSettings {
    /// `store.url` (or `DOCKHAND_STORE_URL`, which wins): a `postgres://` URL without a
    /// password, which comes from `store.password_file` or `store.password_env`. Without
    /// a URL, the SQLite file `sqlite`.
    pub fn load(file: &ConfigFile, env: &Environment, sqlite: PathBuf) -> Result<Self, ConfigError> {
        let origin = file.origin().to_string();
        let error = |key: &str, detail: String| ConfigError::new(origin.clone(), key, detail);
        let raw = match file.get("store") {
            None => RawStore::default(),
            Some(value) => value.deserialize::<RawStore>().map_err(|e| error("store", e.kind.to_string()))?,
        };
        let (url, key) = match env.get("DOCKHAND_STORE_URL") {
            Some(url) => (Some(url.to_owned()), "DOCKHAND_STORE_URL"),
            None => (raw.url.clone(), "store.url"),
        };
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else { return Ok(Self::Sqlite(sqlite)) };
        let url_error = |detail: String| {
            ConfigError::new(
                if key == "store.url" { origin.clone() } else { ConfigError::ENVIRONMENT.to_owned() },
                key,
                detail,
            )
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(url_error(
                "a postgres:// URL, such as postgres://dockhand@db:5432/dockhand".to_owned(),
            ));
        }
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| url_error(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_password().is_some() {
            return Err(url_error(
                "holds a password: give it in store.password_file (a swarm secret) or store.password_env"
                    .to_owned(),
            ));
        }
        // Without sslmode, no TLS (not libpq's "prefer"); with require, the server's
        // certificate is always verified, against store.ca_file or the roots. `prefer` is
        // refused: a machine in the middle answers "no TLS" and asks for the password in
        // clear (R3-13).
        let tls = match (url.contains("sslmode="), config.get_ssl_mode()) {
            (true, tokio_postgres::config::SslMode::Prefer) => {
                return Err(url_error(
                    "sslmode=prefer falls back to a plain connection when anything between asks it to, \
                     and the password would go in clear: use sslmode=require"
                        .to_owned(),
                ));
            }
            (true, tokio_postgres::config::SslMode::Require) => {
                let tls =
                    crate::http::tls_config(raw.ca_file.as_deref()).map_err(|d| error("store.ca_file", d))?;
                Some(std::sync::Arc::new(tls))
            }
            (true, tokio_postgres::config::SslMode::Disable) | (false, _) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                if raw.ca_file.is_some() {
                    return Err(error(
                        "store.ca_file",
                        "set, but the URL asks for no TLS: add sslmode=require".to_owned(),
                    ));
                }
                None
            }
            (true, _) => return Err(url_error("sslmode: disable or require".to_owned())),
        };
        let password = match (&raw.password_file, &raw.password_env) {
            (Some(_), Some(_)) => {
                return Err(error(
                    "store.password_file",
                    "give password_file or password_env, not both".to_owned(),
                ));
            }
            (Some(path), None) => Some(read_password(path).map_err(|d| error("store.password_file", d))?),
            (None, Some(var)) => Some(
                env.get(var)
                    .map(str::to_owned)
                    .ok_or_else(|| error("store.password_env", format!("the variable {var} is not set")))?,
            ),
            (None, None) => None,
        };
        if let Some(password) = password {
            config.password(password);
        }
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("dockhand");
        Ok(Self::Postgres { shown: shown_url(&config), config: Box::new(config), tls })
    }

    /// Opens the store (for PostgreSQL: connects and migrates).
    pub async fn open(&self) -> Result<std::sync::Arc<dyn JobStore>, StoreError> {
        Ok(match self {
            Self::Sqlite(path) => std::sync::Arc::new(super::SqliteStore::open(path)?),
            Self::Postgres { shown, config, tls } => {
                std::sync::Arc::new(PgStore::connect((**config).clone(), tls.clone(), shown).await?)
            }
        })
    }
}

fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(password.to_owned())
}

/// `postgres://user@host:port/db`, never the password.
fn shown_url(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// The shared store.
pub struct PgStore {
    config: tokio_postgres::Config,
    tls: Option<RustlsConnect>,
    shown: String,
    /// The connections, each made when first needed and made again if it broke.
    slots: Vec<Mutex<Option<Arc<tokio_postgres::Client>>>>,
    next: AtomicUsize,
}

/// How many connections one store spreads its statements over, in turn. Each also
/// pipelines the statements sent to it at once, so a burst of listings is not one queue.
const PG_CONNECTIONS: usize = 4;

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.shown).finish_non_exhaustive()
    }
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects to `config` (shown as `shown`) and runs the migrations it lacks.
    pub async fn connect(
        config: tokio_postgres::Config,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
        shown: &str,
    ) -> Result<Self, StoreError> {
        let tls = tls.map(RustlsConnect);
        let slots = (0..PG_CONNECTIONS).map(|_| Mutex::new(None)).collect();
        let store = Self { config, tls, shown: shown.to_owned(), slots, next: AtomicUsize::new(0) };
        // The advisory lock is the session's: the migrations run on the connection holding it.
        let client = store.slot(0).await?;
        let fail = |e: tokio_postgres::Error| store.error("migrating", &e);
        client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(fail)?;
        let migrated = async {
            client
                .batch_execute("CREATE TABLE IF NOT EXISTS dockhand_migrations (version INTEGER PRIMARY KEY)")
                .await?;
            let done: i64 = client.query_one("SELECT count(*) FROM dockhand_migrations", &[]).await?.get(0);
            for (i, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(done).unwrap_or(0)) {
                let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
                client
                    .batch_execute(&format!(
                        "BEGIN; {migration}; INSERT INTO dockhand_migrations (version) VALUES ({version}); COMMIT"
                    ))
                    .await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }
        .await;
        let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
        drop(client);
        migrated.map_err(|e| store.error("migrating", &e))?;
        unlocked.map_err(|e| store.error("migrating", &e))?;
        Ok(store)
    }

    /// The URL as shown (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A store error naming what failed, with PostgreSQL's words and their causes (a TLS
    /// handshake's, for one).
    fn error(&self, what: &str, e: &tokio_postgres::Error) -> StoreError {
        let mut detail = format!("{what}: {e}");
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            detail.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        StoreError::Shared { store: self.shown.clone(), detail }
    }

    /// The records `filter` picks, newest first, each decoded as a `T`.
    async fn rows<T: serde::de::DeserializeOwned>(&self, filter: &JobFilter) -> Result<Vec<T>, StoreError> {
        let limit = i64::try_from(filter.limit.unwrap_or(100)).unwrap_or(i64::MAX);
        let status = filter.status.map(status_text);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, job FROM jobs
                 WHERE ($1::TEXT IS NULL OR target = $1) AND ($2::TEXT IS NULL OR status = $2)
                   AND ($3::TEXT IS NULL OR action = $3) AND ($4::TEXT IS NULL OR id < $4)
                 ORDER BY id DESC LIMIT $5",
                &[&filter.target, &status, &filter.action, &filter.before, &limit],
            )
            .await
            .map_err(|e| self.error("listing jobs", &e))?;
        rows.iter()
            .map(|r| {
                let (id, text): (String, String) = (r.get(0), r.get(1));
                serde_json::from_str(&text).map_err(|e| StoreError::Shared {
                    store: self.shown.clone(),
                    detail: format!("job {id}: {e}"),
                })
            })
            .collect()
    }

    /// The next connection in turn.
    async fn client(&self) -> Result<Arc<tokio_postgres::Client>, StoreError> {
        self.slot(self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()).await
    }

    /// Connection `i`, made again if it broke. The lock is held only while connecting.
    async fn slot(&self, i: usize) -> Result<Arc<tokio_postgres::Client>, StoreError> {
        let mut guard = self.slots[i].lock().await;
        if let Some(client) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(client));
        }
        let client = match &self.tls {
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| self.error("connecting", &e))?;
                tokio::spawn(drive(connection));
                client
            }
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.map_err(|e| self.error("connecting", &e))?;
                tokio::spawn(drive(connection));
                client
            }
        };
        let client = Arc::new(client);
        *guard = Some(Arc::clone(&client));
        Ok(client)
    }
}

/// Runs a connection until it ends.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "the job store's connection ended");
    }
}

/// TLS to PostgreSQL with rustls: the server's certificate is verified for the host name
/// (or address) of the URL. No channel binding: SCRAM without `-PLUS`.
#[derive(Clone)]
struct RustlsConnect(std::sync::Arc<rustls::ClientConfig>);

/// One TLS handshake to make.
struct RustlsHandshake {
    config: std::sync::Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

/// A TLS session to PostgreSQL.
struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for RustlsConnect
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsHandshake;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsHandshake, Self::Error> {
        let name = rustls::pki_types::ServerName::try_from(domain.to_owned())?;
        Ok(RustlsHandshake { config: std::sync::Arc::clone(&self.0), name })
    }
}

impl<S> tokio_postgres::tls::TlsConnect<S> for RustlsHandshake
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = std::io::Error;
    type Future = futures_util::future::BoxFuture<'static, std::io::Result<RustlsStream<S>>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            connector.connect(self.name, stream).await.map(RustlsStream)
        })
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio_postgres::tls::TlsStream
    for RustlsStream<S>
{
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        tokio_postgres::tls::ChannelBinding::none()
    }
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    async fn record(&self, job: &Job) -> Result<(), StoreError> {
        let job = redacted(job);
        let text = serde_json::to_string(&job).map_err(|e| StoreError::Shared {
            store: self.shown.clone(),
            detail: format!("job {}: {e}", job.id),
        })?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO jobs (id, action, target, status, started_ms, ended_ms, job)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET status = $4, ended_ms = $6, job = $7",
                &[
                    &job.id,
                    &job.action.as_str(),
                    &job.target.describe(),
                    &status_text(job.status),
                    &ms(job.started_ms),
                    &job.ended_ms.map(ms),
                    &text,
                ],
            )
            .await
            .map_err(|e| self.error("recording a job", &e))?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT job FROM jobs WHERE id = $1", &[&id])
            .await
            .map_err(|e| self.error("reading a job", &e))?;
        row.map(|r| {
            let text: String = r.get(0);
            serde_json::from_str(&text).map_err(|e| StoreError::Shared {
                store: self.shown.clone(),
                detail: format!("job {id}: {e}"),
            })
        })
        .transpose()
    }

    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        self.rows(filter).await
    }

    async fn summaries(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError> {
        self.rows(filter).await
    }

    async fn purge(&self, age: Duration) -> Result<usize, StoreError> {
        let cutoff = ms(crate::job::epoch_ms(std::time::SystemTime::now())
            .saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)));
        let client = self.client().await?;
        client
            .execute("DELETE FROM ticks WHERE scheduled_ms < $1", &[&cutoff])
            .await
            .map_err(|e| self.error("purging", &e))?;
        let n = client
            .execute("DELETE FROM jobs WHERE started_ms < $1", &[&cutoff])
            .await
            .map_err(|e| self.error("purging", &e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn claim_ticks(&self, ticks: &[(Action, String, u64)], by: &str) -> Result<Vec<bool>, StoreError> {
        if ticks.is_empty() {
            return Ok(Vec::new());
        }
        let now = ms(crate::job::epoch_ms(std::time::SystemTime::now()));
        let actions: Vec<&str> = ticks.iter().map(|(a, _, _)| a.as_str()).collect();
        let targets: Vec<&str> = ticks.iter().map(|(_, t, _)| t.as_str()).collect();
        let times: Vec<i64> = ticks.iter().map(|(_, _, m)| ms(*m)).collect();
        let client = self.client().await?;
        // One statement: the rows it inserted are the ticks this caller won.
        let rows = client
            .query(
                "INSERT INTO ticks (action, target, scheduled_ms, claimed_by, claimed_ms)
                 SELECT a, t, s, $4, $5 FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS u(a, t, s)
                 ON CONFLICT DO NOTHING
                 RETURNING action, target, scheduled_ms",
                &[&actions, &targets, &times, &by, &now],
            )
            .await
            .map_err(|e| self.error("claiming ticks", &e))?;
        let won: std::collections::HashSet<(String, String, i64)> =
            rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
        Ok(ticks.iter().map(|(a, t, m)| won.contains(&(a.as_str().to_owned(), t.clone(), ms(*m)))).collect())
    }

    async fn heartbeat(&self, ids: &[String], owner: &str) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        // The store's clock, not this replica's: leases are compared on one clock (R3-09).
        client
            .execute(
                "UPDATE jobs SET owner = $1, heartbeat_ms = (extract(epoch from clock_timestamp()) * 1000)::BIGINT \
                 WHERE id = ANY($2::TEXT[])",
                &[&owner, &ids],
            )
            .await
            .map_err(|e| self.error("renewing job leases", &e))?;
        Ok(())
    }

    async fn stale(&self, lease: Duration) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, job FROM jobs WHERE status = 'running' \
                 AND coalesce(heartbeat_ms, started_ms) < (extract(epoch from clock_timestamp()) * 1000)::BIGINT - $1",
                &[&lease],
            )
            .await
            .map_err(|e| self.error("finding stale jobs", &e))?;
        rows.iter()
            .map(|row| {
                let (id, text): (String, String) = (row.get(0), row.get(1));
                serde_json::from_str(&text).map_err(|e| StoreError::Shared {
                    store: self.shown.clone(),
                    detail: format!("job {id}: {e}"),
                })
            })
            .collect()
    }

    async fn interrupt(&self, id: &str, lease: Duration, why: &str) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        let Some(row) = client
            .query_opt("SELECT job FROM jobs WHERE id = $1", &[&id])
            .await
            .map_err(|e| self.error("reading a stale job", &e))?
        else {
            return Ok(None);
        };
        let corrupt = |e: serde_json::Error| StoreError::Shared {
            store: self.shown.clone(),
            detail: format!("job {id}: {e}"),
        };
        let job: Job = serde_json::from_str(&row.get::<_, String>(0)).map_err(corrupt)?;
        let job = interrupted(job, why);
        let text = serde_json::to_string(&job).map_err(corrupt)?;
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        // Conditional: of replicas racing for one job, one marks it; one renewed since is kept.
        let changed = client
            .execute(
                "UPDATE jobs SET status = 'interrupted', ended_ms = $2, job = $3 WHERE id = $1 AND status = 'running' \
                 AND coalesce(heartbeat_ms, started_ms) < (extract(epoch from clock_timestamp()) * 1000)::BIGINT - $4",
                &[&id, &job.ended_ms.map(ms), &text, &lease],
            )
            .await
            .map_err(|e| self.error("marking a job interrupted", &e))?;
        Ok((changed == 1).then_some(job))
    }

    async fn last_tick(&self, action: Action, target: &str) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT max(scheduled_ms) FROM ticks WHERE action = $1 AND target = $2",
                &[&action.as_str(), &target],
            )
            .await
            .map_err(|e| self.error("reading the last tick", &e))?;
        let last: Option<i64> = row.get(0);
        Ok(last.and_then(|m| u64::try_from(m).ok()))
    }
}
