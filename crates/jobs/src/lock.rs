//! Swarm-wide locks: one operation per target at a time.
//!
//! A lock is a swarm config named after its target (`dockhand-lock-service-<id>`). The
//! swarm's raft store makes its creation exclusive across the whole swarm, so exactly one
//! creator wins. Its labels carry the holder, the job and a lease; the holder renews the
//! lease with the config's version as compare-and-swap, so of two writers only one
//! succeeds. A holder that died stops renewing: once its lease has expired, the lock is
//! taken over, again by compare-and-swap.
//!
//! Expiry is judged by **the engine's clock** alone: the config's `UpdatedAt` (set by the
//! manager at each renewal) plus the holder's lease, against the manager's own time, so a
//! taker whose clock runs ahead displaces nobody (security review R3-08). A holder is
//! "gone" before its lease ends only when it is proven so: the same boot, the same PID
//! namespace, and its pid no longer runs or started at another time. A holder that fails
//! to renew for a whole lease, or finds its lock taken over, cancels its job at once. A
//! release is compare-and-swap too: the lock is marked released at the version read, then
//! removed (read again when the holder's own late renewal changed it in between), and a
//! marked lock is not taken over until it is seconds old.
//!
//! Why configs: they live in the swarm itself (no extra service, no shared disk), survive
//! dockhand restarts, are visible to every manager and every dockhand process or server
//! replica, and `docker config ls --filter label=dockhand.lock` shows them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dockhand_engine::{ConfigSpec, Filters, SwarmConfig};

use crate::swarm::Swarm;
use tokio_util::sync::CancellationToken;

/// The label every lock object carries, its value the target.
pub const LOCK_LABEL: &str = "dockhand.lock";
const HOLDER: &str = "dockhand.lock.holder";
const JOB: &str = "dockhand.lock.job";
const EXPIRES: &str = "dockhand.lock.expires";
const ACQUIRED: &str = "dockhand.lock.acquired";
const LEASE: &str = "dockhand.lock.lease-ms";
const BOOT: &str = "dockhand.lock.boot";
const PIDNS: &str = "dockhand.lock.pidns";
const PID: &str = "dockhand.lock.pid";
const PID_START: &str = "dockhand.lock.pid-start";
const RELEASED: &str = "dockhand.lock.released";
/// How many times a release reads the lock again after its compare-and-swap lost to a
/// change of its own holder's (a renewal in flight when it was stopped).
const RELEASE_ATTEMPTS: u32 = 3;
/// The fingerprint of the request the holding job serves (a hash: no parameter, no
/// credential): a second request with the same one does not wait for the lock.
const REQUEST: &str = "dockhand.lock.request";
/// How old a released mark must be before a taker removes it itself (its releaser died
/// between marking and removing).
const RELEASED_GRACE_MS: u64 = 5_000;

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
    /// The engine's clock, which leases are judged by, cannot be read.
    #[error("the lock of {target}: {detail}")]
    Clock {
        /// The target.
        target: String,
        /// What is wrong.
        detail: String,
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
    swarm: Arc<dyn Swarm>,
    holder: String,
    settings: LockSettings,
    me: ProcessId,
    /// The fingerprint of the request the acquiring job serves ([`Locks::for_request`]).
    request: Option<String>,
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
    dockhand_host::procfs::hostname().unwrap_or_else(|| "unknown".to_owned())
}

/// A process as a lock records it: its kernel's boot, its PID namespace, its pid and when
/// that pid started. Two processes with the same pid in different PID namespaces (two
/// containers) or across a reboot are told apart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ProcessId {
    /// `/proc/sys/kernel/random/boot_id`.
    pub(crate) boot: String,
    /// The PID namespace (`readlink /proc/self/ns/pid`).
    pub(crate) pidns: String,
    /// The pid.
    pub(crate) pid: u32,
    /// The pid's start time, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
    pub(crate) start: u64,
}

impl ProcessId {
    /// This process.
    pub(crate) fn current() -> Self {
        let pid = std::process::id();
        Self {
            boot: dockhand_host::procfs::boot_id(),
            pidns: dockhand_host::procfs::pid_namespace(),
            pid,
            start: dockhand_host::procfs::start_time(pid).unwrap_or(0),
        }
    }

    fn labels(&self) -> [(&'static str, String); 4] {
        [
            (BOOT, self.boot.clone()),
            (PIDNS, self.pidns.clone()),
            (PID, self.pid.to_string()),
            (PID_START, self.start.to_string()),
        ]
    }

    fn of(config: &SwarmConfig) -> Option<Self> {
        let label = |k: &str| config.spec.labels.get(k).cloned();
        Some(Self {
            boot: label(BOOT)?,
            pidns: label(PIDNS)?,
            pid: label(PID)?.parse().ok()?,
            start: label(PID_START)?.parse().ok()?,
        })
    }
}

/// True when `holder` is proven gone: a process of this very boot and PID namespace, not
/// this one, whose pid no longer runs or started at another time (`alive` reads a pid's
/// start time). Anything else is judged by its lease alone.
fn holder_gone(holder: &ProcessId, me: &ProcessId, alive: impl Fn(u32) -> Option<u64>) -> bool {
    !holder.boot.is_empty()
        && !holder.pidns.is_empty()
        && holder.boot == me.boot
        && holder.pidns == me.pidns
        && holder.pid != me.pid
        && alive(holder.pid) != Some(holder.start)
}

/// How a held lock stands, by the engine's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Its holder renews it.
    Live,
    /// Its lease ended by the engine's clock, or its holder is proven gone.
    Expired,
    /// Released, and its object is about to go.
    Released,
}

/// Judges `config` at the engine's time `engine_now_ms`, as `me`: expired when its last
/// update (`UpdatedAt`, the manager's clock) plus its lease is past, whatever the clocks
/// of its holder and of the taker say.
fn standing(config: &SwarmConfig, engine_now_ms: u64, default_lease: Duration, me: &ProcessId) -> Standing {
    let updated = parse_engine_time(&config.updated_at).unwrap_or(0);
    if config.spec.labels.contains_key(RELEASED) {
        return if engine_now_ms.saturating_sub(updated) > RELEASED_GRACE_MS {
            Standing::Expired
        } else {
            Standing::Released
        };
    }
    let lease =
        config.spec.labels.get(LEASE).and_then(|l| l.parse().ok()).unwrap_or_else(|| ms(default_lease));
    if engine_now_ms > updated.saturating_add(lease) {
        return Standing::Expired;
    }
    match ProcessId::of(config) {
        Some(holder) if holder_gone(&holder, me, dockhand_host::procfs::start_time) => Standing::Expired,
        _ => Standing::Live,
    }
}

/// An engine timestamp (RFC 3339, nanoseconds) in milliseconds since the epoch.
fn parse_engine_time(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn info(config: &SwarmConfig, standing: Standing) -> LockInfo {
    let label = |k: &str| config.spec.labels.get(k).cloned().unwrap_or_default();
    LockInfo {
        target: label(LOCK_LABEL),
        object: config.spec.name.clone(),
        holder: label(HOLDER),
        job: label(JOB),
        expires_ms: label(EXPIRES).parse().unwrap_or(0),
        expired: standing != Standing::Live,
    }
}

impl Locks {
    /// Locks on the swarm `swarm` manages (an engine `Client`, or any [`Swarm`]), held as `holder` (unique per process: host,
    /// pid and a nonce; see [`Locks::process_holder`]).
    pub fn new(swarm: impl Swarm + 'static, holder: impl Into<String>, settings: LockSettings) -> Self {
        Self::on(Arc::new(swarm), holder, settings)
    }

    /// [`Locks::new`] on a swarm shared with other users.
    pub fn on(swarm: Arc<dyn Swarm>, holder: impl Into<String>, settings: LockSettings) -> Self {
        Self { swarm, holder: holder.into(), settings, me: ProcessId::current(), request: None }
    }

    /// These locks, held as the same holder, on `swarm`.
    #[must_use]
    pub fn with_swarm(&self, swarm: Arc<dyn Swarm>) -> Self {
        Self { swarm, ..self.clone() }
    }

    /// The fingerprint of the request these locks acquire for, if any.
    pub fn request(&self) -> Option<&str> {
        self.request.as_deref()
    }

    /// How long an acquire waits for a busy target.
    pub fn acquire_timeout(&self) -> Duration {
        self.settings.acquire_timeout
    }

    /// These locks for a job that serves the request `fingerprint` (a hash of its action,
    /// target and parameters), waiting at most `wait` for a busy target: a holder serving
    /// the same request is not waited for (the job would do the same again), any other is.
    #[must_use]
    pub fn for_request(&self, fingerprint: impl Into<String>, wait: Duration) -> Self {
        let mut locks = self.clone();
        locks.request = Some(fingerprint.into());
        locks.settings.acquire_timeout = wait;
        locks
    }

    /// The engine's clock now, in milliseconds since the epoch: what leases are judged by.
    async fn engine_now_ms(&self, target: &LockTarget) -> Result<u64, LockError> {
        let info = self.swarm.info().await.map_err(Self::engine(target))?;
        parse_engine_time(&info.system_time).ok_or_else(|| LockError::Clock {
            target: target.label(),
            detail: format!("the engine's SystemTime {:?} is not an RFC 3339 time", info.system_time),
        })
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
        let mut spec = ConfigSpec::new(target.object_name(), b"dockhand lock")
            .with_label(LOCK_LABEL, target.label())
            .with_label(HOLDER, &self.holder)
            .with_label(JOB, job)
            .with_label(ACQUIRED, now.to_string())
            .with_label(EXPIRES, now.saturating_add(ms(self.settings.lease)).to_string())
            .with_label(LEASE, ms(self.settings.lease).to_string());
        for (key, value) in self.me.labels() {
            spec = spec.with_label(key, value);
        }
        if let Some(request) = &self.request {
            spec = spec.with_label(REQUEST, request);
        }
        spec
    }

    fn engine(target: &LockTarget) -> impl Fn(dockhand_engine::Error) -> LockError + '_ {
        move |e| LockError::Engine { target: target.label(), source: Box::new(e) }
    }

    /// Takes `target`'s lock for `job`: at once when free, by takeover when its holder's
    /// lease has expired, or after waiting for its holder to release it, up to the acquire
    /// timeout; then [`LockError::Busy`], naming the job that holds it.
    pub async fn acquire(&self, target: &LockTarget, job: &str) -> Result<LockGuard, LockError> {
        self.acquire_cancelling(target, job, CancellationToken::new()).await
    }

    /// [`Locks::acquire`], and `on_loss` is cancelled the moment the lock is lost: the job
    /// it protects stops at once (R3-08).
    pub async fn acquire_cancelling(
        &self,
        target: &LockTarget,
        job: &str,
        on_loss: CancellationToken,
    ) -> Result<LockGuard, LockError> {
        let started = tokio::time::Instant::now();
        let engine = Self::engine(target);
        loop {
            let spec = self.spec(target, job);
            match self.swarm.create_config(&spec).await {
                Ok(id) => return Ok(self.guard(target, id, on_loss)),
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(engine(e)),
            }
            // Held: by a live holder (wait), or by a dead one (take over).
            let current = match self.swarm.config(&target.object_name()).await {
                Ok(current) => current,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(engine(e)),
            };
            let now = self.engine_now_ms(target).await?;
            let standing = standing(&current, now, self.settings.lease, &self.me);
            let held = info(&current, standing);
            if standing == Standing::Expired {
                match self.swarm.update_config(&current.id, current.version.index, &spec).await {
                    Ok(()) => {
                        tracing::info!(target = %target.label(), dead = %held.holder, "took over an expired lock");
                        return Ok(self.guard(target, current.id, on_loss));
                    }
                    // Another waiter took it over first, or it was released: look again.
                    Err(e) if e.is_out_of_sequence() || e.is_not_found() => continue,
                    Err(e) => return Err(engine(e)),
                }
            }
            let same_request =
                self.request.is_some() && current.spec.labels.get(REQUEST) == self.request.as_ref();
            if same_request || started.elapsed() >= self.settings.acquire_timeout {
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

    fn guard(&self, target: &LockTarget, id: String, on_loss: CancellationToken) -> LockGuard {
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(
            Arc::clone(&self.swarm),
            id.clone(),
            self.holder.clone(),
            self.settings.lease,
            Arc::clone(&lost),
            on_loss.clone(),
        ));
        LockGuard {
            swarm: Arc::clone(&self.swarm),
            id,
            target: target.clone(),
            holder: self.holder.clone(),
            lost,
            on_loss,
            renewer,
        }
    }

    /// Every lock on the swarm (objects labelled `dockhand.lock`).
    pub async fn list(&self) -> Result<Vec<LockInfo>, LockError> {
        let configs = self
            .swarm
            .configs(&Filters::new().with("label", LOCK_LABEL))
            .await
            .map_err(|e| LockError::Engine { target: "every target".to_owned(), source: Box::new(e) })?;
        let now = match configs.first() {
            Some(first) => {
                let target = LockTarget::Service(first.spec.name.clone());
                self.engine_now_ms(&target).await?
            }
            None => 0,
        };
        let mut locks: Vec<LockInfo> =
            configs.iter().map(|c| info(c, standing(c, now, self.settings.lease, &self.me))).collect();
        locks.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(locks)
    }
}

/// Renews the lease every third of it while the lock is ours. When it is not (taken over,
/// removed), or no renewal has succeeded for a whole lease (another may take it over now),
/// the lock is lost: `lost` is set and `on_loss` cancelled, so the job stops at once.
async fn renew(
    client: Arc<dyn Swarm>,
    id: String,
    holder: String,
    lease: Duration,
    lost: Arc<AtomicBool>,
    on_loss: CancellationToken,
) {
    let lose = |why: &str| {
        lost.store(true, Ordering::SeqCst);
        on_loss.cancel();
        tracing::error!(lock = %id, "{why}: the job is cancelled");
    };
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        if renewed.elapsed() >= lease {
            lose("the lock could not be renewed for a whole lease");
            return;
        }
        let current = match client.config(&id).await {
            Ok(current) => current,
            Err(e) if e.is_not_found() => {
                lose("the lock object is gone");
                return;
            }
            Err(e) => {
                tracing::warn!(lock = %id, error = %e, "cannot read the lock to renew it");
                continue;
            }
        };
        if current.spec.labels.get(HOLDER) != Some(&holder) || current.spec.labels.contains_key(RELEASED) {
            lose("the lock was taken over");
            return;
        }
        let mut spec = current.spec.clone();
        spec.labels.insert(EXPIRES.to_owned(), now_ms().saturating_add(ms(lease)).to_string());
        match client.update_config(&id, current.version.index, &spec).await {
            Ok(()) => renewed = tokio::time::Instant::now(),
            Err(e) => tracing::warn!(lock = %id, error = %e, "cannot renew the lock; trying again"),
        }
    }
}

/// A held lock. [`LockGuard::release`] gives it back; dropping it stops the renewal, so
/// the lock frees itself when its lease ends.
#[derive(Debug)]
pub struct LockGuard {
    swarm: Arc<dyn Swarm>,
    id: String,
    target: LockTarget,
    holder: String,
    lost: Arc<AtomicBool>,
    on_loss: CancellationToken,
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

    /// Cancelled the moment the lock is lost.
    pub fn lost_token(&self) -> CancellationToken {
        self.on_loss.clone()
    }

    /// Releases the lock if it is still ours, by compare-and-swap: marked released at the
    /// version read (which fails if anyone changed it since), then removed. A lock another
    /// holder took over is never removed.
    pub async fn release(self) -> Result<(), LockError> {
        self.renewer.abort();
        let engine = |e| LockError::Engine { target: self.target.label(), source: Box::new(e) };
        // A renewal the abort cut short may still land at the engine after the read below:
        // its version change is ours, so the lock is read again and released at the new
        // version, a few times at most.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let current = match self.swarm.config(&self.id).await {
                Ok(current) => current,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(engine(e)),
            };
            if current.spec.labels.get(HOLDER) != Some(&self.holder)
                || current.spec.labels.contains_key(RELEASED)
            {
                return Ok(());
            }
            let mut spec = current.spec.clone();
            spec.labels.insert(RELEASED.to_owned(), "true".to_owned());
            match self.swarm.update_config(&self.id, current.version.index, &spec).await {
                Ok(()) => break,
                Err(e) if e.is_not_found() => return Ok(()),
                // Changed since it was read: still ours (our own late renewal), try again;
                // taken over, the next read says so.
                Err(e) if e.is_out_of_sequence() && attempts < RELEASE_ATTEMPTS => continue,
                Err(e) if e.is_out_of_sequence() => return Ok(()),
                Err(e) => return Err(engine(e)),
            }
        }
        match self.swarm.remove_config(&self.id).await {
            Ok(()) => Ok(()),
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

#[cfg(test)]
mod tests;
