//! The status page, read-only: `GET /` shows, to a signed-in admin or viewer, every service
//! and node in the server's scope with, per action, its last result, when and how long, the
//! next scheduled run and a stale mark; and the jobs running now.
//!
//! - **Sign-in.** A token (admin, or read-only viewer: `DOCKHAND_VIEWER_TOKENS(_FILE)`) is
//!   posted once to `POST /ui/login` (form field `token`) and exchanged for a random session
//!   cookie: `HttpOnly`, `SameSite=Strict`, `Secure` under TLS, 12 hours. A token is never in
//!   a URL; a failed sign-in counts in the same throttle as the API's. `POST /ui/logout`
//!   ends the session.
//! - **History.** `GET /ui/jobs` lists the jobs of targets in scope, newest first, filtered
//!   by target, action and status; `GET /ui/jobs/{id}` shows one job's steps, errors and
//!   output tails (as stored: redacted).
//! - **Rendering.** Server-side with maud (escaped by default), no JavaScript, one stylesheet
//!   embedded in the binary, and a Content-Security-Policy that allows nothing else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use dockhand_jobs::store::JobFilter;
use dockhand_jobs::{Action, Job, Status};
use maud::{DOCTYPE, Markup, html};
use sha2::Digest as _;

use crate::routes::Shared;
use crate::routes::input::ClientIp;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "dockhand_session";
/// How long a session lasts.
const SESSION_LIFE: Duration = Duration::from_secs(12 * 3600);
/// The most sessions held; the oldest go first.
const MAX_SESSIONS: usize = 10_000;
/// How many of the store's newest jobs the page reads.
const JOBS_READ: usize = 5_000;
/// A target is stale when its last success is older than its schedule's interval and this.
const STALE_MARGIN: Duration = Duration::from_secs(2 * 3600);
/// The actions the page shows, in its columns' order.
const COLUMNS: [Action; 4] =
    [Action::CleanService, Action::BackupService, Action::UpdateService, Action::CleanNode];
/// The page's stylesheet.
const STYLE: &str = include_str!("ui/app.css");
/// Nothing but this server's own stylesheet and forms.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Admin(usize),
    Viewer(usize),
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin(n) => write!(f, "admin#{n}"),
            Self::Viewer(n) => write!(f, "viewer#{n}"),
        }
    }
}

/// The page's state: viewer tokens (by hash), sessions, the scheduler's plan.
#[derive(Debug)]
pub(crate) struct Ui {
    viewers: Vec<[u8; 32]>,
    sessions: Mutex<HashMap<[u8; 32], (Who, Instant)>>,
    secure: bool,
    plan: Mutex<BTreeMap<(String, String), (Duration, SystemTime)>>,
}

fn hash(text: &str) -> [u8; 32] {
    sha2::Sha256::digest(text.as_bytes()).into()
}

impl Ui {
    /// The page for `viewers` (read-only tokens); cookies are `Secure` when `secure` (TLS).
    pub(crate) fn new(viewers: &[String], secure: bool) -> Self {
        Self {
            viewers: viewers.iter().map(|t| hash(t)).collect(),
            sessions: Mutex::default(),
            secure,
            plan: Mutex::default(),
        }
    }

    /// What the scheduler listed: per (action, `service/<name>`), the interval between two
    /// runs and the next one.
    pub(crate) fn planned(&self, entries: impl IntoIterator<Item = (Action, String, Duration, SystemTime)>) {
        let plan =
            entries.into_iter().map(|(a, t, i, next)| ((a.as_str().to_owned(), t), (i, next))).collect();
        *self.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = plan;
    }

    fn viewer(&self, token: &str) -> Option<usize> {
        let asked = hash(token);
        // Every candidate is compared (hashes: their time says nothing of the token).
        self.viewers.iter().enumerate().fold(None, |found, (i, v)| found.or((*v == asked).then_some(i + 1)))
    }

    /// A new session for `who`: the cookie's value.
    fn open(&self, who: Who) -> Option<String> {
        let mut secret = [0u8; 32];
        // The process's one crypto provider (ring) is the randomness too.
        rustls::crypto::ring::default_provider().secure_random.fill(&mut secret).ok()?;
        let value: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        sessions.retain(|_, (_, until)| *until > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, (_, until))| *until).map(|(k, _)| *k) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(hash(&value), (who, now + SESSION_LIFE));
        Some(value)
    }

    /// Who the request's session cookie is, when it is a live session.
    fn session(&self, headers: &HeaderMap) -> Option<Who> {
        let value = cookie(headers)?;
        let sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.get(&hash(&value)).filter(|(_, until)| *until > Instant::now()).map(|(who, _)| who.clone())
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(value) = cookie(headers) {
            self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&hash(&value));
        }
    }

    fn set_cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text =
            format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The session cookie's value in `headers`.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A page with the headers every page of the UI has.
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure_headers(headers);
    response
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dockhand" }
                link rel="stylesheet" href="/ui/app.css";
            }
            body { (body) }
        }
    }
}

fn sign_in(error: Option<&str>) -> Markup {
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

/// The sign-in form posted: a token.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SignIn {
    token: String,
}

/// `POST /ui/login`.
pub(crate) async fn login(
    State(app): State<Shared>,
    Extension(ui): Extension<Arc<Ui>>,
    ClientIp(client): ClientIp,
    Form(form): Form<SignIn>,
) -> Response {
    if app.gate.throttle.check(client).is_err() {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            sign_in(Some("Too many failed sign-ins: wait a minute.")),
        );
    }
    let token = form.token.trim();
    let who = match (app.gate.authorizer.admin(token), ui.viewer(token)) {
        (Some(n), _) => Who::Admin(n),
        (None, Some(n)) => Who::Viewer(n),
        (None, None) => {
            app.gate.throttle.fail(client);
            app.metrics.auth_failure();
            tracing::warn!(%client, "status page: a token was not accepted");
            return page(StatusCode::UNAUTHORIZED, sign_in(Some("That token is not accepted here.")));
        }
    };
    let Some(value) = ui.open(who.clone()) else {
        return page(StatusCode::INTERNAL_SERVER_ERROR, sign_in(Some("No session could be made.")));
    };
    tracing::info!(%client, who = %who, "status page: signed in");
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    response.headers_mut().insert(header::SET_COOKIE, ui.set_cookie(&value, SESSION_LIFE.as_secs()));
    secure_headers(response.headers_mut());
    response
}

/// `POST /ui/logout`.
pub(crate) async fn logout(Extension(ui): Extension<Arc<Ui>>, headers: HeaderMap) -> Response {
    ui.close(&headers);
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    response.headers_mut().insert(header::SET_COOKIE, ui.set_cookie("", 0));
    secure_headers(response.headers_mut());
    response
}

/// `GET /ui/app.css`.
pub(crate) async fn style() -> Response {
    let mut response = STYLE.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    secure_headers(response.headers_mut());
    response
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
    let jobs = match app.dispatcher.store().list(&filter).await {
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
        match crate::routes::jobs::in_scope(&app, &job, &mut labels).await {
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
                        td { span class={ "status " (status_of(job)) } { (status_of(job)) } }
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
    let missing =
        || page(StatusCode::NOT_FOUND, signed_in("No such job", &who, html! { p { "No such job." } }));
    if !crate::routes::jobs::valid_job_id(&id) {
        return missing();
    }
    let job = match app.dispatcher.store().get(&id).await {
        Ok(Some(job)) => job,
        Ok(None) => return missing(),
        Err(e) => {
            return page(
                StatusCode::BAD_GATEWAY,
                signed_in("Error", &who, html! { p class="error" { "the job store: " (e) } }),
            );
        }
    };
    let mut labels = crate::routes::jobs::Labels::default();
    if !matches!(crate::routes::jobs::in_scope(&app, &job, &mut labels).await, Ok(true)) {
        return missing();
    }
    let now_ms = dockhand_jobs::epoch_ms(SystemTime::now());
    let body = html! {
        h2 { (job.action.as_str()) " on " (job.target.describe()) }
        p {
            span class={ "status " (status_of(&job)) } { (status_of(&job)) }
            " · started " (ago(now_ms, job.started_ms))
            @if let Some(ended) = job.ended_ms { " · took " (seconds(ended.saturating_sub(job.started_ms))) }
            " · by " (job.caller)
            @if let Some(image) = &job.image { " · " code { (image) } }
        }
        table {
            thead { tr { th { "step" } th { "node" } th { "result" } th { "took" } th { "exit" } } }
            tbody {
                @for step in &job.steps {
                    tr {
                        td { (step.kind) }
                        td { (step.node.clone().unwrap_or_default()) }
                        td { span class={ "status " (word(step.status)) } { (word(step.status)) } }
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

/// One target's row: per action, its last job and its last success.
#[derive(Default)]
struct Row {
    last: BTreeMap<&'static str, Job>,
    success: BTreeMap<&'static str, u64>,
}

async fn overview(app: &Shared, ui: &Ui, who: &Who) -> Result<Markup, String> {
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
    let mut filter = JobFilter::default();
    filter.limit = Some(JOBS_READ);
    let jobs = app.dispatcher.store().list(&filter).await.map_err(|e| format!("the job store: {e}"))?;
    let mut rows: HashMap<String, Row> = HashMap::new();
    let mut running = Vec::new();
    for job in &jobs {
        let target = job.target.describe();
        if !services.contains(&target) && !nodes.contains(&target) {
            continue;
        }
        if job.status == Status::Running {
            running.push(job);
        }
        let row = rows.entry(target).or_default();
        row.last.entry(job.action.as_str()).or_insert_with(|| job.clone());
        if job.status == Status::Succeeded {
            row.success.entry(job.action.as_str()).or_insert(job.ended_ms.unwrap_or(job.started_ms));
        }
    }
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
                @if let Some(job) = row.last.get(action.as_str()) {
                    span class={ "status " (status_of(job)) } { (status_of(job)) }
                    " " (ago(now_ms, job.ended_ms.unwrap_or(job.started_ms)))
                    @if let Some(ended) = job.ended_ms { " · " (seconds(ended.saturating_sub(job.started_ms))) }
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
                    @for job in &running {
                        li { a href={ "/ui/jobs/" (job.id) } { (job.action.as_str()) " on " (job.target.describe()) } ", started " (ago(now_ms, job.started_ms)) }
                    }
                }
                (table("Services", &services, &COLUMNS[..3]))
                (table("Nodes", &nodes, &[Action::CleanNode, Action::BackupNode]))
        },
    ))
}

fn status_of(job: &Job) -> String {
    word(job.status)
}

/// A status as its JSON word (`succeeded`, `failed`…).
fn word(status: Status) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
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
    fn sessions_are_random_live_and_closed_and_tokens_compare_by_hash() {
        let ui = Ui::new(&["viewer-token-1".to_owned(), "viewer-token-2".to_owned()], true);
        assert_eq!((ui.viewer("viewer-token-2"), ui.viewer("viewer-token-3")), (Some(2), None));
        let a = ui.open(Who::Viewer(2)).unwrap();
        let b = ui.open(Who::Viewer(2)).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {SESSION_COOKIE}={a}")).unwrap(),
        );
        assert_eq!(ui.session(&headers), Some(Who::Viewer(2)));
        ui.close(&headers);
        assert_eq!(ui.session(&headers), None);
        let cookie = ui.set_cookie(&b, 60);
        let text = cookie.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=60"] {
            assert!(text.contains(part), "{text}");
        }
        assert!(!Ui::new(&[], false).set_cookie("x", 1).to_str().unwrap().contains("Secure"));
    }

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
