//! The job store: every job with its steps, behind a trait so that a shared store (for
//! several server replicas) can come later. The embedded default is a SQLite file.
//!
//! Nothing secret is stored: every text a job carries that could hold one (step output
//! tails and errors, the caller) passes through the redactor on its way in.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockhand_host::Environment;
use dockhand_policy::Redactor;
use rusqlite::{Connection, OptionalExtension, params};

use crate::job::{Action, Job, Status};

mod pg;

pub use pg::{PgStore, StoreSettings};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file cannot be opened or created.
    #[error("cannot open the job store {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Its directory cannot be created.
    #[error("cannot create {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A query failed.
    #[error("the job store {}: {source}", path.display())]
    Query {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The shared store (PostgreSQL) failed; `store` is its URL without a password.
    #[error("the job store {store}: {detail}")]
    Shared {
        /// The store.
        store: String,
        /// What failed, and PostgreSQL's words.
        detail: String,
    },
    /// A stored job cannot be read back.
    #[error("the job store {}: job {id} is unreadable: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The job.
        id: String,
        /// The decoder's error.
        source: serde_json::Error,
    },
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Jobs whose target reads this way (`node/node1`, `service/web`).
    pub target: Option<String>,
    /// Jobs that ended this way.
    pub status: Option<Status>,
    /// Jobs of this action (`update-service`, ...).
    pub action: Option<String>,
    /// Jobs older than this job ID (the next page after it).
    pub before: Option<String>,
    /// At most this many, newest first (default 100).
    pub limit: Option<usize>,
}

/// What a job's record says of how it went, without its steps' texts: for those that read
/// many jobs (the metrics' refresh, the status page's overview), so that each job read
/// costs a few small values, not its whole record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub struct JobSummary {
    /// The job's ID.
    pub id: String,
    /// The action.
    pub action: Action,
    /// The target.
    pub target: crate::job::Target,
    /// When it started.
    pub started_ms: u64,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// How it went.
    pub status: Status,
    /// Its steps, each only its kind and bytes.
    #[serde(default)]
    steps: Vec<StepBytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
struct StepBytes {
    kind: String,
    #[serde(default)]
    bytes: Option<u64>,
}

impl JobSummary {
    /// The summary of `job`.
    pub fn of(job: &Job) -> Self {
        Self {
            id: job.id.clone(),
            action: job.action,
            target: job.target.clone(),
            started_ms: job.started_ms,
            ended_ms: job.ended_ms,
            status: job.status,
            steps: job.steps.iter().map(|s| StepBytes { kind: s.kind.clone(), bytes: s.bytes }).collect(),
        }
    }

    /// The bytes its upload steps sent (a backup's archive size; 0 for other actions).
    pub fn uploaded(&self) -> u64 {
        if !matches!(self.action, Action::BackupService | Action::BackupNode) {
            return 0;
        }
        self.steps.iter().filter(|s| s.kind == "upload").filter_map(|s| s.bytes).sum()
    }
}

/// The `count` newest jobs of `store`, newest first, as summaries, read a page of 250 at a
/// time.
///
/// # Errors
/// When the store cannot be read.
pub async fn newest(store: &dyn JobStore, count: usize) -> Result<Vec<JobSummary>, StoreError> {
    let mut read = Vec::new();
    newest_by_page(store, count, |page| read.extend_from_slice(page)).await?;
    Ok(read)
}

/// The `count` newest jobs of `store`, newest first, as summaries, given to `each` a page of
/// 250 at a time: only one page is held at once.
///
/// # Errors
/// When the store cannot be read (the pages before were given).
pub async fn newest_by_page(
    store: &dyn JobStore,
    count: usize,
    mut each: impl FnMut(&[JobSummary]) + Send,
) -> Result<(), StoreError> {
    const PAGE: usize = 250;
    let mut filter = JobFilter { limit: Some(PAGE.min(count)), ..JobFilter::default() };
    let mut left = count;
    while left > 0 {
        let page = store.summaries(&filter).await?;
        let full = page.len() == PAGE;
        filter.before = page.last().map(|job| job.id.clone());
        let taken = &page[..page.len().min(left)];
        each(taken);
        left -= taken.len();
        if !full {
            break;
        }
    }
    Ok(())
}

/// Where jobs are kept.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// Records `job` (again, as it progresses): the last record wins.
    async fn record(&self, job: &Job) -> Result<(), StoreError>;
    /// The job `id`.
    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError>;
    /// Jobs, newest first.
    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;
    /// What [`JobStore::list`] lists, as summaries: the stores decode only what a summary
    /// holds.
    async fn summaries(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError> {
        Ok(self.list(filter).await?.iter().map(JobSummary::of).collect())
    }
    /// Removes jobs that started more than `age` ago (and the scheduler's claims as old);
    /// returns how many jobs.
    async fn purge(&self, age: Duration) -> Result<usize, StoreError>;
    /// Claims cron ticks, each (action, target (`service/<id>`, `node/<id>`), tick in ms),
    /// for `by`, in one transaction: for each, true for the one caller, across every
    /// process sharing the store, that got it first.
    async fn claim_ticks(&self, ticks: &[(Action, String, u64)], by: &str) -> Result<Vec<bool>, StoreError>;
    /// Renews the lease of the running jobs `ids`, held by `owner`.
    async fn heartbeat(&self, ids: &[String], owner: &str) -> Result<(), StoreError>;
    /// The running jobs whose lease (their last heartbeat, else their start) is older than
    /// `lease`, by **the store's clock** (R3-09): a candidate, not yet a verdict.
    async fn stale(&self, lease: Duration) -> Result<Vec<Job>, StoreError>;
    /// Marks the job `id` interrupted, with one step saying `why`, if it still runs and
    /// its lease is still older than `lease` (by the store's clock): the job as marked, or
    /// `None` (of processes racing for one, one marks it; a job renewed since is kept).
    async fn interrupt(&self, id: &str, lease: Duration, why: &str) -> Result<Option<Job>, StoreError>;
    /// The latest tick claimed for `action` on `target`.
    async fn last_tick(&self, action: Action, target: &str) -> Result<Option<u64>, StoreError>;
}

/// How long jobs are kept by default.
pub const KEEP_JOBS: Duration = Duration::from_secs(90 * 24 * 3600);

/// The CLI's default store: `$XDG_STATE_HOME/dockhand/jobs.sqlite` (default
/// `~/.local/state`).
pub fn default_store_path(env: &Environment) -> Option<PathBuf> {
    let base = match env.get("XDG_STATE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env.get("HOME")?).join(".local").join("state"),
    };
    Some(base.join("dockhand").join("jobs.sqlite"))
}

/// The migrations, in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: [&str; 3] = [
    "CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        job TEXT NOT NULL
    );
    CREATE INDEX jobs_started ON jobs (started_ms);
    CREATE INDEX jobs_target ON jobs (target)",
    "CREATE TABLE ticks (
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        scheduled_ms INTEGER NOT NULL,
        claimed_by TEXT NOT NULL,
        claimed_ms INTEGER NOT NULL,
        PRIMARY KEY (action, target, scheduled_ms)
    )",
    "ALTER TABLE jobs ADD COLUMN owner TEXT; ALTER TABLE jobs ADD COLUMN heartbeat_ms INTEGER",
];

/// The embedded store: one SQLite file in WAL mode, used from blocking threads.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating it and its directory, 0700, if missing) the store at `path`, and
    /// runs the migrations it lacks.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::Dir { dir: dir.to_owned(), source })?;
        }
        let open = |source| StoreError::Open { path: path.to_owned(), source };
        let conn = Connection::open(path).map_err(open)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(open)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open)?;
        // A page cache of 512 KiB rather than SQLite's 2 MiB: the server keeps this
        // connection for its life, and the file's pages stay in the kernel's cache anyway.
        conn.pragma_update(None, "cache_size", -512).map_err(open)?;
        // Under a write lock, re-reading the version inside it: two processes opening the
        // same file at once run each migration once.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(open)?;
        let migrated = (|| {
            let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            for (i, migration) in MIGRATIONS.iter().enumerate().skip(usize::try_from(done).unwrap_or(0)) {
                conn.execute_batch(&format!("{migration}; PRAGMA user_version = {};", i + 1))?;
            }
            Ok(())
        })();
        match migrated {
            Ok(()) => conn.execute_batch("COMMIT").map_err(open)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(open(e));
            }
        }
        Ok(Self { path: path.to_owned(), conn: Arc::new(Mutex::new(conn)) })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The records `filter` picks, newest first, each decoded as a `T`.
    async fn rows<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        filter: &JobFilter,
    ) -> Result<Vec<T>, StoreError> {
        let filter = filter.clone();
        self.with(move |conn, path| {
            let query = |source| StoreError::Query { path: path.to_owned(), source };
            let mut stmt = conn
                .prepare(
                    "SELECT id, job FROM jobs
                     WHERE (?1 IS NULL OR target = ?1) AND (?2 IS NULL OR status = ?2)
                       AND (?4 IS NULL OR action = ?4) AND (?5 IS NULL OR id < ?5)
                     ORDER BY id DESC LIMIT ?3",
                )
                .map_err(query)?;
            let limit = i64::try_from(filter.limit.unwrap_or(100)).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(
                    params![
                        filter.target,
                        filter.status.map(status_text),
                        limit,
                        filter.action,
                        filter.before
                    ],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .map_err(query)?;
            let mut jobs = Vec::new();
            for row in rows {
                let (id, text) = row.map_err(query)?;
                jobs.push(serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
                    path: path.to_owned(),
                    id,
                    source,
                })?);
            }
            Ok(jobs)
        })
        .await
    }

    /// Runs `f` on the connection in a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (conn, path) = (Arc::clone(&self.conn), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&conn, &path)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

/// `job` with every free text redacted: output tails, errors and the caller.
pub(crate) fn redacted(job: &Job) -> Job {
    let redactor = Redactor::default();
    let mut job = job.clone();
    job.caller = redactor.redact(&job.caller);
    for step in &mut job.steps {
        step.redact(&redactor);
    }
    job
}

/// `job` (read as running) marked interrupted now, with a step saying `why`.
/// This process's clock in milliseconds since the epoch, as the SQLite store keeps times.
fn store_now_ms() -> i64 {
    i64::try_from(crate::job::epoch_ms(std::time::SystemTime::now())).unwrap_or(i64::MAX)
}

pub(crate) fn interrupted(mut job: Job, why: &str) -> Job {
    let now = std::time::SystemTime::now();
    let mut step = crate::job::Step::start("interrupted", now);
    step.finish(Status::Interrupted, now, Some(why.to_owned()));
    job.steps.push(step);
    job.finish(now, Some(Status::Interrupted));
    job
}

pub(crate) fn status_text(status: Status) -> String {
    status.as_str().to_owned()
}

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    async fn record(&self, job: &Job) -> Result<(), StoreError> {
        let job = redacted(job);
        self.with(move |conn, path| {
            let text = serde_json::to_string(&job).map_err(|source| StoreError::Corrupt {
                path: path.to_owned(),
                id: job.id.clone(),
                source,
            })?;
            conn.execute(
                "INSERT INTO jobs (id, action, target, status, started_ms, ended_ms, job)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET status = ?4, ended_ms = ?6, job = ?7",
                params![
                    job.id,
                    job.action.as_str(),
                    job.target.describe(),
                    status_text(job.status),
                    i64::try_from(job.started_ms).unwrap_or(i64::MAX),
                    job.ended_ms.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
                    text
                ],
            )
            .map_err(|source| StoreError::Query { path: path.to_owned(), source })?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let id = id.to_owned();
        self.with(move |conn, path| {
            let text: Option<String> = conn
                .query_row("SELECT job FROM jobs WHERE id = ?1", params![id], |r| r.get(0))
                .optional()
                .map_err(|source| StoreError::Query { path: path.to_owned(), source })?;
            text.map(|t| {
                serde_json::from_str(&t).map_err(|source| StoreError::Corrupt {
                    path: path.to_owned(),
                    id,
                    source,
                })
            })
            .transpose()
        })
        .await
    }

    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        self.rows(filter).await
    }

    async fn summaries(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, StoreError> {
        self.rows(filter).await
    }

    async fn purge(&self, age: Duration) -> Result<usize, StoreError> {
        let cutoff = crate::job::epoch_ms(std::time::SystemTime::now())
            .saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        self.with(move |conn, path| {
            let query = |source| StoreError::Query { path: path.to_owned(), source };
            let cutoff = i64::try_from(cutoff).unwrap_or(i64::MAX);
            conn.execute("DELETE FROM ticks WHERE scheduled_ms < ?1", params![cutoff]).map_err(query)?;
            conn.execute("DELETE FROM jobs WHERE started_ms < ?1", params![cutoff]).map_err(query)
        })
        .await
    }

    async fn claim_ticks(&self, ticks: &[(Action, String, u64)], by: &str) -> Result<Vec<bool>, StoreError> {
        let (ticks, by) = (ticks.to_vec(), by.to_owned());
        let now = i64::try_from(crate::job::epoch_ms(std::time::SystemTime::now())).unwrap_or(i64::MAX);
        self.with(move |conn, path| {
            let query = |source| StoreError::Query { path: path.to_owned(), source };
            conn.execute_batch("BEGIN IMMEDIATE").map_err(query)?;
            let claimed = (|| {
                let mut stmt = conn.prepare(
                    "INSERT INTO ticks (action, target, scheduled_ms, claimed_by, claimed_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )?;
                ticks
                    .iter()
                    .map(|(action, target, ms)| {
                        let ms = i64::try_from(*ms).unwrap_or(i64::MAX);
                        stmt.execute(params![action.as_str(), target, ms, by, now]).map(|n| n == 1)
                    })
                    .collect::<Result<Vec<bool>, rusqlite::Error>>()
            })();
            match claimed {
                Ok(claimed) => {
                    conn.execute_batch("COMMIT").map_err(query)?;
                    Ok(claimed)
                }
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(query(e))
                }
            }
        })
        .await
    }

    async fn heartbeat(&self, ids: &[String], owner: &str) -> Result<(), StoreError> {
        let (ids, owner) = (ids.to_vec(), owner.to_owned());
        let now = i64::try_from(crate::job::epoch_ms(std::time::SystemTime::now())).unwrap_or(i64::MAX);
        self.with(move |conn, path| {
            let query = |source| StoreError::Query { path: path.to_owned(), source };
            let mut stmt =
                conn.prepare("UPDATE jobs SET owner = ?1, heartbeat_ms = ?2 WHERE id = ?3").map_err(query)?;
            for id in &ids {
                stmt.execute(params![owner, now, id]).map_err(query)?;
            }
            Ok(())
        })
        .await
    }

    async fn stale(&self, lease: Duration) -> Result<Vec<Job>, StoreError> {
        // The file is this process's own: its clock is the store's.
        let before = store_now_ms().saturating_sub(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        self.with(move |conn, path| {
            let query = |source| StoreError::Query { path: path.to_owned(), source };
            let stale: Vec<(String, String)> = conn
                .prepare(
                    "SELECT id, job FROM jobs WHERE status = 'running' AND coalesce(heartbeat_ms, started_ms) < ?1",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![before], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
                })
                .map_err(query)?;
            stale
                .into_iter()
                .map(|(id, text)| {
                    serde_json::from_str(&text).map_err(|source| StoreError::Corrupt { path: path.to_owned(), id, source })
                })
                .collect()
        })
        .await
    }

    async fn interrupt(&self, id: &str, lease: Duration, why: &str) -> Result<Option<Job>, StoreError> {
        let (id, why) = (id.to_owned(), why.to_owned());
        let before = store_now_ms().saturating_sub(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        self.with(move |conn, path| {
            let query = |source| StoreError::Query { path: path.to_owned(), source };
            let text: Option<String> = conn
                .query_row("SELECT job FROM jobs WHERE id = ?1", params![id], |r| r.get(0))
                .optional()
                .map_err(query)?;
            let Some(text) = text else { return Ok(None) };
            let job: Job = serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
                path: path.to_owned(),
                id: id.clone(),
                source,
            })?;
            let job = interrupted(job, &why);
            let text = serde_json::to_string(&job).map_err(|source| StoreError::Corrupt {
                path: path.to_owned(),
                id: id.clone(),
                source,
            })?;
            let changed = conn
                .execute(
                    "UPDATE jobs SET status = 'interrupted', ended_ms = ?2, job = ?3 \
                     WHERE id = ?1 AND status = 'running' AND coalesce(heartbeat_ms, started_ms) < ?4",
                    params![id, job.ended_ms.map(|m| i64::try_from(m).unwrap_or(i64::MAX)), text, before],
                )
                .map_err(query)?;
            Ok((changed == 1).then_some(job))
        })
        .await
    }

    async fn last_tick(&self, action: Action, target: &str) -> Result<Option<u64>, StoreError> {
        let target = target.to_owned();
        self.with(move |conn, path| {
            let last: Option<i64> = conn
                .query_row(
                    "SELECT max(scheduled_ms) FROM ticks WHERE action = ?1 AND target = ?2",
                    params![action.as_str(), target],
                    |r| r.get(0),
                )
                .map_err(|source| StoreError::Query { path: path.to_owned(), source })?;
            Ok(last.and_then(|ms| u64::try_from(ms).ok()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Step, Target, Trigger};

    fn job(i: usize) -> Job {
        let now = std::time::SystemTime::now();
        let action = if i % 2 == 0 { Action::BackupService } else { Action::CleanService };
        let target = Target::Service { id: format!("id{i}"), name: format!("svc-{}", i % 7) };
        let mut job = Job::start(action, target, Trigger::Cron, "cron", now);
        let mut upload = Step::start("upload", now);
        upload.bytes = Some(1000 + i as u64);
        upload.output_tail = Some(format!("a long tail of job {i}"));
        upload.finish(Status::Succeeded, now, None);
        job.steps.push(upload);
        job.finish(now, None);
        job
    }

    #[tokio::test]
    async fn summaries_are_the_listed_jobs_in_short_and_the_newest_are_read_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("jobs.sqlite")).unwrap();
        for i in 0..600 {
            store.record(&job(i)).await.unwrap();
        }
        let filter = JobFilter { limit: Some(40), ..JobFilter::default() };
        let listed: Vec<JobSummary> = store.list(&filter).await.unwrap().iter().map(JobSummary::of).collect();
        let summaries = store.summaries(&filter).await.unwrap();
        assert_eq!(summaries, listed);
        let backup = summaries.iter().find(|s| s.action == Action::BackupService).unwrap();
        let clean = summaries.iter().find(|s| s.action == Action::CleanService).unwrap();
        assert!(backup.uploaded() >= 1000, "{backup:?}");
        assert_eq!(clean.uploaded(), 0, "only backups upload");

        let read = newest(&store, 520).await.unwrap();
        assert_eq!(read.len(), 520);
        assert!(read.windows(2).all(|w| w[0].id > w[1].id), "newest first, no repeat");
        assert_eq!(read[0].id, store.list(&JobFilter::default()).await.unwrap()[0].id);
        assert_eq!(newest(&store, 5_000).await.unwrap().len(), 600, "all there are");
    }
}
