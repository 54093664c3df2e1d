//! `dockhand plan`: what cron would do now, per target and action: whether it is enabled,
//! which label (or default) decided it, and the timeout budget. Pure: a snapshot of the
//! swarm (services with their task counts, nodes) and the policy give the rows.

use dockhand_engine::{Node, Service};
use dockhand_policy::budget::{self, BackupSteps};
use dockhand_policy::{
    Defaults, LabelPrefixes, TargetLabels, node_backup_policy, node_policy, service_policy,
};
use serde::Serialize;

/// One target and action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PlanRow {
    /// `service/<name>` or `node/<hostname>`.
    pub target: String,
    /// `clean-service`, `backup-service` or `clean-node`.
    pub action: &'static str,
    /// Whether cron would run it.
    pub enabled: bool,
    /// What decided: `dockhand.clean.enable=true`, or the default.
    pub decided_by: String,
    /// The whole budget, lock wait included, in milliseconds (enabled rows only).
    pub budget_ms: Option<u64>,
    /// What the labels get wrong, each naming label and reason.
    pub diagnostics: Vec<String>,
    /// When cron runs it, and what set that (`0 0 3 * * * (schedule.clean-service)`), or
    /// `off`; none for an action cron does not run (see [`crate::schedule::with_next_runs`]).
    pub schedule: Option<String>,
    /// Its next cron run (RFC 3339, UTC).
    pub next_run: Option<String>,
    /// For a `watch` row: what the watch sees of the service and its registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<Watched>,
}

/// One watched service (`update.auto`), as a tick would see it (`crate::watch::look`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Watched {
    /// The service's name.
    pub service: String,
    /// `update.auto`, as the label says it (`true` or `notify`).
    pub mode: &'static str,
    /// The label that set it (`dockhand.update.auto=true`).
    pub decided_by: String,
    /// The `repository:tag` it follows, when it has one.
    pub follows: Option<String>,
    /// The digest it runs (`sha256:…`), when it is pinned.
    pub runs: Option<String>,
    /// The digest behind the tag now, when the registry said it.
    pub latest: Option<String>,
    /// What the next tick would do: `current`, `update to IMAGE`, `notify IMAGE` or
    /// `skip: REASON`.
    pub next: String,
    /// The same, for the tick to act on.
    #[serde(skip)]
    pub step: dockhand_policy::WatchStep,
}

/// A `watch` row per watched service, after the others.
pub fn with_watch(rows: &mut Vec<PlanRow>, watched: Vec<Watched>) {
    for w in watched {
        rows.push(PlanRow {
            target: format!("service/{}", w.service),
            action: "watch",
            enabled: true,
            decided_by: w.decided_by.clone(),
            budget_ms: None,
            diagnostics: Vec::new(),
            schedule: None,
            next_run: None,
            watch: Some(w),
        });
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The rows for `services` (each with its task count: the tasks a clean-service would exec
/// in) and `nodes`, services first, each sorted by name.
pub fn plan(
    services: &[(Service, usize)],
    nodes: &[Node],
    defaults: &Defaults,
    prefixes: &LabelPrefixes,
) -> Vec<PlanRow> {
    let mut rows = Vec::new();
    let mut services: Vec<&(Service, usize)> = services.iter().collect();
    services.sort_by(|a, b| a.0.spec.name.cmp(&b.0.spec.name));
    for (service, tasks) in services {
        let labels = &service.spec.labels;
        let view = TargetLabels::resolve(labels, prefixes);
        let (policy, diagnostics) = service_policy(labels, service.spec.is_global(), defaults, prefixes);
        let diagnostics: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        let decided = |short: &str| match view.get(short) {
            Some((key, value)) => format!("{key}={value}"),
            None => format!("default: off (no {})", view.key_for(short)),
        };
        let target = format!("service/{}", service.spec.name);
        rows.push(PlanRow {
            target: target.clone(),
            action: "clean-service",
            enabled: policy.clean.is_some(),
            decided_by: decided("clean.enable"),
            budget_ms: policy
                .clean
                .as_ref()
                .map(|c| ms(budget::clean_service(*tasks, c.exec_timeout, defaults).total)),
            diagnostics: diagnostics.clone(),
            schedule: None,
            next_run: None,
            watch: None,
        });
        rows.push(PlanRow {
            target,
            action: "backup-service",
            enabled: policy.backup.is_some(),
            decided_by: decided("backup.enable"),
            budget_ms: policy.backup.as_ref().map(|b| {
                let steps = BackupSteps {
                    exec: b.exec.as_ref().map(|_| b.exec_timeout),
                    stop_start: b.stop.then_some((b.stop_timeout, b.start_timeout)),
                    volumes: b.volumes.len(),
                    upload: b.upload_timeout,
                };
                ms(budget::backup_service(&steps, defaults).total)
            }),
            diagnostics,
            schedule: None,
            next_run: None,
            watch: None,
        });
    }
    let mut nodes: Vec<&Node> = nodes.iter().collect();
    nodes.sort_by(|a, b| a.description.hostname.cmp(&b.description.hostname));
    for node in nodes {
        let view = TargetLabels::resolve(&node.spec.labels, prefixes);
        let (policy, diagnostics) = node_policy(&node.spec.labels, defaults, prefixes);
        let decided_by = match view.get("clean.enable") {
            Some((key, value)) => format!("{key}={value}"),
            None => "default: on, as in the seed".to_owned(),
        };
        let budget_ms = policy.as_ref().map(|p| {
            let step =
                |s: dockhand_policy::PruneStep| if s.enabled { s.timeout } else { std::time::Duration::ZERO };
            ms(budget::clean_node(step(p.container), step(p.image), step(p.builder), defaults).total)
        });
        rows.push(PlanRow {
            target: format!("node/{}", node.description.hostname),
            action: "clean-node",
            enabled: policy.is_some(),
            decided_by,
            budget_ms,
            diagnostics: diagnostics.iter().map(ToString::to_string).collect(),
            schedule: None,
            next_run: None,
            watch: None,
        });
        // A backup-node row only for a node whose labels speak of backups.
        let (backup, diagnostics) = node_backup_policy(&node.spec.labels, defaults, prefixes);
        if backup.is_some() || !diagnostics.is_empty() {
            rows.push(PlanRow {
                target: format!("node/{}", node.description.hostname),
                action: "backup-node",
                enabled: backup.is_some(),
                decided_by: match view.get("backup.enable") {
                    Some((key, value)) => format!("{key}={value}"),
                    None => "default: off".to_owned(),
                },
                budget_ms: backup.as_ref().map(|b| {
                    let volumes = u32::try_from(b.volumes.len()).unwrap_or(u32::MAX);
                    ms(b.upload_timeout * volumes
                        + if b.exec.is_some() { b.exec_timeout } else { std::time::Duration::ZERO })
                }),
                diagnostics: diagnostics.iter().map(ToString::to_string).collect(),
                schedule: None,
                next_run: None,
                watch: None,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, labels: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "ID": format!("id-{name}"),
            "Spec": {"Name": name, "Labels": labels, "Mode": {"Replicated": {"Replicas": 2}}}
        }))
        .unwrap()
    }

    fn node(hostname: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(serde_json::json!({
            "ID": format!("id-{hostname}"),
            "Spec": {"Labels": labels, "Availability": "active"},
            "Description": {"Hostname": hostname},
            "Status": {"State": "ready"}
        }))
        .unwrap()
    }

    #[test]
    fn each_row_says_what_decided_and_the_budget() {
        let d = Defaults::default();
        let services = [
            (
                service(
                    "web",
                    serde_json::json!({"dockhand.clean.enable": "true", "dockhand.clean.exec": "rm -rf /c"}),
                ),
                2,
            ),
            (
                service(
                    "db",
                    serde_json::json!({"dockhand.backup.enable": "true", "dockhand.backup.volume-list-upload": "data"}),
                ),
                1,
            ),
        ];
        let nodes = [
            node("n1", serde_json::json!({})),
            node("n2", serde_json::json!({"dockhand.clean.enable": "false"})),
            node(
                "n3",
                serde_json::json!({"dockhand.backup.enable": "true", "dockhand.backup.volume-list-upload": "a,b"}),
            ),
        ];
        let rows = plan(&services, &nodes, &d, &LabelPrefixes::default());
        let row = |target: &str, action: &str| {
            rows.iter().find(|r| r.target == target && r.action == action).unwrap()
        };
        let web = row("service/web", "clean-service");
        assert!(web.enabled && web.decided_by == "dockhand.clean.enable=true");
        // Seed formula: 2 tasks x (60 s exec + 20 s pending) + 10 s extra, + 10 s lock.
        assert_eq!(web.budget_ms, Some((60_000 + 20_000) * 2 + 10_000 + 10_000));
        let off = row("service/web", "backup-service");
        assert!(
            !off.enabled && off.decided_by.contains("no dockhand.backup.enable") && off.budget_ms.is_none()
        );
        assert!(row("service/db", "backup-service").enabled);
        assert_eq!(rows[0].target, "service/db", "sorted by name");
        let n1 = row("node/n1", "clean-node");
        assert!(n1.enabled && n1.decided_by.contains("as in the seed") && n1.budget_ms.is_some());
        let n2 = row("node/n2", "clean-node");
        assert!(!n2.enabled && n2.decided_by == "dockhand.clean.enable=false");
        assert!(!rows.iter().any(|r| r.target == "node/n1" && r.action == "backup-node"), "no row unasked");
        let n3 = row("node/n3", "backup-node");
        assert!(n3.enabled && n3.decided_by == "dockhand.backup.enable=true");
        assert_eq!(n3.budget_ms, Some(2 * 600_000), "two volumes at the default upload timeout");
    }
}
