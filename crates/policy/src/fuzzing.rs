//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test
//! (`crates/jobs/tests/fuzz_corpus.rs`), so that both exercise exactly the same code. Each takes raw
//! bytes and must never panic.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use crate::{Defaults, ImageRef, LabelPrefixes, OidcVerifier, check_image, node_policy, service_policy};

/// Labels: the input's lines are `key=value`; a first byte that is odd makes the service
/// global.
pub fn labels(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let global = data.first().is_some_and(|b| b % 2 == 1);
    let labels: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let defaults = Defaults::default();
    for prefixes in [LabelPrefixes::default(), LabelPrefixes::with_swarm_utils()] {
        let (policy, diagnostics) = service_policy(&labels, global, &defaults, &prefixes);
        assert!(diagnostics.iter().all(|d| labels.contains_key(&d.key)), "a diagnostic names no given label");
        if global {
            assert!(policy.backup.is_none_or(|b| !b.stop), "a global service was stopped");
        }
        let _ = node_policy(&labels, &defaults, &prefixes);
    }
}

/// Image references: parse, normalize, and parse the normalized form again.
pub fn image_ref(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (requested, rest) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(image) = ImageRef::parse(requested) {
        let normalized = image.to_string();
        let again = ImageRef::parse(&normalized).expect("a normalized reference parses");
        assert_eq!(again.to_string(), normalized, "normalizing is idempotent");
    }
    let _ =
        check_image(requested, "registry.example.com/team/app:1", Some(rest).filter(|r| !r.is_empty()), "x");
}

/// A fixed JWKS with one EC key; the input is the token.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},{"kty":"RSA","kid":"r","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#;

/// JWTs: decoding and verification never panic, and nothing unsigned gets through.
pub fn jwt(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let verifier = OidcVerifier::new("dockhand", Duration::from_secs(30))
        .with_issuer("https://issuer", JWKS)
        .expect("the JWKS parses");
    let result = verifier.verify(&token, UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    // Without the private keys, no input can carry a valid signature.
    assert!(result.is_err(), "a forged token verified");
}

/// The Redactor: the input's first line is a known secret, the rest is text in which it is
/// placed in every shape of review finding 7; no shape lets it through.
pub fn redact(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (secret, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let secret = secret.trim();
    let redactor = crate::Redactor::new([secret.to_owned()]);
    let _ = redactor.redact(rest);
    if secret.chars().count() < 8 || secret.contains(['\n', '\r']) || secret.contains("****") {
        return;
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    let shapes = [
        format!("{rest} password={json} {rest}"),
        format!("{{\"token\": {json}, \"x\": {rest:?}}}"),
        format!("--password {secret} {rest}"),
        format!("{rest}{secret}{rest}"),
        format!("{rest}\n{json}\n"),
    ];
    for shape in shapes {
        let out = redactor.redact(&shape);
        assert!(!out.contains(secret), "the secret survived: {out:?}");
    }
}
