//! The one runner every job goes through: it starts the job, reports to the sink, takes the
//! target's lock and clears leftover helpers, watches for cancellation, and finishes the
//! job (releasing the lock) on every path. The jobs' own modules only plan and do steps.

use std::time::SystemTime;

use dockhand_engine::Client;
use dockhand_policy::{Defaults, LabelPrefixes};
use tokio_util::sync::CancellationToken;

use crate::helper::image::HelperSettings;
use crate::helper::{HelperError, clear_leftovers};
use crate::job::{Action, Event, Job, Sink, Status, Step, Target, Trigger};
use crate::lock::{LockError, LockGuard, LockTarget, Locks};
use crate::swarm::Swarm;

/// Who runs a job, and how: the engine, its locks, the policy's defaults and prefixes, the
/// helpers, the cancellation token and how much runs at once.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The engine dockhand is connected to: exec streams, helper services and volume bytes.
    pub client: Client,
    /// The same engine as the jobs' logic sees it ([`Swarm`]): services, tasks, nodes,
    /// configs. An embedder or a test may put another in its place ([`JobContext::with_swarm`]).
    pub swarm: std::sync::Arc<dyn Swarm>,
    /// Locks on its swarm (used when it is a manager).
    pub locks: Locks,
    /// The seed's defaults (timeouts).
    pub defaults: Defaults,
    /// The label prefixes read.
    pub prefixes: LabelPrefixes,
    /// What started the job.
    pub trigger: Trigger,
    /// Who asked, described safely.
    pub caller: String,
    /// How helpers on other nodes are made.
    pub helpers: HelperSettings,
    /// Cancels the job at its next safe point; what it started is still cleaned up.
    pub cancel: CancellationToken,
    /// How many tasks, nodes or services are worked on at once.
    pub concurrency: usize,
    /// For a cron run, the tick it runs for (RFC 3339, UTC): the job's `scheduled_at`.
    pub scheduled_at: Option<String>,
    /// The instance's scope (`scope.selector`, label key and value): the jobs that act on
    /// their own, such as [`reconcile`](crate::steps::scale::reconcile), leave targets outside it alone.
    pub scope: Option<(String, String)>,
    /// Masks every step's text before any sink, store or answer sees it: the secrets the
    /// front-end was given (`config::Configuration::known_secrets`) and secret-shaped
    /// values (R3-14).
    pub redactor: std::sync::Arc<dockhand_policy::Redactor>,
}

impl JobContext {
    /// A context on `client` with the seed's defaults, `dockhand.` labels, default helpers,
    /// 8 at once, and locks held as this process.
    pub fn new(client: Client, hostname: &str, trigger: Trigger, caller: impl Into<String>) -> Self {
        let defaults = Defaults::default();
        let settings = crate::LockSettings::default().with_acquire_timeout(defaults.lock_timeout);
        // One swarm for the jobs' logic and their locks: `with_swarm` replaces both.
        let swarm: std::sync::Arc<dyn Swarm> = std::sync::Arc::new(client.clone());
        Self {
            locks: Locks::on(std::sync::Arc::clone(&swarm), Locks::process_holder(hostname), settings),
            swarm,
            helpers: HelperSettings::default().with_pending_timeout(defaults.pending_timeout),
            client,
            defaults,
            prefixes: LabelPrefixes::default(),
            trigger,
            caller: caller.into(),
            cancel: CancellationToken::new(),
            concurrency: 8,
            scheduled_at: None,
            scope: None,
            redactor: std::sync::Arc::new(dockhand_policy::Redactor::default()),
        }
    }
}

/// What a front-end chooses for the jobs it runs; [`JobContext::assemble`] builds the rest
/// the same way for the CLI and the server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ContextChoices<'a> {
    /// `--helper-image` / `DOCKHAND_HELPER_IMAGE`, when set.
    pub helper_image: Option<&'a str>,
    /// The `dockhand` executable an image is made from for helpers on the connected node.
    pub own: Option<crate::own_image::OwnExecutable>,
    /// How long a pending helper may wait for its node; `None`: the defaults' (the seed's
    /// `SWARM_UTILS_PENDING_TIMEOUT`).
    pub pending_timeout: Option<std::time::Duration>,
    /// The engine socket helpers mount; `None`: the default.
    pub helper_socket: Option<&'a str>,
    /// The locks' lease and wait.
    pub locks: crate::lock::LockSettings,
    /// The seed's defaults, with its `SWARM_UTILS_*` variables applied.
    pub defaults: Defaults,
    /// The label prefixes read.
    pub prefixes: LabelPrefixes,
    /// The registries a configured helper image is pulled with.
    pub registries: Option<&'a crate::registry::Registries>,
    /// Masks every step's text (`config::Configuration::known_secrets`).
    pub redactor: std::sync::Arc<dockhand_policy::Redactor>,
}

impl<'a> ContextChoices<'a> {
    /// The seed's defaults, `dockhand.` labels, no helper image and no secrets.
    pub fn new(defaults: Defaults) -> Self {
        Self {
            helper_image: None,
            own: None,
            pending_timeout: None,
            helper_socket: None,
            locks: crate::lock::LockSettings::default().with_acquire_timeout(defaults.lock_timeout),
            defaults,
            prefixes: LabelPrefixes::default(),
            registries: None,
            redactor: std::sync::Arc::new(dockhand_policy::Redactor::default()),
        }
    }
}

impl JobContext {
    /// The one constructor of a configured context, shared by the front-ends: the helpers'
    /// image (an explicit one, the service's own pinned image, or one made from `own` for
    /// the connected node), pulled with its registry's credential where the registries have
    /// one; locks held as this process with `choices.locks`; the defaults, prefixes and
    /// redactor given. [`Configuration::context_choices`](crate::config::Configuration::context_choices)
    /// makes the choices the configuration decides.
    pub async fn assemble(
        client: Client,
        trigger: Trigger,
        caller: impl Into<String>,
        choices: ContextChoices<'_>,
    ) -> Result<Self, crate::registry::RegistryError> {
        let host = crate::lock::local_hostname();
        let mut ctx = Self::new(client, &host, trigger, caller);
        let mut helpers = crate::helper::image::helper_image(&ctx.client, choices.helper_image, choices.own)
            .await
            .with_pending_timeout(choices.pending_timeout.unwrap_or(choices.defaults.pending_timeout));
        if let Some(socket) = choices.helper_socket {
            helpers = helpers.with_socket(socket);
        }
        let image = choices.helper_image.map(str::trim).filter(|i| !i.is_empty());
        if let (Some(image), Some(registries)) = (image, choices.registries) {
            if let Ok(image) = dockhand_policy::ImageRef::parse(image) {
                let credential = registries.credential_for_helper(&image).await?;
                helpers = helpers.with_auth(credential.map(|c| c.auth));
            }
        }
        ctx.helpers = helpers;
        ctx.locks = Locks::on(std::sync::Arc::clone(&ctx.swarm), Locks::process_holder(&host), choices.locks);
        ctx.defaults = choices.defaults;
        ctx.prefixes = choices.prefixes;
        ctx.redactor = choices.redactor;
        Ok(ctx)
    }

    /// This context with `swarm` for the jobs' logic, its locks included (held as the same
    /// holder).
    #[must_use]
    pub fn with_swarm(mut self, swarm: std::sync::Arc<dyn Swarm>) -> Self {
        self.locks = self.locks.with_swarm(std::sync::Arc::clone(&swarm));
        self.swarm = swarm;
        self
    }
}

/// Why a job could not run at all (as opposed to a job that ran and failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// No node has that ID or hostname.
    #[error("no node {0:?} in the swarm")]
    UnknownNode(String),
    /// Several nodes have that hostname.
    #[error("several nodes are named {name:?}: give one of their IDs ({})", ids.join(", "))]
    AmbiguousHostname {
        /// The hostname.
        name: String,
        /// Their IDs.
        ids: Vec<String>,
    },
    /// No service has that name or ID.
    #[error("no service {0:?} in the swarm")]
    UnknownService(String),
    /// A node other than this engine's own was asked of an engine that is not a manager.
    #[error(
        "{connected} is not a swarm manager, so it can only clean itself, not node {node}: connect to a \
         manager (or to {node}'s engine)"
    )]
    Elsewhere {
        /// The node asked for.
        node: String,
        /// The engine dockhand talks to.
        connected: String,
    },
    /// Service jobs need a manager.
    #[error("{0} is not a swarm manager: service jobs need the engine of a swarm manager")]
    NotManager(String),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] dockhand_engine::Error),
    /// The lock could not be read or written.
    #[error(transparent)]
    Lock(LockError),
}

/// A job while it runs.
pub(crate) struct Running<'a> {
    pub(crate) ctx: &'a JobContext,
    sink: &'a dyn Sink,
    pub(crate) job: Job,
    guard: Option<LockGuard>,
}

impl<'a> Running<'a> {
    /// Starts `action` on `target` and reports it.
    pub(crate) fn start(ctx: &'a JobContext, sink: &'a dyn Sink, action: Action, target: Target) -> Self {
        let mut job = Job::start(action, target, ctx.trigger, ctx.caller.clone(), SystemTime::now());
        job.scheduled_at.clone_from(&ctx.scheduled_at);
        sink.event(&Event::JobStarted { job: job.clone() });
        Self { ctx, sink, job, guard: None }
    }

    /// Reports a step that starts.
    pub(crate) fn started(&self, step: &Step) {
        self.sink.event(&Event::StepStarted { job: self.job.id.clone(), step: step.clone() });
    }

    /// Records a finished step and reports it, its free text redacted: output from a
    /// node's agent (of any version) is masked here before any sink sees it.
    pub(crate) fn push(&mut self, mut step: Step) {
        step.redact(&self.ctx.redactor);
        self.sink.event(&Event::StepFinished { job: self.job.id.clone(), step: step.clone() });
        self.job.steps.push(step);
    }

    /// Records a step that ended at once: a refusal, a skip, a busy target.
    pub(crate) fn push_now(&mut self, kind: &str, status: Status, reason: String) {
        let mut step = Step::start(kind, SystemTime::now());
        step.finish(status, SystemTime::now(), Some(reason));
        self.push(step);
    }

    /// Reports progress.
    pub(crate) fn progress(&self, message: String) {
        self.sink.event(&Event::Progress { job: self.job.id.clone(), message });
    }

    /// Takes the target's lock, then clears leftover helpers on it. When the job cannot go
    /// on, `Err` holds how it ends: `busy` (another job holds the lock, or a helper a
    /// stopped dockhand left still works; recorded as a `lock` step), `cancelled` (while
    /// waiting), or failed (the lock could not be read or written; `None`, with the step).
    pub(crate) async fn lock(&mut self, target: LockTarget) -> Result<(), Option<Status>> {
        let acquired = tokio::select! {
            // A lock lost while the job runs cancels it at once (R3-08).
            acquired = self.ctx.locks.acquire_cancelling(&target, &self.job.id, self.ctx.cancel.clone()) => acquired,
            () = self.ctx.cancel.cancelled() => return Err(Some(Status::Cancelled)),
        };
        match acquired {
            Ok(guard) => self.guard = Some(guard),
            Err(LockError::Busy { job, .. }) => {
                self.sink.event(&Event::Busy { job: self.job.id.clone(), holder: job.clone() });
                self.push_now(
                    "lock",
                    Status::Busy,
                    format!("job {job} holds the lock of {}", target.label()),
                );
                return Err(Some(Status::Busy));
            }
            Err(e) => {
                self.push_now("lock", Status::Failed, e.to_string());
                return Err(None);
            }
        }
        match clear_leftovers(&*self.ctx.swarm, &target.label()).await {
            Ok(None) => {
                self.sink.event(&Event::Locked { job: self.job.id.clone() });
                Ok(())
            }
            Ok(Some(job)) => {
                self.sink.event(&Event::Busy { job: self.job.id.clone(), holder: job.clone() });
                self.push_now(
                    "lock",
                    Status::Busy,
                    format!(
                        "a helper of job {job} still works on {} (left by a dockhand that stopped)",
                        target.label()
                    ),
                );
                Err(Some(Status::Busy))
            }
            Err(e) => {
                self.push_now("leftovers", Status::Failed, e.to_string());
                Err(None)
            }
        }
    }

    /// A failed or cancelled helper, started at `started`, as a step of `kind` on `node`.
    pub(crate) fn helper_failed(&mut self, kind: &str, node: &str, started: SystemTime, error: &HelperError) {
        let mut step = Step::start(kind, started);
        step.node = Some(node.to_owned());
        let status = if *error == HelperError::Cancelled { Status::Cancelled } else { Status::Failed };
        step.finish(status, SystemTime::now(), Some(error.to_string()));
        self.push(step);
    }

    /// Ends the job: `status` when given (refused, busy), `cancelled` when the token fired,
    /// else the steps' aggregate; releases the lock.
    pub(crate) async fn finish(mut self, status: Option<Status>) -> Job {
        if let Some(guard) = self.guard.take() {
            if guard.is_lost() {
                self.push_now(
                    "lock",
                    Status::Failed,
                    "the lock was lost while the job ran (taken over, or not renewed for a whole lease): the job \
                     was cancelled at once"
                        .to_owned(),
                );
            }
            if let Err(e) = guard.release().await {
                tracing::warn!(error = %e, "cannot release a lock; it frees itself when its lease ends");
            }
        }
        let status = status.or_else(|| self.ctx.cancel.is_cancelled().then_some(Status::Cancelled));
        self.job.finish(SystemTime::now(), status);
        self.sink.event(&Event::JobFinished { job: self.job.clone() });
        self.job
    }
}
