//! Answering: the bodies a route returns, and how a dispatcher's outcome becomes a
//! response in the v1 form or the seed's.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dockhand_jobs::{Job, JobError, Status};
use serde::Serialize;
use utoipa::ToSchema;

use crate::dispatch::Outcome;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::routes::App;
use crate::routes::input::to_json;

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

/// How an outcome is answered: the v1 form, or the seed's (`{"message":"Ok"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    V1,
    Seed,
}

pub(crate) fn answer(app: &App, outcome: Outcome, form: Form, caller_is_admin: bool) -> Response {
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
pub(crate) fn job_error(job: &Job) -> String {
    job.steps
        .iter()
        .rev()
        .find_map(|s| {
            s.error.clone().filter(|_| {
                matches!(s.status, Status::Failed | Status::Refused | Status::Busy | Status::Cancelled)
            })
        })
        .unwrap_or_else(|| format!("the job ended {}", job.status.as_str()))
}

pub(crate) fn finished(job: Job, form: Form) -> Response {
    let status = job.status;
    let fail = |code: StatusCode, name: &str| {
        ApiError::new(code, name, format!("job {} {}: {}", job.id, status.as_str(), job_error(&job)))
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

pub(crate) fn respond(app: &App, result: Result<(Outcome, bool), ApiError>, form: Form) -> Response {
    match result {
        Ok((outcome, admin)) => answer(app, outcome, form, admin),
        Err(e) => e.into_response(),
    }
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

/// The same answer for "no such target" and "not allowed", for a caller who is not an
/// admin: nothing tells one from the other.
pub(crate) fn denied(verb: &str, kind: Kind, name: &str) -> ApiError {
    ApiError::forbidden(format!("not allowed: this credential may not {verb} {} {name:?}", kind.as_str()))
}

/// The errors every job route answers with, for the OpenAPI document (the descriptions come
/// from `openapi.rs`, a status's meaning being the same on every route).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of responses, never built: the handlers answer through `answer`")]
pub(crate) enum ErrorAnswers {
    #[response(status = 400)]
    BadRequest(ErrorBody),
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    #[response(status = 403)]
    Forbidden(ErrorBody),
    #[response(status = 404)]
    NotFound(ErrorBody),
    #[response(status = 409)]
    Busy(ErrorBody),
    #[response(status = 413)]
    TooLarge(ErrorBody),
    #[response(status = 422)]
    InvalidField(ErrorBody),
    #[response(status = 429)]
    Throttled(ErrorBody),
    #[response(status = 500)]
    JobFailed(ErrorBody),
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// What a v1 job route answers when it is not an error (with [`ErrorAnswers`]).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of responses, never built: the handlers answer through `answer`")]
pub(crate) enum JobAnswers {
    /// The job succeeded.
    #[response(status = 200, description = "the job succeeded")]
    Done(crate::schema::JobSchema),
    /// The job runs.
    #[response(status = 202, description = "the job runs")]
    Runs(Accepted),
}

/// What a seed route answers when it is not an error (with [`ErrorAnswers`]): the seed's
/// `{"status":"ok"}` for a finished job.
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of responses, never built: the handlers answer through `answer`")]
pub(crate) enum SeedAnswers {
    #[response(status = 200)]
    Done(SeedOk),
    #[response(status = 202)]
    Runs(Accepted),
}
