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
//! - **Live parts.** A running job's page, and the overview while jobs run, follow the job's
//!   events (`GET /ui/jobs/{id}/events`, the API's stream behind the session) with a little
//!   plain JavaScript (`/ui/app.js`): each step as it starts and ends, and the page reloads
//!   when the job ends. Without JavaScript everything else works; a reload shows the same.
//! - **Channels.** The notification channels and how their last deliveries went: a failing
//!   channel is marked.
//! - **Rendering.** Server-side with maud (escaped by default, [`pages`]), one stylesheet and
//!   one script embedded in the binary, and a Content-Security-Policy that allows nothing
//!   else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use dockhand_jobs::Action;
use maud::Markup;
use sha2::Digest as _;

use crate::routes::Shared;
use crate::routes::input::ClientIp;

mod pages;
use pages::sign_in;
pub(crate) use pages::{history, home, job_page};

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
/// The page's script: its live parts.
const SCRIPT: &str = include_str!("ui/app.js");
/// Nothing but this server's own stylesheet, script, event streams and forms.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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

/// How one notification channel's deliveries went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Channel {
    kind: &'static str,
    sent: Option<SystemTime>,
    failed: Option<(SystemTime, String)>,
}

impl Channel {
    /// Its last delivery failed.
    fn failing(&self) -> bool {
        match (&self.failed, self.sent) {
            (Some((failed, _)), Some(sent)) => *failed >= sent,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// The page's state: viewer tokens (by hash), sessions, the scheduler's plan, the channels.
#[derive(Debug)]
pub(crate) struct Ui {
    viewers: Vec<[u8; 32]>,
    sessions: Mutex<HashMap<[u8; 32], (Who, Instant)>>,
    secure: bool,
    plan: Mutex<BTreeMap<(String, String), (Duration, SystemTime)>>,
    channels: Mutex<BTreeMap<String, Channel>>,
    /// The overview's last reading, and the lock of the one reading at a time.
    snapshot: Mutex<Option<Arc<pages::Snapshot>>>,
    reading: tokio::sync::Mutex<()>,
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
            channels: Mutex::default(),
            snapshot: Mutex::default(),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// The notification channels, by name and kind, none tried yet.
    pub(crate) fn with_channels(self, channels: impl IntoIterator<Item = (String, &'static str)>) -> Self {
        let channels =
            channels.into_iter().map(|(name, kind)| (name, Channel { kind, ..Channel::default() }));
        *self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = channels.collect();
        self
    }

    /// How a notification went.
    pub(crate) fn delivered(&self, delivery: &dockhand_jobs::notify::Delivery) {
        use dockhand_jobs::notify::Delivery;
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = SystemTime::now();
        match delivery {
            Delivery::Sent { webhook } => {
                if let Some(channel) = channels.get_mut(webhook) {
                    channel.sent = Some(now);
                }
            }
            Delivery::Failed { webhook, reason } => {
                if let Some(channel) = channels.get_mut(webhook) {
                    channel.failed = Some((now, reason.clone()));
                }
            }
            _ => {}
        }
    }

    /// The channels, by name.
    fn channels(&self) -> Vec<(String, Channel)> {
        let channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        channels.iter().map(|(name, c)| (name.clone(), c.clone())).collect()
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

/// An embedded asset, with its content type.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure_headers(response.headers_mut());
    response
}

/// `GET /ui/app.css`.
pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /ui/app.js`.
pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /ui/jobs/{id}/events`: the job's events (as `GET /v1/jobs/{id}/events` streams
/// them) for a session whose scope holds the job; 404 otherwise.
pub(crate) async fn job_events(
    State(app): State<Shared>,
    Extension(ui): Extension<Arc<Ui>>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if ui.session(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let job = match pages::readable(&app, &id).await {
        Ok(job) => job,
        Err((status, why)) => return (status, why).into_response(),
    };
    crate::routes::jobs::follow(&app, client, job)
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
    fn a_channel_fails_until_it_delivers_again() {
        use dockhand_jobs::notify::Delivery;
        let ui = Ui::new(&[], false).with_channels([("ops".to_owned(), "slack")]);
        let failed = Delivery::Failed { webhook: "ops".to_owned(), reason: "answered 500".to_owned() };
        ui.delivered(&failed);
        ui.delivered(&Delivery::Failed { webhook: "unknown".to_owned(), reason: String::new() });
        let channels = ui.channels();
        assert_eq!(channels.len(), 1);
        assert!(channels[0].1.failing());
        ui.delivered(&Delivery::Sent { webhook: "ops".to_owned() });
        assert!(!ui.channels()[0].1.failing());
    }
}
