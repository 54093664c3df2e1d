//! The job model: one action on one target, its steps, and the events a runner reports to
//! a caller's sink. Pure data: no engine, no clock of its own.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Action {
    /// Prune a node's stopped containers, unused images and build cache.
    CleanNode,
    /// Run `clean.exec` in every task of a service.
    CleanService,
    /// Back a service's volumes up to a storage target.
    BackupService,
    /// Back up the volumes a node's labels list.
    BackupNode,
    /// Restore a service's volumes from a storage target.
    Restore,
    /// Bring back a service a stopped dockhand left scaled down (its intent label).
    Reconcile,
    /// Move a volume's contents from one node to another.
    VolumeMove,
    /// Deploy a new image (pinned by digest) to a service.
    UpdateService,
}

/// Every action.
pub const ALL_ACTIONS: [Action; 8] = [
    Action::CleanNode,
    Action::CleanService,
    Action::BackupService,
    Action::BackupNode,
    Action::Restore,
    Action::Reconcile,
    Action::VolumeMove,
    Action::UpdateService,
];

impl Action {
    /// `clean-node`, `clean-service`, `backup-service`, `backup-node`, `restore`, `reconcile`,
    /// `volume-move`, `update-service`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CleanNode => "clean-node",
            Self::CleanService => "clean-service",
            Self::BackupService => "backup-service",
            Self::BackupNode => "backup-node",
            Self::Restore => "restore",
            Self::Reconcile => "reconcile",
            Self::VolumeMove => "volume-move",
            Self::UpdateService => "update-service",
        }
    }
}

/// What a job acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Target {
    /// A node, by ID, with its hostname.
    Node {
        /// Its ID.
        id: String,
        /// Its hostname.
        hostname: String,
    },
    /// A service, by ID, with its name.
    Service {
        /// Its ID.
        id: String,
        /// Its name.
        name: String,
    },
}

impl Target {
    /// `node/<hostname>` or `service/<name>`, for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Node { hostname, .. } => format!("node/{hostname}"),
            Self::Service { name, .. } => format!("service/{name}"),
        }
    }
}

/// What started a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Trigger {
    /// The `dockhand` CLI.
    Cli,
    /// An API request to `dockhand-server`.
    Api,
    /// The scheduler.
    Cron,
}

/// How a job or a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Still running.
    Running,
    /// Every step succeeded (or was skipped with a reason).
    Succeeded,
    /// A step failed.
    Failed,
    /// Cancelled; what it started was cleaned up.
    Cancelled,
    /// The policy refused it.
    Refused,
    /// Another job held the target's lock.
    Busy,
    /// Skipped, with a reason (a node that is down, a disabled prune).
    Skipped,
    /// The process running it stopped (a replica killed, a machine lost) and stopped
    /// renewing its lease; another process marked it and cleaned up after it.
    Interrupted,
    /// Watch mode with `update.auto=notify`: the followed tag moved to a digest the service
    /// does not run; recorded and notified, not applied.
    Available,
}

impl Status {
    /// Its word, as in JSON: `running`, `succeeded`, `failed`…
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Refused => "refused",
            Self::Busy => "busy",
            Self::Skipped => "skipped",
            Self::Interrupted => "interrupted",
            Self::Available => "available",
        }
    }
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Step {
    /// What it does, such as `container-prune` or `exec`.
    pub kind: String,
    /// The node it ran on (hostname).
    pub node: Option<String>,
    /// The task, for service steps.
    pub task: Option<String>,
    /// The container, for exec steps.
    pub container: Option<String>,
    /// When it started, in milliseconds since the epoch.
    pub started_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// Its status.
    pub status: Status,
    /// The exit code of a command.
    pub exit_code: Option<i64>,
    /// The end of its output, bounded and redacted.
    pub output_tail: Option<String>,
    /// Space reclaimed by a prune.
    pub reclaimed_bytes: Option<u64>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// The object a transfer wrote or read, relative to its storage target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Bytes a transfer moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// How an upload's archive left its container, or a restore's reached it, on the
    /// connected node: `channel` (a unix socket of dockhand's, bind-mounted into it) or
    /// `exec` (the engine's exec stream); `network` for a restore on another node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The storage target an upload wrote to, by name: a backup to several
    /// targets (`backup.target=near,far`) has an upload step per volume and target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl Step {
    /// A step of `kind` starting now.
    pub fn start(kind: impl Into<String>, now: SystemTime) -> Self {
        Self {
            kind: kind.into(),
            node: None,
            task: None,
            container: None,
            started_ms: epoch_ms(now),
            duration_ms: 0,
            status: Status::Running,
            exit_code: None,
            output_tail: None,
            reclaimed_bytes: None,
            error: None,
            object: None,
            bytes: None,
            via: None,
            storage: None,
        }
    }

    /// Masks secret-looking values in its output tail and error.
    pub fn redact(&mut self, redactor: &dockhand_policy::Redactor) {
        self.output_tail = self.output_tail.as_deref().map(|t| redactor.redact(t));
        self.error = self.error.as_deref().map(|e| redactor.redact(e));
    }

    /// Ends it as `status` at `now`, with an error for a failure or a skip.
    pub fn finish(&mut self, status: Status, now: SystemTime, error: Option<String>) {
        self.status = status;
        self.duration_ms = epoch_ms(now).saturating_sub(self.started_ms);
        self.error = error;
    }
}

/// One action on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Sortable and unique: the start time, then randomness.
    pub id: String,
    /// What it does.
    pub action: Action,
    /// What it acts on.
    pub target: Target,
    /// What started it.
    pub trigger: Trigger,
    /// Who asked, described safely (`admin#1`, `token sha256:1a2b…`, `gitlab:group/app@…`,
    /// `cli:<user>`): never a secret.
    pub caller: String,
    /// When it started, in milliseconds since the epoch.
    pub started_ms: u64,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// How it ended.
    pub status: Status,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// For a cron run, the tick it ran for (RFC 3339, UTC): earlier than `started_ms` by
    /// the time the job waited for a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    /// For update-service, once resolved: the image it deployed or tried, pinned by digest
    /// (`repository:tag@sha256:…`), what watch mode remembers a failed update by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl Job {
    /// A job starting now.
    pub fn start(
        action: Action,
        target: Target,
        trigger: Trigger,
        caller: impl Into<String>,
        now: SystemTime,
    ) -> Self {
        Self {
            id: job_id(now),
            action,
            target,
            trigger,
            caller: caller.into(),
            started_ms: epoch_ms(now),
            ended_ms: None,
            status: Status::Running,
            steps: Vec::new(),
            scheduled_at: None,
            image: None,
        }
    }

    /// Ends it: failed when any step failed (as in the seed), succeeded otherwise, unless
    /// `status` says it was cancelled, refused or busy.
    pub fn finish(&mut self, now: SystemTime, status: Option<Status>) {
        self.ended_ms = Some(epoch_ms(now));
        self.status = status.unwrap_or_else(|| aggregate(&self.steps));
    }
}

/// Any failed step fails the job; skipped steps do not.
pub fn aggregate(steps: &[Step]) -> Status {
    if steps.iter().any(|s| s.status == Status::Failed || s.status == Status::Running) {
        Status::Failed
    } else {
        Status::Succeeded
    }
}

/// Milliseconds since the epoch.
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A sortable unique ID: 12 hex digits of milliseconds, then 8 of nanoseconds and a
/// process-wide counter, so IDs sort by start time and never repeat within a process.
pub(crate) fn job_id(now: SystemTime) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!(
        "{:012x}{:05x}{:04x}{:04x}",
        epoch_ms(now),
        nanos & 0xf_ffff,
        std::process::id() & 0xffff,
        n & 0xffff
    )
}

/// What a runner reports while a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// The job started.
    JobStarted {
        /// The job, as it starts.
        job: Job,
    },
    /// A step started.
    StepStarted {
        /// The job.
        job: String,
        /// The step, as it starts.
        step: Step,
    },
    /// A step finished.
    StepFinished {
        /// The job.
        job: String,
        /// The step, as it ended.
        step: Step,
    },
    /// The job holds its target's lock: from here on it runs to its end (what a server
    /// waits for before it answers "accepted").
    Locked {
        /// The job.
        job: String,
    },
    /// Another job holds the target's lock, so this one ends busy.
    Busy {
        /// The job.
        job: String,
        /// The job that holds the lock.
        holder: String,
    },
    /// Something worth showing while a step waits (a helper pending on a node, ...).
    Progress {
        /// The job.
        job: String,
        /// What happens.
        message: String,
    },
    /// The job finished.
    JobFinished {
        /// The job, as it ended.
        job: Job,
    },
}

/// Where a runner reports: the CLI draws from it, the server stores it, tests collect it.
pub trait Sink: Send + Sync {
    /// One event.
    fn event(&self, event: &Event);
}

/// A sink that keeps every event, for tests and for callers that read them afterwards.
#[derive(Debug, Default)]
pub struct Collect(std::sync::Mutex<Vec<Event>>);

impl Collect {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Sink for Collect {
    fn event(&self, event: &Event) {
        if let Ok(mut events) = self.0.lock() {
            events.push(event.clone());
        }
    }
}

pub(crate) fn failed(job: &Job) -> bool {
    job.steps.iter().any(|s| matches!(s.status, Status::Failed | Status::Cancelled))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn step(status: Status) -> Step {
        let mut s = Step::start("x", UNIX_EPOCH);
        s.finish(status, UNIX_EPOCH + Duration::from_millis(5), None);
        s
    }

    /// A status's word is its JSON, for every status.
    #[test]
    fn a_status_word_is_its_json() {
        use Status::*;
        for status in [Running, Succeeded, Failed, Cancelled, Refused, Busy, Skipped, Interrupted, Available]
        {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn any_failed_step_fails_the_job_and_skips_do_not() {
        assert_eq!(aggregate(&[]), Status::Succeeded);
        assert_eq!(aggregate(&[step(Status::Succeeded), step(Status::Skipped)]), Status::Succeeded);
        assert_eq!(aggregate(&[step(Status::Succeeded), step(Status::Failed)]), Status::Failed);
        assert_eq!(step(Status::Succeeded).duration_ms, 5);
    }

    #[test]
    fn ids_sort_by_start_and_never_repeat() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = job_id(t);
        let b = job_id(t);
        let c = job_id(t + Duration::from_millis(1));
        assert!(a != b && a < c && b < c, "{a} {b} {c}");
        assert_eq!(a.len(), 25);
    }

    #[test]
    fn a_finished_job_says_how_and_serializes_without_secrets() {
        let target = Target::Node { id: "n1".into(), hostname: "node1".into() };
        let mut job = Job::start(Action::CleanNode, target, Trigger::Cli, "cli:ops", UNIX_EPOCH);
        job.steps.push(step(Status::Failed));
        job.finish(UNIX_EPOCH + Duration::from_secs(1), None);
        assert_eq!(job.status, Status::Failed);
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["action"], "clean-node");
        assert_eq!(json["target"]["kind"], "node");
        assert_eq!(json["status"], "failed");
        job.finish(UNIX_EPOCH, Some(Status::Busy));
        assert_eq!(job.status, Status::Busy);
    }
}
