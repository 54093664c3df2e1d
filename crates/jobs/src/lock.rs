//! Swarm-wide locks: one operation per target at a time.
//!
//! A lock is a swarm config named after its target (`dockhand-lock-service-<id>`). The
//! swarm's raft store makes its creation exclusive across the whole swarm, so exactly one
//! creator wins. Its labels carry the holder, the job and a lease; the holder renews the
//! lease with the config's version as compare-and-swap, so of two writers only one
//! succeeds. A holder that died stops renewing: once its lease has expired, the lock is
//! taken over, again by compare-and-swap. A live holder is never displaced.
//!
//! Why configs: they live in the swarm itself (no extra service, no shared disk), survive
//! dockhand restarts, are visible to every manager and every dockhand process or server
//! replica, and `docker config ls --filter label=dockhand.lock` shows them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dockhand_engine::{Client, ConfigSpec, Filters, SwarmConfig};

/// The label every lock object carries, its value the target.
pub const LOCK_LABEL: &str = "dockhand.lock";
const HOLDER: &str = "dockhand.lock.holder";
const JOB: &str = "dockhand.lock.job";
const EXPIRES: &str = "dockhand.lock.expires";
const ACQUIRED: &str = "dockhand.lock.acquired";

/// What a lock protects: a service or a node, by ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockTarget {
    /// A swarm service.
    Service(String),
    /// A swarm node.
    Node(String),
}

impl LockTarget {
    /// `service/<id>` or `node/<id>`.
    pub fn label(&self) -> String {
        match self {
            Self::Service(id) => format!("service/{id}"),
            Self::Node(id) => format!("node/{id}"),
        }
    }

    /// The lock object's name: deterministic, so every process contends for the same one.
    fn object_name(&self) -> String {
        match self {
            Self::Service(id) => format!("dockhand-lock-service-{id}"),
            Self::Node(id) => format!("dockhand-lock-node-{id}"),
        }
    }
}

/// How locks are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockSettings {
    /// How long a holder's claim lasts without renewal (renewed every third of it).
    pub lease: Duration,
    /// How long to wait for a held lock before reporting busy (the seed's lock timeout).
    pub acquire_timeout: Duration,
    /// How often a waiter looks again.
    pub poll: Duration,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(10),
            poll: Duration::from_millis(250),
        }
    }
}

impl LockSettings {
    /// With this lease.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// With this acquire timeout.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

/// A lock as `dockhand locks ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct LockInfo {
    /// `service/<id>` or `node/<id>`.
    pub target: String,
    /// The lock object (a swarm config).
    pub object: String,
    /// Who holds it: `<host>/<pid>/<nonce>`.
    pub holder: String,
    /// The job it runs for.
    pub job: String,
    /// When the lease ends, in milliseconds since the epoch.
    pub expires_ms: u64,
    /// True when the lease has ended, or the holder is a process of this machine that is
    /// gone: the holder died, and the next acquire takes over.
    pub expired: bool,
}

/// Why a lock was not taken, or was lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another job holds the target's lock, and kept it for the whole acquire timeout.
    #[error("{target} is busy: job {job} holds its lock (holder {holder}) and kept it for {waited:?}")]
    Busy {
        /// The target.
        target: String,
        /// The job that holds the lock.
        job: String,
        /// Its holder.
        holder: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The engine failed.
    #[error("the lock of {target}: {source}")]
    Engine {
        /// The target.
        target: String,
        /// The engine's error.
        source: Box<dockhand_engine::Error>,
    },
}

/// Takes and lists locks on one swarm, as one holder.
#[derive(Debug, Clone)]
pub struct Locks {
    client: Client,
    holder: String,
    settings: LockSettings,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// This machine's hostname (`/proc/sys/kernel/hostname`): the first part of a process's
/// holder name, so that a holder on this machine can be seen to be gone.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// True when `holder` (`<host>/<pid>/<nonce>`) names a process of this machine that no
/// longer runs: its lock is free at once, without waiting for its lease. A holder on
/// another machine is judged by its lease alone.
fn holder_gone(holder: &str) -> bool {
    let mut parts = holder.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else { return false };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    host == local_hostname()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn info(config: &SwarmConfig) -> LockInfo {
    let label = |k: &str| config.spec.labels.get(k).cloned().unwrap_or_default();
    let expires_ms = label(EXPIRES).parse().unwrap_or(0);
    LockInfo {
        target: label(LOCK_LABEL),
        object: config.spec.name.clone(),
        holder: label(HOLDER),
        job: label(JOB),
        expires_ms,
        expired: expires_ms <= now_ms() || holder_gone(&label(HOLDER)),
    }
}

impl Locks {
    /// Locks on the swarm `client` manages, held as `holder` (unique per process: host,
    /// pid and a nonce; see [`Locks::process_holder`]).
    pub fn new(client: Client, holder: impl Into<String>, settings: LockSettings) -> Self {
        Self { client, holder: holder.into(), settings }
    }

    /// A holder name unique to this process: `<hostname>/<pid>/<nonce>`, where `hostname`
    /// should be this machine's ([`local_hostname`]) for a dead holder to be recognised
    /// before its lease ends.
    pub fn process_holder(hostname: &str) -> String {
        let nonce = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        format!("{hostname}/{}/{nonce:08x}", std::process::id())
    }

    fn spec(&self, target: &LockTarget, job: &str) -> ConfigSpec {
        let now = now_ms();
        ConfigSpec::new(target.object_name(), b"dockhand lock")
            .with_label(LOCK_LABEL, target.label())
            .with_label(HOLDER, &self.holder)
            .with_label(JOB, job)
            .with_label(ACQUIRED, now.to_string())
            .with_label(EXPIRES, now.saturating_add(ms(self.settings.lease)).to_string())
    }

    fn engine(target: &LockTarget) -> impl Fn(dockhand_engine::Error) -> LockError + '_ {
        move |e| LockError::Engine { target: target.label(), source: Box::new(e) }
    }

    /// Takes `target`'s lock for `job`: at once when free, by takeover when its holder's
    /// lease has expired, or after waiting for its holder to release it, up to the acquire
    /// timeout; then [`LockError::Busy`], naming the job that holds it.
    pub async fn acquire(&self, target: &LockTarget, job: &str) -> Result<LockGuard, LockError> {
        let started = Instant::now();
        let engine = Self::engine(target);
        loop {
            let spec = self.spec(target, job);
            match self.client.create_config(&spec).await {
                Ok(id) => return Ok(self.guard(target, id)),
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(engine(e)),
            }
            // Held: by a live holder (wait), or by a dead one (take over).
            let current = match self.client.config(&target.object_name()).await {
                Ok(current) => current,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(engine(e)),
            };
            let held = info(&current);
            if held.expired {
                match self.client.update_config(&current.id, current.version.index, &spec).await {
                    Ok(()) => {
                        tracing::info!(target = %target.label(), dead = %held.holder, "took over an expired lock");
                        return Ok(self.guard(target, current.id));
                    }
                    // Another waiter took it over first, or it was released: look again.
                    Err(e) if e.is_out_of_sequence() || e.is_not_found() => continue,
                    Err(e) => return Err(engine(e)),
                }
            }
            if started.elapsed() >= self.settings.acquire_timeout {
                return Err(LockError::Busy {
                    target: target.label(),
                    job: held.job,
                    holder: held.holder,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    fn guard(&self, target: &LockTarget, id: String) -> LockGuard {
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(
            self.client.clone(),
            id.clone(),
            self.holder.clone(),
            self.settings.lease,
            Arc::clone(&lost),
        ));
        LockGuard {
            client: self.client.clone(),
            id,
            target: target.clone(),
            holder: self.holder.clone(),
            lost,
            renewer,
        }
    }

    /// Every lock on the swarm (objects labelled `dockhand.lock`).
    pub async fn list(&self) -> Result<Vec<LockInfo>, LockError> {
        let configs = self
            .client
            .configs(&Filters::new().with("label", LOCK_LABEL))
            .await
            .map_err(|e| LockError::Engine { target: "every target".to_owned(), source: Box::new(e) })?;
        let mut locks: Vec<LockInfo> = configs.iter().map(info).collect();
        locks.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(locks)
    }
}

/// Renews the lease every third of it while the lock is ours; marks it lost otherwise.
async fn renew(client: Client, id: String, holder: String, lease: Duration, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(lease / 3).await;
        let current = match client.config(&id).await {
            Ok(current) => current,
            Err(e) if e.is_not_found() => {
                lost.store(true, Ordering::SeqCst);
                tracing::error!(lock = %id, "the lock object is gone");
                return;
            }
            Err(e) => {
                tracing::warn!(lock = %id, error = %e, "cannot read the lock to renew it");
                continue;
            }
        };
        if current.spec.labels.get(HOLDER) != Some(&holder) {
            lost.store(true, Ordering::SeqCst);
            tracing::error!(lock = %id, "the lock was taken over: its lease had expired");
            return;
        }
        let mut spec = current.spec.clone();
        spec.labels.insert(EXPIRES.to_owned(), now_ms().saturating_add(ms(lease)).to_string());
        if let Err(e) = client.update_config(&id, current.version.index, &spec).await {
            tracing::warn!(lock = %id, error = %e, "cannot renew the lock; trying again");
        }
    }
}

/// A held lock. [`LockGuard::release`] gives it back; dropping it stops the renewal, so
/// the lock frees itself when its lease ends.
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    id: String,
    target: LockTarget,
    holder: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl LockGuard {
    /// The target.
    pub fn target(&self) -> &LockTarget {
        &self.target
    }

    /// True when the lock was taken over (this holder failed to renew in time): the work
    /// it protects must stop.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Releases the lock: removes the lock object if it is still ours.
    pub async fn release(self) -> Result<(), LockError> {
        self.renewer.abort();
        let engine = |e| LockError::Engine { target: self.target.label(), source: Box::new(e) };
        match self.client.config(&self.id).await {
            Ok(current) if current.spec.labels.get(HOLDER) == Some(&self.holder) => {
                match self.client.remove_config(&self.id).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(engine(e)),
                }
            }
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
