//! The registry client against an in-process HTTP peer, for what a real registry does not
//! do on demand (Docker Hub's rate-limit headers, a token service, 5xx); the real registry
//! with htpasswd is the server's watch suite's peer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dockhand_engine::{IndexInfo, RegistryAuth, RegistryConfig};
use dockhand_policy::ImageRef;

use super::*;
use crate::test_peer::{Answer, Peer};

fn reference(peer: &Peer, tag: &str) -> ImageRef {
    ImageRef::parse(&format!("{}/team/app:{tag}", peer.address)).unwrap()
}

const DIGEST: &str = "sha256:4444444444444444444444444444444444444444444444444444444444444444";
const PASSWORD: &str = "pa55-peer-secret";

fn auth() -> RegistryAuth {
    RegistryAuth::password("ci", PASSWORD, "peer")
}

fn basic_of(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// A client that, as the engine does by default, treats loopback as insecure.
fn client() -> RegistryClient {
    let client = RegistryClient::new().unwrap();
    let mut config = RegistryConfig::default();
    config.insecure_registry_cidrs = vec!["127.0.0.0/8".to_owned()];
    client.learn(&config);
    client
}

fn found(headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("docker-content-digest".to_owned(), DIGEST.to_owned())];
    all.extend(headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    (200, all, String::new())
}

#[tokio::test]
async fn a_bearer_registry_gets_one_token_then_one_head_and_the_etag_comes_back() {
    let realm: Arc<Mutex<String>> = Arc::default();
    let realm_of = realm.clone();
    let peer = Peer::start(move |heard| {
        if heard.target.starts_with("/token") {
            assert_eq!(heard.headers.get("authorization"), Some(&basic_of("ci", PASSWORD)));
            assert!(heard.target.contains("scope=repository%3Ateam%2Fapp%3Apull"), "{}", heard.target);
            assert!(heard.target.contains("service=peer"), "{}", heard.target);
            return (200, vec![], r#"{"token":"t0k3n","expires_in":300}"#.to_owned());
        }
        assert_eq!(heard.method, "HEAD");
        assert!(heard.headers["accept"].contains("application/vnd.oci.image.index.v1+json"));
        if heard.headers.get("authorization").map(String::as_str) != Some("Bearer t0k3n") {
            let challenge = format!(
                r#"Bearer realm="{}",service="peer",scope="repository:team/app:pull""#,
                realm_of.lock().unwrap()
            );
            return (401, vec![("www-authenticate".to_owned(), challenge)], String::new());
        }
        if heard.headers.get("if-none-match").map(String::as_str) == Some("\"etag-1\"") {
            return (304, vec![("ratelimit-remaining".to_owned(), "75;w=21600".to_owned())], String::new());
        }
        found(&[("etag", "\"etag-1\""), ("ratelimit-remaining", "76;w=21600")])
    })
    .await;
    *realm.lock().unwrap() = format!("http://{}/token", peer.address);
    let client = client();

    let first = client.head(&reference(&peer, "1.4"), Some(&auth())).await.unwrap();
    assert_eq!(first.digest, DIGEST);
    assert!(!first.unchanged);
    assert_eq!(first.rate_limit.map(|r| r.remaining), Some(76));
    let targets: Vec<String> = peer.heard().iter().map(|h| format!("{} {}", h.method, h.target)).collect();
    assert_eq!(targets.len(), 3, "a challenge, a token, the answer: {targets:?}");

    let second = client.head(&reference(&peer, "1.4"), Some(&auth())).await.unwrap();
    assert_eq!((second.digest.as_str(), second.unchanged), (DIGEST, true));
    assert_eq!(second.rate_limit.map(|r| r.remaining), Some(75));
    let heard = peer.heard();
    assert_eq!(heard.len(), 4, "the token is kept: one HEAD: {heard:?}");
    assert_eq!(heard[3].headers.get("if-none-match").map(String::as_str), Some("\"etag-1\""));
}

#[tokio::test]
async fn a_basic_registry_learns_once_and_a_refused_credential_is_not_retried() {
    let peer = Peer::start(|heard| {
        if heard.headers.get("authorization") == Some(&basic_of("ci", PASSWORD)) {
            return found(&[]);
        }
        (401, vec![("www-authenticate".to_owned(), r#"Basic realm="registry""#.to_owned())], String::new())
    })
    .await;
    let client = client();
    // Two tags at once, before the registry's challenge is known: each learns it.
    let (v1, v2) = (reference(&peer, "v1"), reference(&peer, "v2"));
    let credential = auth();
    let (a, b) = tokio::join!(client.head(&v1, Some(&credential)), client.head(&v2, Some(&credential)));
    assert_eq!((a.unwrap().digest, b.unwrap().digest), (DIGEST.to_owned(), DIGEST.to_owned()));
    let asked = peer.heard().len();
    for _ in 0..3 {
        assert_eq!(client.head(&reference(&peer, "v1"), Some(&auth())).await.unwrap().digest, DIGEST);
    }
    assert_eq!(peer.heard().len(), asked + 3, "then the credential up front, one request each");

    let wrong = RegistryAuth::password("ci", "not-it", "peer");
    let err = client.head(&reference(&peer, "v1"), Some(&wrong)).await.unwrap_err();
    assert_eq!(err.status, Some(401), "{err}");
    assert!(!err.registry_failed(), "a refused credential backs nothing off");
    assert_eq!(peer.heard().len(), asked + 4, "asked once with the wrong credential");
    let anonymous = client.head(&reference(&peer, "v1"), None).await.unwrap_err();
    assert_eq!(anonymous.status, Some(401));
    assert_eq!(peer.heard().len(), asked + 5);
}

#[tokio::test]
async fn failures_say_whether_the_registry_itself_failed_and_never_hold_the_secret() {
    let peer = Peer::start(|heard| match heard.target.as_str() {
        t if t.contains("/manifests/gone") => (404, vec![], String::new()),
        t if t.contains("/manifests/low") => {
            found(&[("ratelimit-limit", "100;w=21600"), ("ratelimit-remaining", "3;w=21600")])
        }
        t if t.contains("/manifests/limited") => (429, vec![], String::new()),
        t if t.contains("/manifests/nodigest") => (200, vec![], String::new()),
        _ => (503, vec![], String::new()),
    })
    .await;
    let client = client();
    let ask = |tag: &'static str| {
        let (client, reference) = (&client, reference(&peer, tag));
        async move { client.head(&reference, Some(&auth())).await }
    };
    let low = ask("low").await.unwrap();
    assert!(low.rate_limit.unwrap().is_low(), "{low:?}");
    let table = [("gone", Some(404), false), ("limited", Some(429), true), ("down", Some(503), true)];
    for (tag, status, failed) in table {
        let err = ask(tag).await.unwrap_err();
        assert_eq!((err.status, err.registry_failed()), (status, failed), "{tag}: {err}");
        assert!(err.to_string().contains(&format!("/v2/team/app/manifests/{tag}")), "{err}");
        assert!(!err.to_string().contains(PASSWORD), "{err}");
    }
    let err = ask("nodigest").await.unwrap_err();
    assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");

    // Nothing listens: the registry failed, without a status.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let reference = ImageRef::parse(&format!("{address}/team/app:v1")).unwrap();
    let err = client.head(&reference, None).await.unwrap_err();
    assert!(err.status.is_none() && err.registry_failed(), "{err}");
}

#[tokio::test]
async fn a_secure_registry_is_never_asked_in_the_clear() {
    let peer = Peer::start(|_| found(&[])).await;
    // The engine treats nothing as insecure: HTTPS only, which a plain peer cannot answer.
    let client = RegistryClient::new().unwrap();
    let err = client.head(&reference(&peer, "v1"), Some(&auth())).await.unwrap_err();
    assert!(err.url.starts_with("https://"), "{err}");
    assert!(peer.heard().is_empty(), "{:?}", peer.heard());
    // Named insecure by the engine: plain HTTP after HTTPS fails, then plain HTTP first.
    let mut index = IndexInfo::default();
    index.name = peer.address.clone();
    let mut config = RegistryConfig::default();
    config.index_configs = BTreeMap::from([(peer.address.clone(), index)]);
    client.learn(&config);
    assert_eq!(client.head(&reference(&peer, "v1"), Some(&auth())).await.unwrap().digest, DIGEST);
    assert_eq!(client.head(&reference(&peer, "v1"), Some(&auth())).await.unwrap().digest, DIGEST);
    assert_eq!(peer.heard().len(), 2);
}

#[tokio::test]
async fn a_token_service_in_the_clear_elsewhere_gets_no_credential() {
    let peer = Peer::start(|_| (200, vec![], r#"{"token":"t"}"#.to_owned())).await;
    let client = RegistryClient::new().unwrap().unverified;
    let realm = format!("http://{}/token", peer.address);
    let err = fetch_token(&client, "https://registry.example.com", &realm, None, "team/app", Some(&auth()))
        .await
        .unwrap_err();
    assert!(err.detail.contains("not HTTPS"), "{err}");
    assert!(peer.heard().is_empty());
    // On the plain registry's own host it is the registry's own service.
    let base = format!("http://{}", peer.address);
    let (token, _) =
        fetch_token(&client, &base, &realm, Some("peer"), "team/app", Some(&auth())).await.unwrap();
    assert_eq!(token, "t");
}

#[tokio::test]
async fn an_identity_token_is_exchanged_as_a_refresh_token() {
    let peer = Peer::start(|heard| {
        assert_eq!(heard.method, "POST");
        assert!(!heard.headers.contains_key("authorization"));
        assert!(heard.body.contains("grant_type=refresh_token"), "{}", heard.body);
        assert!(heard.body.contains("refresh_token=id-t0ken"), "{}", heard.body);
        (200, vec![], r#"{"access_token":"a","expires_in":1}"#.to_owned())
    })
    .await;
    let base = format!("http://{}", peer.address);
    let realm = format!("{base}/token");
    let refresh = RegistryAuth::IdentityToken("id-t0ken".to_owned());
    let (token, life) = fetch_token(
        &RegistryClient::new().unwrap().unverified,
        &base,
        &realm,
        None,
        "team/app",
        Some(&refresh),
    )
    .await
    .unwrap();
    assert_eq!((token.as_str(), life), ("a", Duration::from_secs(5)));
}

#[test]
fn challenges_networks_and_hosts_parse() {
    let bearer = HeaderValue::from_static(
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
    );
    assert_eq!(
        challenge(&bearer),
        Some(Challenge::Bearer {
            realm: "https://auth.docker.io/token".to_owned(),
            service: Some("registry.docker.io".to_owned())
        })
    );
    assert_eq!(challenge(&HeaderValue::from_static("basic realm=\"x\"")), Some(Challenge::Basic));
    assert_eq!(challenge(&HeaderValue::from_static("Negotiate")), None);
    assert_eq!(challenge(&HeaderValue::from_static("Bearer service=\"x\"")), None, "no realm");

    assert_eq!(host_of("registry.example.com:5000"), "registry.example.com");
    assert_eq!(host_of("[::1]:5000"), "::1");
    assert_eq!(host_of("registry.example.com"), "registry.example.com");
    let (net, bits) = cidr("10.1.0.0/16").unwrap();
    assert!(in_network("10.1.200.3".parse().unwrap(), net, bits));
    assert!(!in_network("10.2.0.1".parse().unwrap(), net, bits));
    assert!(!in_network("::1".parse().unwrap(), net, bits));
    let (any, zero) = cidr("0.0.0.0/0").unwrap();
    assert!(in_network("192.0.2.1".parse().unwrap(), any, zero));
    assert_eq!(cidr("10.0.0.0/33"), None);
    assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    assert_eq!(whose(None), "");
    assert_ne!(whose(Some(&auth())), whose(Some(&RegistryAuth::password("ci", "other", "peer"))));
    assert!(!whose(Some(&auth())).contains(PASSWORD));
}
