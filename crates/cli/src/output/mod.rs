//! Everything the CLI prints: human text by default, JSON with `--json`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use dockhand_engine::{ApiVersion, Info, Node, Ping, Task, Version};
use dockhand_host::{Check, HostState, HostsConfig};
use serde::Serialize;

mod progress;

pub(crate) use progress::JobPrinter;

/// Prints `value` as JSON, or the text `human` builds.
pub(crate) fn print<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    // Rendered first, so that a closed pipe is an I/O error that `main` recognises, not
    // one wrapped in serde_json's.
    let text = if json { serde_json::to_string_pretty(value)? + "\n" } else { human() };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Prints IDs, one a line (`-q`), or as a JSON array.
pub(crate) fn ids<'a>(json: bool, ids: impl Iterator<Item = &'a str>) -> anyhow::Result<()> {
    let ids: Vec<&str> = ids.collect();
    print(json, &ids, || ids.iter().map(|id| format!("{id}\n")).collect())
}

/// Prints one line on stderr: an agent's report when stdout carries data.
pub(crate) fn report(text: &str) {
    eprintln!("{text}");
}

/// Prints one line on stdout.
pub(crate) fn line(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// The plan: one row per target and action, then each label diagnostic.
pub(crate) fn plan(rows: &[dockhand_jobs::schedule::PlanRow]) -> String {
    let table = rows
        .iter()
        .map(|r| {
            [
                r.target.clone(),
                r.action.to_owned(),
                if r.enabled { "yes" } else { "no" }.to_owned(),
                r.decided_by.clone(),
                r.budget_ms.map_or_else(
                    || "-".to_owned(),
                    |ms| dockhand_policy::format_go_duration(Duration::from_millis(ms)),
                ),
                r.schedule.clone().unwrap_or_else(|| "-".to_owned()),
                r.next_run.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut text =
        columns(["TARGET", "ACTION", "ENABLED", "DECIDED BY", "BUDGET", "SCHEDULE", "NEXT RUN"], table);
    for w in rows.iter().filter_map(|r| r.watch.as_ref()) {
        let unknown = || "-".to_owned();
        let _ = writeln!(
            text,
            "service/{}: watch ({}): follows {}; runs {}; the registry has {}; next tick: {}",
            w.service,
            w.mode,
            w.follows.clone().unwrap_or_else(unknown),
            w.runs.clone().unwrap_or_else(|| "an unpinned tag".to_owned()),
            w.latest.clone().unwrap_or_else(unknown),
            w.next
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in rows {
        for d in &r.diagnostics {
            if seen.insert(format!("{} {d}", r.target)) {
                let _ = writeln!(text, "{}: {d}", r.target);
            }
        }
    }
    text
}

/// Unused volumes: node, name, driver, size.
pub(crate) fn unused_volumes(volumes: &[dockhand_jobs::clean::UnusedVolume]) -> String {
    let rows = volumes
        .iter()
        .map(|v| {
            [v.node.clone(), v.name.clone(), v.driver.clone(), v.size.map_or_else(|| "-".to_owned(), bytes)]
        })
        .collect();
    columns(["NODE", "VOLUME", "DRIVER", "SIZE"], rows)
}

/// Prints a note on stderr: something the user may want to know, not a problem.
pub(crate) fn note(text: &str) {
    eprintln!("dockhand: note: {text}");
}

/// Prints a warning on stderr.
pub(crate) fn warning(text: &str) {
    eprintln!("dockhand: warning: {text}");
}

/// Jobs, one a line: ID, action, target, status, when, caller.
pub(crate) fn jobs(jobs: &[dockhand_jobs::Job], now: SystemTime) -> String {
    let now_ms = dockhand_jobs::epoch_ms(now);
    let rows = jobs
        .iter()
        .map(|j| {
            [
                j.id.clone(),
                j.action.as_str().to_owned(),
                j.target.describe(),
                format!("{:?}", j.status).to_lowercase(),
                ago(Duration::from_millis(now_ms.saturating_sub(j.started_ms))),
                j.caller.clone(),
            ]
        })
        .collect();
    columns(["ID", "ACTION", "TARGET", "STATUS", "STARTED", "CALLER"], rows)
}

/// Prints an error and its causes on stderr, on one line. The libraries' messages already
/// hold their causes (their `source()` chains are kept for programs), so a cause whose text
/// is already there is not repeated.
pub(crate) fn error(err: &anyhow::Error) {
    eprintln!("dockhand: error: {}", one_line(err.chain()));
}

/// An error chain as one line, `outer: inner`, skipping causes the line already holds.
fn one_line<'a>(chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut line = String::new();
    for cause in chain {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The documented exit codes: 0 succeeded, 1 failed, 3 refused by policy, 4 busy, 130
/// cancelled; for several jobs, the first of cancelled, failed, busy, refused that any has.
pub(crate) fn exit_code(jobs: &[dockhand_jobs::Job]) -> std::process::ExitCode {
    use dockhand_jobs::Status;
    let has = |s: Status| jobs.iter().any(|j| j.status == s);
    let code = if has(Status::Cancelled) {
        130
    } else if has(Status::Failed) || has(Status::Running) {
        1
    } else if has(Status::Busy) {
        4
    } else if has(Status::Refused) {
        3
    } else {
        0
    };
    std::process::ExitCode::from(code)
}

/// An archive, and the target it is on (`backups ls` lists each target the labels name).
#[derive(Debug, serde::Serialize)]
pub(crate) struct Listed {
    pub(crate) target: String,
    #[serde(flatten)]
    pub(crate) object: dockhand_jobs::backup::BackupObject,
}

/// Backups on their targets: target, volume, node, time, size, manifest check, key.
pub(crate) fn backups(listed: &[Listed]) -> String {
    let rows = listed
        .iter()
        .map(|Listed { target, object: o }| {
            let time = dockhand_jobs::backup::parse_key_timestamp(&o.timestamp)
                .map_or_else(|| o.timestamp.clone(), |t| humantime::format_rfc3339_seconds(t).to_string());
            [
                target.clone(),
                o.volume.clone(),
                o.node.clone(),
                time,
                bytes(o.size),
                o.check.clone(),
                o.key.clone(),
            ]
        })
        .collect();
    columns(["TARGET", "VOLUME", "NODE", "TIME", "SIZE", "CHECK", "OBJECT"], rows)
}

/// Storage targets: name, kind, location, notes.
pub(crate) fn storage_targets(rows: &[[String; 4]]) -> String {
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(4);
    let (a, b, c) = (width(0), width(1), width(2));
    let mut out = format!("{:<a$}  {:<b$}  {:<c$}  NOTES\n", "NAME", "TYPE", "LOCATION");
    for [name, kind, location, notes] in rows {
        let _ = writeln!(out, "{name:<a$}  {kind:<b$}  {location:<c$}  {notes}");
    }
    out
}

/// Aligned `key: value` lines.
struct Table(String);

impl Table {
    fn new() -> Self {
        Self(String::new())
    }

    fn row(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = writeln!(self.0, "{:<16} {value}", format!("{key}:"));
        self
    }

    fn finish(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

pub(crate) fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

pub(crate) fn ping(endpoint: &str, ping: &Ping, api: ApiVersion) -> String {
    let engine_api = ping.api_version.map_or_else(|| "-".to_owned(), |v| v.to_string());
    Table::new()
        .row("Endpoint", endpoint)
        .row("Status", "OK")
        .row("API version", format_args!("{api} (engine {engine_api})"))
        .row("OS type", or_dash(ping.os_type.as_deref()))
        .row("Server", or_dash(ping.server.as_deref()))
        .row("Swarm", or_dash(ping.swarm.as_deref()))
        .row("Experimental", ping.experimental)
        .finish()
}

pub(crate) fn version(v: &Version, api: ApiVersion) -> String {
    let mut t = Table::new();
    t.row("Version", &v.version)
        .row("API version", format_args!("{api} (engine {} - {})", v.min_api_version, v.api_version))
        .row("Platform", or_dash(Some(v.platform.name.as_str()).filter(|n| !n.is_empty())))
        .row("OS/Arch", format_args!("{}/{}", v.os, v.arch))
        .row("Kernel", &v.kernel_version)
        .row("Go version", &v.go_version)
        .row("Git commit", &v.git_commit)
        .row("Built", &v.build_time);
    for c in &v.components {
        t.row(&format!("  {}", c.name), &c.version);
    }
    t.finish()
}

pub(crate) fn info(i: &Info, api: ApiVersion) -> String {
    let swarm = &i.swarm;
    let swarm_line = if swarm.is_active() {
        let role = if swarm.control_available { "manager" } else { "worker" };
        format!(
            "active ({role}), node {}, {} node(s), {} manager(s)",
            swarm.node_id, swarm.nodes, swarm.managers
        )
    } else {
        swarm.local_node_state.clone()
    };
    Table::new()
        .row("Name", &i.name)
        .row("ID", &i.id)
        .row("Server version", &i.server_version)
        .row("API version", api)
        .row("OS", format_args!("{} ({}/{})", i.operating_system, i.os_type, i.architecture))
        .row("Kernel", &i.kernel_version)
        .row("CPUs", i.ncpu)
        .row("Memory", format_args!("{:.1} GiB", i.mem_total as f64 / (1u64 << 30) as f64))
        .row(
            "Containers",
            format_args!(
                "{} ({} running, {} stopped)",
                i.containers, i.containers_running, i.containers_stopped
            ),
        )
        .row("Images", i.images)
        .row("Storage driver", &i.driver)
        .row("Root dir", &i.docker_root_dir)
        .row("Security", i.security_options.join(", "))
        .row("Rootless", i.is_rootless())
        .row("Swarm", swarm_line)
        .finish()
}

/// Left-aligned columns, two spaces apart, with a header row.
pub(crate) fn columns<const N: usize>(headers: [&str; N], rows: Vec<[String; N]>) -> String {
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

pub(crate) fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

pub(crate) fn services(services: &[dockhand_engine::ServiceSummary]) -> String {
    let rows = services
        .iter()
        .map(|s| {
            let want = s.spec.mode.replicated.as_ref().and_then(|r| r.replicas);
            let (mode, replicas) = match (s.spec.mode.global.is_some(), want, s.service_status) {
                (true, _, Some(st)) => ("global", format!("{}/{}", st.running_tasks, st.desired_tasks)),
                (true, _, None) => ("global", "-".to_owned()),
                (false, Some(want), Some(st)) => ("replicated", format!("{}/{want}", st.running_tasks)),
                (false, Some(want), None) => ("replicated", format!("?/{want}")),
                (false, None, _) => ("other", "-".to_owned()),
            };
            [
                short(&s.id),
                s.spec.name.clone(),
                mode.to_owned(),
                replicas,
                s.spec.task_template.container_spec.image.clone(),
            ]
        })
        .collect();
    columns(["ID", "NAME", "MODE", "REPLICAS", "IMAGE"], rows)
}

pub(crate) fn nodes(nodes: &[Node], current: &str) -> String {
    let rows = nodes
        .iter()
        .map(|n| {
            let manager = match &n.manager_status {
                Some(m) if m.leader => "Leader".to_owned(),
                Some(m) => m.reachability.clone(),
                None => String::new(),
            };
            let id = if n.id == current { format!("{} *", short(&n.id)) } else { short(&n.id) };
            [
                id,
                n.description.hostname.clone(),
                n.status.state.clone(),
                n.spec.availability.clone(),
                manager,
                n.description.engine.engine_version.clone(),
            ]
        })
        .collect();
    columns(["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "ENGINE"], rows)
}

pub(crate) fn tasks(
    service: &str,
    tasks: &[Task],
    hostnames: &HashMap<String, String>,
    now: SystemTime,
) -> String {
    let rows = tasks
        .iter()
        .map(|t| {
            let name = match t.slot {
                Some(slot) => format!("{service}.{slot}"),
                None => format!("{service}.{}", short(&t.node_id)),
            };
            let node = hostnames.get(&t.node_id).cloned().unwrap_or_else(|| short(&t.node_id));
            let state = capitalize(&t.status.state);
            let current = match humantime::parse_rfc3339_weak(&t.status.timestamp) {
                Ok(at) => format!("{state} {}", ago(now.duration_since(at).unwrap_or_default())),
                Err(_) => format!("{state} {}", t.status.timestamp),
            };
            [short(&t.id), name, node, capitalize(&t.desired_state), current, t.status.err.clone()]
        })
        .collect();
    columns(["ID", "NAME", "NODE", "DESIRED", "CURRENT", "ERROR"], rows)
}

/// `running` → `Running`, as the docker CLI shows task states.
fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A duration as the docker CLI says how long ago something happened (go-units'
/// `HumanDuration`, then " ago").
fn ago(d: Duration) -> String {
    let secs = d.as_secs();
    let (mins, hours) = (secs / 60, secs / 3600);
    let text = match secs {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..60 => format!("{secs} seconds"),
        _ if mins == 1 => "About a minute".to_owned(),
        _ if mins < 60 => format!("{mins} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    };
    // After a state ("Running 5 minutes ago"), the first word is not capitalised.
    let mut chars = text.chars();
    let lower: String = chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default();
    format!("{lower} ago")
}

/// Bytes as people read them: `0 B`, `1.5 MB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

pub(crate) fn locks(locks: &[dockhand_jobs::LockInfo], now: SystemTime) -> String {
    let now_ms = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let rows = locks
        .iter()
        .map(|l| {
            let left = i128::from(l.expires_ms) - i128::try_from(now_ms).unwrap_or(i128::MAX);
            let lease = if l.expired || left <= 0 {
                "expired: the next acquire takes it over".to_owned()
            } else {
                format!("{}s left", (left + 999) / 1000)
            };
            [l.target.clone(), l.job.clone(), l.holder.clone(), lease]
        })
        .collect();
    columns(["TARGET", "JOB", "HOLDER", "LEASE"], rows)
}

pub(crate) fn hosts(states: &[HostState]) -> String {
    let rows = states
        .iter()
        .map(|h| {
            let reachable = match (h.disabled, h.reachable) {
                (true, _) => "-".to_owned(),
                (false, true) => "yes".to_owned(),
                (false, false) => "no".to_owned(),
            };
            [
                h.id.clone(),
                h.kind.map_or_else(|| "-".to_owned(), |k| format!("{k:?}").to_lowercase()),
                h.url.clone(),
                h.disabled.to_string(),
                reachable,
                h.api_version.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    columns(["ID", "TYPE", "URL", "DISABLED", "REACHABLE", "API"], rows)
}

/// One host's checks, for printing.
#[derive(serde::Serialize)]
pub(crate) struct HostReport {
    pub(crate) id: String,
    pub(crate) ok: bool,
    pub(crate) checks: Vec<Check>,
}

pub(crate) fn checks(reports: &[HostReport]) -> String {
    let mut out = String::new();
    for report in reports {
        let _ = writeln!(out, "{}: {}", report.id, if report.ok { "ok" } else { "FAILED" });
        for check in &report.checks {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                if check.ok { "ok  " } else { "FAIL" },
                check.name,
                check.detail
            );
        }
    }
    out
}

/// The effective configuration as YAML, with where each host came from in comments.
pub(crate) fn config(config: &HostsConfig) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "# from {}", config.origin());
    for (id, problems) in config.broken() {
        let _ = writeln!(out, "# {id}: INVALID, left out:");
        for p in problems {
            let _ = writeln!(out, "#   {p}");
        }
    }
    let _ = writeln!(out, "docker:\n  hosts:");
    for h in config.hosts() {
        let note = if h.overridden_by.is_empty() {
            String::new()
        } else {
            format!("  # changed by {}", h.overridden_by.join(", "))
        };
        let _ = writeln!(out, "    {}:{note}", h.id);
        let _ = writeln!(out, "      type: {}", format!("{:?}", h.kind).to_lowercase());
        match &h.host {
            Some(host) => {
                let _ = writeln!(out, "      host: {}", q(&dockhand_policy::redact_url(&host.to_string())));
            }
            None => {
                let _ = writeln!(
                    out,
                    "      # host: unset: DOCKER_HOST, docker contexts, then unix:///var/run/docker.sock"
                );
            }
        }
        let _ = writeln!(out, "      disabled: {}", h.disabled);
        if let Some(tls) = &h.clienttls {
            let _ = writeln!(out, "      clienttls:\n        ca: {}", q(&tls.ca.display().to_string()));
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                let _ = writeln!(
                    out,
                    "        cert: {}\n        key: {}",
                    q(&cert.display().to_string()),
                    q(&key.display().to_string())
                );
            }
        }
        if let Some(m) = &h.managed {
            let _ = writeln!(out, "      managed:\n        executable: {}", q(&m.executable));
            // Env entries and args may carry secrets (`AWS_SECRET_ACCESS_KEY=…`): masked.
            for (name, items) in [("env", &m.env), ("args", &m.args)] {
                let _ = writeln!(out, "        {name}:");
                for item in items {
                    let _ = writeln!(out, "          - {}", q(&dockhand_host::redact_setting(item)));
                }
            }
            let _ =
                writeln!(out, "        loglevel: {}\n        logprefix: {}", m.log_level, q(&m.log_prefix));
            let _ = writeln!(
                out,
                "        healthcheck:\n          interval: {}\n          retries: {}",
                dockhand_policy::format_go_duration(m.health_interval),
                m.health_retries
            );
        }
    }
    out
}

#[cfg(test)]
mod tests;
