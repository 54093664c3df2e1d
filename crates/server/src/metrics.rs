//! Prometheus metrics, served at `/metrics` in the text format.

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

/// A job's action.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

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
    durations: Family<ActionLabel, Histogram, fn() -> Histogram>,
    http: Family<HttpLabels, Counter>,
    auth_failures: Counter,
    busy: Counter,
    backup_bytes: Counter,
    pending_timeouts: Counter,
    notifications: Family<NotifyLabels, Counter>,
    update_available: Family<ServiceLabel, Gauge>,
    registry_requests: Family<RegistryLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dockhand");
        let jobs = Family::<JobLabels, Counter>::default();
        let durations = Family::<ActionLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let http = Family::<HttpLabels, Counter>::default();
        let (auth_failures, busy, backup_bytes, pending_timeouts) =
            (Counter::default(), Counter::default(), Counter::default(), Counter::default());
        registry.register("jobs", "Jobs that ended, by action and status", jobs.clone());
        registry.register("job_duration_seconds", "How long jobs ran, by action", durations.clone());
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
        registry.register("backup_bytes", "Bytes backup jobs uploaded", backup_bytes.clone());
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
            "Watch mode's requests to registries, by registry and result (ok, failed)",
            registry_requests.clone(),
        );
        Self {
            registry,
            jobs,
            durations,
            http,
            auth_failures,
            busy,
            backup_bytes,
            pending_timeouts,
            notifications,
            update_available,
            registry_requests,
        }
    }
}

impl Metrics {
    /// Counts an ended job, its duration, its bytes and its helpers that stayed pending.
    pub fn job_finished(&self, job: &Job) {
        let action = job.action.as_str().to_owned();
        let status = serde_json::to_value(job.status).ok().and_then(|v| v.as_str().map(str::to_owned));
        self.jobs
            .get_or_create(&JobLabels { action: action.clone(), status: status.unwrap_or_default() })
            .inc();
        if let Some(ended) = job.ended_ms {
            let seconds = ended.saturating_sub(job.started_ms) as f64 / 1000.0;
            self.durations.get_or_create(&ActionLabel { action }).observe(seconds);
        }
        if matches!(job.action, Action::BackupService | Action::BackupNode) {
            let bytes: u64 = job.steps.iter().filter(|s| s.kind == "upload").filter_map(|s| s.bytes).sum();
            self.backup_bytes.inc_by(bytes);
        }
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
        for row in &look.rows {
            let available = row.latest.is_some() && row.latest != row.runs;
            self.update_available
                .get_or_create(&ServiceLabel { service: row.service.clone() })
                .set(available.into());
        }
        for request in &look.requests {
            let labels =
                RegistryLabels { registry: request.registry.clone(), result: request.result.to_owned() };
            self.registry_requests.get_or_create(&labels).inc();
        }
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
