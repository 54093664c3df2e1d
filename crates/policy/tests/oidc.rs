//! CI identity tokens with keys generated here: RS256 (an RSA key from `openssl`) and
//! ES256 (a P-256 key from ring), against every refusal the issue names.

// Test code: a panic with the value is the failure report, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use dockhand_policy::{Authorizer, Credential, Decision, LabelPrefixes, OidcVerifier, Permission};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

struct Issuer {
    signer: Signer,
    kid: &'static str,
    jwk: Value,
}

impl Issuer {
    fn rsa() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("k.pem");
        let der = dir.path().join("k.der");
        let run = |args: &[&str]| {
            assert!(
                std::process::Command::new("openssl").args(args).status().unwrap().success(),
                "openssl {args:?}"
            )
        };
        run(&["genrsa", "-out", pem.to_str().unwrap(), "2048"]);
        run(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-outform",
            "DER",
            "-in",
            pem.to_str().unwrap(),
            "-out",
            der.to_str().unwrap(),
        ]);
        let key = RsaKeyPair::from_pkcs8(&std::fs::read(&der).unwrap()).unwrap();
        // The modulus as openssl prints it (`Modulus=<hex>`); genrsa's exponent is 65537.
        let out = std::process::Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in", pem.to_str().unwrap()])
            .output()
            .unwrap();
        let hex = String::from_utf8(out.stdout).unwrap().trim().trim_start_matches("Modulus=").to_owned();
        let modulus: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let jwk = json!({
            "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig",
            "n": b64(&modulus),
            "e": b64(&[1, 0, 1]),
        });
        Self { signer: Signer::Rsa(key), kid: "rsa-1", jwk }
    }

    fn ec() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = key.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        Self { signer: Signer::Ec(key), kid: "ec-1", jwk }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
        }
    }

    fn token(&self, claims: &Value) -> String {
        self.token_with(&json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"}), claims)
    }

    fn token_with(&self, header: &Value, claims: &Value) -> String {
        let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Rsa(key) => {
                let mut sig = vec![0; key.public().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, signed.as_bytes(), &mut sig).unwrap();
                sig
            }
            Signer::Ec(key) => key.sign(&rng, signed.as_bytes()).unwrap().as_ref().to_vec(),
        };
        format!("{signed}.{}", b64(&sig))
    }
}

const ISS: &str = "https://gitlab.example.com";
const AUD: &str = "dockhand";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn gitlab_claims(project: &str, exp_offset: i64) -> Value {
    let t = 1_800_000_000i64;
    json!({
        "iss": ISS, "aud": AUD, "sub": format!("project_path:{project}:ref_type:branch:ref:main"),
        "iat": t - 60, "nbf": t - 60, "exp": t + exp_offset,
        "project_path": project, "ref": "main", "ref_protected": "true",
    })
}

const GITHUB: &str = "https://token.actions.githubusercontent.com";

fn jwks(keys: &[&Issuer]) -> String {
    json!({"keys": keys.iter().map(|i| i.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// GitLab and GitHub, each trusting these keys.
fn verifier(keys: &[&Issuer]) -> OidcVerifier {
    OidcVerifier::new(AUD, Duration::from_secs(30))
        .with_issuer(ISS, &jwks(keys))
        .unwrap()
        .with_issuer(GITHUB, &jwks(keys))
        .unwrap()
}

/// Decides as the server will: one entry point for tokens and CI identities.
fn authorize_claims(
    action: Permission,
    name: &str,
    labels: &BTreeMap<String, String>,
    claims: &BTreeMap<String, Value>,
    prefixes: &LabelPrefixes,
) -> Decision {
    Authorizer::new([], prefixes).authorize(action, name, labels, Credential::Ci(claims))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn the_right_project_may_update_and_another_may_not() {
    let (rsa, ec) = (Issuer::rsa(), Issuer::ec());
    let v = verifier(&[&rsa, &ec]);
    let service = labels(&[
        ("dockhand.update.oidc.project_path", "group/project-a"),
        ("dockhand.update.oidc.ref_protected", "true"),
    ]);
    for issuer in [&rsa, &ec] {
        let claims = v.verify(&issuer.token(&gitlab_claims("group/project-a", 300)), now()).unwrap();
        match authorize_claims(Permission::Update, "web", &service, &claims, &LabelPrefixes::default()) {
            Decision::Allow { who } => assert_eq!(who.to_string(), "gitlab:group/project-a@refs/heads/main"),
            Decision::Deny { reason } => panic!("{} refused: {reason}", issuer.alg()),
        }
        // Another project's pipeline has a valid token too, but not the claims.
        let other = v.verify(&issuer.token(&gitlab_claims("group/project-b", 300)), now()).unwrap();
        let Decision::Deny { reason } =
            authorize_claims(Permission::Update, "web", &service, &other, &LabelPrefixes::default())
        else {
            panic!("another project was allowed");
        };
        assert!(reason.contains("project_path") && reason.contains("gitlab:group/project-b"), "{reason}");
        // The labels grant update only.
        assert!(
            !authorize_claims(Permission::Backup, "web", &service, &claims, &LabelPrefixes::default())
                .is_allowed()
        );
    }
}

#[test]
fn github_repository_and_ref() {
    let ec = Issuer::ec();
    let v = verifier(&[&ec]);
    let t = 1_800_000_000i64;
    let claims = json!({
        "iss": "https://token.actions.githubusercontent.com", "aud": [AUD, "other"], "sub": "repo:org/repo:ref:refs/heads/main",
        "iat": t, "exp": t + 600, "repository": "org/repo", "ref": "refs/heads/main",
    });
    let claims = v.verify(&ec.token(&claims), now()).unwrap();
    let service = labels(&[
        ("dockhand.update.oidc.repository", "org/repo"),
        ("dockhand.update.oidc.ref", "refs/heads/main"),
    ]);
    match authorize_claims(Permission::Update, "api", &service, &claims, &LabelPrefixes::default()) {
        Decision::Allow { who } => assert_eq!(who.to_string(), "github:org/repo@refs/heads/main"),
        Decision::Deny { reason } => panic!("{reason}"),
    }
    let release_only = labels(&[
        ("dockhand.update.oidc.repository", "org/repo"),
        ("dockhand.update.oidc.ref", "refs/tags/v*"),
    ]);
    assert!(
        !authorize_claims(Permission::Update, "api", &release_only, &claims, &LabelPrefixes::default())
            .is_allowed()
    );
    assert!(
        !authorize_claims(Permission::Update, "api", &labels(&[]), &claims, &LabelPrefixes::default())
            .is_allowed()
    );
}

#[test]
fn every_bad_token_is_refused() {
    let (rsa, ec) = (Issuer::rsa(), Issuer::ec());
    let v = verifier(&[&rsa]);
    let good = gitlab_claims("group/project-a", 300);
    let refused = |token: &str, why: &str| {
        let err = v.verify(token, now()).unwrap_err().to_string();
        assert!(err.contains(why), "expected {why:?}: {err}");
        assert!(!err.contains(token), "the token leaked into {err}");
    };
    refused(&rsa.token(&gitlab_claims("group/project-a", -3600)), "expired");
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    refused(&rsa.token(&wrong_aud), "audience");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example.com");
    refused(&rsa.token(&wrong_iss), "not trusted");
    // Signed by a key the issuer does not publish.
    refused(&ec.token(&good), "signing key with kid \"ec-1\"");
    let stranger = Issuer::rsa();
    refused(&stranger.token(&good), "signature does not verify");
    // alg: none, with no signature.
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(good.to_string().as_bytes()));
    refused(&none, "\"none\" is not accepted");
    // HS256 with the public key as the HMAC secret: the classic confusion attack.
    let header = b64(json!({"alg": "HS256", "kid": "rsa-1"}).to_string().as_bytes());
    let signed = format!("{header}.{}", b64(good.to_string().as_bytes()));
    let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, rsa.jwk["n"].as_str().unwrap().as_bytes());
    let tag = ring::hmac::sign(&secret, signed.as_bytes());
    refused(&format!("{signed}.{}", b64(tag.as_ref())), "\"HS256\" is not accepted");
    // A tampered payload.
    let token = rsa.token(&good);
    let mut parts: Vec<&str> = token.split('.').collect();
    let evil = b64(gitlab_claims("group/evil", 300).to_string().as_bytes());
    parts[1] = &evil;
    refused(&parts.join("."), "signature does not verify");
    refused("not-a-jwt", "not a JWT");
    // Within the clock skew, a just-expired token still passes.
    assert!(v.verify(&rsa.token(&gitlab_claims("group/project-a", -10)), now()).is_ok());
}

/// Both prefixes bind the same claim, differently: per claim the first prefix (`dockhand.`)
/// wins, and a claim bound only under `swarm-utils.` still binds, as for tokens.
#[test]
fn when_both_prefixes_bind_a_claim_dockhand_wins_per_claim() {
    let rsa = Issuer::rsa();
    let v = verifier(&[&rsa]);
    let claims = v.verify(&rsa.token(&gitlab_claims("group/project-a", 300)), now()).unwrap();
    let seed = LabelPrefixes::with_swarm_utils();
    let service = labels(&[
        ("dockhand.update.oidc.project_path", "group/project-a"),
        ("swarm-utils.update.oidc.project_path", "group/project-b"),
    ]);
    assert!(authorize_claims(Permission::Update, "web", &service, &claims, &seed).is_allowed());
    let flipped = labels(&[
        ("dockhand.update.oidc.project_path", "group/project-b"),
        ("swarm-utils.update.oidc.project_path", "group/project-a"),
    ]);
    assert!(!authorize_claims(Permission::Update, "web", &flipped, &claims, &seed).is_allowed());
    // A claim bound only under the seed's prefix still binds.
    let extra = labels(&[
        ("dockhand.update.oidc.project_path", "group/project-a"),
        ("swarm-utils.update.oidc.ref_protected", "false"),
    ]);
    let Decision::Deny { reason } = authorize_claims(Permission::Update, "web", &extra, &claims, &seed)
    else {
        panic!("the seed-prefixed binding was ignored");
    };
    assert!(reason.contains("swarm-utils.update.oidc.ref_protected"), "{reason}");
}

/// Review finding 2: each issuer's keys vouch for that issuer only. A token that claims
/// GitHub's issuer but is signed with GitLab's key is refused, though the key is trusted.
#[test]
fn a_key_of_one_issuer_cannot_vouch_for_another() {
    let (gitlab_key, github_key) = (Issuer::rsa(), Issuer::ec());
    let v = OidcVerifier::new(AUD, Duration::from_secs(30))
        .with_issuer(ISS, &jwks(&[&gitlab_key]))
        .unwrap()
        .with_issuer(GITHUB, &jwks(&[&github_key]))
        .unwrap();
    let mut forged = gitlab_claims("group/project-a", 300);
    forged["iss"] = json!(GITHUB);
    forged["repository"] = json!("org/repo");
    let err = v.verify(&gitlab_key.token(&forged), now()).unwrap_err().to_string();
    assert!(err.contains("no RS256 signing key") && err.contains(GITHUB), "{err}");
    // Each issuer's own tokens still verify.
    assert!(v.verify(&gitlab_key.token(&gitlab_claims("group/project-a", 300)), now()).is_ok());
    let mut github = gitlab_claims("x", 300);
    github["iss"] = json!(GITHUB);
    assert!(v.verify(&github_key.token(&github), now()).is_ok());
}

/// Review finding 3: a CI identity is subject to the tenant scope, through the same entry
/// point as tokens.
#[test]
fn ci_identities_are_held_to_the_scope() {
    let rsa = Issuer::rsa();
    let v = verifier(&[&rsa]);
    let claims = v.verify(&rsa.token(&gitlab_claims("group/project-a", 300)), now()).unwrap();
    let auth = Authorizer::new([], &LabelPrefixes::default()).with_scope("dockhand.tenant", "team-a");
    let theirs =
        labels(&[("dockhand.update.oidc.project_path", "group/project-a"), ("dockhand.tenant", "team-b")]);
    let Decision::Deny { reason } =
        auth.authorize(Permission::Update, "web", &theirs, Credential::Ci(&claims))
    else {
        panic!("a CI identity crossed the tenant scope");
    };
    assert!(reason.contains("outside this instance's scope"), "{reason}");
    let ours =
        labels(&[("dockhand.update.oidc.project_path", "group/project-a"), ("dockhand.tenant", "team-a")]);
    assert!(auth.authorize(Permission::Update, "web", &ours, Credential::Ci(&claims)).is_allowed());
}

/// Review finding 11: time claims of the wrong type, unknown critical headers, and keys
/// whose `use` or `alg` do not fit are refused.
#[test]
fn oidc_details_are_refused_not_skipped() {
    let rsa = Issuer::rsa();
    let v = verifier(&[&rsa]);
    for (claim, value) in
        [("nbf", json!("1799999000")), ("iat", json!(1_799_999_000.5)), ("exp", json!("1800000300"))]
    {
        let mut c = gitlab_claims("group/a", 300);
        c[claim] = value;
        let err = v.verify(&rsa.token(&c), now()).unwrap_err().to_string();
        assert!(err.contains(claim) && err.contains("whole number"), "{claim}: {err}");
    }
    let crit = json!({"alg": "RS256", "kid": rsa.kid, "crit": ["exp-ext"], "exp-ext": 1});
    let err =
        v.verify(&rsa.token_with(&crit, &gitlab_claims("group/a", 300)), now()).unwrap_err().to_string();
    assert!(err.contains("crit"), "{err}");

    let mut enc = Issuer::rsa();
    enc.jwk["use"] = json!("enc");
    let v = verifier(&[&enc]);
    assert!(
        v.verify(&enc.token(&gitlab_claims("group/a", 300)), now()).is_err(),
        "an encryption key verified"
    );
    let mut other_alg = Issuer::rsa();
    other_alg.jwk["alg"] = json!("RS512");
    let v = verifier(&[&other_alg]);
    assert!(
        v.verify(&other_alg.token(&gitlab_claims("group/a", 300)), now()).is_err(),
        "an RS512 key verified RS256"
    );
}
