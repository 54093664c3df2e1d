//! Who calls: a token (admin, or a target's `<action>.token`) or a CI identity token (a JWT
//! verified against its issuer's keys, fetched by OIDC discovery and cached). Failed
//! authentications are counted per client address, and a client over the limit is answered
//! 429 before anything else is looked at.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use dockhand_policy::{Authorizer, OidcVerifier};
use serde_json::Value;

use crate::error::ApiError;
use crate::settings::OidcIssuer;

/// What a caller presented, once checked as far as it can be without a target.
#[derive(Clone)]
pub enum Caller {
    /// An admin token (the n-th, from 1).
    Admin(usize, String),
    /// Some other token: a target's label decides.
    Token(String),
    /// A verified CI identity token's claims.
    Ci(BTreeMap<String, Value>),
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin(n, _) => write!(f, "Admin({n})"),
            Self::Token(_) => f.write_str("Token(..)"),
            Self::Ci(claims) => write!(f, "Ci({})", dockhand_policy::describe(claims)),
        }
    }
}

impl Caller {
    /// True for an admin.
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Admin(..))
    }

    /// The credential to authorize with.
    pub fn credential(&self) -> dockhand_policy::Credential<'_> {
        match self {
            Self::Admin(_, token) | Self::Token(token) => dockhand_policy::Credential::Token(token),
            Self::Ci(claims) => dockhand_policy::Credential::Ci(claims),
        }
    }
}

/// How many failed authentications a client address may have in [`THROTTLE_WINDOW`].
pub const THROTTLE_LIMIT: u32 = 20;
/// The window failed authentications are counted in.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// How often an issuer's keys may be fetched again for an unknown `kid`.
pub const JWKS_REFRESH: Duration = Duration::from_secs(30);
/// Clock skew allowed on a JWT's times.
const SKEW: Duration = Duration::from_secs(60);

/// Counts failed authentications per client address.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Throttle {
    /// `Err` (429, with when to retry) when `client` had too many failures lately.
    pub fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        let Ok(failures) = self.failures.lock() else { return Ok(()) };
        match failures.get(&client) {
            Some((since, count)) if *count >= THROTTLE_LIMIT && since.elapsed() < THROTTLE_WINDOW => {
                let wait = THROTTLE_WINDOW.saturating_sub(since.elapsed()).as_secs().max(1);
                Err(ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    format!("too many failed authentications from this address: retry in {wait}s"),
                )
                .retry_after(wait))
            }
            _ => Ok(()),
        }
    }

    /// Records a failure of `client`.
    pub fn fail(&self, client: IpAddr) {
        let Ok(mut failures) = self.failures.lock() else { return };
        if failures.len() > 10_000 {
            failures.retain(|_, (since, _)| since.elapsed() < THROTTLE_WINDOW);
        }
        let entry = failures.entry(client).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= THROTTLE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// One trusted issuer, its HTTPS client and its cached keys.
struct IssuerKeys {
    config: OidcIssuer,
    client: dockhand_jobs::HttpsClient,
    /// The JWKS document, and when it was fetched.
    jwks: tokio::sync::Mutex<Option<(String, Instant)>>,
    /// When a fetch last failed: none again before [`JWKS_REFRESH`] (R3-15).
    failed: std::sync::Mutex<Option<Instant>>,
}

/// Why an issuer's keys could not be had.
#[derive(Debug, thiserror::Error)]
#[error("the keys of {issuer}: {detail}")]
pub struct JwksError {
    issuer: String,
    detail: String,
}

/// The trusted issuers.
pub struct Oidc {
    issuers: Vec<IssuerKeys>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.issuers.iter().map(|i| &i.config.issuer)).finish()
    }
}

/// The unverified `iss` of a JWT and the `kid` of its header: which issuer's keys to use.
fn peek(token: &str) -> Option<(String, Option<String>)> {
    let mut parts = token.split('.');
    let (header, payload) = (parts.next()?, parts.next()?);
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
    };
    let header = decode(header)?;
    let payload = decode(payload)?;
    let iss = payload.get("iss")?.as_str()?.trim_end_matches('/').to_owned();
    let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    Some((iss, kid))
}

/// Does `token` look like a JWT (three base64url parts, a JSON header)? Tokens that do are
/// CI identity tokens; anything else is a plain token.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

fn has_kid(jwks: &str, kid: &str) -> bool {
    serde_json::from_str::<Value>(jwks).ok().is_some_and(|doc| {
        doc.get("keys")
            .and_then(Value::as_array)
            .is_some_and(|keys| keys.iter().any(|k| k.get("kid").and_then(Value::as_str) == Some(kid)))
    })
}

impl Oidc {
    /// HTTPS clients for `issuers`, with their CA files or the system's roots.
    pub fn new(issuers: &[OidcIssuer]) -> Result<Self, JwksError> {
        let mut out = Vec::new();
        for config in issuers {
            let fail = |e: dockhand_jobs::HttpClientError| JwksError {
                issuer: config.issuer.clone(),
                detail: e.to_string(),
            };
            let client =
                dockhand_jobs::HttpsClient::new(config.ca_file.as_deref(), true, Duration::from_secs(10))
                    .map_err(fail)?;
            out.push(IssuerKeys {
                config: config.clone(),
                client,
                jwks: tokio::sync::Mutex::new(None),
                failed: std::sync::Mutex::new(None),
            });
        }
        Ok(Self { issuers: out })
    }

    /// True when no issuer is trusted.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies a CI identity token and returns its claims; the error is for the caller
    /// (it never holds the token).
    pub(crate) async fn verify(&self, token: &str) -> Result<BTreeMap<String, Value>, String> {
        let Some((iss, kid)) = peek(token) else {
            return Err("the CI identity token cannot be read (no iss claim)".to_owned());
        };
        let Some(issuer) = self.issuers.iter().find(|i| i.config.issuer == iss) else {
            return Err(format!("the CI identity token's issuer {iss:?} is not trusted"));
        };
        // The fetch's own error names internal URLs: it goes to the log, not to the caller.
        let jwks = issuer.keys(kid.as_deref()).await.map_err(|e| {
            tracing::warn!(issuer = %iss, error = %e, "cannot fetch the keys of a CI issuer");
            format!(
                "the keys of the CI identity token's issuer {iss:?} cannot be fetched now: try again later"
            )
        })?;
        let verifier = OidcVerifier::new(&issuer.config.audience, SKEW)
            .with_issuer(&issuer.config.issuer, &jwks)
            .map_err(|e| e.to_string())?;
        verifier.verify(token, SystemTime::now()).map_err(|e| e.to_string())
    }
}

impl IssuerKeys {
    /// The cached keys; fetched when there are none, or again (at most every
    /// [`JWKS_REFRESH`]) when they lack `kid`.
    async fn keys(&self, kid: Option<&str>) -> Result<String, JwksError> {
        let mut cached = self.jwks.lock().await;
        if let Some((jwks, fetched)) = cached.as_ref() {
            let known = kid.is_none_or(|kid| has_kid(jwks, kid));
            if known || fetched.elapsed() < JWKS_REFRESH {
                return Ok(jwks.clone());
            }
        }
        let recently_failed =
            self.failed.lock().ok().and_then(|f| *f).is_some_and(|at| at.elapsed() < JWKS_REFRESH);
        if recently_failed {
            if let Some((jwks, _)) = cached.as_ref() {
                return Ok(jwks.clone());
            }
            return Err(JwksError {
                issuer: self.config.issuer.clone(),
                detail: format!("the last fetch failed less than {} s ago", JWKS_REFRESH.as_secs()),
            });
        }
        let jwks = match self.fetch().await {
            Ok(jwks) => jwks,
            Err(e) => {
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some(Instant::now());
                }
                return Err(e);
            }
        };
        *cached = Some((jwks.clone(), Instant::now()));
        Ok(jwks)
    }

    /// Discovery, then the JWKS document it names.
    async fn fetch(&self) -> Result<String, JwksError> {
        let fail = |detail: String| JwksError { issuer: self.config.issuer.clone(), detail };
        let discovery = format!("{}/.well-known/openid-configuration", self.config.issuer);
        let text = self.client.get_text(&discovery).await.map_err(|e| fail(e.to_string()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| fail(format!("{discovery}: {e}")))?;
        let Some(uri) = doc.get("jwks_uri").and_then(Value::as_str) else {
            return Err(fail(format!("{discovery} names no jwks_uri")));
        };
        if !uri.starts_with("https://") {
            return Err(fail(format!("{discovery}: jwks_uri {uri:?} is not https://")));
        }
        self.client.get_text(uri).await.map_err(|e| fail(e.to_string()))
    }
}

/// The authorizer, the trusted issuers and the throttle.
#[derive(Debug)]
pub struct Gate {
    /// Tokens and labels.
    pub authorizer: Authorizer,
    /// CI identity tokens.
    pub oidc: Oidc,
    /// Failed authentications.
    pub throttle: Throttle,
}

impl Gate {
    /// Who presents `token` (from `Authorization: Bearer` or a body's `token`), from
    /// `client`: 429 when throttled, 401 without a token or with a CI identity token that
    /// does not verify.
    pub async fn identify(&self, token: Option<&str>, client: IpAddr) -> Result<Caller, ApiError> {
        self.throttle.check(client)?;
        let token = token.map(str::trim).unwrap_or_default();
        if token.is_empty() {
            self.throttle.fail(client);
            return Err(ApiError::unauthorized(
                "no credentials: send Authorization: Bearer <token> (or the body's token on the seed's routes)",
            ));
        }
        if let Some(n) = self.authorizer.admin(token) {
            return Ok(Caller::Admin(n, token.to_owned()));
        }
        if looks_like_jwt(token) {
            if self.oidc.is_empty() {
                self.throttle.fail(client);
                return Err(ApiError::unauthorized(
                    "a CI identity token was sent, but no issuer is trusted (server.oidc)",
                ));
            }
            return match self.oidc.verify(token).await {
                Ok(claims) => Ok(Caller::Ci(claims)),
                Err(why) => {
                    self.throttle.fail(client);
                    Err(ApiError::unauthorized(why))
                }
            };
        }
        Ok(Caller::Token(token.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_throttled_after_its_failures_and_others_are_not() {
        let throttle = Throttle::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..THROTTLE_LIMIT {
            assert!(throttle.check(a).is_ok());
            throttle.fail(a);
        }
        let err = throttle.check(a).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(err.retry_after.is_some());
        assert!(throttle.check(b).is_ok());
    }

    #[test]
    fn a_jwt_is_told_from_a_token() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("tok-web"));
        assert!(!looks_like_jwt("eyJ.only-two"));
        let (iss, kid) = peek(&format!(
            "{}.{}.sig",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iss":"https://gitlab.example/"}"#)
        ))
        .unwrap();
        assert_eq!((iss.as_str(), kid.as_deref()), ("https://gitlab.example", Some("k1")));
    }
}
