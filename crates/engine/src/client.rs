//! The client: one endpoint, a connection pool, and the negotiated API version.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::endpoint::TcpEndpoint;
use crate::error::{BoxError, chain};
use crate::ssh::SshDialer;
use crate::tls::TlsConfig;
use crate::transport::{Connector, Dial};
use crate::{ApiVersion, Endpoint, Error, MAX_API_VERSION, MIN_API_VERSION, SshSettings, TlsSettings};

/// The most a JSON answer may weigh before it is refused; streams are not bounded by it.
const MAX_JSON_BODY: usize = 64 * 1024 * 1024;

/// The most of an error body kept for the error message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Idle connections kept per client: enough for the jobs' parallel calls, few enough to
/// stay well under an ssh server's `MaxSessions` (10 by default).
const POOL_MAX_IDLE: usize = 6;
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to open a connection (TCP and TLS handshake included).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time from sending a request to its response headers. Streams (logs with
/// follow, attach, events) are exempt: they are opened with no header deadline.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);

/// A Docker Engine API client for one endpoint.
///
/// Cheap to clone: clones share the connection pool and the negotiated version.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    /// The endpoint as a URL, kept for error messages.
    url: String,
    http: HyperClient<Connector, Full<Bytes>>,
    /// A version fixed by the caller (`DOCKER_API_VERSION`): no negotiation.
    pinned: Option<ApiVersion>,
    negotiated: OnceCell<ApiVersion>,
    /// Podman's version, when the negotiation ping said the engine is Podman.
    podman: std::sync::OnceLock<String>,
    response_timeout: Option<Duration>,
    /// The transport, for its diagnostics in errors.
    dial: Arc<Dial>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.url)
            .field("pinned", &self.inner.pinned)
            .field("negotiated", &self.inner.negotiated.get())
            .finish()
    }
}

/// Builds a [`Client`] with non-default settings.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: Endpoint,
    pinned: Option<ApiVersion>,
    tls: Option<TlsSettings>,
    connect_timeout: Option<Duration>,
    response_timeout: Option<Duration>,
    ssh: Option<SshSettings>,
}

impl ClientBuilder {
    /// How to run ssh for `ssh://` endpoints (default: the user's ssh setup, strict host
    /// keys).
    pub fn ssh(mut self, settings: SshSettings) -> Self {
        self.ssh = Some(settings);
        self
    }

    /// Speak exactly this API version and skip negotiation, as `DOCKER_API_VERSION` does.
    pub fn api_version(mut self, version: ApiVersion) -> Self {
        self.pinned = Some(version);
        self
    }

    /// Use TLS with these settings: for `https://` endpoints, and for `tcp://` ones, which
    /// are plain without TLS settings. Ignored for unix sockets; `http://` refuses them.
    pub fn tls(mut self, settings: TlsSettings) -> Self {
        self.tls = Some(settings);
        self
    }

    /// How long opening a connection may take, handshakes included (default 30 s);
    /// `None` waits for ever.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a request may wait for its response headers (default 120 s); `None` waits
    /// for ever. Streaming calls (follow, attach, events) never have this deadline.
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Builds the client: TLS files are read and checked now, so a bad file fails here.
    /// No connection is opened until the first call.
    pub fn build(self) -> Result<Client, Error> {
        let dial = dial(&self.endpoint, self.tls.as_ref(), self.ssh.as_ref())?;
        let connector = Connector::new(dial, self.connect_timeout);
        let dial = connector.dial();
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                url: self.endpoint.to_string(),
                endpoint: self.endpoint,
                http,
                pinned: self.pinned,
                negotiated: OnceCell::new(),
                podman: std::sync::OnceLock::new(),
                response_timeout: self.response_timeout,
                dial,
            }),
        })
    }
}

impl Client {
    /// A client with default settings for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Result<Self, Error> {
        Self::builder(endpoint).build()
    }

    /// A builder for `endpoint`.
    pub fn builder(endpoint: Endpoint) -> ClientBuilder {
        ClientBuilder {
            endpoint,
            pinned: None,
            tls: None,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            ssh: None,
        }
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The API version used for calls, negotiated on first use.
    ///
    /// The engine's version is clamped to [`MAX_API_VERSION`]; an engine older than
    /// [`MIN_API_VERSION`] is refused. A pinned version is returned as is.
    pub async fn api_version(&self) -> Result<ApiVersion, Error> {
        if let Some(pinned) = self.inner.pinned {
            return Ok(pinned);
        }
        self.inner
            .negotiated
            .get_or_try_init(|| async {
                let ping = self.ping_once().await?;
                self.learn_podman(&ping);
                negotiate(ping.api_version, &self.inner.url)
            })
            .await
            .copied()
    }

    /// Sends a request as is (no version prefix added) and returns the raw response.
    /// `json` is a request body, sent as `application/json`.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<Response<Incoming>, Error> {
        self.send_upgrade(method, path, json, false).await
    }

    /// [`send`](Self::send), asking the engine to hijack the connection when `upgrade` is
    /// set (`Connection: Upgrade`, `Upgrade: tcp`). A hijacked connection never returns to
    /// the pool.
    pub(crate) async fn send_upgrade(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, Error> {
        self.send_full(method, path, json, upgrade, None).await
    }

    /// The one place requests are sent. `header` is one extra header, whose value is
    /// never logged (it may hold credentials).
    async fn send_full(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
        upgrade: bool,
        header: Option<(&'static str, &str)>,
    ) -> Result<Response<Incoming>, Error> {
        // The connector dials the endpoint whatever the URI says; the URI names the path.
        let uri = format!("http://docker.localhost{path}");
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(http::header::USER_AGENT, concat!("dockhand/", env!("CARGO_PKG_VERSION")));
        if json.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if upgrade {
            request =
                request.header(http::header::CONNECTION, "Upgrade").header(http::header::UPGRADE, "tcp");
        }
        if let Some((name, value)) = header {
            let mut value =
                http::HeaderValue::from_str(value).map_err(|e| self.transport_error(&method, path, e))?;
            value.set_sensitive(true);
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(json.unwrap_or_default()))
            .map_err(|e| self.transport_error(&method, path, e))?;
        tracing::trace!(endpoint = %self.inner.url, %method, path, "request");
        let pending = self.inner.http.request(request);
        let result = self.in_time(&method, path, "the response headers", pending).await?;
        if result.is_err() {
            // ssh's stderr comes a moment after the broken connection: let it arrive.
            self.inner.dial.settle_diagnostics().await;
        }
        result.map_err(|e| {
            if e.is_connect() {
                if let Some(after) = crate::transport::connect_timed_out(&e) {
                    return Error::Timeout {
                        endpoint: self.inner.url.clone(),
                        method: method.to_string(),
                        path: path.to_owned(),
                        waiting_for: "a connection",
                        after,
                    };
                }
                // hyper's outer "client error (Connect)" adds nothing: the cause is the source.
                let source: BoxError = match std::error::Error::source(&e) {
                    Some(_) => Box::new(Cause(e)),
                    None => Box::new(e),
                };
                Error::Connect {
                    endpoint: self.inner.url.clone(),
                    source,
                    ssh_said: self.inner.dial.diagnostics(),
                }
            } else {
                Error::Transport {
                    endpoint: self.inner.url.clone(),
                    method: method.to_string(),
                    path: path.to_owned(),
                    source: Box::new(e),
                    ssh_said: self.inner.dial.diagnostics(),
                }
            }
        })
    }

    /// Records what a ping says: the negotiated version (if not settled yet and the engine
    /// is supported) and whether the engine is Podman.
    pub(crate) fn learn_from_ping(&self, ping: &crate::Ping) {
        self.learn_podman(ping);
        if self.inner.pinned.is_none() {
            if let Ok(version) = negotiate(ping.api_version, &self.inner.url) {
                let _ = self.inner.negotiated.set(version);
            }
        }
    }

    fn learn_podman(&self, ping: &crate::Ping) {
        if let Some(podman) = &ping.podman {
            let _ = self.inner.podman.set(podman.clone());
        }
    }

    /// `path` with the negotiated version in front: `/v1.41/info`.
    pub(crate) async fn versioned(&self, path: &str) -> Result<String, Error> {
        Ok(format!("/v{}{path}", self.api_version().await?))
    }

    /// A versioned call whose answer is JSON.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<T, Error> {
        let (versioned, body) = self.call_raw(&method, path, json, None).await?;
        self.decode(&method, versioned, &body)
    }

    fn decode<T: DeserializeOwned>(&self, method: &Method, path: String, body: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|e| Error::Decode {
            endpoint: self.inner.url.clone(),
            method: method.to_string(),
            path,
            source: Box::new(e),
        })
    }

    /// [`call`](Self::call) with one extra request header (such as `X-Registry-Auth`),
    /// whose value is never logged.
    pub(crate) async fn call_with_header<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
        header: (&'static str, &str),
    ) -> Result<T, Error> {
        let (versioned, body) = self.call_raw(&method, path, json, Some(header)).await?;
        self.decode(&method, versioned, &body)
    }

    /// A versioned call whose answer is not needed (204, or JSON nobody reads).
    pub(crate) async fn call_unit(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
    ) -> Result<(), Error> {
        self.call_raw(&method, path, json, None).await.map(drop)
    }

    /// `GET /vX.Y{path}` and decodes the JSON answer.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn call_raw(
        &self,
        method: &Method,
        path: &str,
        json: Option<Bytes>,
        header: Option<(&'static str, &str)>,
    ) -> Result<(String, Bytes), Error> {
        let versioned = self.versioned(path).await?;
        let response = self.send_full(method.clone(), &versioned, json, false, header).await?;
        let response = self.check(method, &versioned, response).await?;
        let body = self.read_body_in_time(method, &versioned, response, MAX_JSON_BODY).await?;
        Ok((versioned, body))
    }

    /// A versioned call whose body is read as a stream. Returns the response headers too.
    /// `idle` bounds the wait for each piece of the body (`None`: for ever).
    pub(crate) async fn open_stream(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
        idle: Option<Duration>,
    ) -> Result<(http::HeaderMap, crate::body::ByteStream), Error> {
        let versioned = self.versioned(path).await?;
        let response = self.send(method.clone(), &versioned, json).await?;
        let response = self.check(&method, &versioned, response).await?;
        let context = format!("{method} {versioned} on {}", self.inner.url);
        let (parts, body) = response.into_parts();
        Ok((parts.headers, crate::body::ByteStream::new(body, context, idle)))
    }

    /// The response timeout, used as the idle timeout of bodies that are not follow streams.
    pub(crate) fn response_timeout(&self) -> Option<Duration> {
        self.inner.response_timeout
    }

    /// Serializes a request body.
    pub(crate) fn json<T: serde::Serialize>(&self, what: &str, value: &T) -> Result<Bytes, Error> {
        serde_json::to_vec(value).map(Bytes::from).map_err(|e| Error::InvalidArgument {
            what: what.to_owned(),
            detail: format!("cannot be encoded as JSON: {e}"),
        })
    }

    /// Turns an error status into [`Error::Api`] carrying the engine's message.
    pub(crate) async fn check(
        &self,
        method: &Method,
        path: &str,
        response: Response<Incoming>,
    ) -> Result<Response<Incoming>, Error> {
        let status = response.status();
        if status.is_success() || status.is_informational() {
            return Ok(response);
        }
        // An error body that stalls is cut off at the deadline: the status still tells.
        let body = self
            .in_time(method, path, "the error body", read_body(response, MAX_ERROR_BODY))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        if let (StatusCode::NOT_FOUND, Some(podman)) = (status, self.inner.podman.get()) {
            if let Some(area) = swarm_area(path) {
                return Err(Error::Unsupported {
                    endpoint: self.inner.url.clone(),
                    what: format!("{area} is not supported by this engine (Podman {podman} has no swarm)"),
                });
            }
        }
        Err(Error::Api {
            endpoint: self.inner.url.clone(),
            method: method.to_string(),
            path: path.to_owned(),
            status: status.as_u16(),
            message: engine_message(status, &body),
        })
    }

    /// Awaits `fut` within the response timeout; past it, a timeout naming the request and
    /// what did not arrive.
    async fn in_time<T>(
        &self,
        method: &Method,
        path: &str,
        waiting_for: &'static str,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, Error> {
        match self.inner.response_timeout {
            Some(after) => tokio::time::timeout(after, fut).await.map_err(|_| Error::Timeout {
                endpoint: self.inner.url.clone(),
                method: method.to_string(),
                path: path.to_owned(),
                waiting_for,
                after,
            }),
            None => Ok(fut.await),
        }
    }

    /// Reads a whole body of at most `limit` bytes within the response timeout: a peer that
    /// promises more than it sends cannot hold a call for ever (review finding 4).
    async fn read_body_in_time(
        &self,
        method: &Method,
        path: &str,
        response: Response<Incoming>,
        limit: usize,
    ) -> Result<Bytes, Error> {
        let body = self.in_time(method, path, "the response body", read_body(response, limit)).await?;
        body.map_err(|e| self.transport_error(method, path, e))
    }

    /// The endpoint as a URL, for errors raised outside this module.
    pub(crate) fn url(&self) -> &str {
        &self.inner.url
    }

    pub(crate) fn transport_error(&self, method: &Method, path: &str, source: impl Into<BoxError>) -> Error {
        Error::Transport {
            endpoint: self.inner.url.clone(),
            method: method.to_string(),
            path: path.to_owned(),
            source: source.into(),
            ssh_said: self.inner.dial.diagnostics(),
        }
    }
}

/// hyper's connect error seen through its cause: the message is the cause's chain, and
/// `source()` still reaches hyper's own error and everything under it.
#[derive(Debug)]
struct Cause(hyper_util::client::legacy::Error);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::error::Error::source(&self.0) {
            Some(inner) => f.write_str(&chain(inner)),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// How to reach `endpoint`, with TLS files loaded.
fn dial(endpoint: &Endpoint, tls: Option<&TlsSettings>, ssh: Option<&SshSettings>) -> Result<Dial, Error> {
    match endpoint {
        Endpoint::Unix(path) => Ok(Dial::Unix(path.clone())),
        Endpoint::Tcp(tcp) => tcp_dial(endpoint, tcp, tls),
        Endpoint::Ssh(target) => {
            let settings = ssh.cloned().unwrap_or_default();
            Ok(Dial::Ssh(Arc::new(SshDialer::new(target.clone(), settings))))
        }
    }
}

fn tcp_dial(endpoint: &Endpoint, tcp: &TcpEndpoint, tls: Option<&TlsSettings>) -> Result<Dial, Error> {
    let use_tls = tcp.uses_tls(tls.is_some());
    let host = tcp.host().to_owned();
    let port = tcp.port(use_tls);
    if !use_tls {
        if tls.is_some() {
            return Err(Error::Unsupported {
                endpoint: endpoint.to_string(),
                what: "TLS settings on an http:// endpoint (use https:// or tcp://)".to_owned(),
            });
        }
        return Ok(Dial::Tcp { host, port });
    }
    let settings = tls.ok_or_else(|| Error::TlsSetup {
        detail: format!("{endpoint} uses TLS: give its CA (and client certificate and key)"),
        source: None,
    })?;
    Ok(Dial::Tls { host, port, tls: std::sync::Arc::new(TlsConfig::load(settings)?) })
}

/// The swarm area a versioned path belongs to (`/v1.41/services/x` -> `swarm services`).
fn swarm_area(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/v")?.split_once('/')?.1;
    let first = rest.split(['/', '?']).next()?;
    match first {
        "services" => Some("swarm services"),
        "nodes" => Some("swarm nodes"),
        "tasks" => Some("swarm tasks"),
        "swarm" => Some("swarm"),
        "secrets" | "configs" => Some("swarm secrets and configs"),
        _ => None,
    }
}

/// The version to speak given what the engine reports.
pub(crate) fn negotiate(engine: Option<ApiVersion>, endpoint: &str) -> Result<ApiVersion, Error> {
    // An engine that reports no version predates the header: treat it as the oldest.
    let engine = engine.unwrap_or(MIN_API_VERSION);
    if engine < MIN_API_VERSION {
        return Err(Error::UnsupportedVersion {
            endpoint: endpoint.to_owned(),
            engine,
            minimum: MIN_API_VERSION,
        });
    }
    Ok(engine.min(MAX_API_VERSION))
}

/// Reads a whole body, refusing more than `limit` bytes.
pub(crate) async fn read_body(response: Response<Incoming>, limit: usize) -> Result<Bytes, BoxError> {
    Limited::new(response.into_body(), limit).collect().await.map(|collected| collected.to_bytes())
}

/// The engine's error message: the `message` field of its JSON body, else the text.
fn engine_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return parsed.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_clamps_and_refuses() {
        let newer = ApiVersion::new(1, 99);
        assert_eq!(negotiate(Some(newer), "unix:///x").unwrap(), MAX_API_VERSION);
        let exact = ApiVersion::new(1, 41);
        assert_eq!(negotiate(Some(exact), "unix:///x").unwrap(), exact);
        assert_eq!(negotiate(None, "unix:///x").unwrap(), MIN_API_VERSION);

        let msg = negotiate(Some(ApiVersion::new(1, 24)), "unix:///x").unwrap_err().to_string();
        assert!(msg.contains("1.24") && msg.contains(&MIN_API_VERSION.to_string()), "{msg}");
        assert!(msg.contains("unix:///x"), "{msg}");
    }

    #[test]
    fn swarm_paths_are_recognised() {
        assert_eq!(swarm_area("/v1.41/services?status=true"), Some("swarm services"));
        assert_eq!(swarm_area("/v1.41/nodes/abc"), Some("swarm nodes"));
        assert_eq!(swarm_area("/v1.41/tasks"), Some("swarm tasks"));
        assert_eq!(swarm_area("/v1.41/containers/json"), None);
        assert_eq!(swarm_area("/_ping"), None);
    }

    #[test]
    fn engine_message_prefers_json() {
        let m = engine_message(StatusCode::NOT_FOUND, br#"{"message":"no such container: x"}"#);
        assert_eq!(m, "no such container: x");
        assert_eq!(engine_message(StatusCode::BAD_GATEWAY, b" upstream down\n"), "upstream down");
        assert_eq!(engine_message(StatusCode::NOT_FOUND, b""), "Not Found");
    }
}
