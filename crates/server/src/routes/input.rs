//! Reading a request: the body (bounded in size and time), path and query values, the
//! bearer token, the client's address, and the names the API takes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::routes::BODY_LIMIT;
use crate::routes::BODY_TIMEOUT;

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
    /// `running`, `succeeded`, `failed`, `cancelled`, `refused`, `busy`, `skipped`, `interrupted`,
    /// `available`.
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
// Helpers.

pub(crate) fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
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
pub(crate) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
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
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
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

pub(crate) fn valid_name(name: &str, max: usize) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= max
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
