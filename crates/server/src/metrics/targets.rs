//! The gauges to alert on, per target and action: a few numbers each, kept from the jobs
//! (as they end, and from the job store at each refresh) and encoded at each scrape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use dockhand_jobs::Status;
use dockhand_jobs::store::JobSummary;

/// A target (`service/<name>`, `node/<hostname>`) and an action.
type TargetKey = (&'static str, String);

/// What the gauges of one target and action say: a few numbers, encoded at each scrape (a
/// family of gauge objects per series cost about ten times the memory, with 500 services).
#[derive(Debug, Clone, Copy)]
struct TargetState {
    /// The last job's result, and when it started (a job already counted is not counted
    /// again).
    result: Status,
    started_ms: u64,
    last_run: Option<f64>,
    last_success: Option<f64>,
    failures: i64,
    backup_bytes: Option<u64>,
}

/// Every target's [`TargetState`], encoded as the families `last_success_timestamp_seconds`,
/// `last_run_timestamp_seconds`, `last_result`, `consecutive_failures` and `backup_bytes`.
#[derive(Debug, Default)]
pub(super) struct TargetGauges {
    states: Mutex<BTreeMap<TargetKey, TargetState>>,
}

/// What a target's jobs newer than the last one counted say, read newest first.
#[derive(Debug, Default)]
struct Fold {
    /// The newest job's result and start.
    newest: Option<(Status, u64)>,
    last_run: Option<f64>,
    last_success: Option<f64>,
    /// Failures newer than the newest success (all of them without one).
    failures: i64,
    backup_bytes: Option<u64>,
    /// A job already counted was met: the rest are older.
    closed: bool,
}

impl Fold {
    /// Takes in `job`, older than every job taken in before.
    fn older(&mut self, job: &JobSummary, ended_ms: u64) {
        let seconds = ended_ms as f64 / 1000.0;
        self.newest.get_or_insert((job.status, job.started_ms));
        let ran = matches!(
            job.status,
            Status::Succeeded | Status::Failed | Status::Cancelled | Status::Interrupted
        );
        if ran && self.last_run.is_none() {
            self.last_run = Some(seconds);
        }
        if self.last_success.is_none() {
            match job.status {
                Status::Succeeded => self.last_success = Some(seconds),
                Status::Failed | Status::Interrupted => self.failures += 1,
                _ => {}
            }
        }
        let bytes = job.uploaded();
        if job.status == Status::Succeeded && bytes > 0 && self.backup_bytes.is_none() {
            self.backup_bytes = Some(bytes);
        }
    }

    /// `state` with these newer jobs counted; unchanged when it already counted a job as new
    /// as the newest here (a refresh meets jobs this replica counted as they ended).
    fn onto(self, state: Option<TargetState>) -> Option<TargetState> {
        let Some((result, started_ms)) = self.newest else { return state };
        if state.is_some_and(|s| s.started_ms >= started_ms) {
            return state;
        }
        let before = state.unwrap_or(TargetState {
            result,
            started_ms,
            last_run: None,
            last_success: None,
            failures: 0,
            backup_bytes: None,
        });
        Some(TargetState {
            result,
            started_ms,
            last_run: self.last_run.or(before.last_run),
            last_success: self.last_success.or(before.last_success),
            failures: if self.last_success.is_some() {
                self.failures
            } else {
                before.failures + self.failures
            },
            backup_bytes: self.backup_bytes.or(before.backup_bytes),
        })
    }
}

/// A refresh of the per-target gauges from the store's newest jobs, taken in a page at a
/// time ([`Refresh::newer`]) and applied at [`Refresh::finish`].
#[derive(Debug)]
pub struct Refresh<'a> {
    gauges: &'a TargetGauges,
    /// When each target's last counted job started, as the refresh began.
    counted: HashMap<TargetKey, u64>,
    folds: BTreeMap<TargetKey, Fold>,
}

impl Refresh<'_> {
    /// Takes in `jobs`, newest first, each older than the jobs taken in before.
    pub fn newer(&mut self, jobs: &[JobSummary]) {
        for job in jobs {
            let Some(ended) = job.ended_ms else { continue };
            let key = key_of(job);
            let counted = self.counted.get(&key).copied();
            let fold = self.folds.entry(key).or_default();
            if fold.closed {
                continue;
            }
            if counted.is_some_and(|started| started >= job.started_ms) {
                fold.closed = true;
                continue;
            }
            fold.older(job, ended);
        }
    }

    /// Applies what was taken in, and drops the gauges of every target and action none of
    /// the jobs named.
    pub fn finish(self) {
        let mut states = self.gauges.lock();
        states.retain(|key, _| self.folds.contains_key(key));
        for (key, fold) in self.folds {
            let state = states.get(&key).copied();
            if let Some(now) = fold.onto(state) {
                states.insert(key, now);
            }
        }
    }
}

impl TargetGauges {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<TargetKey, TargetState>> {
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A refresh from the store's newest jobs.
    pub(super) fn refreshing(&self) -> Refresh<'_> {
        let counted = self.lock().iter().map(|(k, s)| (k.clone(), s.started_ms)).collect();
        Refresh { gauges: self, counted, folds: BTreeMap::new() }
    }

    /// Counts `job`, just ended, unless a newer job of its target and action was counted.
    pub(super) fn track(&self, job: &JobSummary) {
        let Some(ended) = job.ended_ms else { return };
        let mut fold = Fold::default();
        fold.older(job, ended);
        let key = key_of(job);
        let mut states = self.lock();
        if let Some(now) = fold.onto(states.get(&key).copied()) {
            states.insert(key, now);
        }
    }
}

impl prometheus_client::collector::Collector for TargetGauges {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::MetricType;
        let states = self.lock();
        type Value = fn(&TargetState) -> Option<f64>;
        let floats: [(&str, &str, Value); 3] = [
            (
                "last_success_timestamp_seconds",
                "When the target's last successful job of the action ended (Unix time)",
                |s| s.last_success,
            ),
            (
                "last_run_timestamp_seconds",
                "When the target's last job of the action that ran ended (Unix time)",
                |s| s.last_run,
            ),
            ("backup_bytes", "The size of the target's last successful backup, in bytes", |s| {
                s.backup_bytes.map(|b| b as f64)
            }),
        ];
        for (name, help, value) in floats {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for ((action, target), state) in states.iter() {
                if let Some(v) = value(state) {
                    let series = [("action", *action), ("target", target.as_str())];
                    family.encode_family(&series)?.encode_gauge(&v)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "last_result",
            "The target's last job of the action: 1 for its result (succeeded, failed, cancelled, refused, busy, skipped, interrupted, available)",
            None,
            MetricType::Gauge,
        )?;
        for ((action, target), state) in states.iter() {
            let series =
                [("action", *action), ("target", target.as_str()), ("result", state.result.as_str())];
            family.encode_family(&series)?.encode_gauge(&1i64)?;
        }
        let mut family = encoder.encode_descriptor(
            "consecutive_failures",
            "The target's jobs of the action that failed in a row, up to its last one",
            None,
            MetricType::Gauge,
        )?;
        for ((action, target), state) in states.iter() {
            let series = [("action", *action), ("target", target.as_str())];
            family.encode_family(&series)?.encode_gauge(&state.failures)?;
        }
        Ok(())
    }
}

fn key_of(job: &JobSummary) -> TargetKey {
    (job.action.as_str(), job.target.describe())
}
