//! Runs jobs for requests: one job per target at a time in this process (a second request
//! for a busy target is answered 409 with the holding job), a bound on jobs that run and on
//! requests that wait for a slot (beyond it, 429), the swarm lock for the other processes,
//! live events for `GET /v1/jobs/{id}/events`, and the job store.
//!
//! A job runs in a task of its own, so a client that goes away does not stop it. A request
//! is answered once its job holds the target's lock (`wait=false`), or once it ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dockhand_jobs::schedule::Launched;
use dockhand_jobs::store::JobStore;
use dockhand_jobs::{Event, Job, JobContext, JobError, Sink};
use futures_util::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

pub(crate) use dockhand_jobs::schedule::Work;

/// Events kept per live job for a follower that joins late.
const HISTORY: usize = 2_000;
/// The first pause before a record the store refused is tried again; it doubles, up to 2 s.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
/// How long a job's first or last record is tried again before it counts as lost.
const RECORD_RETRY_FOR: Duration = Duration::from_secs(10);

/// How long a request for a busy target waits to learn the ID of the job that holds the
/// target's lock (this process's, or another's that the first request ran into).
const HOLDER_WAIT: Duration = Duration::from_secs(3);

/// A target this process runs a job on: the fingerprint of the request the job serves, and
/// the job's ID once it has one (the sender goes when the job ends).
type Holding = (Option<String>, watch::Receiver<Option<String>>);

/// How a submitted job went, as far as the request needs to know.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It holds its lock and runs (`wait=false`).
    Accepted(Job),
    /// It ended.
    Finished(Job),
    /// Another job holds the target: its ID, when known.
    Busy(Option<String>),
    /// It could not start.
    NotRun(Arc<JobError>),
    /// Too many requests wait already.
    QueueFull,
    /// The server is stopping.
    ShuttingDown,
    /// The job store could not record the job once it held its lock, even after retries:
    /// it was cancelled before doing anything, so that no accepted job goes unrecorded.
    Unrecorded(String),
}

/// A job that runs: its latest state, its events so far, and followers.
#[derive(Debug)]
pub struct Live {
    state: Mutex<(Job, Vec<Event>)>,
    tx: broadcast::Sender<Event>,
}

impl Live {
    /// The job as it is now.
    pub fn snapshot(&self) -> Option<Job> {
        self.state.lock().ok().map(|s| s.0.clone())
    }

    /// The events so far and a receiver for the next ones, taken together so none is lost.
    pub fn follow(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        match self.state.lock() {
            Ok(state) => (state.1.clone(), self.tx.subscribe()),
            Err(_) => (Vec::new(), self.tx.subscribe()),
        }
    }

    fn push(&self, event: &Event) {
        if let Ok(mut state) = self.state.lock() {
            match event {
                Event::StepFinished { step, .. } => state.0.steps.push(step.clone()),
                Event::JobFinished { job } => state.0 = job.clone(),
                _ => {}
            }
            if state.1.len() < HISTORY {
                state.1.push(event.clone());
            }
            // Sent under the lock: a follower gets the history and then every later event.
            let _ = self.tx.send(event.clone());
        }
    }
}

/// Forwards a runner's events to the task that owns the job.
struct ChannelSink(mpsc::UnboundedSender<Event>);

impl Sink for ChannelSink {
    fn event(&self, event: &Event) {
        let _ = self.0.send(event.clone());
    }
}

/// Runs and tracks the server's jobs.
pub struct Dispatcher {
    store: Arc<dyn JobStore>,
    slots: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    /// The targets this process runs a job on: the fingerprint of the request it serves,
    /// and its ID once it has one (its sender goes when the job ends).
    targets: Mutex<HashMap<String, Holding>>,
    live: Mutex<HashMap<String, Arc<Live>>>,
    tracker: TaskTracker,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    notifier: dockhand_jobs::notify::Notifier,
    owner: String,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("slots", &self.slots.available_permits()).finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// `max_jobs` at once, `max_queue` more waiting, recorded in `store`.
    pub fn new(
        store: Arc<dyn JobStore>,
        max_jobs: usize,
        max_queue: usize,
        metrics: Arc<Metrics>,
        notifier: dockhand_jobs::notify::Notifier,
        owner: String,
    ) -> Self {
        Self {
            store,
            slots: Arc::new(Semaphore::new(max_jobs)),
            admitted: Arc::new(Semaphore::new(max_jobs + max_queue)),
            targets: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            metrics,
            notifier,
            owner,
        }
    }

    /// The job store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// The live job `id`.
    pub fn live(&self, id: &str) -> Option<Arc<Live>> {
        self.live.lock().ok()?.get(id).cloned()
    }

    /// The jobs that run now.
    pub fn running(&self) -> Vec<Job> {
        let live: Vec<Arc<Live>> =
            self.live.lock().map(|l| l.values().cloned().collect()).unwrap_or_default();
        live.iter().filter_map(|l| l.snapshot()).collect()
    }

    /// Cancels every job (each stops at its next safe point and cleans up what it
    /// started) and waits for them all to end.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// True once shutting down.
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Runs `work` on the target `key` (`service/<id>`, `node/<id>`) with `ctx`; answers when
    /// it holds its lock (or ended), or with `wait` when it ended.
    pub async fn submit(self: &Arc<Self>, key: String, ctx: JobContext, wait: bool, work: Work) -> Outcome {
        if self.stop.is_cancelled() {
            return Outcome::ShuttingDown;
        }
        let Ok(admit) = Arc::clone(&self.admitted).try_acquire_owned() else {
            return Outcome::QueueFull;
        };
        self.admitted_submit(key, ctx, wait, work, admit).await
    }

    /// As [`Dispatcher::submit`], waiting for room in the queue instead of refusing: the
    /// scheduler's way, which bounds its own jobs.
    pub async fn submit_queued(
        self: &Arc<Self>,
        key: String,
        ctx: JobContext,
        wait: bool,
        work: Work,
    ) -> Outcome {
        let admit = tokio::select! {
            admit = Arc::clone(&self.admitted).acquire_owned() => match admit {
                Ok(admit) => admit,
                Err(_) => return Outcome::ShuttingDown,
            },
            () = self.stop.cancelled() => return Outcome::ShuttingDown,
        };
        self.admitted_submit(key, ctx, wait, work, admit).await
    }

    async fn admitted_submit(
        self: &Arc<Self>,
        key: String,
        mut ctx: JobContext,
        wait: bool,
        work: Work,
        admit: OwnedSemaphorePermit,
    ) -> Outcome {
        let (id_tx, id_rx) = watch::channel(None);
        // A job of this process holds the target: the same request is answered busy at once
        // (it would do the same again); another waits for that job to end, up to the lock
        // wait, as it would for a job of another process through the swarm lock.
        let request = ctx.locks.request().map(str::to_owned);
        let deadline = tokio::time::Instant::now() + ctx.locks.acquire_timeout();
        loop {
            let holder = {
                let Ok(mut targets) = self.targets.lock() else { return Outcome::ShuttingDown };
                match targets.get(&key) {
                    Some(holder) => Some(holder.clone()),
                    None => {
                        targets.insert(key.clone(), (request.clone(), id_rx.clone()));
                        None
                    }
                }
            };
            let Some((theirs, mut holder)) = holder else { break };
            let same = request.is_some() && theirs == request;
            let mut watching = holder.clone();
            let ended = async move {
                while watching.changed().await.is_ok() {}
                // Gone: its entry goes with the next step of its task.
                tokio::task::yield_now().await;
            };
            if same || tokio::time::timeout_at(deadline, ended).await.is_err() {
                drop(admit);
                let _ = tokio::time::timeout(HOLDER_WAIT, holder.wait_for(Option::is_some)).await;
                let id = holder.borrow().clone();
                return Outcome::Busy(id);
            }
        }
        let cancel = self.stop.child_token();
        ctx.cancel = cancel.clone();
        let (first_tx, first_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let this = Arc::clone(self);
        self.tracker.spawn(async move {
            let outcome = this.run(&key, ctx, admit, id_tx, first_tx, work, cancel).await;
            if let Ok(mut targets) = this.targets.lock() {
                targets.remove(&key);
            }
            let _ = done_tx.send(outcome);
        });
        let first = match first_rx.await {
            Ok(first) => first,
            Err(_) => return done_rx.await.unwrap_or(Outcome::ShuttingDown),
        };
        match first {
            Outcome::Accepted(job) if wait => match done_rx.await {
                Ok(done) => done,
                Err(_) => Outcome::Accepted(job),
            },
            other => other,
        }
    }

    /// The job's own task: a slot, the work, its events, the record.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        key: &str,
        ctx: JobContext,
        _admit: OwnedSemaphorePermit,
        id_tx: watch::Sender<Option<String>>,
        first_tx: oneshot::Sender<Outcome>,
        work: Work,
        cancel: CancellationToken,
    ) -> Outcome {
        let mut first = Some(first_tx);
        let answer = |first: &mut Option<oneshot::Sender<Outcome>>, outcome: Outcome| {
            if let Some(tx) = first.take() {
                let _ = tx.send(outcome);
            }
        };
        let _slot = tokio::select! {
            slot = Arc::clone(&self.slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return Outcome::ShuttingDown,
            },
            () = self.stop.cancelled() => return Outcome::ShuttingDown,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let job = work(ctx, Arc::new(ChannelSink(tx)));
        tokio::pin!(job);
        let mut live: Option<Arc<Live>> = None;
        let mut busy: Option<String> = None;
        let result = loop {
            tokio::select! {
                biased;
                Some(event) = rx.recv() => {
                    self.on_event(&event, &mut live, &id_tx, &mut busy, &mut first, &answer, &cancel).await;
                }
                result = &mut job => break result,
            }
        };
        while let Ok(event) = rx.try_recv() {
            self.on_event(&event, &mut live, &id_tx, &mut busy, &mut first, &answer, &cancel).await;
        }
        let outcome = match result {
            Ok(job) => {
                if busy.is_none() {
                    if let Err(e) = self.record_durably(&job).await {
                        tracing::error!(job = %job.id, error = %e, "cannot record the job's end");
                    }
                    self.metrics.job_finished(&job);
                    self.notifier.job_finished(&job);
                } else {
                    self.metrics.busy();
                }
                match busy {
                    Some(holder) => Outcome::Busy(Some(holder)),
                    None => Outcome::Finished(job),
                }
            }
            Err(e) => Outcome::NotRun(Arc::new(e)),
        };
        if let Some(live) = &live {
            if let Some(job) = live.snapshot() {
                if let Ok(mut map) = self.live.lock() {
                    map.remove(&job.id);
                }
            }
        }
        tracing::debug!(target_key = key, "job task ended");
        answer(&mut first, outcome.clone());
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_event(
        &self,
        event: &Event,
        live: &mut Option<Arc<Live>>,
        id_tx: &watch::Sender<Option<String>>,
        busy: &mut Option<String>,
        first: &mut Option<oneshot::Sender<Outcome>>,
        answer: &impl Fn(&mut Option<oneshot::Sender<Outcome>>, Outcome),
        cancel: &CancellationToken,
    ) {
        match event {
            Event::JobStarted { job } => {
                let (tx, _) = broadcast::channel(256);
                let created = Arc::new(Live { state: Mutex::new((job.clone(), Vec::new())), tx });
                if let Ok(mut map) = self.live.lock() {
                    map.insert(job.id.clone(), Arc::clone(&created));
                }
                *live = Some(created);
            }
            Event::Locked { job: id } => {
                // Requests for the same target now name this job.
                let _ = id_tx.send(Some(id.clone()));
                if let Some(job) = live.as_ref().and_then(|l| l.snapshot()) {
                    // The job waits here, holding its lock and doing nothing, until its
                    // record is in the store: a job the store never heard of could be
                    // neither read nor reaped if this process died.
                    match self.record_durably(&job).await {
                        Ok(()) => {
                            self.renew_lease(&job).await;
                            answer(first, Outcome::Accepted(job));
                        }
                        Err(e) => {
                            tracing::error!(job = %job.id, error = %e, "cannot record the job: it is cancelled");
                            cancel.cancel();
                            answer(first, Outcome::Unrecorded(e.to_string()));
                        }
                    }
                }
            }
            Event::Busy { holder, .. } => {
                // Another process's job holds the target: requests here name that one.
                let _ = id_tx.send(Some(holder.clone()));
                *busy = Some(holder.clone());
                answer(first, Outcome::Busy(Some(holder.clone())));
            }
            _ => {}
        }
        if let Some(live) = live.as_ref() {
            live.push(event);
            // Its progress, for the other replicas that share the store: only a job that
            // holds its lock is recorded (a busy refusal never is).
            if let Event::StepFinished { job: id, .. } = event {
                let holds = busy.is_none() && id_tx.borrow().as_deref() == Some(id.as_str());
                if let Some(job) = live.snapshot().filter(|_| holds) {
                    self.record_running(&job).await;
                }
            }
        }
    }

    /// Records a running job with its lease renewed.
    async fn record_running(&self, job: &Job) {
        if let Err(e) = self.store.record(job).await {
            tracing::error!(job = %job.id, error = %e, "cannot record the job");
        }
        self.renew_lease(job).await;
    }

    async fn renew_lease(&self, job: &Job) {
        if let Err(e) = self.store.heartbeat(std::slice::from_ref(&job.id), &self.owner).await {
            tracing::warn!(job = %job.id, error = %e, "cannot renew the job's lease");
        }
    }

    /// Records `job`, trying again for a few seconds while the store does not answer (a
    /// PostgreSQL that restarts, a failover): its first and last records must not be lost.
    async fn record_durably(&self, job: &Job) -> Result<(), dockhand_jobs::store::StoreError> {
        let mut delay = RECORD_RETRY_FIRST;
        let mut waited = Duration::ZERO;
        loop {
            match self.store.record(job).await {
                Ok(()) => return Ok(()),
                Err(e) if waited >= RECORD_RETRY_FOR => return Err(e),
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, ?delay, "cannot record the job yet: trying again");
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Renews the leases of the jobs this process runs, every [`LEASE_RENEW`], until the
    /// dispatcher stops.
    pub async fn renew_leases(&self) {
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(LEASE_RENEW) => {}
            }
            let ids: Vec<String> = self
                .running()
                .into_iter()
                .filter(|j| j.status == dockhand_jobs::Status::Running)
                .map(|j| j.id)
                .collect();
            if let Err(e) = self.store.heartbeat(&ids, &self.owner).await {
                tracing::warn!(error = %e, "cannot renew the leases of the running jobs");
            }
        }
    }

    /// Marks the jobs whose process stopped renewing their lease for [`JOB_LEASE`] (by the
    /// store's clock) and whose target's lock is free as interrupted (through `ctx`, its
    /// locks and scope), notifies and counts them, and returns them.
    pub async fn interrupt_stale(&self, ctx: &JobContext) -> Vec<Job> {
        let why = format!(
            "the process running it stopped renewing its lease for {} s (killed, or its machine lost), and its \
             target's lock was free: marked by {}",
            JOB_LEASE.as_secs(),
            self.owner
        );
        match dockhand_jobs::reap_stale(ctx, &**self.store(), JOB_LEASE, &why).await {
            Ok(jobs) => {
                for job in &jobs {
                    tracing::warn!(job = %job.id, target = %job.target.describe(), "marked interrupted: its process stopped renewing its lease");
                    self.metrics.job_finished(job);
                    self.notifier.job_finished(job);
                }
                jobs
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for interrupted jobs");
                Vec::new()
            }
        }
    }
}

/// How often a process renews the leases of the jobs it runs.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How long a job's lease lasts without renewal before another process marks it
/// interrupted.
pub const JOB_LEASE: Duration = Duration::from_secs(45);

/// The scheduler's way into the dispatcher: each cron job runs to its end, in a slot, and
/// is recorded like any other.
#[derive(Debug, Clone)]
pub struct CronLauncher(pub Arc<Dispatcher>);

impl dockhand_jobs::schedule::Launcher for CronLauncher {
    fn launch(&self, key: String, ctx: JobContext, work: Work) -> BoxFuture<'_, Launched> {
        Box::pin(async move {
            match self.0.submit_queued(key, ctx, true, work).await {
                Outcome::Finished(job) | Outcome::Accepted(job) => Launched::Ran(Box::new(job)),
                Outcome::Busy(holder) => Launched::Busy(holder),
                Outcome::NotRun(e) => Launched::NotRun(e.to_string()),
                Outcome::QueueFull => Launched::NotRun("the server's queue is full".to_owned()),
                Outcome::ShuttingDown => Launched::NotRun("the server is stopping".to_owned()),
                Outcome::Unrecorded(e) => Launched::NotRun(format!("the job store cannot record it: {e}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use dockhand_jobs::store::{JobFilter, SqliteStore, StoreError};
    use dockhand_jobs::{Action, Target, Trigger};

    use super::*;

    /// A real SQLite store whose next `failing` records fail, as a PostgreSQL that restarts
    /// would refuse them: the fault the soak met, on demand.
    struct Flaky {
        inner: SqliteStore,
        failing: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl JobStore for Flaky {
        async fn record(&self, job: &Job) -> Result<(), StoreError> {
            if self.failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(StoreError::Shared {
                    store: "flaky".into(),
                    detail: "connection refused".into(),
                });
            }
            self.inner.record(job).await
        }
        async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
            self.inner.get(id).await
        }
        async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
            self.inner.list(filter).await
        }
        async fn purge(&self, age: Duration) -> Result<usize, StoreError> {
            self.inner.purge(age).await
        }
        async fn claim_ticks(
            &self,
            ticks: &[(Action, String, u64)],
            by: &str,
        ) -> Result<Vec<bool>, StoreError> {
            self.inner.claim_ticks(ticks, by).await
        }
        async fn heartbeat(&self, ids: &[String], owner: &str) -> Result<(), StoreError> {
            self.inner.heartbeat(ids, owner).await
        }
        async fn stale(&self, lease: Duration) -> Result<Vec<Job>, StoreError> {
            self.inner.stale(lease).await
        }
        async fn interrupt(&self, id: &str, lease: Duration, why: &str) -> Result<Option<Job>, StoreError> {
            self.inner.interrupt(id, lease, why).await
        }
        async fn last_tick(&self, action: Action, target: &str) -> Result<Option<u64>, StoreError> {
            self.inner.last_tick(action, target).await
        }
    }

    fn dispatcher(dir: &tempfile::TempDir, failing: usize) -> (Arc<Dispatcher>, Arc<Flaky>) {
        let inner = SqliteStore::open(&dir.path().join("jobs.sqlite")).expect("a store");
        let store = Arc::new(Flaky { inner, failing: AtomicUsize::new(failing) });
        let metrics = Arc::new(Metrics::default());
        let d = Dispatcher::new(
            store.clone(),
            2,
            2,
            metrics,
            dockhand_jobs::notify::Notifier::none(),
            "test".into(),
        );
        (Arc::new(d), store)
    }

    fn context() -> JobContext {
        let client = dockhand_engine::Client::new(dockhand_engine::Endpoint::unix("/nonexistent.sock"))
            .expect("a client that is never used");
        JobContext::new(client, "test", Trigger::Api, "test")
    }

    /// A clean-node job on `n1` that started and holds its lock, as `sink` heard.
    fn locked(sink: &dyn Sink) -> Job {
        let target = Target::Node { id: "n1".into(), hostname: "node1".into() };
        let job = Job::start(Action::CleanNode, target, Trigger::Api, "test", std::time::SystemTime::now());
        sink.event(&Event::JobStarted { job: job.clone() });
        sink.event(&Event::Locked { job: job.id.clone() });
        job
    }

    /// A job that takes its lock and then waits to be cancelled (or ends after 5 s); it
    /// says, through `ran`, whether it went past its lock before being cancelled.
    fn work(ran: Arc<AtomicUsize>) -> Work {
        Box::new(move |ctx: JobContext, sink: Arc<dyn Sink>| {
            Box::pin(async move {
                let mut job = locked(&*sink);
                tokio::task::yield_now().await;
                if !ctx.cancel.is_cancelled() {
                    ran.fetch_add(1, Ordering::SeqCst);
                }
                let status = tokio::select! {
                    () = ctx.cancel.cancelled() => dockhand_jobs::Status::Cancelled,
                    () = tokio::time::sleep(Duration::from_secs(5)) => dockhand_jobs::Status::Succeeded,
                };
                job.finish(std::time::SystemTime::now(), Some(status));
                Ok(job)
            })
        })
    }

    /// A job of `ms` milliseconds that holds its lock.
    fn short_work(ms: u64) -> Work {
        Box::new(move |_ctx: JobContext, sink: Arc<dyn Sink>| {
            Box::pin(async move {
                let mut job = locked(&*sink);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                job.finish(std::time::SystemTime::now(), Some(dockhand_jobs::Status::Succeeded));
                Ok(job)
            })
        })
    }

    fn asking(request: &str, wait: Duration) -> JobContext {
        let mut ctx = context();
        ctx.locks = ctx.locks.for_request(request, wait);
        ctx
    }

    /// The seed's lock wait: while a job holds a target, the same request again is busy at
    /// once (naming that job), another request waits for it to end and then runs, and one
    /// that cannot wait that long is busy.
    #[tokio::test]
    async fn another_request_waits_for_the_target_and_the_same_one_is_busy_at_once() {
        let dir = tempfile::tempdir().expect("a directory");
        let (d, _) = dispatcher(&dir, 0);
        let long = Duration::from_secs(30);
        let Outcome::Accepted(first) =
            d.submit("node/n1".into(), asking("a", long), false, short_work(400)).await
        else {
            panic!("the first is not accepted");
        };
        let same = d.submit("node/n1".into(), asking("a", long), false, short_work(1)).await;
        assert!(matches!(&same, Outcome::Busy(Some(id)) if *id == first.id), "{same:?}");
        let impatient = d.submit("node/n1".into(), asking("b", Duration::ZERO), false, short_work(1)).await;
        assert!(matches!(&impatient, Outcome::Busy(Some(id)) if *id == first.id), "{impatient:?}");
        let other = d.submit("node/n1".into(), asking("b", long), true, short_work(1)).await;
        let Outcome::Finished(second) = other else { panic!("the other request did not run: {other:?}") };
        assert_ne!(second.id, first.id);
        assert_eq!(second.status, dockhand_jobs::Status::Succeeded);
        let stored = d.store().get(&first.id).await.expect("readable").expect("recorded");
        assert_eq!(stored.status, dockhand_jobs::Status::Succeeded, "the first ended before the other ran");
        d.shutdown().await;
    }

    #[tokio::test]
    async fn an_accepted_job_is_in_the_store_even_when_the_store_refused_it_at_first() {
        let dir = tempfile::tempdir().expect("a directory");
        let (d, store) = dispatcher(&dir, 3);
        let ran = Arc::new(AtomicUsize::new(0));
        let Outcome::Accepted(job) = d.submit_queued("node/n1".into(), context(), false, work(ran)).await
        else {
            panic!("not accepted");
        };
        assert!(store.inner.get(&job.id).await.expect("readable").is_some(), "accepted, and recorded first");
        d.shutdown().await;
    }

    #[tokio::test]
    async fn a_job_the_store_never_records_is_cancelled_before_it_does_anything_and_not_accepted() {
        let dir = tempfile::tempdir().expect("a directory");
        let (d, _) = dispatcher(&dir, usize::MAX);
        let ran = Arc::new(AtomicUsize::new(0));
        let outcome = d.submit_queued("node/n1".into(), context(), false, work(Arc::clone(&ran))).await;
        assert!(matches!(outcome, Outcome::Unrecorded(_)), "{outcome:?}");
        d.shutdown().await;
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the job went on past its lock");
    }
}
