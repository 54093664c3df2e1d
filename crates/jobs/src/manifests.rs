//! Watch mode's own registry client: one manifest `HEAD` per reference, straight to the
//! registry (Docker Registry HTTP API v2), the way `regctl` or `crane digest` ask, instead
//! of a round trip through the engine's `/distribution`, which asks the registry for the
//! whole manifest.
//!
//! - **Authentication.** The first answer of a registry says how it wants to be asked
//!   (`WWW-Authenticate`): `Basic` gets the credential on every later request; `Bearer`
//!   gets a pull token from its token service (the credential as Basic, or an identity
//!   token as an OAuth2 refresh token), kept until it expires. A credential goes only to
//!   the registry it was matched to (`registry.rs`) and to the token service that registry
//!   names, and only over HTTPS unless the engine itself treats the registry as insecure.
//! - **Insecure registries** are the engine's own (`GET /info`: `insecure-registries`, and
//!   `127.0.0.0/8` by default): asked over HTTPS without verification, then over plain
//!   HTTP, as the engine does. Any other registry is HTTPS, verified against the system's
//!   roots.
//! - **Politeness.** The last `ETag` of each reference goes back as `If-None-Match`, and a
//!   `304` keeps the digest; `ratelimit-remaining` (Docker Hub) is read from each answer.
//!
//! [`Manifests`] is the narrow seam the look goes through; the look's logic is tested with
//! an in-memory one, this client against a real registry and an in-process peer.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use dockhand_engine::{RegistryAuth, RegistryConfig};
use dockhand_policy::{ImageRef, RateLimit};
use reqwest::header::{HeaderMap, HeaderValue};

use crate::http::HttpClientError;

/// What a manifest `HEAD` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestHead {
    /// The digest behind the tag (`Docker-Content-Digest`).
    pub digest: String,
    /// The registry's rate limit, when it says one (`ratelimit-remaining`).
    pub rate_limit: Option<RateLimit>,
    /// True when the registry answered `304 Not Modified` to the last `ETag`.
    pub unchanged: bool,
}

/// A manifest `HEAD` that gave no digest: the URL asked, the status when there was one, and
/// why. Never holds a credential or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {detail}")]
#[non_exhaustive]
pub struct ManifestError {
    /// What was asked (the manifest, or the registry's token service).
    pub url: String,
    /// The HTTP status, when the registry answered.
    pub status: Option<u16>,
    /// Why it failed, in words.
    pub detail: String,
}

impl ManifestError {
    fn new(url: &str, status: Option<u16>, detail: impl Into<String>) -> Self {
        Self { url: url.to_owned(), status, detail: detail.into() }
    }

    /// An answer of the fake swarm's registry.
    #[cfg(test)]
    pub(crate) fn fake(url: &str, status: u16, detail: &str) -> Self {
        Self::new(url, Some(status), detail)
    }

    /// Whether the registry itself failed (unreachable, erring, or limiting us: no status,
    /// 5xx, 429), as opposed to a tag it does not have or a credential it refused: only
    /// the former backs the registry off.
    pub fn registry_failed(&self) -> bool {
        self.status.is_none_or(|s| s >= 500 || s == 429)
    }
}

/// Resolves a reference's tag to its digest at its registry: [`RegistryClient`], or an
/// in-memory one in tests.
#[async_trait::async_trait]
pub trait Manifests: Send + Sync + std::fmt::Debug {
    /// The digest behind `reference`'s tag, asked with `auth` (already matched to its
    /// registry).
    async fn head(
        &self,
        reference: &ImageRef,
        auth: Option<&RegistryAuth>,
    ) -> Result<ManifestHead, ManifestError>;

    /// Learns which registries the engine treats as insecure (`GET /info`).
    fn learn(&self, _config: &RegistryConfig) {}
}

/// The media types a `HEAD` accepts: an index or list first, so that the digest is the one
/// the engine pins (`/distribution` answers the same).
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.manifest.v1+json";

/// Each request's time limit.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A pull token's life when its service does not say (the distribution spec's default).
const TOKEN_LIFE: Duration = Duration::from_secs(60);

/// How a registry wants to be asked, from its `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    /// The credential on each request.
    Basic,
    /// A token from `realm`, for `service`.
    Bearer { realm: String, service: Option<String> },
}

/// What the client remembers across looks.
#[derive(Debug, Default)]
struct Memory {
    /// Each registry's challenge.
    challenges: HashMap<String, Challenge>,
    /// Pull tokens by (registry, repository, whose credential), until when.
    tokens: HashMap<(String, String, String), (String, Instant)>,
    /// The last (`ETag`, digest) of each manifest URL, by whose credential.
    etags: HashMap<(String, String), (String, String)>,
    /// Insecure registries that answered over plain HTTP.
    plain: BTreeSet<String>,
    /// Whether each registry asked so far is insecure, until the engine's list changes.
    insecure: HashMap<String, bool>,
}

/// The registries the engine talks to without verified TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Insecure {
    names: BTreeSet<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl Insecure {
    fn of(config: &RegistryConfig) -> Self {
        let names = config.index_configs.values().filter(|c| !c.secure).map(|c| c.name.clone()).collect();
        let networks = config.insecure_registry_cidrs.iter().filter_map(|c| cidr(c)).collect();
        Self { names, networks }
    }

    /// Whether the engine treats `registry` (`host[:port]`) as insecure: by name, or by an
    /// address of its host in one of the networks.
    async fn holds(&self, registry: &str) -> bool {
        if self.names.contains(registry) {
            return true;
        }
        if self.networks.is_empty() {
            return false;
        }
        let host = host_of(registry);
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, 443))
                .await
                .map(|found| found.map(|a| a.ip()).collect())
                .unwrap_or_default(),
        };
        addresses.iter().any(|ip| self.networks.iter().any(|(net, bits)| in_network(*ip, *net, *bits)))
    }
}

/// `registry`'s host, without its port (`[::1]:5000` is `::1`).
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(registry, |(h, _)| h)
}

/// `10.0.0.0/8` as an address and a prefix length.
fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, bits) = text.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((address, bits))
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(a.to_bits()), u128::from(b.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || ip >> shift == net >> shift
}

/// The host that serves `domain`'s registry API (Docker Hub's is `registry-1.docker.io`).
fn api_host(domain: &str) -> &str {
    if domain == "docker.io" { "registry-1.docker.io" } else { domain }
}

/// Who a credential is, for the client's memory: a hash, never the secret itself.
fn whose(auth: Option<&RegistryAuth>) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    match auth {
        None => return String::new(),
        Some(RegistryAuth::Password { username, password, .. }) => {
            hash.update(username.as_bytes());
            hash.update([0]);
            hash.update(password.as_bytes());
        }
        Some(RegistryAuth::IdentityToken(token)) => hash.update(token.as_bytes()),
    }
    hex::encode(&hash.finalize()[..8])
}

/// The HTTP client watch mode asks registries with. Keep one across looks: it remembers
/// each registry's challenge, pull tokens and `ETag`s.
pub struct RegistryClient {
    verified: reqwest::Client,
    /// For insecure registries only: TLS without verification, or plain HTTP.
    unverified: reqwest::Client,
    insecure: RwLock<Insecure>,
    memory: Mutex<Memory>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client that trusts the system's roots, and treats no registry as insecure until
    /// it learns the engine's ([`Manifests::learn`]).
    pub fn new() -> Result<Self, HttpClientError> {
        let verified = crate::http::client(None, true, TIMEOUT)?;
        let unverified = reqwest::Client::builder()
            .tls_backend_preconfigured(unverified_tls().map_err(HttpClientError::new)?)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| HttpClientError::new(e.to_string()))?;
        Ok(Self { verified, unverified, insecure: RwLock::default(), memory: Mutex::default() })
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The base URLs to try for `registry`, in order, and the client for them.
    async fn bases(&self, registry: &str) -> (Vec<String>, &reqwest::Client) {
        let host = api_host(registry);
        let known = self.memory().insecure.get(registry).copied();
        let insecure = match known {
            Some(insecure) => insecure,
            None => {
                let list = self.insecure.read().unwrap_or_else(PoisonError::into_inner).clone();
                let insecure = list.holds(registry).await;
                self.memory().insecure.insert(registry.to_owned(), insecure);
                insecure
            }
        };
        if !insecure {
            return (vec![format!("https://{host}")], &self.verified);
        }
        let (https, http) = (format!("https://{host}"), format!("http://{host}"));
        if self.memory().plain.contains(registry) {
            (vec![http, https], &self.unverified)
        } else {
            (vec![https, http], &self.unverified)
        }
    }

    /// The `Authorization` to send to `registry` for `repository` before any challenge of
    /// this request: what its last challenge asked for, when it is known.
    async fn authorization(
        &self,
        client: &reqwest::Client,
        base: &str,
        registry: &str,
        repository: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<Option<HeaderValue>, ManifestError> {
        let challenge = self.memory().challenges.get(registry).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(auth.and_then(basic)),
            Some(Challenge::Bearer { realm, service }) => {
                let key = (registry.to_owned(), repository.to_owned(), whose(auth));
                let cached =
                    self.memory().tokens.get(&key).filter(|(_, until)| Instant::now() < *until).cloned();
                let token = match cached {
                    Some((token, _)) => token,
                    None => {
                        let (token, life) =
                            fetch_token(client, base, &realm, service.as_deref(), repository, auth).await?;
                        let (mut memory, now) = (self.memory(), Instant::now());
                        memory.tokens.retain(|_, (_, until)| now < *until);
                        memory.tokens.insert(key, (token.clone(), now + life));
                        token
                    }
                };
                Ok(HeaderValue::from_str(&format!("Bearer {token}")).ok().map(sensitive))
            }
        }
    }

    /// One `HEAD` of `url`, authorized as the registry last asked; a `401` teaches the
    /// challenge and is tried once more.
    async fn ask(
        &self,
        client: &reqwest::Client,
        base: &str,
        url: &str,
        registry: &str,
        repository: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<reqwest::Response, ManifestError> {
        let etag_key = (url.to_owned(), whose(auth));
        let mut retried = false;
        loop {
            let mut request = client.head(url).header(reqwest::header::ACCEPT, ACCEPT);
            if let Some((etag, _)) = self.memory().etags.get(&etag_key) {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag.as_str());
            }
            let authorization = self.authorization(client, base, registry, repository, auth).await?;
            let sent = authorization.is_some();
            if let Some(value) = authorization {
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            let answer = request.send().await.map_err(|e| ManifestError::new(url, None, describe(&e)))?;
            if answer.status() != reqwest::StatusCode::UNAUTHORIZED || retried {
                return Ok(answer);
            }
            let Some(challenge) = answer.headers().get(reqwest::header::WWW_AUTHENTICATE).and_then(challenge)
            else {
                return Ok(answer);
            };
            let mut memory = self.memory();
            if matches!(challenge, Challenge::Basic) && (sent || auth.is_none()) {
                // This request's credential was refused, or there is none to send: asking
                // again changes nothing.
                memory.challenges.insert(registry.to_owned(), challenge);
                return Ok(answer);
            }
            retried = true;
            if sent {
                // A token it refused is dropped.
                memory.tokens.retain(|(r, repo, _), _| !(r == registry && repo == repository));
            }
            memory.challenges.insert(registry.to_owned(), challenge);
        }
    }
}

#[async_trait::async_trait]
impl Manifests for RegistryClient {
    async fn head(
        &self,
        reference: &ImageRef,
        auth: Option<&RegistryAuth>,
    ) -> Result<ManifestHead, ManifestError> {
        let registry = reference.domain();
        let repository = reference.repository();
        let repository = repository.strip_prefix(&format!("{registry}/")).unwrap_or(&repository).to_owned();
        let tag = reference.tag().unwrap_or("latest");
        let (bases, client) = self.bases(registry).await;
        let mut last = None;
        for base in &bases {
            let url = format!("{base}/v2/{repository}/manifests/{tag}");
            let answer = match self.ask(client, base, &url, registry, &repository, auth).await {
                Ok(answer) => answer,
                // A transport failure on the first of two schemes: the other is tried.
                Err(e) if e.status.is_none() => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if base.starts_with("http://") {
                self.memory().plain.insert(registry.to_owned());
            } else {
                self.memory().plain.remove(registry);
            }
            return self.read(&url, answer, auth);
        }
        Err(last.unwrap_or_else(|| ManifestError::new(registry, None, "no address to ask")))
    }

    fn learn(&self, config: &RegistryConfig) {
        let learnt = Insecure::of(config);
        let mut list = self.insecure.write().unwrap_or_else(PoisonError::into_inner);
        if *list != learnt {
            *list = learnt;
            self.memory().insecure.clear();
        }
    }
}

impl RegistryClient {
    /// The digest an answer gives, remembered with its `ETag`.
    fn read(
        &self,
        url: &str,
        answer: reqwest::Response,
        auth: Option<&RegistryAuth>,
    ) -> Result<ManifestHead, ManifestError> {
        let status = answer.status();
        let headers = answer.headers();
        let rate_limit = header(headers, "ratelimit-remaining").and_then(RateLimit::parse);
        let etag_key = (url.to_owned(), whose(auth));
        if status == reqwest::StatusCode::NOT_MODIFIED {
            if let Some((_, digest)) = self.memory().etags.get(&etag_key) {
                return Ok(ManifestHead { digest: digest.clone(), rate_limit, unchanged: true });
            }
            return Err(ManifestError::new(
                url,
                Some(304),
                "304 Not Modified to a request without If-None-Match",
            ));
        }
        if !status.is_success() {
            let detail = match status.as_u16() {
                401 => "401 Unauthorized: the registry refused the credential (or wants one)".to_owned(),
                404 => "404 Not Found: no such repository or tag".to_owned(),
                429 => "429 Too Many Requests: the registry's rate limit is spent".to_owned(),
                _ => status.to_string(),
            };
            return Err(ManifestError::new(url, Some(status.as_u16()), detail));
        }
        let digest = header(headers, "docker-content-digest")
            .filter(|d| d.starts_with("sha256:") || d.starts_with("sha512:"))
            .ok_or_else(|| {
                ManifestError::new(url, Some(status.as_u16()), "the registry gave no Docker-Content-Digest")
            })?
            .to_owned();
        let etag = header(headers, "etag").map_or_else(|| format!("\"{digest}\""), str::to_owned);
        self.memory().etags.insert(etag_key, (etag, digest.clone()));
        Ok(ManifestHead { digest, rate_limit, unchanged: false })
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `Basic user:password`, marked sensitive.
fn basic(auth: &RegistryAuth) -> Option<HeaderValue> {
    match auth {
        RegistryAuth::Password { username, password, .. } => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            HeaderValue::from_str(&format!("Basic {encoded}")).ok().map(sensitive)
        }
        RegistryAuth::IdentityToken(_) => None,
    }
}

fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// Parses a `WWW-Authenticate` challenge: `Basic realm="…"` or
/// `Bearer realm="…",service="…",scope="…"`.
fn challenge(value: &HeaderValue) -> Option<Challenge> {
    let text = value.to_str().ok()?.trim();
    let (scheme, params) = text.split_once(' ').unwrap_or((text, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parameters(params);
    let realm = params.get("realm")?.clone();
    Some(Challenge::Bearer { realm, service: params.get("service").cloned() })
}

/// `a="x",b="y, z",c=w` as a map.
fn parameters(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text.trim();
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (quoted[..end].to_owned(), quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.insert(name, value);
        rest = next.trim_start_matches([',', ' ']);
    }
    out
}

/// A pull token for `repository` from the token service `realm`, and how long it lasts.
/// The realm must be HTTPS, unless the registry itself is asked over plain HTTP (`base`)
/// and the realm is on its host: a credential never goes out in the clear elsewhere.
async fn fetch_token(
    client: &reqwest::Client,
    base: &str,
    realm: &str,
    service: Option<&str>,
    repository: &str,
    auth: Option<&RegistryAuth>,
) -> Result<(String, Duration), ManifestError> {
    let fail = |status: Option<u16>, detail: String| ManifestError::new(realm, status, detail);
    let mut url =
        reqwest::Url::parse(realm).map_err(|e| fail(None, format!("the token service is not a URL: {e}")))?;
    let same_host = reqwest::Url::parse(base).is_ok_and(|b| b.host_str() == url.host_str());
    if url.scheme() != "https" && !(url.scheme() == "http" && base.starts_with("http://") && same_host) {
        return Err(fail(
            Some(401),
            "the registry's token service is not HTTPS: dockhand sends no credential there".to_owned(),
        ));
    }
    let scope = format!("repository:{repository}:pull");
    let request = match auth {
        Some(RegistryAuth::IdentityToken(refresh)) => {
            let mut form = reqwest::Url::parse("form:").map_err(|e| fail(None, e.to_string()))?;
            {
                let mut pairs = form.query_pairs_mut();
                pairs.append_pair("grant_type", "refresh_token").append_pair("client_id", "dockhand");
                pairs.append_pair("scope", &scope).append_pair("refresh_token", refresh);
                if let Some(service) = service {
                    pairs.append_pair("service", service);
                }
            }
            let body = form.query().unwrap_or_default().to_owned();
            client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
        }
        _ => {
            {
                let mut pairs = url.query_pairs_mut();
                if let Some(service) = service {
                    pairs.append_pair("service", service);
                }
                pairs.append_pair("scope", &scope);
            }
            let request = client.get(url);
            match auth.and_then(basic) {
                Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
                None => request,
            }
        }
    };
    let answer = request.send().await.map_err(|e| fail(None, describe(&e)))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(fail(Some(status.as_u16()), format!("the token service answered {status}")));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let bytes = answer.bytes().await.map_err(|e| fail(Some(status.as_u16()), describe(&e)))?;
    let body: Answer = serde_json::from_slice(&bytes).map_err(|e| {
        fail(Some(status.as_u16()), format!("the token service's answer is not a token: {e}"))
    })?;
    let token = body
        .token
        .or(body.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| fail(Some(status.as_u16()), "the token service gave no token".to_owned()))?;
    // Kept a little less long than it lives, at least a few seconds.
    let life = body.expires_in.map_or(TOKEN_LIFE, Duration::from_secs);
    Ok((token, life.saturating_sub(Duration::from_secs(5)).max(Duration::from_secs(5))))
}

/// A reqwest error's kind and causes, without its URL (reqwest's own text names it).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    match e.source() {
        Some(cause) => format!("{kind}: {}", dockhand_engine::chain(cause)),
        None => kind.to_owned(),
    }
}

/// TLS that accepts any certificate, for the registries the engine itself asks without
/// verification (its `insecure-registries`) and for those alone.
fn unverified_tls() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth())
}

/// Accepts any server certificate; checks the handshake's signatures still.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
