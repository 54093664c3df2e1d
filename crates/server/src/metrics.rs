//! Prometheus metrics, served at `/metrics` in the text format.
//!
//! Besides counters of what this replica did, each target in scope and action has gauges
//! to alert on (`last_success_timestamp_seconds`, `last_run_timestamp_seconds`,
//! `last_result`, `consecutive_failures`, `backup_bytes`), kept from the job store: at start
//! and every minute ([`Metrics::refresh`], which also sees other replicas' jobs), and at
//! each job this replica ends. A target whose jobs left the store's newest window loses its
//! series, so the label sets stay bounded. `deploy/alerts.yml` alerts on them.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use dockhand_jobs::store::JobSummary;
use dockhand_jobs::{Action, Job};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A job's action and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    action: String,
    status: String,
}

/// A job's action and its target (`service/<name>`, `node/<hostname>`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct TargetLabels {
    action: String,
    target: String,
}

/// A gauge of seconds or bytes, as a float.
type FloatGauge = Gauge<f64, AtomicU64>;

/// A webhook (by name) and how a notification to it went.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifyLabels {
    webhook: String,
    result: String,
}

/// A route (its pattern, never the request's own path) and the answer's code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    code: String,
}

/// A watched service.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

/// A registry and how a request to it went.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
    result: String,
}

fn duration_histogram() -> Histogram {
    // 0.5 s to about 2.3 h.
    Histogram::new(exponential_buckets(0.5, 2.0, 15))
}

/// Every metric the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    durations: Family<TargetLabels, Histogram, fn() -> Histogram>,
    http: Family<HttpLabels, Counter>,
    auth_failures: Counter,
    busy: Counter,
    uploaded_bytes: Counter,
    pending_timeouts: Counter,
    notifications: Family<NotifyLabels, Counter>,
    update_available: Family<ServiceLabel, Gauge>,
    /// The services `update_available` has a series for.
    available_for: Mutex<BTreeSet<String>>,
    registry_requests: Family<RegistryLabels, Counter>,
    per_target: PerTarget,
}

mod targets;

pub(crate) use targets::Refresh;
use targets::TargetGauges;

/// The gauges per target and action: [`TargetGauges`], and the scheduler's intervals.
#[derive(Debug, Default)]
struct PerTarget {
    gauges: std::sync::Arc<TargetGauges>,
    schedule_interval: Family<TargetLabels, FloatGauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dockhand");
        let jobs = Family::<JobLabels, Counter>::default();
        let durations = Family::<TargetLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let http = Family::<HttpLabels, Counter>::default();
        let (auth_failures, busy, uploaded_bytes, pending_timeouts) =
            (Counter::default(), Counter::default(), Counter::default(), Counter::default());
        registry.register("jobs", "Jobs that ended, by action and status", jobs.clone());
        registry.register(
            "job_duration_seconds",
            "How long the jobs this replica ran took, by action and target",
            durations.clone(),
        );
        registry.register("http_requests", "HTTP requests, by route and status code", http.clone());
        registry.register(
            "auth_failures",
            "Requests refused for their credentials (401, 403)",
            auth_failures.clone(),
        );
        registry.register(
            "busy_refusals",
            "Requests refused because their target was busy (409)",
            busy.clone(),
        );
        registry.register("backup_uploaded_bytes", "Bytes backup jobs uploaded", uploaded_bytes.clone());
        registry.register(
            "helper_pending_timeouts",
            "Helper services removed because they stayed pending",
            pending_timeouts.clone(),
        );
        let notifications = Family::<NotifyLabels, Counter>::default();
        registry.register(
            "notifications",
            "Job notifications, by webhook and result (sent, failed; dropped: the queue was full)",
            notifications.clone(),
        );
        let update_available = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "update_available",
            "Watched services whose followed tag has a digest they do not run (1), at the last watch tick",
            update_available.clone(),
        );
        let registry_requests = Family::<RegistryLabels, Counter>::default();
        registry.register(
            "registry_requests",
            "Watch mode's requests to registries, by registry and result (ok, failed, rate_limited)",
            registry_requests.clone(),
        );
        let per_target = PerTarget::default();
        registry.register_collector(Box::new(std::sync::Arc::clone(&per_target.gauges)));
        registry.register(
            "schedule_interval_seconds",
            "The time between two scheduled runs of the action on the target (cron's targets only)",
            per_target.schedule_interval.clone(),
        );
        Self {
            registry,
            jobs,
            durations,
            http,
            auth_failures,
            busy,
            uploaded_bytes,
            pending_timeouts,
            notifications,
            update_available,
            available_for: Mutex::default(),
            registry_requests,
            per_target,
        }
    }
}

impl Metrics {
    /// Counts an ended job, its duration, its bytes and its helpers that stayed pending, and
    /// sets its target's gauges.
    pub fn job_finished(&self, job: &Job) {
        let action = job.action.as_str().to_owned();
        self.jobs
            .get_or_create(&JobLabels { action: action.clone(), status: job.status.as_str().to_owned() })
            .inc();
        if let Some(ended) = job.ended_ms {
            let seconds = ended.saturating_sub(job.started_ms) as f64 / 1000.0;
            let labels = TargetLabels { action, target: job.target.describe() };
            self.durations.get_or_create(&labels).observe(seconds);
        }
        let summary = JobSummary::of(job);
        self.uploaded_bytes.inc_by(summary.uploaded());
        self.per_target.gauges.track(&summary);
        let pending = job
            .steps
            .iter()
            .filter(|s| s.error.as_deref().is_some_and(|e| e.contains("was still pending after")))
            .count();
        self.pending_timeouts.inc_by(pending as u64);
    }

    /// Counts a request.
    pub fn request(&self, route: &str, code: u16) {
        self.http.get_or_create(&HttpLabels { route: route.to_owned(), code: code.to_string() }).inc();
    }

    /// Counts a refused credential.
    pub fn auth_failure(&self) {
        self.auth_failures.inc();
    }

    /// Counts a busy refusal.
    pub fn busy(&self) {
        self.busy.inc();
    }

    /// Counts a notification.
    pub fn notification(&self, delivery: &dockhand_jobs::notify::Delivery) {
        let (webhook, result) = match delivery {
            dockhand_jobs::notify::Delivery::Sent { webhook } => (webhook.clone(), "sent"),
            dockhand_jobs::notify::Delivery::Failed { webhook, .. } => (webhook.clone(), "failed"),
            _ => (String::new(), "dropped"),
        };
        self.notifications.get_or_create(&NotifyLabels { webhook, result: result.to_owned() }).inc();
    }

    /// Sets each watched service's `update_available` and counts the registry requests of a
    /// watch tick.
    pub fn looked(&self, look: &dockhand_jobs::schedule::Look) {
        let mut known = self.available_for.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for row in &look.rows {
            let available = row.latest.is_some() && row.latest != row.runs;
            self.update_available
                .get_or_create(&ServiceLabel { service: row.service.clone() })
                .set(available.into());
            known.insert(row.service.clone());
        }
        for request in &look.requests {
            let labels =
                RegistryLabels { registry: request.registry.clone(), result: request.result.to_owned() };
            self.registry_requests.get_or_create(&labels).inc();
        }
    }

    /// Sets each scheduled target's interval (action, `service/<name>` or `node/<host>`,
    /// time between two runs) from the scheduler's listing; targets no longer scheduled
    /// lose theirs.
    /// A service watch mode no longer looks at (removed, or no longer scheduled for
    /// update-service) loses its `update_available` series.
    pub fn scheduled(&self, intervals: impl IntoIterator<Item = (Action, String, std::time::Duration)>) {
        self.per_target.schedule_interval.clear();
        let mut watched = BTreeSet::new();
        for (action, target, interval) in intervals {
            if action == Action::UpdateService {
                watched.insert(target.strip_prefix("service/").unwrap_or(&target).to_owned());
            }
            let labels = TargetLabels { action: action.as_str().to_owned(), target };
            self.per_target.schedule_interval.get_or_create(&labels).set(interval.as_secs_f64());
        }
        let mut known = self.available_for.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in known.iter().filter(|s| !watched.contains(*s)) {
            self.update_available.remove(&ServiceLabel { service: gone.clone() });
        }
        known.retain(|s| watched.contains(s));
    }

    /// Sets every target's gauges from `jobs` (the store's newest, newest first), and drops
    /// the series of targets none of them names: [`Metrics::refreshing`] in one page, for
    /// the tests (the server reads the store a page at a time).
    #[cfg(test)]
    pub fn refresh(&self, jobs: &[JobSummary]) {
        let mut refresh = self.refreshing();
        refresh.newer(jobs);
        refresh.finish();
    }

    /// A refresh that takes the store's newest jobs in a page at a time: a window of
    /// thousands of jobs is never held at once.
    pub fn refreshing(&self) -> Refresh<'_> {
        self.per_target.gauges.refreshing()
    }

    /// The text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use dockhand_jobs::{Status, Step, Target, Trigger};

    use super::*;

    /// A job of `action` on service `name` that started at `at` s and ended 10 s later as
    /// `status`; a backup uploads `bytes`.
    fn job(action: Action, name: &str, at: u64, status: Status, bytes: u64) -> Job {
        let target = Target::Service { id: format!("id-{name}"), name: name.to_owned() };
        let start = UNIX_EPOCH + Duration::from_secs(at);
        let mut job = Job::start(action, target, Trigger::Cron, "cron", start);
        if bytes > 0 {
            let mut upload = Step::start("upload", start);
            upload.bytes = Some(bytes);
            upload.finish(Status::Succeeded, start, None);
            job.steps.push(upload);
        }
        job.finish(start + Duration::from_secs(10), Some(status));
        job
    }

    /// The value of the sample whose line starts with `series` (name and labels, in the
    /// order the encoder writes them).
    fn sample(text: &str, series: &str) -> Option<String> {
        let prefix = format!("{series} ");
        text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(str::to_owned)
    }

    #[test]
    fn each_target_keeps_its_last_success_run_result_failures_and_size() {
        let metrics = Metrics::default();
        for (at, status, bytes) in [
            (100, Status::Failed, 0),
            (200, Status::Succeeded, 4096),
            (300, Status::Failed, 0),
            (400, Status::Busy, 0),
            (500, Status::Failed, 0),
        ] {
            metrics.job_finished(&job(Action::BackupService, "db", at, status, bytes));
        }
        let text = metrics.encode();
        let labels = r#"{action="backup-service",target="service/db"}"#;
        let at = |name: &str| sample(&text, &format!("dockhand_{name}{labels}"));
        assert_eq!(at("last_success_timestamp_seconds").as_deref(), Some("210.0"), "{text}");
        assert_eq!(
            at("last_run_timestamp_seconds").as_deref(),
            Some("510.0"),
            "a busy job did not run: {text}"
        );
        assert_eq!(
            at("consecutive_failures").as_deref(),
            Some("2"),
            "busy neither fails nor succeeds: {text}"
        );
        assert_eq!(at("backup_bytes").as_deref(), Some("4096.0"), "{text}");
        let result = |r: &str| {
            sample(
                &text,
                &format!(
                    r#"dockhand_last_result{{action="backup-service",target="service/db",result="{r}"}}"#
                ),
            )
        };
        assert_eq!(result("failed").as_deref(), Some("1"), "{text}");
        assert_eq!((result("succeeded"), result("busy")), (None, None), "only the last result: {text}");
        assert!(text.contains("dockhand_backup_uploaded_bytes_total 4096"), "{text}");
        let histogram =
            r#"dockhand_job_duration_seconds_count{action="backup-service",target="service/db"} 5"#;
        assert!(text.contains(histogram), "{text}");
    }

    /// A refresh from the store sets what this replica did not see (another replica's
    /// jobs, jobs before a restart), does not count a job twice, and drops targets that
    /// left the store's window.
    #[test]
    fn a_refresh_from_the_store_adds_other_replicas_jobs_once_and_drops_gone_targets() {
        let metrics = Metrics::default();
        let ours = job(Action::CleanService, "web", 100, Status::Failed, 0);
        metrics.job_finished(&ours);
        let theirs = job(Action::CleanService, "web", 200, Status::Failed, 0);
        let gone = job(Action::UpdateService, "old", 50, Status::Failed, 0);
        metrics.refresh(&[&theirs, &ours, &gone].map(JobSummary::of));
        let text = metrics.encode();
        let web = r#"{action="clean-service",target="service/web"}"#;
        assert_eq!(
            sample(&text, &format!("dockhand_consecutive_failures{web}")).as_deref(),
            Some("2"),
            "{text}"
        );
        assert!(text.contains(r#"target="service/old""#), "{text}");
        metrics.refresh(&[&theirs, &ours].map(JobSummary::of));
        let text = metrics.encode();
        assert!(!text.contains(r#"target="service/old""#), "a target gone from the store stays: {text}");
        assert_eq!(
            sample(&text, &format!("dockhand_consecutive_failures{web}")).as_deref(),
            Some("2"),
            "{text}"
        );
    }

    /// The gauges a refresh sets from the store, read all at once or a page at a time, are
    /// those the same jobs set as they ended one by one.
    #[test]
    fn a_refresh_page_by_page_sets_what_the_jobs_set_as_they_ended() {
        let statuses = [Status::Failed, Status::Succeeded, Status::Busy, Status::Interrupted, Status::Failed];
        let mut jobs = Vec::new();
        for (i, status) in statuses.iter().cycle().take(23).enumerate() {
            let (action, name) = [(Action::BackupService, "db"), (Action::CleanService, "web")][i % 2];
            let bytes = if *status == Status::Succeeded { 1000 + i as u64 } else { 0 };
            jobs.push(job(action, name, 100 + 10 * i as u64, *status, bytes));
        }
        let per_target = |metrics: &Metrics| -> Vec<String> {
            let gauges = ["last_success", "last_run", "last_result", "consecutive_failures", "backup_bytes"];
            let text = metrics.encode();
            let mut lines: Vec<String> = text
                .lines()
                .filter(|l| gauges.iter().any(|g| l.starts_with(&format!("dockhand_{g}"))))
                .map(str::to_owned)
                .collect();
            lines.sort();
            lines
        };
        let ended = Metrics::default();
        for job in &jobs {
            ended.job_finished(job);
        }
        let newest_first: Vec<JobSummary> = jobs.iter().rev().map(JobSummary::of).collect();
        let at_once = Metrics::default();
        at_once.refresh(&newest_first);
        let by_page = Metrics::default();
        let mut refresh = by_page.refreshing();
        for page in newest_first.chunks(4) {
            refresh.newer(page);
        }
        refresh.finish();
        let expected = per_target(&ended);
        assert_eq!(expected.len(), 9, "{expected:#?}");
        assert_eq!(per_target(&at_once), expected);
        assert_eq!(per_target(&by_page), expected);
        // Half of them counted as they ended, then a refresh over all: nothing twice.
        let both = Metrics::default();
        for job in &jobs[..11] {
            both.job_finished(job);
        }
        both.refresh(&newest_first);
        assert_eq!(per_target(&both), expected);
    }

    /// A service watch mode no longer looks at loses its `update_available` series when the
    /// scheduler lists its targets again; a watched one keeps it.
    #[test]
    fn update_available_forgets_services_no_longer_watched() {
        let metrics = Metrics::default();
        for service in ["kept", "gone"] {
            metrics.update_available.get_or_create(&ServiceLabel { service: service.to_owned() }).set(1);
            metrics.available_for.lock().unwrap().insert(service.to_owned());
        }
        let minute = Duration::from_secs(60);
        metrics.scheduled([
            (Action::UpdateService, "service/kept".to_owned(), minute),
            (Action::BackupService, "service/gone".to_owned(), minute),
        ]);
        let text = metrics.encode();
        assert!(text.contains(r#"dockhand_update_available{service="kept"} 1"#), "{text}");
        assert!(!text.contains(r#"service="gone""#), "{text}");
        assert!(
            text.contains(
                r#"dockhand_schedule_interval_seconds{action="backup-service",target="service/gone"} 60.0"#
            ),
            "{text}"
        );
    }

    /// Every metric `deploy/alerts.yml` names is one the server exports.
    #[test]
    fn the_shipped_alerts_name_metrics_the_server_exports() {
        let metrics = Metrics::default();
        metrics.job_finished(&job(Action::BackupService, "db", 100, Status::Succeeded, 512));
        metrics.scheduled([(Action::BackupService, "service/db".to_owned(), Duration::from_secs(86_400))]);
        metrics.notification(&dockhand_jobs::notify::Delivery::Sent { webhook: "ops".to_owned() });
        let text = metrics.encode();
        let rules =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/alerts.yml")).unwrap();
        let mut named = BTreeSet::new();
        for (at, _) in rules.match_indices("dockhand_") {
            let name: String =
                rules[at..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            named.insert(name);
        }
        assert!(named.len() >= 4, "{named:?}");
        for name in named {
            let family = name.strip_suffix("_total").unwrap_or(&name);
            assert!(text.contains(&format!("# TYPE {family} ")), "{name} is not exported:\n{text}");
        }
    }
}
