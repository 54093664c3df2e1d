//! The one path every job route takes: authenticate, look the target up, authorize, and
//! hand the [`Order`]'s work to the dispatcher with the request's fingerprint.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::http::StatusCode;
use axum::response::Response;
use dockhand_engine::{Filters, Node};
use dockhand_jobs::JobError;
use dockhand_jobs::schedule::Order;
use dockhand_policy::{Decision, Identity};

use crate::auth::Caller;
use crate::dispatch::{Outcome, Work};
use crate::error::ApiError;
use crate::routes::App;
use crate::routes::Shared;
use crate::routes::answer::Form;
use crate::routes::answer::Kind;
use crate::routes::answer::denied;
use crate::routes::answer::respond;
use crate::routes::input::WaitQuery;
use crate::routes::input::bearer;
use crate::routes::input::parse_body;
use crate::routes::input::path_param;
use crate::routes::input::query;
use crate::routes::input::read_body;
use crate::routes::input::valid_node_name;
use crate::routes::input::valid_service_name;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

/// A target as looked up: ID, name, labels.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
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
            node_found(dockhand_jobs::clean::find_node(&nodes, name), field, reveal)
        }
    }
}

/// A node lookup as the API answers it: several nodes of that hostname are an error that
/// lists their IDs only when `reveal`, else no node at all.
pub(crate) fn node_found(
    found: Result<&Node, JobError>,
    field: &str,
    reveal: bool,
) -> Result<Option<Found>, ApiError> {
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

pub(crate) fn describe_caller(who: &Identity) -> String {
    format!("api:{who}")
}

/// One request for a job, as the handlers read it.
pub(crate) struct Ask<'a> {
    pub(crate) token: Option<String>,
    pub(crate) client: IpAddr,
    pub(crate) kind: Kind,
    pub(crate) name: String,
    /// The field that named the target, for errors.
    pub(crate) field: &'a str,
    pub(crate) action: dockhand_policy::Permission,
    pub(crate) verb: &'a str,
    pub(crate) admin_only: bool,
    pub(crate) wait: bool,
    /// The request's parameters, as text (never a credential): with the action and the
    /// target, its fingerprint. The same request again is answered busy at once while its
    /// job runs; another waits for the target up to the lock wait.
    pub(crate) request: String,
}

/// Authenticates, validates, looks up and authorizes, then runs the job `make` builds for
/// the target's ID.
pub(crate) async fn act(
    app: &Shared,
    ask: Ask<'_>,
    make: impl FnOnce(String) -> Work,
) -> Result<Outcome, ApiError> {
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
pub(crate) fn request_fingerprint(action: &str, target: &str, request: &str) -> String {
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

// ---------------------------------------------------------------------------------------
// Job builders: what each action runs, on the target's ID.

/// The work of `order` on a target ID: the same the scheduler runs.
pub(crate) fn work(order: Order) -> impl FnOnce(String) -> Work {
    move |id| order.work(id)
}

pub(crate) fn check_image(field: &str, image: &str) -> Result<(), ApiError> {
    if image.trim().is_empty() {
        return Err(ApiError::invalid_field(field, "an image is required (name:tag)"));
    }
    dockhand_policy::ImageRef::parse(image).map(|_| ()).map_err(|e| ApiError::invalid_field(field, e))
}

/// Runs `ask`, answering in `form`.
pub(crate) async fn run(
    app: &Shared,
    ask: Ask<'_>,
    form: Form,
    make: impl FnOnce(String) -> Work,
) -> Response {
    let token = ask.token.clone();
    let result = act(app, ask, make).await;
    let admin = token.as_deref().is_some_and(|t| app.gate.authorizer.admin(t).is_some());
    respond(app, result.map(|o| (o, admin)), form)
}

pub(crate) fn service_ask(
    headers: &HeaderMap,
    ip: IpAddr,
    name: String,
    action: dockhand_policy::Permission,
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

/// The pieces every v1 service route reads.
pub(crate) async fn service_request<T: DeserializeOwned>(
    service: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    body: Body,
) -> Result<(String, bool, T), ApiError> {
    let service = path_param(service, "service")?;
    let wait = query(wait)?.wait.unwrap_or(true);
    let body = parse_body::<T>(&read_body(body).await?)?;
    Ok((service, wait, body))
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
        let e = node_found(dockhand_jobs::clean::find_node(&nodes, "dup"), "node", true).unwrap_err();
        assert!(e.body.message.contains("id-one-8f2"), "{}", e.body.message);
        assert!(node_found(dockhand_jobs::clean::find_node(&nodes, "dup"), "node", false).unwrap().is_none());
        assert!(node_found(dockhand_jobs::clean::find_node(&nodes, "nope"), "node", true).unwrap().is_none());
    }
}
