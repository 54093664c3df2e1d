//! Job reads: one job, the list, and a job's live events (SSE).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dockhand_engine::Filters;
use dockhand_jobs::store::JobFilter;
use dockhand_jobs::{Action, Event, Job, Status};
use dockhand_policy::Decision;
use futures_util::StreamExt;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::App;
use crate::routes::MAX_LIMIT;
use crate::routes::Shared;
use crate::routes::act::failed_credential;
use crate::routes::act::identify;
use crate::routes::act::look_up;
use crate::routes::answer::Kind;
use crate::routes::answer::StreamEvent;
use crate::routes::input::ClientIp;
use crate::routes::input::JobsQuery;
use crate::routes::input::bearer;
use crate::routes::input::path_param;
use crate::routes::input::query;
use crate::routes::input::to_json;

/// The policy action a job's readers must hold; `None`: admins only.
pub(crate) fn read_action(action: Action) -> Option<dockhand_policy::Permission> {
    match action {
        Action::CleanNode | Action::CleanService => Some(dockhand_policy::Permission::Clean),
        Action::BackupService | Action::BackupNode => Some(dockhand_policy::Permission::Backup),
        Action::UpdateService => Some(dockhand_policy::Permission::Update),
        _ => None,
    }
}

/// The job `id`, live or stored, if `caller` may read it: admins read every job of a
/// target in this instance's scope; others, the jobs of the action and target their
/// credential is allowed. A job out of scope is 404 to admins, as one that does not exist
/// (R3-07); every refusal of a non-admin counts against its client (R3-06).
pub(crate) async fn readable_job(
    app: &App,
    caller: &Caller,
    client: IpAddr,
    id: &str,
) -> Result<Job, ApiError> {
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
        return if in_scope(app, &job.target, &mut Labels::default()).await? {
            Ok(job)
        } else {
            Err(no_such())
        };
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
pub(crate) struct Labels {
    read: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

/// True when `job`'s target is in this instance's scope (always, without a scope). A job
/// whose target is gone, or that has none (a swarm-wide job), is in a scope only when
/// there is none.
pub(crate) async fn in_scope(
    app: &App,
    target: &dockhand_jobs::Target,
    labels: &mut Labels,
) -> Result<bool, ApiError> {
    let authorizer = &app.gate.authorizer;
    if !authorizer.has_scope() {
        return Ok(true);
    }
    let id = match target {
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

pub(crate) fn valid_job_id(id: &str) -> bool {
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
                if jobs.len() < limit && in_scope(&app, &job.target, &mut labels).await? {
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
pub(crate) const SCOPE_PAGES: usize = 8;

/// How often a job another replica runs is read again from the store.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// The events of a job another replica runs, from its record in the shared store (which
/// that replica writes at each finished step): `job-started`, then each `step-finished`,
/// then `job-finished` (`interrupted` when that replica died).
pub(crate) fn followed_in_store(
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

pub(crate) fn sse_event(event: &Event) -> SseEvent {
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
        readable_job(&app, &caller, ip, &id).await
    };
    match result.await {
        Ok(job) => follow(&app, ip, job),
        Err(e) => e.into_response(),
    }
}

/// The events of `job` as server-sent events, for a caller at `ip` already allowed to read
/// it: what happened so far, then each event as it comes, to `job-finished`. The API's
/// `GET /v1/jobs/{id}/events` and the status page's live parts both answer with it.
pub(crate) fn follow(app: &Shared, ip: IpAddr, job: Job) -> Response {
    // A share of the streams per address, each for at most STREAM_MAX (R3-12).
    let Some(held) = app.streams.take(ip) else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "this address follows {} event streams already: close one first",
                crate::limits::STREAMS_PER_CLIENT
            ),
        )
        .retry_after(5)
        .into_response();
    };
    let id = job.id.clone();
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
            return Sse::new(bounded(followed_in_store(Arc::clone(app), job).boxed()))
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
