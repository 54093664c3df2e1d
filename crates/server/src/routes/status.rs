//! `GET /v1/services/{service}/status` and `GET /v1/nodes/{node}/status` (seed idea 9.1): a
//! target as the swarm has it now (a service's replicas wanted and running, its image and
//! the state of its last update; a node's state, availability and role) and the last job of
//! each of its actions, with its result and times. And `GET /v1/volumes/unused` (seed idea
//! 18): the volumes nothing uses, on every node (admins only).
//!
//! Readable by an admin (a target outside the instance's scope is 404, as one that does not
//! exist) and by a credential that may run one of the target's actions; any other caller
//! gets the same 403 whether the target exists or not, counted in the throttle.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dockhand_engine::Filters;
use dockhand_jobs::store::JobFilter;
use dockhand_jobs::{Action, Job};
use dockhand_policy::Decision;
use serde::Serialize;
use utoipa::ToSchema;

use crate::App;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::Shared;
use crate::routes::act::{Found, failed_credential, identify, look_up};
use crate::routes::answer::{Kind, denied};
use crate::routes::input::{ClientIp, bearer, path_param};

/// The last job of one action on a target.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LastJob {
    /// Its ID (`GET /v1/jobs/{id}` has its steps).
    pub id: String,
    /// `running`, `succeeded`, `failed`, `busy`, ...
    pub status: String,
    /// When it started (ms since the epoch).
    pub started_ms: u64,
    /// When it ended, once it has.
    pub ended_ms: Option<u64>,
    /// The first failed step's error, when one failed.
    pub error: Option<String>,
}

/// What watch mode sees of a service (`update.auto`), as `dockhand plan` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WatchStatus {
    /// `true` (update) or `notify`.
    pub mode: String,
    /// The label that set it (`dockhand.update.auto=true`).
    pub decided_by: String,
    /// The `repository:tag` it follows.
    pub follows: Option<String>,
    /// The digest it runs, when pinned.
    pub runs: Option<String>,
    /// The digest behind the tag now, when the registry said it.
    pub latest: Option<String>,
    /// What the next tick would do: `current`, `update to IMAGE`, `notify IMAGE` or
    /// `skip: REASON`.
    pub next: String,
}

/// A service now, and the last job of each action.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ServiceStatus {
    /// Its ID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `replicated` or `global`.
    pub mode: String,
    /// The tasks it should have (none for a global service: one per eligible node).
    pub replicas_wanted: Option<u64>,
    /// Its tasks running now.
    pub replicas_running: usize,
    /// The image its spec names (`name:tag@sha256:…` once dockhand pinned it).
    pub image: String,
    /// The state of its last update or rollback (`updating`, `completed`,
    /// `rollback_completed`, `paused`, ...), if it had one.
    pub update_state: Option<String>,
    /// The engine's words on that update.
    pub update_message: Option<String>,
    /// `clean-service`, `backup-service` and `update-service`: the last job of each, or null.
    #[schema(value_type = Object)]
    pub last: BTreeMap<String, Option<LastJob>>,
    /// Watch mode's view, for a service with `update.enable=true` and `update.auto` set
    /// (one registry request); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchStatus>,
}

/// A node now, and the last job of each action.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeStatus {
    /// Its ID.
    pub id: String,
    /// Its hostname.
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, ...
    pub state: String,
    /// `clean-node` and `backup-node`: the last job of each, or null.
    #[schema(value_type = Object)]
    pub last: BTreeMap<String, Option<LastJob>>,
}

/// A service's status.
#[utoipa::path(get, path = "/v1/services/{service}/status", tag = "swarm",
    params(("service" = String, Path, description = "service name or ID")),
    responses((status = 200, body = ServiceStatus),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn service_status(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    service: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let name = path_param(service, "service")?;
        let caller = identify(&app, bearer(&headers).as_deref(), ip).await?;
        let actions = [
            dockhand_policy::Permission::Clean,
            dockhand_policy::Permission::Backup,
            dockhand_policy::Permission::Update,
        ];
        let found = readable(&app, &caller, ip, Kind::Service, &name, &actions).await?;
        let engine = |e: dockhand_engine::Error| ApiError::engine(format!("the engine: {e}"));
        let service = app.base.client.service(&found.id).await.map_err(engine)?;
        let tasks = app
            .base
            .client
            .tasks(&Filters::new().with("service", &found.id).with("desired-state", "running"))
            .await
            .map_err(engine)?;
        let update = service.update_status.as_ref();
        let target = format!("service/{}", found.name);
        let watch = watch_status(&app, &service).await;
        Ok::<_, ApiError>(ServiceStatus {
            id: found.id,
            name: found.name,
            mode: if service.spec.is_global() { "global" } else { "replicated" }.to_owned(),
            replicas_wanted: service.spec.replicas(),
            replicas_running: tasks.iter().filter(|t| t.status.state == "running").count(),
            image: service.spec.task_template.container_spec.image.clone(),
            update_state: update.map(|u| u.state.clone()).filter(|s| !s.is_empty()),
            update_message: update.map(|u| u.message.clone()).filter(|m| !m.is_empty()),
            last: last_jobs(
                &app,
                &target,
                &[Action::CleanService, Action::BackupService, Action::UpdateService],
            )
            .await?,
            watch,
        })
    };
    match result.await {
        Ok(status) => Json(status).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Watch mode's look at `service` alone, when it is watched.
async fn watch_status(app: &App, service: &dockhand_engine::Service) -> Option<WatchStatus> {
    let (defaults, prefixes) = (&app.base.defaults, &app.base.prefixes);
    let services = std::slice::from_ref(service);
    if !dockhand_jobs::update::any_watched(services, defaults, prefixes) {
        return None;
    }
    let store = app.dispatcher.store();
    let (swarm, registries) = (app.base.swarm.as_ref(), &app.registries);
    let look = dockhand_jobs::update::watch_look(
        swarm,
        registries,
        store.as_ref(),
        services,
        defaults,
        prefixes,
        &app.watcher,
    )
    .await;
    look.rows.into_iter().next().map(|w| WatchStatus {
        mode: w.mode.to_owned(),
        decided_by: w.decided_by,
        follows: w.follows,
        runs: w.runs,
        latest: w.latest,
        next: w.next,
    })
}

/// A node's status.
#[utoipa::path(get, path = "/v1/nodes/{node}/status", tag = "swarm",
    params(("node" = String, Path, description = "node ID or hostname")),
    responses((status = 200, body = NodeStatus),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn node_status(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    node: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let name = path_param(node, "node")?;
        let caller = identify(&app, bearer(&headers).as_deref(), ip).await?;
        let actions = [dockhand_policy::Permission::Clean, dockhand_policy::Permission::Backup];
        let found = readable(&app, &caller, ip, Kind::Node, &name, &actions).await?;
        let node = app
            .base
            .client
            .node(&found.id)
            .await
            .map_err(|e| ApiError::engine(format!("the engine: {e}")))?;
        let target = format!("node/{}", found.name);
        Ok::<_, ApiError>(NodeStatus {
            id: found.id,
            hostname: found.name,
            role: node.spec.role,
            availability: node.spec.availability,
            state: node.status.state,
            last: last_jobs(&app, &target, &[Action::CleanNode, Action::BackupNode]).await?,
        })
    };
    match result.await {
        Ok(status) => Json(status).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The target `name` if `caller` may read its status: an admin, when it is in scope; anyone
/// whose credential may run one of `actions` on it.
async fn readable(
    app: &App,
    caller: &Caller,
    ip: IpAddr,
    kind: Kind,
    name: &str,
    actions: &[dockhand_policy::Permission],
) -> Result<Found, ApiError> {
    let found = look_up(app, kind, name, kind.as_str(), caller.is_admin()).await?;
    let authorizer = &app.gate.authorizer;
    if caller.is_admin() {
        return match found {
            Some(found) if authorizer.in_scope(&found.labels) => Ok(found),
            _ => Err(ApiError::not_found(format!("no {} {name:?}", kind.as_str()))),
        };
    }
    let allowed = found.filter(|f| {
        actions.iter().any(|a| {
            matches!(
                authorizer.authorize(*a, &f.name, &f.labels, caller.credential()),
                Decision::Allow { .. }
            )
        })
    });
    allowed.ok_or_else(|| {
        failed_credential(app, ip);
        denied("read the status of", kind, name)
    })
}

/// The newest job of each of `actions` on `target` (`service/<name>`, `node/<hostname>`),
/// live when it still runs here.
async fn last_jobs(
    app: &App,
    target: &str,
    actions: &[Action],
) -> Result<BTreeMap<String, Option<LastJob>>, ApiError> {
    let mut last = BTreeMap::new();
    for action in actions {
        let mut filter = JobFilter::default();
        filter.target = Some(target.to_owned());
        filter.action = Some(action.as_str().to_owned());
        filter.limit = Some(1);
        let page =
            app.dispatcher.store().list(&filter).await.map_err(|e| ApiError::internal(e.to_string()))?;
        let job = page
            .into_iter()
            .next()
            .map(|j| app.dispatcher.live(&j.id).and_then(|l| l.snapshot()).unwrap_or(j));
        last.insert(action.as_str().to_owned(), job.as_ref().map(summary));
    }
    Ok(last)
}

fn summary(job: &Job) -> LastJob {
    LastJob {
        id: job.id.clone(),
        status: job.status.as_str().to_owned(),
        started_ms: job.started_ms,
        ended_ms: job.ended_ms,
        error: job
            .steps
            .iter()
            .find(|s| s.status == dockhand_jobs::Status::Failed)
            .and_then(|s| s.error.clone()),
    }
}

/// The volumes no container uses, on every ready node, and the nodes that could not be read.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnusedVolumes {
    /// Each volume: `node` (hostname), `name`, `driver`, `size` (bytes, when the engine
    /// reports them); by node, then name.
    #[schema(value_type = Vec<Object>)]
    pub volumes: Vec<dockhand_jobs::clean::UnusedVolume>,
    /// Each node that could not be read, with why.
    #[schema(value_type = Vec<Object>)]
    pub unreadable: Vec<BTreeMap<String, String>>,
}

/// Unused volumes on every node (admins only); with a scope, on the nodes in it.
#[utoipa::path(get, path = "/v1/volumes/unused", tag = "swarm",
    responses((status = 200, body = UnusedVolumes),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn unused_volumes(
    State(app): State<Shared>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let caller = identify(&app, bearer(&headers).as_deref(), ip).await?;
        if !caller.is_admin() {
            failed_credential(&app, ip);
            return Err(ApiError::forbidden("not allowed: listing unused volumes is for admins"));
        }
        let (mut volumes, mut failed) = dockhand_jobs::clean::unused_volumes_everywhere(&app.base)
            .await
            .map_err(|e| ApiError::engine(format!("the engine: {e}")))?;
        let authorizer = &app.gate.authorizer;
        if authorizer.has_scope() {
            let nodes = app
                .base
                .client
                .nodes(&Filters::new())
                .await
                .map_err(|e| ApiError::engine(format!("the engine: {e}")))?;
            let ours: Vec<String> = nodes
                .into_iter()
                .filter(|n| authorizer.in_scope(&n.spec.labels))
                .map(|n| n.description.hostname)
                .collect();
            volumes.retain(|v| ours.contains(&v.node));
            failed.retain(|(node, _)| ours.contains(node));
        }
        let unreadable = failed
            .into_iter()
            .map(|(node, why)| [("node".to_owned(), node), ("why".to_owned(), why)].into_iter().collect())
            .collect();
        Ok(UnusedVolumes { volumes, unreadable })
    };
    match result.await {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    }
}
