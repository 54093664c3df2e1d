//! The v1 job routes: nodes, services and volumes.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dockhand_jobs::backup::RestoreOptions;
use dockhand_jobs::schedule::Order;
use dockhand_jobs::update::UpdateRequest;

use crate::error::ApiError;
use crate::routes::Shared;
use crate::routes::act::Ask;
use crate::routes::act::check_image;
use crate::routes::act::run;
use crate::routes::act::service_ask;
use crate::routes::act::service_request;
use crate::routes::act::work;
use crate::routes::answer::Form;
use crate::routes::answer::Kind;
use crate::routes::answer::{ErrorAnswers, JobAnswers};
use crate::routes::input::ClientIp;
use crate::routes::input::EmptyBody;
use crate::routes::input::MoveBody;
use crate::routes::input::RestoreBody;
use crate::routes::input::UpdateBody;
use crate::routes::input::WaitQuery;
use crate::routes::input::bearer;
use crate::routes::input::parse_body;
use crate::routes::input::path_param;
use crate::routes::input::query;
use crate::routes::input::read_body;

/// Runs clean-node on a node (admins, or a CI identity a node label binds).
#[utoipa::path(post, path = "/v1/nodes/{node}/clean", tag = "jobs",
    params(("node" = String, Path, description = "hostname or node ID"), WaitQuery),
    request_body(content = Option<EmptyBody>, description = "nothing, or {}"),
    responses(JobAnswers, ErrorAnswers),
    security(("bearer" = [])))]
pub(crate) async fn clean_node(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    node: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    node_route(&app, ip, &headers, node, wait, body, dockhand_policy::Permission::Clean, Order::CleanNode)
        .await
}

/// Runs backup-node on a node: the volumes its labels name (`backup.volume-list-upload`,
/// after its `backup.exec`) to its storage target (admins, the node's `backup.token`, or a
/// CI identity a node label binds).
#[utoipa::path(post, path = "/v1/nodes/{node}/backup", tag = "jobs",
    params(("node" = String, Path, description = "hostname or node ID"), WaitQuery),
    request_body(content = Option<EmptyBody>, description = "nothing, or {}"),
    responses(JobAnswers, ErrorAnswers),
    security(("bearer" = [])))]
pub(crate) async fn backup_node(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    node: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Response {
    node_route(
        &app,
        ip,
        &headers,
        node,
        wait,
        body,
        dockhand_policy::Permission::Backup,
        Order::BackupNode(Arc::clone(&app.storage)),
    )
    .await
}

/// A v1 node route: the node from the path, `wait`, an empty body, and the job of `job`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn node_route(
    app: &Shared,
    ip: IpAddr,
    headers: &HeaderMap,
    node: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
    action: dockhand_policy::Permission,
    job: Order,
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
    run(app, ask, Form::V1, work(job)).await
}

/// Runs clean-service: `clean.exec` in every task of the service.
#[utoipa::path(post, path = "/v1/services/{service}/clean", tag = "jobs",
    params(("service" = String, Path, description = "service name or ID"), WaitQuery),
    request_body(content = Option<EmptyBody>, description = "nothing, or {}"),
    responses(JobAnswers, ErrorAnswers),
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
            let ask = service_ask(&headers, ip, name, dockhand_policy::Permission::Clean, wait);
            run(&app, ask, Form::V1, work(Order::CleanService)).await
        }
        Err(e) => e.into_response(),
    }
}

/// Runs backup-service: the service's volumes to its storage target.
#[utoipa::path(post, path = "/v1/services/{service}/backup", tag = "jobs",
    params(("service" = String, Path, description = "service name or ID"), WaitQuery),
    request_body(content = Option<EmptyBody>, description = "nothing, or {}"),
    responses(JobAnswers, ErrorAnswers),
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
            let ask = service_ask(&headers, ip, name, dockhand_policy::Permission::Backup, wait);
            run(&app, ask, Form::V1, work(Order::BackupService(Arc::clone(&app.storage)))).await
        }
        Err(e) => e.into_response(),
    }
}

/// Runs update-service: deploys `image`, pinned by digest, and waits for convergence.
#[utoipa::path(post, path = "/v1/services/{service}/update", tag = "jobs",
    params(("service" = String, Path, description = "service name or ID"), WaitQuery),
    request_body = UpdateBody,
    responses(JobAnswers, ErrorAnswers),
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
    let mut ask = service_ask(&headers, ip, name, dockhand_policy::Permission::Update, wait);
    let request = UpdateRequest::new(Some(body.image)).with_force(body.force);
    ask.request = format!("{request:?}");
    run(&app, ask, Form::V1, work(Order::UpdateService(Arc::clone(&app.registries), request))).await
}

/// Restores a service's volumes from its storage target (admins only).
#[utoipa::path(post, path = "/v1/services/{service}/restore", tag = "jobs",
    params(("service" = String, Path, description = "service name or ID"), WaitQuery),
    request_body(content = Option<RestoreBody>),
    responses(JobAnswers, ErrorAnswers),
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
    let mut ask = service_ask(&headers, ip, name, dockhand_policy::Permission::Backup, wait);
    ask.admin_only = true;
    ask.verb = "restore";
    ask.request = format!("{options:?}");
    run(&app, ask, Form::V1, work(Order::RestoreService(Arc::clone(&app.storage), options))).await
}

/// What a restore body asks for.
pub(crate) fn restore_options(body: RestoreBody) -> RestoreOptions {
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
    responses(JobAnswers, ErrorAnswers),
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
        action: dockhand_policy::Permission::Backup,
        verb: "restore",
        admin_only: true,
        wait,
        request: format!("{options:?}"),
    };
    run(&app, ask, Form::V1, work(Order::RestoreNode(Arc::clone(&app.storage), options))).await
}

/// Moves a volume's contents from one node to another, node to node, and with `service`
/// the service with it (admins only); as `dockhand volume move`.
#[utoipa::path(post, path = "/v1/volumes/{volume}/move", tag = "jobs",
    params(("volume" = String, Path, description = "the volume's name"), WaitQuery),
    request_body = MoveBody,
    responses(JobAnswers, ErrorAnswers),
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
    let mut request = dockhand_jobs::backup::MoveRequest::new(volume, body.from, body.to.clone());
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
        action: dockhand_policy::Permission::Backup,
        verb: "move a volume of",
        admin_only: true,
        wait,
        request: format!("{request:?}"),
    };
    run(&app, ask, Form::V1, work(Order::MoveVolume(request))).await
}
