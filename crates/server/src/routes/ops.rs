//! Health, readiness and metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::routes::Shared;
use crate::routes::answer::Health;

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
