//! The status page's pages: the sign-in form, the overview, the history and a job's page,
//! rendered with maud (every value escaped).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dockhand_jobs::store::JobFilter;
use dockhand_jobs::{Action, Job, Status};
use maud::{DOCTYPE, Markup, html};

use super::{COLUMNS, JOBS_READ, STALE_MARGIN, Ui, Who, page, secure_headers};
use crate::routes::Shared;

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dockhand" }
                link rel="stylesheet" href="/ui/app.css";
                script src="/ui/app.js" defer {}
            }
            body { (body) }
        }
    }
}

pub(super) fn sign_in(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        html! {
            main class="sign-in" {
                h1 { "dockhand" }
                form method="post" action="/ui/login" {
                    label for="token" { "Admin or viewer token" }
                    input id="token" name="token" type="password" autocomplete="current-password" required;
                    @if let Some(error) = error { p class="error" { (error) } }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// `GET /`: the sign-in form, or the overview.
pub(crate) async fn home(
    State(app): State<Shared>,
    Extension(ui): Extension<Arc<Ui>>,
    headers: HeaderMap,
) -> Response {
    let Some(who) = ui.session(&headers) else {
        return page(StatusCode::OK, sign_in(None));
    };
    match overview(&app, &ui, &who).await {
        Ok(markup) => page(StatusCode::OK, markup),
        Err(why) => {
            page(StatusCode::BAD_GATEWAY, layout("Error", html! { main { p class="error" { (why) } } }))
        }
    }
}

/// Not signed in: to the sign-in form.
fn to_sign_in() -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    secure_headers(response.headers_mut());
    response
}

/// The page around a signed-in view: who, sign-out, and the way back.
fn signed_in(title: &str, who: &Who, body: Markup) -> Markup {
    layout(
        title,
        html! {
            header {
                h1 { a href="/" { "dockhand" } }
                nav { a href="/ui/jobs" { "history" } }
                form method="post" action="/ui/logout" { span { (who.to_string()) } " " button type="submit" { "Sign out" } }
            }
            main { (body) }
        },
    )
}

/// The history's filters.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct HistoryQuery {
    target: Option<String>,
    action: Option<String>,
    status: Option<String>,
}

/// How many jobs the history shows.
const HISTORY: usize = 100;

/// `GET /ui/jobs`: the jobs of targets in scope, newest first, filtered.
pub(crate) async fn history(
    State(app): State<Shared>,
    Extension(ui): Extension<Arc<Ui>>,
    headers: HeaderMap,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let Some(who) = ui.session(&headers) else { return to_sign_in() };
    let blank = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let mut filter = JobFilter::default();
    filter.target = blank(&query.target);
    filter.action =
        blank(&query.action).filter(|a| dockhand_jobs::ALL_ACTIONS.iter().any(|x| x.as_str() == a));
    filter.status =
        blank(&query.status).and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok());
    filter.limit = Some(crate::routes::MAX_LIMIT);
    let jobs = match app.dispatcher.store().summaries(&filter).await {
        Ok(jobs) => jobs,
        Err(e) => {
            return page(
                StatusCode::BAD_GATEWAY,
                signed_in("Error", &who, html! { p class="error" { "the job store: " (e) } }),
            );
        }
    };
    let mut labels = crate::routes::jobs::Labels::default();
    let mut shown = Vec::new();
    for job in jobs {
        if shown.len() == HISTORY {
            break;
        }
        match crate::routes::jobs::in_scope(&app, &job.target, &mut labels).await {
            Ok(true) => shown.push(job),
            Ok(false) => {}
            Err(e) => {
                return page(
                    StatusCode::BAD_GATEWAY,
                    signed_in("Error", &who, html! { p class="error" { (e.body.message) } }),
                );
            }
        }
    }
    let now_ms = dockhand_jobs::epoch_ms(SystemTime::now());
    let statuses = [
        "",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "refused",
        "busy",
        "skipped",
        "interrupted",
        "available",
    ];
    let body = html! {
        h2 { "History" }
        form method="get" action="/ui/jobs" class="filters" {
            input name="target" placeholder="service/web" value=(query.target.clone().unwrap_or_default());
            select name="action" {
                option value="" { "any action" }
                @for a in dockhand_jobs::ALL_ACTIONS {
                    option value=(a.as_str()) selected[query.action.as_deref() == Some(a.as_str())] { (a.as_str()) }
                }
            }
            select name="status" {
                @for s in statuses {
                    option value=(s) selected[query.status.as_deref().unwrap_or("") == s] { (if s.is_empty() { "any status" } else { s }) }
                }
            }
            button type="submit" { "Filter" }
        }
        table {
            thead { tr { th { "job" } th { "action" } th { "target" } th { "result" } th { "started" } th { "took" } } }
            tbody {
                @for job in &shown {
                    tr {
                        td { a href={ "/ui/jobs/" (job.id) } { (job.id.get(..12).unwrap_or(&job.id)) } }
                        td { (job.action.as_str()) }
                        td { (job.target.describe()) }
                        td { span class={ "status " (job.status.as_str()) } { (job.status.as_str()) } }
                        td { (ago(now_ms, job.started_ms)) }
                        td { @if let Some(ended) = job.ended_ms { (seconds(ended.saturating_sub(job.started_ms))) } }
                    }
                }
            }
        }
        @if shown.is_empty() { p { "No job matches." } }
    };
    page(StatusCode::OK, signed_in("History", &who, body))
}

/// `GET /ui/jobs/{id}`: one job, its steps, errors and output tails.
pub(crate) async fn job_page(
    State(app): State<Shared>,
    Extension(ui): Extension<Arc<Ui>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(who) = ui.session(&headers) else { return to_sign_in() };
    let job = match readable(&app, &id).await {
        Ok(job) => job,
        Err((StatusCode::NOT_FOUND, _)) => {
            return page(
                StatusCode::NOT_FOUND,
                signed_in("No such job", &who, html! { p { "No such job." } }),
            );
        }
        Err((status, why)) => {
            return page(status, signed_in("Error", &who, html! { p class="error" { (why) } }));
        }
    };
    let now_ms = dockhand_jobs::epoch_ms(SystemTime::now());
    let body = html! {
        h2 { (job.action.as_str()) " on " (job.target.describe()) }
        p {
            span class={ "status " (job.status.as_str()) } { (job.status.as_str()) }
            " · started " (ago(now_ms, job.started_ms))
            @if let Some(ended) = job.ended_ms { " · took " (seconds(ended.saturating_sub(job.started_ms))) }
            " · by " (job.caller)
            @if let Some(image) = &job.image { " · " code { (image) } }
        }
        @if job.status == Status::Running {
            section class="live" data-follow=(job.id) {
                h3 { "Live" }
                ol class="live" { li { "Reload the page to see the steps so far." } }
            }
        }
        table {
            thead { tr { th { "step" } th { "node" } th { "result" } th { "took" } th { "exit" } } }
            tbody {
                @for step in &job.steps {
                    tr {
                        td { (step.kind) }
                        td { (step.node.clone().unwrap_or_default()) }
                        td { span class={ "status " (step.status.as_str()) } { (step.status.as_str()) } }
                        td { (seconds(step.duration_ms)) }
                        td { @if let Some(code) = step.exit_code { (code) } }
                    }
                    @if step.error.is_some() || step.output_tail.is_some() {
                        tr class="detail" {
                            td colspan="5" {
                                @if let Some(error) = &step.error { p class="error" { (error) } }
                                @if let Some(tail) = &step.output_tail { pre { (tail) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, signed_in("Job", &who, body))
}

/// The job `id` when it is in the server's scope: 404 when it is not (or not there), 502
/// with what failed when the store or the engine did not answer.
pub(super) async fn readable(app: &Shared, id: &str) -> Result<Job, (StatusCode, String)> {
    let missing = || (StatusCode::NOT_FOUND, "no such job".to_owned());
    if !crate::routes::jobs::valid_job_id(id) {
        return Err(missing());
    }
    let job = match app.dispatcher.store().get(id).await {
        Ok(Some(job)) => job,
        Ok(None) => return Err(missing()),
        Err(e) => return Err((StatusCode::BAD_GATEWAY, format!("the job store: {e}"))),
    };
    let mut labels = crate::routes::jobs::Labels::default();
    match crate::routes::jobs::in_scope(app, &job.target, &mut labels).await {
        Ok(true) => Ok(job),
        Ok(false) => Err(missing()),
        Err(e) => Err((StatusCode::BAD_GATEWAY, e.body.message)),
    }
}

/// A job as a cell shows it.
#[derive(Debug, Clone, Copy)]
struct Last {
    status: Status,
    started_ms: u64,
    ended_ms: Option<u64>,
}

/// One target's row: per action, its last job and its last success.
#[derive(Debug, Default)]
struct Row {
    last: BTreeMap<&'static str, Last>,
    success: BTreeMap<&'static str, u64>,
}

/// A running job, as "Running now" lists it.
#[derive(Debug)]
struct Running {
    id: String,
    action: &'static str,
    target: String,
    started_ms: u64,
}

/// What the overview shows, read at most every [`FRESH`]: the targets in scope, each one's
/// row, the running jobs.
#[derive(Debug)]
pub(super) struct Snapshot {
    at: Instant,
    services: Vec<String>,
    nodes: Vec<String>,
    rows: HashMap<String, Row>,
    running: Vec<Running>,
}

/// How long an overview's reading serves every viewer: the engine's listings and the
/// store's newest jobs are read once for all of them. Running jobs are followed live.
const FRESH: Duration = Duration::from_secs(2);

/// The overview's reading: a fresh one, else one read now by this request while the others
/// are served the last one (one reading at a time).
async fn snapshot(app: &Shared, ui: &Ui) -> Result<Arc<Snapshot>, String> {
    let last = ui.snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    if let Some(last) = &last {
        if last.at.elapsed() < FRESH {
            return Ok(Arc::clone(last));
        }
    }
    let _reading = match (ui.reading.try_lock(), &last) {
        (Ok(guard), _) => guard,
        (Err(_), Some(last)) => return Ok(Arc::clone(last)),
        (Err(_), None) => {
            let guard = ui.reading.lock().await;
            if let Some(read) = ui.snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
            {
                return Ok(read);
            }
            guard
        }
    };
    let read = Arc::new(read_snapshot(app).await?);
    *ui.snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&read));
    Ok(read)
}

async fn read_snapshot(app: &Shared) -> Result<Snapshot, String> {
    let filters = dockhand_engine::Filters::new();
    let swarm = app.base.swarm.as_ref();
    let mut services: Vec<String> = swarm
        .services(&filters)
        .await
        .map_err(|e| format!("the engine: {e}"))?
        .into_iter()
        .filter(|s| app.gate.authorizer.in_scope(&s.spec.labels))
        .map(|s| format!("service/{}", s.spec.name))
        .collect();
    services.sort();
    let mut nodes: Vec<String> = swarm
        .nodes(&filters)
        .await
        .map_err(|e| format!("the engine: {e}"))?
        .into_iter()
        .filter(|n| app.gate.authorizer.in_scope(&n.spec.labels))
        .map(|n| format!("node/{}", n.description.hostname))
        .collect();
    nodes.sort();
    let shown: HashSet<&str> = services.iter().chain(&nodes).map(String::as_str).collect();
    let mut rows: HashMap<String, Row> = HashMap::new();
    let mut running = Vec::new();
    // Newest first, as summaries read a page at a time: only what a row keeps stays.
    let jobs = dockhand_jobs::store::newest(app.dispatcher.store().as_ref(), JOBS_READ)
        .await
        .map_err(|e| format!("the job store: {e}"))?;
    for job in &jobs {
        let target = job.target.describe();
        if !shown.contains(target.as_str()) {
            continue;
        }
        if job.status == Status::Running {
            let (id, action, started_ms) = (job.id.clone(), job.action.as_str(), job.started_ms);
            running.push(Running { id, action, target: target.clone(), started_ms });
        }
        let row = rows.entry(target).or_default();
        let last = Last { status: job.status, started_ms: job.started_ms, ended_ms: job.ended_ms };
        row.last.entry(job.action.as_str()).or_insert(last);
        if job.status == Status::Succeeded {
            row.success.entry(job.action.as_str()).or_insert(job.ended_ms.unwrap_or(job.started_ms));
        }
    }
    Ok(Snapshot { at: Instant::now(), services, nodes, rows, running })
}

async fn overview(app: &Shared, ui: &Ui, who: &Who) -> Result<Markup, String> {
    let snapshot = snapshot(app, ui).await?;
    let Snapshot { services, nodes, rows, running, .. } = snapshot.as_ref();
    let plan = ui.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let now = SystemTime::now();
    let now_ms = dockhand_jobs::epoch_ms(now);
    let empty = Row::default();
    let cell = |target: &str, action: Action| -> Markup {
        let row = rows.get(target).unwrap_or(&empty);
        let scheduled = plan.get(&(action.as_str().to_owned(), target.to_owned()));
        let next = scheduled.map(|(interval, next)| next_after(*next, *interval, now));
        let stale = scheduled.is_some_and(|(interval, _)| {
            let limit = (*interval + STALE_MARGIN).as_millis() as u64;
            row.success.get(action.as_str()).is_none_or(|at| now_ms.saturating_sub(*at) > limit)
        });
        html! {
            td class=(if stale { "stale" } else { "" }) {
                @if let Some(last) = row.last.get(action.as_str()) {
                    span class={ "status " (last.status.as_str()) } { (last.status.as_str()) }
                    " " (ago(now_ms, last.ended_ms.unwrap_or(last.started_ms)))
                    @if let Some(ended) = last.ended_ms { " · " (seconds(ended.saturating_sub(last.started_ms))) }
                } @else {
                    span class="none" { "—" }
                }
                @if let Some(next) = next { br; small { "next " (in_time(now, next)) } }
                @if stale { br; strong { "stale" } }
            }
        }
    };
    let table = |title: &str, targets: &[String], actions: &[Action]| -> Markup {
        html! {
            h2 { (title) " (" (targets.len()) ")" }
            table {
                thead { tr { th { "target" } @for a in actions { th { (a.as_str()) } } } }
                tbody {
                    @for target in targets {
                        tr { th scope="row" { (target) } @for a in actions { (cell(target, *a)) } }
                    }
                }
            }
        }
    };
    Ok(signed_in(
        "Status",
        who,
        html! {
                h2 { "Running now (" (running.len()) ")" }
                @if running.is_empty() { p { "No job is running." } }
                ul {
                    @for job in running {
                        li data-follow=(job.id) {
                            a href={ "/ui/jobs/" (job.id) } { (job.action) " on " (job.target) }
                            ", started " (ago(now_ms, job.started_ms))
                            ol class="live" {}
                        }
                    }
                }
                (table("Services", services, &COLUMNS[..3]))
                (table("Nodes", nodes, &[Action::CleanNode, Action::BackupNode]))
                (channels(ui, now))
        },
    ))
}

/// The notification channels, a failing one marked.
fn channels(ui: &Ui, now: SystemTime) -> Markup {
    let channels = ui.channels();
    let since = |at: SystemTime| format!("{} ago", human(now.duration_since(at).unwrap_or_default()));
    html! {
        @if !channels.is_empty() {
            h2 { "Notification channels (" (channels.len()) ")" }
            table {
                thead { tr { th { "channel" } th { "kind" } th { "last delivered" } th { "last failure" } } }
                tbody {
                    @for (name, channel) in &channels {
                        tr class=(if channel.failing() { "failing" } else { "" }) {
                            th scope="row" { (name) @if channel.failing() { " " strong class="error" { "failing" } } }
                            td { (channel.kind) }
                            td { @if let Some(at) = channel.sent { (since(at)) } @else { span class="none" { "—" } } }
                            td {
                                @if let Some((at, why)) = &channel.failed { (since(*at)) ": " (why) }
                                @else { span class="none" { "—" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The first of `next`, `next + interval`, … after `now`.
fn next_after(next: SystemTime, interval: Duration, now: SystemTime) -> SystemTime {
    if next > now || interval.is_zero() {
        return next;
    }
    let behind = now.duration_since(next).unwrap_or_default();
    let steps = behind.as_secs() / interval.as_secs().max(1) + 1;
    next + interval * u32::try_from(steps).unwrap_or(u32::MAX)
}

fn ago(now_ms: u64, at_ms: u64) -> String {
    format!("{} ago", human(Duration::from_millis(now_ms.saturating_sub(at_ms))))
}

fn in_time(now: SystemTime, at: SystemTime) -> String {
    format!("in {}", human(at.duration_since(now).unwrap_or_default()))
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// `3 h 5 min`, `12 min`, `40 s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_run_moves_past_now_and_times_read_as_people_say_them() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(next_after(t0, day, t0 - day), t0);
        assert_eq!(next_after(t0, day, t0 + Duration::from_secs(10)), t0 + day);
        assert_eq!(next_after(t0, day, t0 + day * 3), t0 + day * 4);
        assert_eq!(human(Duration::from_secs(42)), "42 s");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 300)), "3 h 5 min");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 3600)), "2 d 1 h");
    }

    #[test]
    fn a_name_is_escaped_on_the_page() {
        let text = layout("x", html! { p { ("<script>alert(1)</script>") } }).into_string();
        assert!(!text.contains("<script>alert") && text.contains("&lt;script&gt;"), "{text}");
    }
}
