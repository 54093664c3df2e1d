//! The scheduler: seed 002's cron, grown. Each action has its own expression (or `off`)
//! in the `schedule:` section, the seed's `SWARM_UTILS_CRON_EXPR` and
//! `SWARM_UTILS_IS_CRON_*` map onto it, and a target's own `clean.schedule` or
//! `backup.schedule` label overrides it for that target.
//!
//! A tick runs every enabled target of every action whose expression fires then: cleans
//! first, then backups (the seed's order), with a bound on how many run at once; one
//! target's failure never stops the others. Each (action, target, tick) is claimed in the
//! job store before it runs, so replicas that share a store run it once. A tick that no
//! process picked up in time is recorded as skipped, never run late.
//!
//! Watch mode's ticks (`update.auto`, `watch.rs`) come last: one look at the
//! registries for every service due, one request per distinct tag; a moved tag runs
//! update-service pinned to the new digest; `notify` records an `available` job; a skip is
//! recorded with its reason. A notice or a skip is recorded once, not at every tick that
//! finds the same.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use dockhand_engine::{Filters, Node, Service};
use dockhand_policy::{CronExpr, Defaults, LabelPrefixes, TargetLabels, Timing};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::job::{Action, Job, Status, Step, Target, Trigger};
pub use crate::plan::{PlanRow, Watched, plan, with_watch};
use crate::registry::Registries;
use crate::runner::JobContext;
use crate::storage::targets::StorageTargets;
use crate::store::JobStore;
pub use crate::watch::{Look, RegistryRequest, Watcher};
pub use crate::work::{Order, Work};
pub use settings::Schedule;

/// The seed's expression (`SWARM_UTILS_CRON_EXPR`'s default): every day at 03:00:00.
pub const SEED_CRON: &str = "0 0 3 * * *";

/// The actions cron runs, in the order a tick runs them: cleans, then backups, then watch
/// mode's updates (`schedule.update-service`, off by default).
pub const SCHEDULED_ACTIONS: [Action; 5] = [
    Action::CleanNode,
    Action::CleanService,
    Action::BackupService,
    Action::BackupNode,
    Action::UpdateService,
];

/// At most how late a tick may be picked up before it counts as missed.
const GRACE: Duration = Duration::from_secs(30);
/// How often the targets are listed again when no tick comes sooner.
const REFRESH: Duration = Duration::from_secs(30);

/// One target cron runs an action on, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scheduled {
    /// The action.
    pub action: Action,
    /// The target.
    pub target: Target,
    /// `service/<id>` or `node/<id>`: the key of its claims and of its lock.
    pub key: String,
    /// When.
    pub cron: CronExpr,
    /// What set it: `label dockhand.backup.schedule`, `schedule.backup-service`, ...
    pub source: String,
}

impl Scheduled {
    /// The time between its next two runs after `now` in `zone`: what "on schedule" means
    /// for this target and action (a daily `0 0 3 * * *` is a day).
    pub fn interval(&self, zone: chrono_tz::Tz, now: DateTime<Utc>) -> Option<std::time::Duration> {
        let first = self.cron.next_after(now, zone)?;
        let second = self.cron.next_after(first, zone)?;
        (second - first).to_std().ok()
    }
}

/// The timing of `action` for a target: its own label (`short` under the prefixes) when
/// it has one, else the global setting; with what set it.
pub(crate) fn target_timing(
    schedule: &Schedule,
    action: Action,
    label: Option<&Timing>,
    labels: &TargetLabels<'_>,
    short: &str,
) -> Option<(Timing, String)> {
    match (label, labels.get(short)) {
        (Some(timing), Some((key, _))) => Some((timing.clone(), format!("label {key}"))),
        _ => schedule.timing(action).map(|(t, s)| (t.clone(), s.to_owned())),
    }
}

/// Every target whose labels enable an action cron runs, with the expression it runs on;
/// targets with `off` are left out.
pub fn scheduled_targets(
    services: &[Service],
    nodes: &[Node],
    schedule: &Schedule,
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> Vec<Scheduled> {
    let mut out = Vec::new();
    let mut push = |action: Action, target: &Target, key: String, timing: Option<(Timing, String)>| {
        if let Some((Timing::Cron(cron), source)) = timing {
            out.push(Scheduled { action, target: target.clone(), key, cron, source });
        }
    };
    for node in nodes {
        let labels = &node.spec.labels;
        let view = TargetLabels::resolve(labels, prefixes);
        let target = Target::Node { id: node.id.clone(), hostname: node.description.hostname.clone() };
        let key = format!("node/{}", node.id);
        if let (Some(policy), _) = dockhand_policy::node_policy(labels, defaults, prefixes) {
            let timing =
                target_timing(schedule, Action::CleanNode, policy.schedule.as_ref(), &view, "clean.schedule");
            push(Action::CleanNode, &target, key.clone(), timing);
        }
        // Node backups are opt-in: `backup.enable=true` on the node.
        if let (Some(policy), _) = dockhand_policy::node_backup_policy(labels, defaults, prefixes) {
            let timing = target_timing(
                schedule,
                Action::BackupNode,
                policy.schedule.as_ref(),
                &view,
                "backup.schedule",
            );
            push(Action::BackupNode, &target, key, timing);
        }
    }
    for service in services {
        let labels = &service.spec.labels;
        let (policy, _) =
            dockhand_policy::service_policy(labels, service.spec.is_global(), defaults, prefixes);
        let view = TargetLabels::resolve(labels, prefixes);
        let target = Target::Service { id: service.id.clone(), name: service.spec.name.clone() };
        let key = format!("service/{}", service.id);
        // An enabled action, with the target's own schedule label if any.
        let enabled = [
            (Action::CleanService, policy.clean.as_ref().map(|c| c.schedule.as_ref()), "clean.schedule"),
            (Action::BackupService, policy.backup.as_ref().map(|b| b.schedule.as_ref()), "backup.schedule"),
        ];
        for (action, label, short) in enabled {
            if let Some(label) = label {
                push(action, &target, key.clone(), target_timing(schedule, action, label, &view, short));
            }
        }
        // Watch mode: `update.enable=true` and `update.auto` set.
        if let Some(update) = policy.update.as_ref().filter(|u| u.auto != dockhand_policy::AutoUpdate::Off) {
            let action = Action::UpdateService;
            let label = update.auto_schedule.as_ref();
            push(
                action,
                &target,
                key.clone(),
                target_timing(schedule, action, label, &view, "update.auto.schedule"),
            );
        }
    }
    out
}

/// Fills the plan's `schedule` and `next_run` for the actions cron runs: the expression
/// and what set it, or `off`, and the next time after `now`.
pub fn with_next_runs(
    rows: &mut [crate::plan::PlanRow],
    scheduled: &[Scheduled],
    schedule: &Schedule,
    now: DateTime<Utc>,
) {
    for row in rows.iter_mut().filter(|r| r.enabled) {
        if !SCHEDULED_ACTIONS.iter().any(|a| a.as_str() == row.action) {
            continue;
        }
        let found =
            scheduled.iter().find(|e| e.action.as_str() == row.action && e.target.describe() == row.target);
        match found {
            Some(entry) => {
                row.schedule = Some(format!("{} ({})", entry.cron, entry.source));
                row.next_run = entry.cron.next_after(now, schedule.timezone).map(tick_text);
            }
            None => row.schedule = Some("off".to_owned()),
        }
    }
}

/// A tick's time as jobs show it: RFC 3339, UTC, to the second.
pub fn tick_text(tick: DateTime<Utc>) -> String {
    tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How a launched job went.
#[derive(Debug)]
#[non_exhaustive]
pub enum Launched {
    /// It ran (its record is in the store).
    Ran(Box<Job>),
    /// Another job holds the target: its ID, when known.
    Busy(Option<String>),
    /// It could not start.
    NotRun(String),
}

/// Runs a scheduled job to its end, recording it: the server's dispatcher, or anything
/// that embeds the scheduler.
pub trait Launcher: Send + Sync {
    /// Runs `work` on the target `key` with `ctx`, waiting for a slot.
    fn launch(&self, key: String, ctx: JobContext, work: Work) -> BoxFuture<'_, Launched>;
}

/// The scheduler: lists targets, sleeps until the next tick, and launches what is due.
pub struct Scheduler {
    schedule: Schedule,
    base: JobContext,
    store: Arc<dyn JobStore>,
    storage: Arc<StorageTargets>,
    scope: Option<(String, String)>,
    concurrency: usize,
    instance: String,
    recorded: Recorded,
    registries: Arc<Registries>,
    looked: Looked,
    planned: Planned,
    watcher: std::sync::OnceLock<Arc<Watcher>>,
}

/// Hears of each job the scheduler records itself.
pub type Recorded = Arc<dyn Fn(&Job) + Send + Sync>;

/// Hears of the scheduled targets each time the scheduler lists them, with its time zone
/// (metrics: each one's interval).
pub type Planned = Arc<dyn Fn(&[Scheduled], chrono_tz::Tz) + Send + Sync>;

/// Hears of each look watch mode takes at a tick (metrics).
pub type Looked = Arc<dyn Fn(&Look) + Send + Sync>;

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("schedule", &self.schedule)
            .field("scope", &self.scope)
            .field("concurrency", &self.concurrency)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Runs `schedule` with the engine, defaults and prefixes of `base`, claiming ticks in
    /// `store` as `instance`; 4 jobs at once.
    pub fn new(
        schedule: Schedule,
        base: JobContext,
        store: Arc<dyn JobStore>,
        storage: Arc<StorageTargets>,
        instance: impl Into<String>,
    ) -> Self {
        Self {
            schedule,
            base,
            store,
            storage,
            scope: None,
            concurrency: 4,
            instance: instance.into(),
            recorded: Arc::new(|_| {}),
            registries: Arc::new(Registries::none()),
            looked: Arc::new(|_| {}),
            planned: Arc::new(|_, _| {}),
            watcher: std::sync::OnceLock::new(),
        }
    }

    /// Watch mode resolves tags and pulls with these credentials (default: none).
    pub fn with_registries(mut self, registries: Arc<Registries>) -> Self {
        self.registries = registries;
        self
    }

    /// Watch mode asks registries through `watcher` (default: its own, made at the first
    /// watch tick): a server shares one with its status route.
    pub fn with_watcher(self, watcher: Arc<Watcher>) -> Self {
        let _ = self.watcher.set(watcher);
        self
    }

    /// The watcher, made at the first tick that needs one.
    fn watcher(&self) -> Result<&Arc<Watcher>, crate::http::HttpClientError> {
        if let Some(watcher) = self.watcher.get() {
            return Ok(watcher);
        }
        let made = Arc::new(Watcher::new()?);
        Ok(self.watcher.get_or_init(|| made))
    }

    /// Tells `planned` of the scheduled targets each time they are listed.
    pub fn with_planned(mut self, planned: Planned) -> Self {
        self.planned = planned;
        self
    }

    /// Tells `looked` of each look watch mode takes.
    pub fn with_looked(mut self, looked: Looked) -> Self {
        self.looked = looked;
        self
    }

    /// Only targets with the label `key=value`.
    pub fn with_scope(mut self, scope: Option<(String, String)>) -> Self {
        self.scope = scope;
        self
    }

    /// Tells `recorded` of each job the scheduler records itself (busy, skipped, not
    /// started), after it is stored, for metrics and notifications; the launcher's own jobs
    /// are its to count and notify.
    pub fn with_recorded(mut self, recorded: Recorded) -> Self {
        self.recorded = recorded;
        self
    }

    /// At most `n` jobs at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Only the targets in scope.
    fn filters(&self) -> Filters {
        let mut filters = Filters::new();
        if let Some((key, value)) = &self.scope {
            filters = filters.with("label", format!("{key}={value}"));
        }
        filters
    }

    /// The targets cron runs now.
    pub async fn targets(&self) -> Result<Vec<Scheduled>, dockhand_engine::Error> {
        let filters = self.filters();
        let services = self.base.swarm.services(&filters).await?;
        let nodes = self.base.swarm.nodes(&filters).await?;
        Ok(scheduled_targets(&services, &nodes, &self.schedule, &self.base.defaults, &self.base.prefixes))
    }

    /// How late a tick of `cron` may start: half its period, at most [`GRACE`].
    fn grace(&self, cron: &CronExpr, tick: DateTime<Utc>) -> chrono::Duration {
        let max = chrono::Duration::from_std(GRACE).unwrap_or(chrono::Duration::MAX);
        match cron.next_after(tick, self.schedule.timezone) {
            Some(next) => ((next - tick) / 2).min(max),
            None => max,
        }
    }

    /// Runs until `cancel`, then waits for the jobs it launched.
    pub async fn run(self: Arc<Self>, launcher: Arc<dyn Launcher>, cancel: CancellationToken) {
        if !self.schedule.enabled {
            tracing::info!("cron is off (schedule.enabled: false)");
            return;
        }
        let tracker = TaskTracker::new();
        let zone = self.schedule.timezone;
        let mut entries = self.targets().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cron: cannot list the targets");
            Vec::new()
        });
        (self.planned)(&entries, zone);
        let started = Utc::now();
        self.record_missed(&entries, started).await;
        let mut cursor = started;
        loop {
            let now = Utc::now();
            let refresh = now + chrono::Duration::from_std(REFRESH).unwrap_or_default();
            let next = entries.iter().filter_map(|e| e.cron.next_after(cursor, zone)).min();
            let wake = next.map_or(refresh, |n| n.min(refresh));
            let pause = (wake - now).to_std().unwrap_or_default();
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
            let now = Utc::now();
            match self.targets().await {
                Ok(listed) => {
                    entries = listed;
                    (self.planned)(&entries, zone);
                }
                Err(e) => tracing::warn!(error = %e, "cron: cannot list the targets; using the last list"),
            }
            let mut due: Vec<(DateTime<Utc>, Scheduled)> = Vec::new();
            for entry in &entries {
                let Some((tick, count)) = entry.cron.fired_between(cursor, now, zone, 10_000) else {
                    continue;
                };
                if now - tick > self.grace(&entry.cron, tick) {
                    let why = format!("picked up {} s late: not run late", (now - tick).num_seconds());
                    self.record_skipped(entry, tick, &why).await;
                } else {
                    if count > 1 {
                        let why = format!("{} earlier ticks were not picked up in time", count - 1);
                        if let Some(before) = entry.cron.previous_before(tick, zone) {
                            self.record_skipped(entry, before, &why).await;
                        }
                    }
                    due.push((tick, entry.clone()));
                }
            }
            cursor = now;
            if !due.is_empty() {
                let this = Arc::clone(&self);
                let launcher = Arc::clone(&launcher);
                tracker.spawn(async move { this.run_due(due, launcher.as_ref()).await });
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    /// Runs one tick at `tick` now, whatever the clock says: lists the targets, and runs
    /// every one whose expression fires at `tick` (claimed as usual); returns how many were
    /// due. For tests and benchmarks; [`Scheduler::run`] is the loop.
    pub async fn run_tick(
        &self,
        tick: DateTime<Utc>,
        launcher: &dyn Launcher,
    ) -> Result<usize, dockhand_engine::Error> {
        let zone = self.schedule.timezone;
        let before = tick - chrono::Duration::milliseconds(1);
        let due: Vec<(DateTime<Utc>, Scheduled)> = self
            .targets()
            .await?
            .into_iter()
            .filter(|e| e.cron.next_after(before, zone) == Some(tick))
            .map(|e| (tick, e))
            .collect();
        let n = due.len();
        self.run_due(due, launcher).await;
        Ok(n)
    }

    /// Runs what is due: claims it all at once, then every clean, then every backup, then
    /// watch mode's updates, at most `concurrency` at once.
    async fn run_due(&self, due: Vec<(DateTime<Utc>, Scheduled)>, launcher: &dyn Launcher) {
        use futures_util::StreamExt;
        let claimed = self.claim(&due).await;
        let due = due.into_iter().zip(claimed).filter_map(|(d, c)| c.then_some(d));
        let (watched, due): (Vec<_>, Vec<_>) = due.partition(|(_, e)| e.action == Action::UpdateService);
        let (cleans, backups): (Vec<_>, Vec<_>) =
            due.into_iter().partition(|(_, e)| e.action != Action::BackupService);
        for phase in [cleans, backups] {
            futures_util::stream::iter(phase)
                .for_each_concurrent(self.concurrency, |(tick, entry)| async move {
                    self.run_one(tick, &entry, launcher).await;
                })
                .await;
        }
        if !watched.is_empty() {
            self.watch(watched, launcher).await;
        }
    }

    /// Runs one claimed tick of one target.
    async fn run_one(&self, tick: DateTime<Utc>, entry: &Scheduled, launcher: &dyn Launcher) {
        let Some(order) = Order::scheduled(entry.action, &self.storage) else {
            let why = format!("cron does not run {}", entry.action.as_str());
            self.record(entry, tick, Status::Failed, "start", &why).await;
            return;
        };
        self.launch(tick, entry, order, launcher).await;
    }

    /// Runs `order` on a claimed tick of one target.
    async fn launch(&self, tick: DateTime<Utc>, entry: &Scheduled, order: Order, launcher: &dyn Launcher) {
        let mut ctx = self.base.clone();
        ctx.trigger = Trigger::Cron;
        ctx.caller = "cron".to_owned();
        ctx.scheduled_at = Some(tick_text(tick));
        let id = match &entry.target {
            Target::Node { id, .. } | Target::Service { id, .. } => id.clone(),
        };
        match launcher.launch(entry.key.clone(), ctx, order.work(id)).await {
            Launched::Ran(job) => {
                tracing::info!(job = %job.id, action = entry.action.as_str(), target = %entry.target.describe(), status = ?job.status, "cron: ran");
            }
            // A watched service busy with a job (often the watch's own update, longer than
            // a tick) is looked at again at the next tick: nothing to record.
            Launched::Busy(holder) if entry.action == Action::UpdateService => {
                tracing::info!(target = %entry.target.describe(), holder = ?holder, "watch: the service is busy; the next tick looks again");
            }
            Launched::Busy(holder) => {
                let why = match holder {
                    Some(id) => format!("the target is busy: job {id} holds it"),
                    None => "the target is busy".to_owned(),
                };
                self.record(entry, tick, Status::Busy, "lock", &why).await;
            }
            Launched::NotRun(why) => {
                self.record(entry, tick, Status::Failed, "start", &why).await;
            }
        }
    }

    /// Claims each (action, target, tick) in the store, in one transaction: false for one
    /// another process has, and for all when the store fails (nothing runs twice).
    async fn claim(&self, due: &[(DateTime<Utc>, Scheduled)]) -> Vec<bool> {
        let ticks: Vec<(Action, String, u64)> = due
            .iter()
            .map(|(tick, e)| (e.action, e.key.clone(), u64::try_from(tick.timestamp_millis()).unwrap_or(0)))
            .collect();
        match self.store.claim_ticks(&ticks, &self.instance).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "cron: cannot claim the ticks; not run");
                vec![false; due.len()]
            }
        }
    }

    /// At start: a tick that fired since the last claimed one, while no process ran, is
    /// recorded as skipped (the latest of them, with how many there were).
    async fn record_missed(&self, entries: &[Scheduled], now: DateTime<Utc>) {
        let zone = self.schedule.timezone;
        for entry in entries {
            let last = match self.store.last_tick(entry.action, &entry.key).await {
                Ok(Some(ms)) => ms,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cron: cannot read the last tick");
                    continue;
                }
            };
            let Some(last) = DateTime::<Utc>::from_timestamp_millis(i64::try_from(last).unwrap_or(i64::MAX))
            else {
                continue;
            };
            // A tick of the last moments may still be picked up by a process that runs:
            // only ticks older than their grace are missed.
            let reference = entry.cron.previous_before(now, zone).unwrap_or(now);
            let until = now - self.grace(&entry.cron, reference);
            let Some((tick, count)) = entry.cron.fired_between(last, until, zone, 10_000) else { continue };
            let why = format!(
                "missed: no dockhand-server ran at {} ({count} tick{} missed since {})",
                tick_text(tick),
                if count == 1 { "" } else { "s" },
                tick_text(last)
            );
            self.record_skipped(entry, tick, &why).await;
        }
    }

    async fn record_skipped(&self, entry: &Scheduled, tick: DateTime<Utc>, why: &str) {
        if self.claim(&[(tick, entry.clone())]).await.first() == Some(&true) {
            self.record(entry, tick, Status::Skipped, "schedule", why).await;
        }
    }

    /// Records a cron job that did not run: one step saying why.
    async fn record(&self, entry: &Scheduled, tick: DateTime<Utc>, status: Status, kind: &str, why: &str) {
        self.record_job(entry, tick, status, kind, why, None).await;
    }

    /// Records a cron job that did not run, about `image`: one step saying why.
    async fn record_job(
        &self,
        entry: &Scheduled,
        tick: DateTime<Utc>,
        status: Status,
        kind: &str,
        why: &str,
        image: Option<String>,
    ) {
        let now = SystemTime::now();
        let mut job = Job::start(entry.action, entry.target.clone(), Trigger::Cron, "cron", now);
        job.scheduled_at = Some(tick_text(tick));
        job.image = image;
        let mut step = Step::start(kind, now);
        step.finish(status, now, Some(why.to_owned()));
        job.steps.push(step);
        job.finish(now, Some(status));
        tracing::info!(action = entry.action.as_str(), target = %entry.target.describe(), tick = %tick_text(tick), status = ?status, reason = why, "cron: not run");
        if let Err(e) = self.store.record(&job).await {
            tracing::warn!(error = %e, "cron: cannot record a job");
        }
        (self.recorded)(&job);
    }
}

mod settings;
mod watch_tick;

#[cfg(test)]
mod tests;
