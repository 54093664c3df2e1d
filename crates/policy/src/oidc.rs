//! CI identity tokens (GitLab `id_tokens`, GitHub Actions OIDC): a JWT verified against the
//! issuer's keys, then its claims matched against `<action>.oidc.<claim>` labels. This closes
//! seed 002's hole 2: leaving a project's repository ends the ability to act for it, since
//! only that project's pipeline can obtain a token with its claims.
//!
//! Only RS256 and ES256 are accepted; `none` and every HMAC algorithm are refused before
//! any key is looked at. Each trusted issuer has its own keys (a JWKS document supplied by
//! the caller: this crate fetches nothing), and a token is checked only against the keys of
//! the issuer its own `iss` names, so one issuer's key can never vouch for another's claims.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

use crate::decision::{Decision, Identity, Permission};
use crate::{LabelPrefixes, TargetLabels};

/// The issuers, audience and keys CI identity tokens are checked against.
#[derive(Debug, Clone)]
pub struct OidcVerifier {
    issuers: Vec<TrustedIssuer>,
    audience: String,
    skew: Duration,
}

/// An issuer and its own keys.
#[derive(Debug, Clone)]
struct TrustedIssuer {
    iss: String,
    keys: Vec<Jwk>,
}

/// One key of a JWKS document.
#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    /// `sig` or `enc`; a key for encryption never verifies a signature.
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    /// The one algorithm this key is for, when the JWKS says so.
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl Jwk {
    /// May this key verify a token signed with `alg` (its `use` and `alg`, when given)?
    fn fits(&self, alg: &str) -> bool {
        self.key_use.as_deref().is_none_or(|u| u == "sig") && self.alg.as_deref().is_none_or(|a| a == alg)
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// Extensions the verifier must understand (RFC 7515 4.1.11): none are, so any is a refusal.
    #[serde(default)]
    crit: Option<Value>,
}

/// Why a token was refused. The message never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CI identity token refused: {0}")]
pub struct OidcError(String);

fn refuse(why: impl Into<String>) -> OidcError {
    OidcError(why.into())
}

fn b64(part: &str) -> Result<Vec<u8>, OidcError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| refuse("a part is not base64url"))
}

impl OidcVerifier {
    /// A verifier for tokens made for `audience`, with `skew` allowed on the clock checks.
    /// It trusts no issuer until [`OidcVerifier::with_issuer`] adds one.
    pub fn new(audience: &str, skew: Duration) -> Self {
        Self { issuers: Vec::new(), audience: audience.to_owned(), skew }
    }

    /// Trusts tokens whose `iss` is `issuer` (such as `https://gitlab.example.com` or
    /// `https://token.actions.githubusercontent.com`) when signed by a key of `jwks`, that
    /// issuer's own JWKS document.
    pub fn with_issuer(mut self, issuer: &str, jwks: &str) -> Result<Self, OidcError> {
        let set: Jwks = serde_json::from_str(jwks)
            .map_err(|e| refuse(format!("the JWKS document of {issuer} is invalid: {e}")))?;
        self.issuers.retain(|i| i.iss != issuer);
        self.issuers.push(TrustedIssuer { iss: issuer.to_owned(), keys: set.keys });
        Ok(self)
    }

    /// Verifies `token` at `now` and returns its claims.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<BTreeMap<String, Value>, OidcError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("not a JWT (expected header.payload.signature)"));
        };
        let head: Header =
            serde_json::from_slice(&b64(header)?).map_err(|_| refuse("the header is not valid JSON"))?;
        let algorithm: &dyn signature::VerificationAlgorithm = match head.alg.as_str() {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
            other => {
                return Err(refuse(format!("algorithm {other:?} is not accepted (only RS256 and ES256)")));
            }
        };
        if head.crit.is_some() {
            return Err(refuse(
                "the header has critical extensions (crit) this verifier does not understand",
            ));
        }
        // The issuer the token claims picks the keys; the signature then proves the claim.
        let claims: BTreeMap<String, Value> =
            serde_json::from_slice(&b64(payload)?).map_err(|_| refuse("the claims are not a JSON object"))?;
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.iss == iss)
            .ok_or_else(|| refuse(format!("issuer {iss:?} is not trusted")))?;
        let key = issuer
            .keys
            .iter()
            .filter(|k| k.fits(&head.alg))
            .find(|k| head.kid.is_none() || k.kid == head.kid)
            .ok_or_else(|| {
                refuse(format!(
                    "no {} signing key with kid {:?} in the JWKS of {iss}",
                    head.alg,
                    head.kid.as_deref().unwrap_or("")
                ))
            })?;
        let signed = &token[..header.len() + 1 + payload.len()];
        let signature = b64(sig)?;
        let valid = match (head.alg.as_str(), key.kty.as_str()) {
            ("RS256", "RSA") => {
                let (n, e) = (key.n.as_deref().map(b64), key.e.as_deref().map(b64));
                let (Some(Ok(n)), Some(Ok(e))) = (n, e) else {
                    return Err(refuse("the RSA key lacks n or e"));
                };
                RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
                    .is_ok()
            }
            ("ES256", "EC") if key.crv.as_deref() == Some("P-256") => {
                let (x, y) = (key.x.as_deref().map(b64), key.y.as_deref().map(b64));
                let (Some(Ok(x)), Some(Ok(y))) = (x, y) else {
                    return Err(refuse("the EC key lacks x or y"));
                };
                let mut point = vec![0x04];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                UnparsedPublicKey::new(algorithm, point).verify(signed.as_bytes(), &signature).is_ok()
            }
            (alg, kty) => return Err(refuse(format!("key type {kty} does not fit algorithm {alg}"))),
        };
        if !valid {
            return Err(refuse("the signature does not verify"));
        }
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn check_claims(&self, claims: &BTreeMap<String, Value>, now: SystemTime) -> Result<(), OidcError> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let skew = self.skew.as_secs();
        // A time claim, when present, must be whole seconds: a string or a fraction is
        // refused, never skipped.
        let number = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| refuse(format!("the {name} claim is not a whole number of seconds"))),
        };
        let exp = number("exp")?.ok_or_else(|| refuse("no exp claim"))?;
        if now > exp.saturating_add(skew) {
            return Err(refuse(format!("expired {}s ago", now - exp)));
        }
        if let Some(nbf) = number("nbf")? {
            if now.saturating_add(skew) < nbf {
                return Err(refuse("not valid yet (nbf)"));
            }
        }
        if let Some(iat) = number("iat")? {
            if now.saturating_add(skew) < iat {
                return Err(refuse("issued in the future (iat)"));
            }
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(self.audience.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(refuse(format!("the audience is not {:?}", self.audience)));
        }
        Ok(())
    }
}

/// A safe description of a CI identity: `gitlab:group/project@refs/heads/main`,
/// `github:org/repo@refs/heads/main`, or `oidc:<iss>#<sub>`.
pub fn describe(claims: &BTreeMap<String, Value>) -> String {
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    let git_ref = match text("ref") {
        r if r.starts_with("refs/") || r.is_empty() => r.to_owned(),
        r => format!("refs/heads/{r}"),
    };
    if !text("project_path").is_empty() {
        format!("gitlab:{}@{git_ref}", text("project_path"))
    } else if !text("repository").is_empty() {
        format!("github:{}@{git_ref}", text("repository"))
    } else {
        format!("oidc:{}#{}", text("iss"), text("sub"))
    }
}

/// Decides whether verified `claims` may do `action` on a target with `labels`: every
/// `<action>.oidc.<claim>` label must match the claim (a glob; booleans and numbers as
/// text). Labels are read through [`TargetLabels`] as for tokens: per claim, the first prefix
/// wins, and a claim bound under only one prefix still binds. A target with no such label
/// grants nothing to CI identities. `<action>.oidc.iss` is compared exactly, never as a
/// glob; with `several_issuers` it is required (R3-10).
pub(crate) fn authorize_claims(
    action: Permission,
    name: &str,
    labels: &BTreeMap<String, String>,
    claims: &BTreeMap<String, Value>,
    prefixes: &LabelPrefixes,
    several_issuers: bool,
) -> Decision {
    let view = TargetLabels::resolve(labels, prefixes);
    let head = format!("{}.oidc.", action.as_str());
    let rules: Vec<(String, String, String)> = view
        .under(&head)
        .filter(|(claim, _, _)| !claim.is_empty())
        .map(|(claim, key, value)| (key.to_owned(), claim.to_owned(), value.to_owned()))
        .collect();
    if rules.is_empty() {
        return Decision::Deny {
            reason: format!(
                "{name} has no {}* labels: CI identities may not {} it",
                view.key_for(&head),
                action.as_str()
            ),
        };
    }
    if several_issuers && !rules.iter().any(|(_, claim, _)| claim == "iss") {
        return Decision::Deny {
            reason: format!(
                "the server trusts several CI issuers, and {name}'s {}* labels do not say which: add {}iss=<issuer URL>",
                view.key_for(&head),
                view.key_for(&head)
            ),
        };
    }
    for (key, claim, pattern) in rules {
        let value = match claims.get(&claim) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let matches = if claim == "iss" {
            value.trim_end_matches('/') == pattern.trim().trim_end_matches('/')
        } else {
            crate::image::glob(&pattern, &value)
        };
        if value.is_empty() || !matches {
            return Decision::Deny {
                reason: format!("claim {claim} of {} does not match {key}={pattern}", describe(claims)),
            };
        }
    }
    Decision::Allow { who: Identity::Ci { description: describe(claims) } }
}
