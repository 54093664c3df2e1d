//! The seed's routes (`/api/...`), kept for pipelines that call them today.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dockhand_jobs::schedule::Order;
use dockhand_jobs::update::UpdateRequest;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::routes::Shared;
use crate::routes::act::Ask;
use crate::routes::act::check_image;
use crate::routes::act::run;
use crate::routes::act::service_ask;
use crate::routes::act::work;
use crate::routes::answer::Form;
use crate::routes::answer::Kind;
use crate::routes::answer::{ErrorAnswers, SeedAnswers};
use crate::routes::input::ClientIp;
use crate::routes::input::SeedNodeBody;
use crate::routes::input::SeedQuery;
use crate::routes::input::SeedServiceBody;
use crate::routes::input::bearer;
use crate::routes::input::parse_body;
use crate::routes::input::query;
use crate::routes::input::read_body;

pub(crate) fn seed_wait(body: Option<bool>, q: &SeedQuery) -> bool {
    body.or(q.wait_res).or(q.wait).unwrap_or(true)
}

pub(crate) async fn seed_body<T: DeserializeOwned + Default>(
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
) -> Result<(SeedQuery, T), ApiError> {
    let q = query(q)?;
    let body = parse_body::<T>(&read_body(body).await?)?;
    Ok((q, body))
}

pub(crate) fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| ApiError::invalid_field(field, "is required"))
}

/// The seed's `POST /api/update/service`: `{token, serviceName, image, isForce, isRegistryAuth}`;
/// without `image`, the service's current tag is deployed again.
#[utoipa::path(post, path = "/api/update/service", tag = "seed", params(SeedQuery),
    request_body = SeedServiceBody,
    responses(SeedAnswers, ErrorAnswers))]
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
        service_ask(&headers, ip, name, dockhand_policy::Permission::Update, seed_wait(body.wait_res, &q));
    ask.token = body.token.or(ask.token);
    ask.field = "serviceName";
    let request = UpdateRequest::new(image).with_force(body.is_force.unwrap_or(false));
    ask.request = format!("{request:?}");
    run(&app, ask, Form::Seed, work(Order::UpdateService(Arc::clone(&app.registries), request))).await
}

/// The seed's `POST /api/clean/service`: `{token, serviceName}`, the name in the body or the query.
#[utoipa::path(post, path = "/api/clean/service", tag = "seed", params(SeedQuery),
    request_body = SeedServiceBody,
    responses(SeedAnswers, ErrorAnswers))]
pub(crate) async fn seed_clean_service(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
) -> Response {
    seed_service(app, ip, headers, q, body, dockhand_policy::Permission::Clean, Order::CleanService).await
}

/// The seed's `POST /api/backup/service`: `{token, serviceName}`.
#[utoipa::path(post, path = "/api/backup/service", tag = "seed", params(SeedQuery),
    request_body = SeedServiceBody,
    responses(SeedAnswers, ErrorAnswers))]
pub(crate) async fn seed_backup_service(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
) -> Response {
    let order = Order::BackupService(Arc::clone(&app.storage));
    seed_service(app, ip, headers, q, body, dockhand_policy::Permission::Backup, order).await
}

pub(crate) async fn seed_service(
    app: Shared,
    ip: IpAddr,
    headers: HeaderMap,
    q: Result<Query<SeedQuery>, QueryRejection>,
    body: Body,
    action: dockhand_policy::Permission,
    order: Order,
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
    run(&app, ask, Form::Seed, work(order)).await
}

/// The seed's `POST /api/clean/node`: `{token, nodeName}`.
#[utoipa::path(post, path = "/api/clean/node", tag = "seed", params(SeedQuery),
    request_body = SeedNodeBody,
    responses(SeedAnswers, ErrorAnswers))]
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
        action: dockhand_policy::Permission::Clean,
        verb: "clean",
        admin_only: false,
        wait: seed_wait(body.wait_res, &q),
        request: String::new(),
    };
    run(&app, ask, Form::Seed, work(Order::CleanNode)).await
}
