//! `POST /v1/images/update`: one call for a whole image. Every service in scope that runs
//! the request's repository, has `update.enable=true` and may be updated by the caller is
//! updated to the request's image, each as its own update-service job under its own lock,
//! all at once; the answer lists each service's answer, as its own route would give it.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dockhand_engine::Filters;
use dockhand_jobs::schedule::Order;
use dockhand_jobs::update::UpdateRequest;
use dockhand_policy::{Decision, ImageRef, Permission};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::routes::Shared;
use crate::routes::act::{check_image, describe_caller, failed_credential, identify, request_fingerprint};
use crate::routes::answer::{ErrorAnswers, Form, answer};
use crate::routes::input::{ClientIp, UpdateBody, WaitQuery, bearer, parse_body, query, read_body};

/// One service's part of an image update.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceUpdate {
    /// The service's name.
    pub service: String,
    /// The status its own route (`POST /v1/services/{service}/update`) would answer: 202,
    /// 200, 409, ...
    pub status: u16,
    /// That route's body: the job, or the error.
    #[schema(value_type = Object)]
    pub answer: serde_json::Value,
}

/// The answer of an image update.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImageUpdate {
    /// The image asked for.
    pub image: String,
    /// Each service updated, by name.
    pub services: Vec<ServiceUpdate>,
}

/// Updates every service in scope that runs the image's repository with
/// `update.enable=true` (and that the caller may update: admins, a CI identity or token the
/// service's labels bind) to `image`, in parallel, each under its own lock.
#[utoipa::path(post, path = "/v1/images/update", tag = "jobs",
    params(WaitQuery),
    request_body = UpdateBody,
    responses((status = 200, body = ImageUpdate, description = "each service's answer"), ErrorAnswers),
    security(("bearer" = [])))]
pub(crate) async fn update_image(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    match update(&app, ip, &headers, wait, body).await {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn update(
    app: &Shared,
    ip: IpAddr,
    headers: &HeaderMap,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Result<ImageUpdate, ApiError> {
    let wait = query(wait)?.wait.unwrap_or(true);
    let body = parse_body::<UpdateBody>(&read_body(body).await?)?;
    check_image("image", &body.image)?;
    let asked = ImageRef::parse(&body.image).map_err(|e| ApiError::invalid_field("image", e))?;
    let caller = identify(app, bearer(headers).as_deref(), ip).await?;
    let services = app
        .base
        .client
        .services(&Filters::new())
        .await
        .map_err(|e| ApiError::engine(format!("the engine: {e}")))?;
    let request = UpdateRequest::new(Some(body.image.clone())).with_force(body.force);
    let mut chosen = Vec::new();
    let running =
        dockhand_jobs::update::running_repository(&services, &asked, &app.base.defaults, &app.base.prefixes);
    for service in running.into_iter().filter(|s| app.gate.authorizer.in_scope(&s.spec.labels)) {
        let name = &service.spec.name;
        match app.gate.authorizer.authorize(
            Permission::Update,
            name,
            &service.spec.labels,
            caller.credential(),
        ) {
            Decision::Allow { who } => chosen.push((service, who)),
            Decision::Deny { reason } => {
                tracing::info!(service = %name, %reason, "image update: not this service")
            }
        }
    }
    if chosen.is_empty() {
        // The same answer whether nothing runs the image or the caller may update none of
        // it: a caller learns nothing of services it may not touch.
        if caller.is_admin() {
            return Err(ApiError::not_found(format!(
                "no service in scope runs {} with update.enable=true",
                asked.repository()
            )));
        }
        failed_credential(app, ip);
        return Err(ApiError::forbidden(format!(
            "not allowed: this credential may update no service that runs {}",
            asked.repository()
        )));
    }
    let admin = caller.is_admin();
    let jobs = chosen.into_iter().map(|(service, who)| {
        let mut ctx = app.base.clone();
        ctx.caller = describe_caller(&who);
        let key = format!("service/{}", service.id);
        let fingerprint = request_fingerprint("update", &key, &format!("{request:?}"));
        ctx.locks = ctx.locks.for_request(fingerprint, ctx.defaults.lock_timeout);
        tracing::info!(caller = %ctx.caller, target = %key, image = %body.image, "image update: job requested");
        let order = Order::UpdateService(Arc::clone(&app.registries), request.clone());
        let name = service.spec.name.clone();
        async move {
            let outcome = app.dispatcher.submit(key, ctx, wait, order.work(service.id.clone())).await;
            let response = answer(app, outcome, Form::V1, admin);
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
            let answer = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            ServiceUpdate { service: name, status, answer }
        }
    });
    let mut services = futures_util::future::join_all(jobs).await;
    services.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(ImageUpdate { image: body.image, services })
}
