//! Listings of services and nodes, with labels that look secret hidden.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dockhand_engine::Filters;

use crate::error::{ApiError, ErrorBody};
use crate::routes::App;
use crate::routes::Shared;
use crate::routes::act::failed_credential;
use crate::routes::act::identify;
use crate::routes::answer::Kind;
use crate::routes::answer::Listed;
use crate::routes::input::ClientIp;
use crate::routes::input::LabelQuery;
use crate::routes::input::bearer;

/// A label value that may be a secret is not shown.
pub(crate) fn shown(key: &str, value: String) -> String {
    let k = key.to_ascii_lowercase();
    if k.ends_with(".token") || k.contains("password") || k.contains("secret") || k.contains("access-key") {
        "***".to_owned()
    } else {
        value
    }
}

pub(crate) fn label_filters(raw: Option<String>) -> Result<Filters, ApiError> {
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

pub(crate) async fn listing(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_labels_are_hidden_in_listings() {
        assert_eq!(shown("dockhand.update.token", "t".into()), "***");
        assert_eq!(shown("swarm-utils.update.registry.password", "p".into()), "***");
        assert_eq!(shown("dockhand.backup.volume-list-upload.s3.secret-key", "k".into()), "***");
        assert_eq!(shown("dockhand.update.enable", "true".into()), "true");
    }
}
