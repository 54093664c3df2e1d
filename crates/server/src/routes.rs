//! The routes: the v1 API, the seed's routes, job reads and follows, listings, health and
//! metrics. Each handler reads its request, authenticates, validates names, looks the
//! target up, authorizes, and hands the job to the [`Dispatcher`]; nothing here runs a
//! job's logic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dockhand_engine::{Filters, Node};
use dockhand_jobs::{
    Action, Event, Job, JobContext, JobError, JobFilter, Registries, RestoreOptions, Status, StorageTargets,
    UpdateRequest,
};
use dockhand_policy::{Decision, Identity};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, Gate};
use crate::dispatch::{Dispatcher, Outcome, Work};
use crate::error::{ApiError, ErrorBody};
use crate::metrics::Metrics;

/// The largest body read.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How long a body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most jobs one list answer holds.
pub(crate) const MAX_LIMIT: usize = 500;

/// What every handler shares.
pub struct App {
    /// Credentials.
    pub gate: Gate,
    /// Jobs.
    pub dispatcher: Arc<Dispatcher>,
    /// The context every job starts from.
    pub base: JobContext,
    /// Where backups go.
    pub storage: Arc<StorageTargets>,
    /// Registry credentials for updates.
    pub registries: Arc<Registries>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The event streams each address follows (R3-12).
    pub(crate) streams: Arc<crate::limits::PerClient>,
    /// The last `/readyz` verdict and when it was taken: the engine is asked at most once
    /// a second, however often anyone asks (R3-12).
    pub(crate) ready: tokio::sync::Mutex<Option<(std::time::Instant, StatusCode, String)>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("gate", &self.gate).finish_non_exhaustive()
    }
}

pub(crate) type Shared = Arc<App>;

// ---------------------------------------------------------------------------------------
// Request pieces.

/// `?wait=`: answer when the job ended (`true`) or once it runs (`false`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    /// `true` (the default): 200 with the job when it succeeded, 500 with it when it
    /// failed. `false`: 202 with the job's ID and a `Location` once it holds its lock.
    pub wait: Option<bool>,
}

/// The body of `POST /v1/services/{service}/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    /// The image to deploy, `name:tag` (pinned by digest before it is deployed).
    pub image: String,
    /// Recreate the tasks even when the image did not change.
    #[serde(default)]
    pub force: bool,
}

/// The body of `POST /v1/services/{service}/restore` (admins only).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreBody {
    /// Only this volume (default: every volume the service backs up).
    pub volume: Option<String>,
    /// The backup taken at this timestamp (`20261128T031500Z`; default: the newest).
    pub at: Option<String>,
    /// This object of the storage target: one of dockhand's, or an archive of the seed's
    /// tool (`<node>_<volume>_<date>.tar.gz`).
    pub object: Option<String>,
    /// Restore onto this node.
    pub node: Option<String>,
    /// Replace a volume that is not empty.
    #[serde(default)]
    pub force: bool,
}

/// The body of `POST /v1/volumes/{volume}/move` (admins only).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveBody {
    /// The node the volume is on (hostname or ID).
    pub from: String,
    /// The node it goes to (hostname or ID).
    pub to: String,
    /// The service that uses it: stopped meanwhile, placed on `to` afterwards, started again;
    /// the volume may then be named as the service names it.
    pub service: Option<String>,
}

/// An empty body (`{}`, or nothing) for clean and backup.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmptyBody {}

/// The seed's service routes' body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SeedServiceBody {
    /// The service's token (or an admin token).
    pub token: Option<String>,
    /// The service, `stack_service`.
    pub service_name: Option<String>,
    /// The image (update).
    pub image: Option<String>,
    /// Recreate the tasks even when the image did not change (update).
    pub is_force: Option<bool>,
    /// Accepted and ignored: registry credentials come from labels and the configuration.
    #[expect(dead_code, reason = "the seed's field, accepted so its pipelines keep working")]
    pub is_registry_auth: Option<bool>,
    /// The seed's `waitRes` (default `true`).
    pub wait_res: Option<bool>,
}

/// The seed's node route's body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SeedNodeBody {
    /// An admin token.
    pub token: Option<String>,
    /// The node: hostname or ID.
    pub node_name: Option<String>,
    /// The seed's `waitRes` (default `true`).
    pub wait_res: Option<bool>,
}

/// The seed's routes' query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SeedQuery {
    /// The seed's `waitRes`.
    pub wait_res: Option<bool>,
    /// Same as `waitRes`.
    pub wait: Option<bool>,
    /// The service, when not in the body (`/api/clean/service`).
    pub service_name: Option<String>,
}

/// `GET /v1/jobs`' query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobsQuery {
    /// `service/<name>` or `node/<hostname>`.
    pub target: Option<String>,
    /// `clean-node`, `clean-service`, `backup-service`, `restore`, `update-service`, ...
    pub action: Option<String>,
    /// `running`, `succeeded`, `failed`, `cancelled`, `refused`, `busy`, `skipped`, `interrupted`.
    pub status: Option<String>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
    /// Jobs older than this job ID: the next page.
    pub before: Option<String>,
}

/// `?label=k=v` (repeatable) on listings.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LabelQuery {
    /// `key` or `key=value`; repeat for several.
    #[expect(dead_code, reason = "documents the query, which is read raw (a repeated key)")]
    pub label: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------
// Answers.

/// A job that runs (`wait=false`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// The job's ID.
    pub id: String,
    /// `running`.
    pub status: String,
    /// Where to read it: `/v1/jobs/{id}`.
    pub location: String,
    /// The seed's answer: `Ok`.
    pub message: String,
    /// The job as it is.
    #[schema(value_type = Object)]
    pub job: serde_json::Value,
}

/// The seed's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SeedOk {
    /// `Ok`.
    pub message: String,
    /// The job.
    #[schema(value_type = Object)]
    pub job: serde_json::Value,
}

/// A service or node in a listing. Label values that may be secrets (`*.token`,
/// `*password*`, `*secret*`, `*access-key*`) are replaced by `***`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Listed {
    /// Its ID.
    pub id: String,
    /// Its name (service) or hostname (node).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// One server-sent event of `/v1/jobs/{id}/events`, as a client parses it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StreamEvent {
    /// The event's name: `job-started`, `locked`, `step-started`, `step-finished`,
    /// `progress` or `job-finished`.
    pub event: String,
    /// The event as one line of JSON, with the same `event` field.
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, or what is wrong.
    pub status: String,
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The bearer token of `Authorization`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// The client's address, as the accept loop recorded it (loopback when there is none: a
/// router called without a socket, in tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ConnectInfo(addr)| addr.ip());
        Ok(Self(ip))
    }
}

/// Reads a body of at most [`BODY_LIMIT`] within [`BODY_TIMEOUT`].
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {} KiB", BODY_LIMIT / 1024),
        )
    };
    // A Content-Length over the limit is refused before a byte is read (and before
    // `100 Continue` is sent to a client that asked).
    if usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).map_or(true, |n| n > BODY_LIMIT) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, BODY_LIMIT);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the body did not arrive within {}s", BODY_TIMEOUT.as_secs()),
        )),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad_request(format!("the body cannot be read: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The body as `T`: nothing is `{}`; a syntax error is 400, a field of the wrong type or
/// a missing or unknown field is 422 naming it.
fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => match de.end() {
            Ok(()) => Ok(value),
            Err(e) => Err(ApiError::bad_request(format!("the body is not valid JSON: {e}"))),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::bad_request(format!("the body is not valid JSON: {inner}")))
            } else if path == "." || path.is_empty() {
                Err(ApiError::invalid_field("body", inner))
            } else {
                Err(ApiError::invalid_field(&path, inner))
            }
        }
    }
}

pub(crate) fn path_param(p: Result<Path<String>, PathRejection>, field: &str) -> Result<String, ApiError> {
    p.map(|Path(v)| v).map_err(|e| ApiError::bad_request(format!("{field}: {}", e.body_text())))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

/// Docker's rule for service names (a DNS label: letters, digits, `-`, `_`, `.`, starting
/// with a letter or digit, at most 63), which a service ID also meets.
pub fn valid_service_name(name: &str) -> bool {
    valid_name(name, 63)
}

/// Node hostnames and IDs: the same characters, at most 253.
pub fn valid_node_name(name: &str) -> bool {
    valid_name(name, 253)
}

fn valid_name(name: &str, max: usize) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= max
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The target a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Service,
    Node,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Node => "node",
        }
    }
}

/// A target as looked up: ID, name, labels.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
}

/// The same answer for "no such target" and "not allowed", for a caller who is not an
/// admin: nothing tells one from the other.
pub(crate) fn denied(verb: &str, kind: Kind, name: &str) -> ApiError {
    ApiError::forbidden(format!("not allowed: this credential may not {verb} {} {name:?}", kind.as_str()))
}

/// The target `name` of `kind`, or `None`. An ambiguous node hostname is an error only when
/// `reveal` (an admin asks): to anyone else it is no target, so that node IDs never go to a
/// caller before authorization (R3-15).
pub(crate) async fn look_up(
    app: &App,
    kind: Kind,
    name: &str,
    field: &str,
    reveal: bool,
) -> Result<Option<Found>, ApiError> {
    let client = &app.base.client;
    match kind {
        // The engine also resolves a prefix of an ID (`l` finds `l7t3…`, or is ambiguous,
        // 400): a request names a service exactly, by name or by full ID.
        Kind::Service => match client.service(name).await {
            Ok(s) if s.spec.name == name || s.id == name => {
                Ok(Some(Found { id: s.id, name: s.spec.name, labels: s.spec.labels }))
            }
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() || e.status() == Some(400) => Ok(None),
            Err(e) => Err(ApiError::engine(format!("the engine: {e}"))),
        },
        Kind::Node => {
            let nodes = client
                .nodes(&Filters::new())
                .await
                .map_err(|e| ApiError::engine(format!("the engine: {e}")))?;
            node_found(dockhand_jobs::find_node(&nodes, name), field, reveal)
        }
    }
}

/// A node lookup as the API answers it: several nodes of that hostname are an error that
/// lists their IDs only when `reveal`, else no node at all.
fn node_found(found: Result<&Node, JobError>, field: &str, reveal: bool) -> Result<Option<Found>, ApiError> {
    match found {
        Ok(n) => Ok(Some(Found {
            id: n.id.clone(),
            name: n.description.hostname.clone(),
            labels: n.spec.labels.clone(),
        })),
        Err(JobError::UnknownNode(_)) => Ok(None),
        Err(e) if reveal => Err(ApiError::invalid_field(field, e)),
        Err(_) => Ok(None),
    }
}

fn describe_caller(who: &Identity) -> String {
    format!("api:{who}")
}

/// One request for a job, as the handlers read it.
struct Ask<'a> {
    token: Option<String>,
    client: IpAddr,
    kind: Kind,
    name: String,
    /// The field that named the target, for errors.
    field: &'a str,
    action: dockhand_policy::Action,
    verb: &'a str,
    admin_only: bool,
    wait: bool,
    /// The request's parameters, as text (never a credential): with the action and the
    /// target, its fingerprint. The same request again is answered busy at once while its
    /// job runs; another waits for the target up to the lock wait.
    request: String,
}

/// Authenticates, validates, looks up and authorizes, then runs the job `make` builds for
/// the target's ID.
async fn act(app: &Shared, ask: Ask<'_>, make: impl FnOnce(String) -> Work) -> Result<Outcome, ApiError> {
    let caller = identify(app, ask.token.as_deref(), ask.client).await?;
    let valid = match ask.kind {
        Kind::Service => valid_service_name(&ask.name),
        Kind::Node => valid_node_name(&ask.name),
    };
    if !valid {
        return Err(ApiError::invalid_field(
            ask.field,
            format!(
                "not a valid {} name (letters, digits, '-', '_' and '.', starting with a letter or digit, at most {})",
                ask.kind.as_str(),
                if ask.kind == Kind::Service { 63 } else { 253 }
            ),
        ));
    }
    let found = look_up(app, ask.kind, &ask.name, ask.field, caller.is_admin()).await?;
    let refuse = |reason: &str| {
        tracing::info!(target_kind = ask.kind.as_str(), target_name = %ask.name, %reason, "refused");
        failed_credential(app, ask.client);
        denied(ask.verb, ask.kind, &ask.name)
    };
    let no_such = || ApiError::not_found(format!("no {} {:?}", ask.kind.as_str(), ask.name));
    // Out of this instance's scope is no target, for admins too (R3-07).
    let Some(found) = found.filter(|f| app.gate.authorizer.in_scope(&f.labels)) else {
        if caller.is_admin() {
            return Err(no_such());
        }
        return Err(refuse("no such target"));
    };
    if ask.admin_only && !caller.is_admin() {
        return Err(refuse("admins only"));
    }
    let who = match app.gate.authorizer.authorize(ask.action, &found.name, &found.labels, caller.credential())
    {
        Decision::Allow { who } => who,
        Decision::Deny { reason } => {
            if caller.is_admin() {
                return Err(ApiError::forbidden(reason));
            }
            return Err(refuse(&reason));
        }
    };
    let mut ctx = app.base.clone();
    ctx.caller = describe_caller(&who);
    let key = format!("{}/{}", ask.kind.as_str(), found.id);
    let fingerprint = request_fingerprint(ask.verb, &key, &ask.request);
    ctx.locks = ctx.locks.for_request(fingerprint, ctx.defaults.lock_timeout);
    tracing::info!(caller = %ctx.caller, target = %key, verb = ask.verb, "job requested");
    Ok(app.dispatcher.submit(key, ctx, ask.wait, make(found.id)).await)
}

/// A hash of what a request asks: its action, target and parameters (32 hex digits).
fn request_fingerprint(action: &str, target: &str, request: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{action}\n{target}\n{request}").as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A credential that was refused counts against its client in the throttle and in the
/// metrics, on every route that checks one (R3-06).
pub(crate) fn failed_credential(app: &App, client: IpAddr) {
    app.gate.throttle.fail(client);
    app.metrics.auth_failure();
}

pub(crate) async fn identify(app: &App, token: Option<&str>, client: IpAddr) -> Result<Caller, ApiError> {
    app.gate.identify(token, client).await.inspect_err(|e| {
        if e.status == StatusCode::UNAUTHORIZED {
            app.metrics.auth_failure();
        }
    })
}

/// How an outcome is answered: the v1 form, or the seed's (`{"message":"Ok"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    V1,
    Seed,
}

fn answer(app: &App, outcome: Outcome, form: Form, caller_is_admin: bool) -> Response {
    match outcome {
        Outcome::Accepted(job) => {
            let location = format!("/v1/jobs/{}", job.id);
            let body = Accepted {
                id: job.id.clone(),
                status: "running".into(),
                location: location.clone(),
                message: "Ok".into(),
                job: to_json(&job),
            };
            let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Outcome::Finished(job) => finished(job, form),
        Outcome::Busy(holder) => {
            app.metrics.busy();
            let message = match &holder {
                Some(id) => format!("the target is busy: job {id} holds it"),
                None => "the target is busy: another request for it waits for a slot".to_owned(),
            };
            let mut e = ApiError::new(StatusCode::CONFLICT, "busy", message);
            if let Some(id) = holder {
                e = e.with_job(serde_json::json!({ "id": id }));
            }
            e.into_response()
        }
        Outcome::NotRun(e) => match &*e {
            JobError::UnknownService(name) if caller_is_admin => {
                ApiError::not_found(format!("no service {name:?}")).into_response()
            }
            JobError::UnknownNode(name) if caller_is_admin => {
                ApiError::not_found(format!("no node {name:?}")).into_response()
            }
            JobError::UnknownService(name) => denied("act on", Kind::Service, name).into_response(),
            JobError::UnknownNode(name) => denied("act on", Kind::Node, name).into_response(),
            other => ApiError::engine(other.to_string()).into_response(),
        },
        Outcome::QueueFull => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            "too many jobs run or wait already: retry later",
        )
        .retry_after(10)
        .into_response(),
        Outcome::ShuttingDown => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is stopping")
                .retry_after(5)
                .into_response()
        }
        // Why is in the server's log: the store's address is not the caller's business.
        Outcome::Unrecorded(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the job store cannot record the job, so it was cancelled before it did anything: retry later",
        )
        .retry_after(5)
        .into_response(),
    }
}

/// The last error a job's steps report.
fn job_error(job: &Job) -> String {
    job.steps
        .iter()
        .rev()
        .find_map(|s| {
            s.error.clone().filter(|_| {
                matches!(s.status, Status::Failed | Status::Refused | Status::Busy | Status::Cancelled)
            })
        })
        .unwrap_or_else(|| format!("the job ended {}", status_text(job.status)))
}

fn status_text(status: Status) -> String {
    to_json(&status).as_str().unwrap_or_default().to_owned()
}

fn finished(job: Job, form: Form) -> Response {
    let status = job.status;
    let fail = |code: StatusCode, name: &str| {
        ApiError::new(code, name, format!("job {} {}: {}", job.id, status_text(status), job_error(&job)))
            .with_job(to_json(&job))
            .into_response()
    };
    match status {
        Status::Succeeded | Status::Skipped => match form {
            Form::V1 => (StatusCode::OK, Json(to_json(&job))).into_response(),
            Form::Seed => {
                (StatusCode::OK, Json(SeedOk { message: "Ok".into(), job: to_json(&job) })).into_response()
            }
        },
        Status::Refused => fail(StatusCode::FORBIDDEN, "refused"),
        Status::Busy => fail(StatusCode::CONFLICT, "busy"),
        Status::Cancelled => fail(StatusCode::SERVICE_UNAVAILABLE, "cancelled"),
        _ => fail(StatusCode::INTERNAL_SERVER_ERROR, "job_failed"),
    }
}

fn respond(app: &App, result: Result<(Outcome, bool), ApiError>, form: Form) -> Response {
    match result {
        Ok((outcome, admin)) => answer(app, outcome, form, admin),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Job builders: what each action runs, on the target's ID.

/// The work of `action` on a target ID: the same the scheduler runs.
fn work(app: &App, action: Action) -> impl FnOnce(String) -> Work + use<> {
    let storage = Arc::clone(&app.storage);
    move |id| dockhand_jobs::action_work(action, id, &storage)
}

fn update_work(registries: Arc<Registries>, request: UpdateRequest) -> impl FnOnce(String) -> Work {
    move |id| {
        Box::new(move |ctx, sink| {
            Box::pin(
                async move { dockhand_jobs::update_service(&ctx, &registries, &id, &request, &*sink).await },
            )
        })
    }
}

fn check_image(field: &str, image: &str) -> Result<(), ApiError> {
    if image.trim().is_empty() {
        return Err(ApiError::invalid_field(field, "an image is required (name:tag)"));
    }
    dockhand_policy::ImageRef::parse(image).map(|_| ()).map_err(|e| ApiError::invalid_field(field, e))
}

/// Runs `ask`, answering in `form`.
async fn run(app: &Shared, ask: Ask<'_>, form: Form, make: impl FnOnce(String) -> Work) -> Response {
    let token = ask.token.clone();
    let result = act(app, ask, make).await;
    let admin = token.as_deref().is_some_and(|t| app.gate.authorizer.admin(t).is_some());
    respond(app, result.map(|o| (o, admin)), form)
}

// ---------------------------------------------------------------------------------------
// The v1 routes.

/// Runs clean-node on a node (admins, or a CI identity a node label binds).
#[utoipa::path(post, path = "/v1/nodes/{node}/clean", tag = "jobs",
    params(("node" = String, Path, description = "hostname or node ID"), WaitQuery),
    request_body(content = Option<EmptyBody>, description = "nothing, or {}"),
    responses(
        (status = 200, description = "the job succeeded", body = crate::schema::JobSchema),
        (status = 202, description = "the job runs", body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn clean_node(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    node: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    node_route(&app, ip, &headers, node, wait, body, dockhand_policy::Action::Clean, Action::CleanNode).await
}

/// Runs backup-node on a node: the volumes its labels name (`backup.volume-list-upload`,
/// after its `backup.exec`) to its storage target (admins, the node's `backup.token`, or a
/// CI identity a node label binds).
#[utoipa::path(post, path = "/v1/nodes/{node}/backup", tag = "jobs",
    params(("node" = String, Path, description = "hostname or node ID"), WaitQuery),
    request_body(content = Option<EmptyBody>, description = "nothing, or {}"),
    responses(
        (status = 200, description = "the job succeeded", body = crate::schema::JobSchema),
        (status = 202, description = "the job runs", body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn backup_node(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    node: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    node_route(&app, ip, &headers, node, wait, body, dockhand_policy::Action::Backup, Action::BackupNode)
        .await
}

/// A v1 node route: the node from the path, `wait`, an empty body, and the job of `job`.
#[allow(clippy::too_many_arguments)]
async fn node_route(
    app: &Shared,
    ip: IpAddr,
    headers: &HeaderMap,
    node: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
    action: dockhand_policy::Action,
    job: Action,
) -> Response {
    let prepared = async {
        let node = path_param(node, "node")?;
        let wait = query(wait)?.wait.unwrap_or(true);
        parse_body::<EmptyBody>(&read_body(body).await?)?;
        Ok::<_, ApiError>((node, wait))
    };
    let (name, wait) = match prepared.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ask = Ask {
        token: bearer(headers),
        client: ip,
        kind: Kind::Node,
        name,
        field: "node",
        action,
        verb: action.as_str(),
        admin_only: false,
        wait,
        request: String::new(),
    };
    run(app, ask, Form::V1, work(app, job)).await
}

/// The pieces every v1 service route reads.
async fn service_request<T: DeserializeOwned>(
    service: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Result<(String, bool, T), ApiError> {
    let service = path_param(service, "service")?;
    let wait = query(wait)?.wait.unwrap_or(true);
    let body = parse_body::<T>(&read_body(body).await?)?;
    Ok((service, wait, body))
}

fn service_ask(
    headers: &HeaderMap,
    ip: IpAddr,
    name: String,
    action: dockhand_policy::Action,
    wait: bool,
) -> Ask<'static> {
    Ask {
        token: bearer(headers),
        client: ip,
        kind: Kind::Service,
        name,
        field: "service",
        action,
        verb: action.as_str(),
        admin_only: false,
        wait,
        request: String::new(),
    }
}

/// Runs clean-service: `clean.exec` in every task of the service.
#[utoipa::path(post, path = "/v1/services/{service}/clean", tag = "jobs",
    params(("service" = String, Path, description = "service name or ID"), WaitQuery),
    request_body(content = Option<EmptyBody>, description = "nothing, or {}"),
    responses(
        (status = 200, description = "the job succeeded", body = crate::schema::JobSchema),
        (status = 202, description = "the job runs", body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn clean_service(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    service: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    match service_request::<EmptyBody>(service, wait, body).await {
        Ok((name, wait, _)) => {
            let ask = service_ask(&headers, ip, name, dockhand_policy::Action::Clean, wait);
            run(&app, ask, Form::V1, work(&app, Action::CleanService)).await
        }
        Err(e) => e.into_response(),
    }
}

/// Runs backup-service: the service's volumes to its storage target.
#[utoipa::path(post, path = "/v1/services/{service}/backup", tag = "jobs",
    params(("service" = String, Path, description = "service name or ID"), WaitQuery),
    request_body(content = Option<EmptyBody>, description = "nothing, or {}"),
    responses(
        (status = 200, description = "the job succeeded", body = crate::schema::JobSchema),
        (status = 202, description = "the job runs", body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn backup_service(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    service: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    match service_request::<EmptyBody>(service, wait, body).await {
        Ok((name, wait, _)) => {
            let ask = service_ask(&headers, ip, name, dockhand_policy::Action::Backup, wait);
            run(&app, ask, Form::V1, work(&app, Action::BackupService)).await
        }
        Err(e) => e.into_response(),
    }
}

/// Runs update-service: deploys `image`, pinned by digest, and waits for convergence.
#[utoipa::path(post, path = "/v1/services/{service}/update", tag = "jobs",
    params(("service" = String, Path, description = "service name or ID"), WaitQuery),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "the job succeeded", body = crate::schema::JobSchema),
        (status = 202, description = "the job runs", body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn update_service(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    service: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let (name, wait, body) = match service_request::<UpdateBody>(service, wait, body).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check_image("image", &body.image) {
        return e.into_response();
    }
    let mut ask = service_ask(&headers, ip, name, dockhand_policy::Action::Update, wait);
    let request = UpdateRequest::new(Some(body.image)).with_force(body.force);
    ask.request = format!("{request:?}");
    run(&app, ask, Form::V1, update_work(Arc::clone(&app.registries), request)).await
}

/// Restores a service's volumes from its storage target (admins only).
#[utoipa::path(post, path = "/v1/services/{service}/restore", tag = "jobs",
    params(("service" = String, Path, description = "service name or ID"), WaitQuery),
    request_body(content = Option<RestoreBody>),
    responses(
        (status = 200, description = "the job succeeded", body = crate::schema::JobSchema),
        (status = 202, description = "the job runs", body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn restore_service(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    service: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let (name, wait, body) = match service_request::<RestoreBody>(service, wait, body).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let options = restore_options(body);
    let mut ask = service_ask(&headers, ip, name, dockhand_policy::Action::Backup, wait);
    ask.admin_only = true;
    ask.verb = "restore";
    ask.request = format!("{options:?}");
    let storage = Arc::clone(&app.storage);
    run(&app, ask, Form::V1, move |id| {
        Box::new(move |ctx, sink| {
            Box::pin(
                async move { dockhand_jobs::restore_service(&ctx, &id, &storage, &options, &*sink).await },
            )
        })
    })
    .await
}

/// What a restore body asks for.
fn restore_options(body: RestoreBody) -> RestoreOptions {
    let mut options = RestoreOptions::new().force(body.force);
    if let Some(volume) = body.volume {
        options = options.with_volume(volume);
    }
    if let Some(at) = body.at {
        options = options.at(at);
    }
    if let Some(object) = body.object {
        options = options.object(object);
    }
    if let Some(node) = body.node {
        options = options.on_node(node);
    }
    options
}

/// Restores a node's volumes (backup-node's archives) onto that node (admins only). A
/// volume that a running container mounts is refused and left alone.
#[utoipa::path(post, path = "/v1/nodes/{node}/restore", tag = "jobs",
    params(("node" = String, Path, description = "hostname or node ID"), WaitQuery),
    request_body = RestoreBody,
    responses(
        (status = 200, description = "the job succeeded", body = crate::schema::JobSchema),
        (status = 202, description = "the job runs", body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn restore_node(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    node: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let prepared = async {
        let node = path_param(node, "node")?;
        let wait = query(wait)?.wait.unwrap_or(true);
        let body = parse_body::<RestoreBody>(&read_body(body).await?)?;
        if body.node.is_some() {
            return Err(ApiError::invalid_field("node", "the path names the node to restore onto"));
        }
        Ok::<_, ApiError>((node, wait, body))
    };
    let (name, wait, body) = match prepared.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let options = restore_options(body);
    let ask = Ask {
        token: bearer(&headers),
        client: ip,
        kind: Kind::Node,
        name,
        field: "node",
        action: dockhand_policy::Action::Backup,
        verb: "restore",
        admin_only: true,
        wait,
        request: format!("{options:?}"),
    };
    let storage = Arc::clone(&app.storage);
    run(&app, ask, Form::V1, move |id| {
        Box::new(move |ctx, sink| {
            Box::pin(async move { dockhand_jobs::restore_node(&ctx, &id, &storage, &options, &*sink).await })
        })
    })
    .await
}

/// Moves a volume's contents from one node to another, node to node, and with `service`
/// the service with it (admins only); as `dockhand volume move`.
#[utoipa::path(post, path = "/v1/volumes/{volume}/move", tag = "jobs",
    params(("volume" = String, Path, description = "the volume's name"), WaitQuery),
    request_body = MoveBody,
    responses(
        (status = 200, description = "the job succeeded", body = crate::schema::JobSchema),
        (status = 202, description = "the job runs", body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn move_volume(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    volume: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let prepared = async {
        let volume = path_param(volume, "volume")?;
        if !dockhand_policy::valid_volume_name(&volume) {
            return Err(ApiError::invalid_field(
                "volume",
                "not a Docker volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
            ));
        }
        let wait = query(wait)?.wait.unwrap_or(true);
        let body = parse_body::<MoveBody>(&read_body(body).await?)?;
        for (field, value) in [("from", &body.from), ("to", &body.to)] {
            if value.trim().is_empty() {
                return Err(ApiError::invalid_field(field, "is required: a node's hostname or ID"));
            }
        }
        Ok::<_, ApiError>((volume, wait, body))
    };
    let (volume, wait, body) = match prepared.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut request = dockhand_jobs::MoveRequest::new(volume, body.from, body.to.clone());
    // The job's target, as its lock: the service when one moves with the volume, else the
    // destination node.
    let (kind, name, field) = match body.service {
        Some(service) => {
            request = request.with_service(service.clone());
            (Kind::Service, service, "service")
        }
        None => (Kind::Node, body.to, "to"),
    };
    let ask = Ask {
        token: bearer(&headers),
        client: ip,
        kind,
        name,
        field,
        action: dockhand_policy::Action::Backup,
        verb: "move a volume of",
        admin_only: true,
        wait,
        request: format!("{request:?}"),
    };
    run(&app, ask, Form::V1, move |_| {
        Box::new(move |ctx, sink| {
            Box::pin(async move { dockhand_jobs::move_volume(&ctx, &request, &*sink).await })
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------
// The seed's routes.

fn seed_wait(body: Option<bool>, q: &SeedQuery) -> bool {
    body.or(q.wait_res).or(q.wait).unwrap_or(true)
}

async fn seed_body<T: DeserializeOwned + Default>(
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
) -> Result<(SeedQuery, T), ApiError> {
    let q = query(q)?;
    let body = parse_body::<T>(&read_body(body).await?)?;
    Ok((q, body))
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::invalid_field(field, "is required"))
}

/// The seed's `POST /api/update/service`: `{token, serviceName, image, isForce, isRegistryAuth}`;
/// without `image`, the service's current tag is deployed again.
#[utoipa::path(post, path = "/api/update/service", tag = "seed", params(SeedQuery),
    request_body = SeedServiceBody,
    responses((status = 200, body = SeedOk), (status = 202, body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn seed_update(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let prepared = async {
        let (q, body) = seed_body::<SeedServiceBody>(q, body).await?;
        let name = required(body.service_name.clone(), "serviceName")?;
        // Optional, as in the seed's own code: without it the service is deployed again
        // with its current tag (forced with `isForce: true`).
        let image = body.image.clone().filter(|i| !i.is_empty());
        if let Some(image) = &image {
            check_image("image", image)?;
        }
        Ok::<_, ApiError>((q, body, name, image))
    };
    let (q, body, name, image) = match prepared.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut ask =
        service_ask(&headers, ip, name, dockhand_policy::Action::Update, seed_wait(body.wait_res, &q));
    ask.token = body.token.or(ask.token);
    ask.field = "serviceName";
    let request = UpdateRequest::new(image).with_force(body.is_force.unwrap_or(false));
    ask.request = format!("{request:?}");
    run(&app, ask, Form::Seed, update_work(Arc::clone(&app.registries), request)).await
}

/// The seed's `POST /api/clean/service`: `{token, serviceName}`, the name in the body or the query.
#[utoipa::path(post, path = "/api/clean/service", tag = "seed", params(SeedQuery),
    request_body = SeedServiceBody,
    responses((status = 200, body = SeedOk), (status = 202, body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn seed_clean_service(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
) -> Response {
    seed_service(app, ip, headers, q, body, dockhand_policy::Action::Clean).await
}

/// The seed's `POST /api/backup/service`: `{token, serviceName}`.
#[utoipa::path(post, path = "/api/backup/service", tag = "seed", params(SeedQuery),
    request_body = SeedServiceBody,
    responses((status = 200, body = SeedOk), (status = 202, body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn seed_backup_service(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
) -> Response {
    seed_service(app, ip, headers, q, body, dockhand_policy::Action::Backup).await
}

async fn seed_service(
    app: Shared,
    ip: IpAddr,
    headers: HeaderMap,
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
    action: dockhand_policy::Action,
) -> Response {
    let prepared = async {
        let (q, body) = seed_body::<SeedServiceBody>(q, body).await?;
        let name = required(body.service_name.clone().or(q.service_name.clone()), "serviceName")?;
        Ok::<_, ApiError>((q, body, name))
    };
    let (q, body, name) = match prepared.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut ask = service_ask(&headers, ip, name, action, seed_wait(body.wait_res, &q));
    ask.token = body.token.or(ask.token);
    ask.field = "serviceName";
    match action {
        dockhand_policy::Action::Backup => {
            run(&app, ask, Form::Seed, work(&app, Action::BackupService)).await
        }
        _ => run(&app, ask, Form::Seed, work(&app, Action::CleanService)).await,
    }
}

/// The seed's `POST /api/clean/node`: `{token, nodeName}`.
#[utoipa::path(post, path = "/api/clean/node", tag = "seed", params(SeedQuery),
    request_body = SeedNodeBody,
    responses((status = 200, body = SeedOk), (status = 202, body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(crate) async fn seed_clean_node(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let prepared = async {
        let (q, body) = seed_body::<SeedNodeBody>(q, body).await?;
        let name = required(body.node_name.clone(), "nodeName")?;
        Ok::<_, ApiError>((q, body, name))
    };
    let (q, body, name) = match prepared.await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let ask = Ask {
        token: body.token.or_else(|| bearer(&headers)),
        client: ip,
        kind: Kind::Node,
        name,
        field: "nodeName",
        action: dockhand_policy::Action::Clean,
        verb: "clean",
        admin_only: false,
        wait: seed_wait(body.wait_res, &q),
        request: String::new(),
    };
    run(&app, ask, Form::Seed, work(&app, Action::CleanNode)).await
}

// ---------------------------------------------------------------------------------------
// Jobs.

/// The policy action a job's readers must hold; `None`: admins only.
fn read_action(action: Action) -> Option<dockhand_policy::Action> {
    match action {
        Action::CleanNode | Action::CleanService => Some(dockhand_policy::Action::Clean),
        Action::BackupService | Action::BackupNode => Some(dockhand_policy::Action::Backup),
        Action::UpdateService => Some(dockhand_policy::Action::Update),
        _ => None,
    }
}

/// The job `id`, live or stored, if `caller` may read it: admins read every job of a
/// target in this instance's scope; others, the jobs of the action and target their
/// credential is allowed. A job out of scope is 404 to admins, as one that does not exist
/// (R3-07); every refusal of a non-admin counts against its client (R3-06).
async fn readable_job(app: &App, caller: &Caller, client: IpAddr, id: &str) -> Result<Job, ApiError> {
    let not_yours = || {
        failed_credential(app, client);
        ApiError::forbidden(format!("not allowed: this credential may not read job {id:?}"))
    };
    let no_such = || ApiError::not_found(format!("no job {id:?}"));
    let job = match app.dispatcher.live(id).and_then(|l| l.snapshot()) {
        Some(job) => Some(job),
        None => app.dispatcher.store().get(id).await.map_err(|e| ApiError::internal(e.to_string()))?,
    };
    let Some(job) = job else {
        return Err(if caller.is_admin() { no_such() } else { not_yours() });
    };
    if caller.is_admin() {
        return if in_scope(app, &job, &mut Labels::default()).await? { Ok(job) } else { Err(no_such()) };
    }
    let Some(action) = read_action(job.action) else { return Err(not_yours()) };
    let (kind, target_id) = match &job.target {
        dockhand_jobs::Target::Service { id, .. } => (Kind::Service, id.clone()),
        dockhand_jobs::Target::Node { id, .. } => (Kind::Node, id.clone()),
        _ => return Err(not_yours()),
    };
    let Some(found) = look_up(app, kind, &target_id, "id", false).await? else { return Err(not_yours()) };
    match app.gate.authorizer.authorize(action, &found.name, &found.labels, caller.credential()) {
        Decision::Allow { .. } => Ok(job),
        Decision::Deny { .. } => Err(not_yours()),
    }
}

/// The current labels of the services and nodes jobs name, read once per request.
#[derive(Default)]
struct Labels {
    read: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

/// True when `job`'s target is in this instance's scope (always, without a scope). A job
/// whose target is gone, or that has none (a swarm-wide job), is in a scope only when
/// there is none.
async fn in_scope(app: &App, job: &Job, labels: &mut Labels) -> Result<bool, ApiError> {
    let authorizer = &app.gate.authorizer;
    if !authorizer.has_scope() {
        return Ok(true);
    }
    let id = match &job.target {
        dockhand_jobs::Target::Service { id, .. } | dockhand_jobs::Target::Node { id, .. } => id,
        _ => return Ok(false),
    };
    if labels.read.is_none() {
        let client = &app.base.client;
        let engine = |e: dockhand_engine::Error| ApiError::engine(format!("the engine: {e}"));
        let mut all = BTreeMap::new();
        for s in client.services(&Filters::new()).await.map_err(engine)? {
            all.insert(s.id, s.spec.labels);
        }
        for n in client.nodes(&Filters::new()).await.map_err(engine)? {
            all.insert(n.id, n.spec.labels);
        }
        labels.read = Some(all);
    }
    Ok(labels.read.as_ref().and_then(|all| all.get(id)).is_some_and(|l| authorizer.in_scope(l)))
}

fn valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A job: its steps, status and times.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "the job's ID")),
    responses((status = 200, description = "the job", body = crate::schema::JobSchema),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn get_job(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let id = path_param(id, "id")?;
        let caller = identify(&app, bearer(&headers).as_deref(), ip).await?;
        if !valid_job_id(&id) {
            return Err(ApiError::invalid_field("id", "a job ID is hex digits"));
        }
        readable_job(&app, &caller, ip, &id).await
    };
    match result.await {
        Ok(job) => Json(to_json(&job)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Jobs, newest first, paged with `before` (admins only).
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, description = "jobs, newest first", body = Vec<crate::schema::JobSchema>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_jobs(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    q: Result<Query<JobsQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let caller = identify(&app, bearer(&headers).as_deref(), ip).await?;
        let q = query(q)?;
        if !caller.is_admin() {
            failed_credential(&app, ip);
            return Err(ApiError::forbidden("not allowed: listing jobs is for admins"));
        }
        let status = match q.status.as_deref() {
            None => None,
            Some(s) => Some(
                serde_json::from_value::<Status>(serde_json::Value::String(s.to_owned()))
                    .map_err(|_| ApiError::invalid_field("status", format!("{s:?} is not a job status")))?,
            ),
        };
        if let Some(before) = &q.before {
            if !valid_job_id(before) {
                return Err(ApiError::invalid_field("before", "a job ID is hex digits"));
            }
        }
        let limit = q.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::invalid_field("limit", format!("between 1 and {MAX_LIMIT}")));
        }
        let mut filter = JobFilter::default();
        filter.target = q.target;
        filter.action = q.action;
        filter.status = status;
        filter.before = q.before;
        filter.limit = Some(limit);
        // Only the jobs of targets in this instance's scope (R3-07): a page is filled from
        // further pages when the scope leaves some out.
        let mut labels = Labels::default();
        let mut jobs = Vec::new();
        for _ in 0..SCOPE_PAGES {
            let page =
                app.dispatcher.store().list(&filter).await.map_err(|e| ApiError::internal(e.to_string()))?;
            let full = page.len() == limit;
            filter.before = page.last().map(|j| j.id.clone());
            for job in page {
                if jobs.len() < limit && in_scope(&app, &job, &mut labels).await? {
                    jobs.push(app.dispatcher.live(&job.id).and_then(|l| l.snapshot()).unwrap_or(job));
                }
            }
            if !full || jobs.len() == limit {
                break;
            }
        }
        Ok(jobs)
    };
    match result.await {
        Ok(jobs) => Json(to_json(&jobs)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// How many store pages one listing reads at most to fill a page with in-scope jobs.
const SCOPE_PAGES: usize = 8;

/// How often a job another replica runs is read again from the store.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// The events of a job another replica runs, from its record in the shared store (which
/// that replica writes at each finished step): `job-started`, then each `step-finished`,
/// then `job-finished` (`interrupted` when that replica died).
fn followed_in_store(
    app: Shared,
    job: Job,
) -> impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    let first = sse_event(&Event::JobStarted { job: job.clone() });
    let sent = job.steps.len();
    let past: Vec<Event> = job
        .steps
        .iter()
        .map(|step| Event::StepFinished { job: job.id.clone(), step: step.clone() })
        .collect();
    let head = futures_util::stream::iter(
        std::iter::once(first).chain(past.iter().map(sse_event)).map(Ok).collect::<Vec<_>>(),
    );
    let next = futures_util::stream::unfold(Some((job.id.clone(), sent)), move |state| {
        let app = Arc::clone(&app);
        async move {
            let (id, mut sent) = state?;
            loop {
                tokio::time::sleep(FOLLOW_EVERY).await;
                let now = match app.dispatcher.store().get(&id).await {
                    Ok(Some(now)) => now,
                    // Purged (or never there): nothing more will come (R3-12).
                    Ok(None) => return None,
                    Err(_) => continue,
                };
                let mut events: Vec<Event> = now
                    .steps
                    .iter()
                    .skip(sent)
                    .map(|step| Event::StepFinished { job: id.clone(), step: step.clone() })
                    .collect();
                sent = now.steps.len();
                let ended = now.status != Status::Running;
                if ended {
                    events.push(Event::JobFinished { job: now });
                }
                if events.is_empty() {
                    continue;
                }
                let chunk =
                    futures_util::stream::iter(events.iter().map(sse_event).map(Ok).collect::<Vec<_>>());
                return Some((chunk, (!ended).then_some((id, sent))));
            }
        }
    })
    .flatten();
    head.chain(next)
}

fn sse_event(event: &Event) -> SseEvent {
    let json = to_json(event);
    let name = json.get("event").and_then(|v| v.as_str()).unwrap_or("event").to_owned();
    SseEvent::default().event(name).data(json.to_string())
}

/// Follows a job live: server-sent events (`job-started`, `step-started`,
/// `step-finished`, `progress`, `locked`, `job-finished`), ending with `job-finished`.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "the job's ID")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream", body = StreamEvent),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn job_events(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let id = path_param(id, "id")?;
        let caller = identify(&app, bearer(&headers).as_deref(), ip).await?;
        if !valid_job_id(&id) {
            return Err(ApiError::invalid_field("id", "a job ID is hex digits"));
        }
        let job = readable_job(&app, &caller, ip, &id).await?;
        // A share of the streams per address, each for at most STREAM_MAX (R3-12).
        let held = app.streams.take(ip).ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "this address follows {} event streams already: close one first",
                    crate::limits::STREAMS_PER_CLIENT
                ),
            )
            .retry_after(5)
        })?;
        Ok((id, job, held))
    };
    let (id, job, held) = match result.await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let bounded =
        |stream: futures_util::stream::BoxStream<'static, Result<SseEvent, std::convert::Infallible>>| {
            let deadline = tokio::time::sleep(crate::limits::STREAM_MAX);
            stream.take_until(deadline).map(move |event| {
                let _held = &held;
                event
            })
        };
    let (history, rx) = match app.dispatcher.live(&id) {
        Some(live) => live.follow(),
        None if job.status == Status::Running => {
            // Another replica runs it: follow its record in the shared store.
            return Sse::new(bounded(followed_in_store(Arc::clone(&app), job).boxed()))
                .keep_alive(KeepAlive::default())
                .into_response();
        }
        None => {
            let last = Event::JobFinished { job };
            let stream = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(sse_event(&last))]);
            return Sse::new(stream).into_response();
        }
    };
    let ended = history.iter().any(|e| matches!(e, Event::JobFinished { .. }));
    let past = futures_util::stream::iter(history.iter().map(sse_event).map(Ok).collect::<Vec<_>>());
    let next = futures_util::stream::unfold((rx, ended), |(mut rx, ended)| async move {
        if ended {
            return None;
        }
        loop {
            match rx.recv().await {
                Ok(event) => {
                    let last = matches!(event, Event::JobFinished { .. });
                    return Some((Ok::<_, std::convert::Infallible>(sse_event(&event)), (rx, last)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(bounded(past.chain(next).boxed())).keep_alive(KeepAlive::default()).into_response()
}

// ---------------------------------------------------------------------------------------
// Listings.

/// A label value that may be a secret is not shown.
fn shown(key: &str, value: String) -> String {
    let k = key.to_ascii_lowercase();
    if k.ends_with(".token") || k.contains("password") || k.contains("secret") || k.contains("access-key") {
        "***".to_owned()
    } else {
        value
    }
}

fn label_filters(raw: Option<String>) -> Result<Filters, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let mut filters = Filters::new();
    for (key, value) in pairs {
        if key != "label" {
            continue;
        }
        let name = value.split_once('=').map_or(value.as_str(), |(k, _)| k);
        if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ApiError::invalid_field("label", format!("{value:?} is not key or key=value")));
        }
        filters = filters.with("label", value);
    }
    Ok(filters)
}

async fn listing(
    app: &App,
    ip: IpAddr,
    headers: &HeaderMap,
    raw: Option<String>,
    kind: Kind,
) -> Result<Vec<Listed>, ApiError> {
    let caller = identify(app, bearer(headers).as_deref(), ip).await?;
    let filters = label_filters(raw)?;
    if !caller.is_admin() {
        failed_credential(app, ip);
        return Err(ApiError::forbidden(format!("not allowed: listing {}s is for admins", kind.as_str())));
    }
    let client = &app.base.client;
    let engine = |e: dockhand_engine::Error| ApiError::engine(format!("the engine: {e}"));
    let listed = |id: String, name: String, labels: BTreeMap<String, String>| Listed {
        id,
        name,
        labels: labels
            .into_iter()
            .map(|(k, v)| {
                let v = shown(&k, v);
                (k, v)
            })
            .collect(),
    };
    let mut out: Vec<Listed> = match kind {
        Kind::Service => client
            .services(&filters)
            .await
            .map_err(engine)?
            .into_iter()
            .filter(|s| app.gate.authorizer.in_scope(&s.spec.labels))
            .map(|s| listed(s.id, s.spec.name, s.spec.labels))
            .collect(),
        Kind::Node => client
            .nodes(&filters)
            .await
            .map_err(engine)?
            .into_iter()
            .filter(|n| app.gate.authorizer.in_scope(&n.spec.labels))
            .map(|n| listed(n.id, n.description.hostname, n.spec.labels))
            .collect(),
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Services, optionally by label (admins only).
#[utoipa::path(get, path = "/v1/services", tag = "swarm", params(LabelQuery),
    responses((status = 200, body = Vec<Listed>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_services(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    match listing(&app, ip, &headers, raw, Kind::Service).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Nodes, optionally by label (admins only).
#[utoipa::path(get, path = "/v1/nodes", tag = "swarm", params(LabelQuery),
    responses((status = 200, body = Vec<Listed>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list_nodes(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    match listing(&app, ip, &headers, raw, Kind::Node).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Health, metrics, the document.

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// The engine answers and is a swarm manager.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(crate) async fn readyz(State(app): State<Shared>) -> Response {
    if app.dispatcher.stopping() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "stopping".into() })).into_response();
    }
    // Asked of the engine at most once a second: the route needs no credential.
    let mut ready = app.ready.lock().await;
    if let Some((at, code, status)) = ready.as_ref()
        && at.elapsed() < Duration::from_secs(1)
    {
        return (*code, Json(Health { status: status.clone() })).into_response();
    }
    let (code, status) = match tokio::time::timeout(Duration::from_secs(5), app.base.client.info()).await {
        Ok(Ok(info)) if info.swarm.is_active() && info.swarm.control_available => {
            (StatusCode::OK, "ok".to_owned())
        }
        Ok(Ok(info)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{} is not a swarm manager", info.name)),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("the engine: {e}")),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the engine did not answer within 5s".to_owned()),
    };
    *ready = Some((std::time::Instant::now(), code, status.clone()));
    (code, Json(Health { status })).into_response()
}

/// Prometheus metrics, in the text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub(crate) async fn metrics(State(app): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        app.metrics.encode(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, body = Object)))]
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::json()).into_response()
}

/// Unknown routes.
pub(crate) async fn fallback() -> ApiError {
    ApiError::not_found("no such route: see /openapi.json")
}

/// A known route with another method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method: see /openapi.json",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R3-15: an ambiguous hostname lists node IDs to admins only; to anyone else it is no
    /// node, answered like any unknown target.
    #[test]
    fn an_ambiguous_hostname_reveals_ids_to_admins_only() {
        let node = |id: &str| -> Node {
            serde_json::from_value(serde_json::json!({"ID": id, "Description": {"Hostname": "dup"}})).unwrap()
        };
        let nodes = [node("id-one-8f2"), node("id-two-3c7")];
        let e = node_found(dockhand_jobs::find_node(&nodes, "dup"), "node", true).unwrap_err();
        assert!(e.body.message.contains("id-one-8f2"), "{}", e.body.message);
        assert!(node_found(dockhand_jobs::find_node(&nodes, "dup"), "node", false).unwrap().is_none());
        assert!(node_found(dockhand_jobs::find_node(&nodes, "nope"), "node", true).unwrap().is_none());
    }

    #[test]
    fn names_follow_dockers_rules() {
        for ok in ["web", "stack_web", "a.b-c", "x1", &"a".repeat(63)] {
            assert!(valid_service_name(ok), "{ok}");
        }
        for bad in
            ["", "../etc", "a/../b", "a\0b", "-web", ".web", "web app", &"a".repeat(64), &"a".repeat(300)]
        {
            assert!(!valid_service_name(bad), "{bad:?}");
        }
        assert!(valid_node_name("node-1.example.com"));
        assert!(!valid_node_name(&"n".repeat(300)));
    }

    #[test]
    fn bodies_name_the_field_that_is_wrong() {
        let e = parse_body::<UpdateBody>(br#"{"image": 5}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.body.message.starts_with("image:"), "{}", e.body.message);
        let e = parse_body::<UpdateBody>(br#"{"force": true}"#).unwrap_err();
        assert!(e.body.message.contains("image"), "{}", e.body.message);
        let e = parse_body::<UpdateBody>(br#"{"image": "a:1", "tokn": "x"}"#).unwrap_err();
        assert!(e.body.message.contains("tokn"), "{}", e.body.message);
        let e = parse_body::<UpdateBody>(b"{\"image\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = parse_body::<UpdateBody>(b"{\"image\": \"a\"} trailing").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(parse_body::<EmptyBody>(b"").is_ok());
        assert!(parse_body::<EmptyBody>(b" {} ").is_ok());
        let seed: SeedServiceBody = parse_body(
            br#"{"token":"t","serviceName":"s","image":"i:1","isForce":true,"isRegistryAuth":false,"extra":1}"#,
        )
        .unwrap();
        assert_eq!(seed.service_name.as_deref(), Some("s"));
        assert_eq!(seed.is_force, Some(true));
    }

    #[test]
    fn secret_looking_labels_are_hidden_in_listings() {
        assert_eq!(shown("dockhand.update.token", "t".into()), "***");
        assert_eq!(shown("swarm-utils.update.registry.password", "p".into()), "***");
        assert_eq!(shown("dockhand.backup.volume-list-upload.s3.secret-key", "k".into()), "***");
        assert_eq!(shown("dockhand.update.enable", "true".into()), "true");
    }
}
