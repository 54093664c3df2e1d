//! Every transport against a real peer: the swarm engine over plain TCP, and a
//! `dockerd --tlsverify` with certificates made by `cargo xtask engine up`.

use std::path::{Path, PathBuf};

use dockhand_e2e::pki::TestCa;
use dockhand_e2e::{engine, peer};
use dockhand_engine::{Client, Endpoint, Error, TlsSettings};

fn tls_dir() -> PathBuf {
    PathBuf::from(peer("TLS_DIR"))
}

/// The TLS peer's address as `host:port`.
fn tls_authority() -> String {
    peer("TLS_HOST").trim_start_matches("tcp://").to_owned()
}

fn good_tls() -> TlsSettings {
    let dir = tls_dir();
    TlsSettings::verified(dir.join("ca.pem")).with_client_identity(dir.join("cert.pem"), dir.join("key.pem"))
}

fn client(url: &str, tls: Option<TlsSettings>) -> Result<Client, Error> {
    let endpoint: Endpoint = url.parse()?;
    let builder = Client::builder(endpoint);
    match tls {
        Some(tls) => builder.tls(tls).build(),
        None => builder.build(),
    }
}

#[tokio::test]
async fn plain_tcp_reaches_the_same_swarm_engine() {
    let unix = engine().await.client.info().await.unwrap();
    let tcp_url = peer("TCP_HOST");
    let authority = tcp_url.trim_start_matches("tcp://").to_owned();
    // tcp://, http:// and the bare HOST:PORT form are the same plain transport.
    for url in [tcp_url.clone(), format!("http://{authority}"), authority] {
        let info = client(&url, None).unwrap().info().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(info.swarm.node_id, unix.swarm.node_id, "{url}");
        assert!(info.swarm.is_active(), "{url}");
    }
}

#[tokio::test]
async fn tls_with_a_client_certificate_works_by_ip_address() {
    for url in [format!("https://{}", tls_authority()), peer("TLS_HOST")] {
        let c = client(&url, Some(good_tls())).unwrap();
        let version = c.version().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(!version.version.is_empty());
        // The TLS peer is a separate engine, outside the swarm.
        assert!(!c.info().await.unwrap().swarm.is_active());
    }
}

#[tokio::test]
async fn a_wrong_ca_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other-ca.pem");
    std::fs::write(&other, TestCa::new("someone else's CA").cert_pem()).unwrap();
    let dir = tls_dir();
    let tls = TlsSettings::verified(&other).with_client_identity(dir.join("cert.pem"), dir.join("key.pem"));
    let err = client(&format!("https://{}", tls_authority()), Some(tls)).unwrap().ping().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&tls_authority()), "{msg}");
    assert!(msg.contains("UnknownIssuer"), "{msg}");
}

#[tokio::test]
async fn the_daemon_refuses_a_client_without_a_certificate() {
    let tls = TlsSettings::verified(tls_dir().join("ca.pem"));
    let err = client(&format!("https://{}", tls_authority()), Some(tls)).unwrap().ping().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&tls_authority()), "{msg}");
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_the_engine_refusal() {
    let err = client(&format!("http://{}", tls_authority()), None).unwrap().ping().await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
}

fn tls_file_error(tls: TlsSettings) -> (PathBuf, String) {
    match client(&format!("https://{}", tls_authority()), Some(tls)) {
        Err(err @ Error::TlsFile { .. }) => {
            let msg = err.to_string();
            let Error::TlsFile { path, .. } = err else { unreachable!() };
            (path, msg)
        }
        other => panic!("expected a TLS file error, got {other:?}"),
    }
}

fn assert_names(path: &Path, expected: &Path, msg: &str, what: &str) {
    assert_eq!(path, expected, "{msg}");
    assert!(msg.contains(&expected.display().to_string()) && msg.contains(what), "{msg}");
}

#[test]
fn unusable_tls_files_are_named() {
    let dir = tls_dir();
    let tmp = tempfile::tempdir().unwrap();

    // A key file that holds no key.
    let garbage = tmp.path().join("key.pem");
    std::fs::write(&garbage, "-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n").unwrap();
    let (path, msg) = tls_file_error(good_tls().with_client_identity(dir.join("cert.pem"), &garbage));
    assert_names(&path, &garbage, &msg, "no PEM private key");

    // A key file that is not there.
    let missing = tmp.path().join("missing-key.pem");
    let (path, msg) = tls_file_error(good_tls().with_client_identity(dir.join("cert.pem"), &missing));
    assert_names(&path, &missing, &msg, "cannot read it");

    // A CA file that holds no certificate.
    let (path, msg) = tls_file_error(TlsSettings::verified(&garbage));
    assert_names(&path, &garbage, &msg, "no PEM certificate");
}

#[test]
fn a_mismatched_certificate_and_key_are_refused_at_build() {
    let dir = tls_dir();
    let tmp = tempfile::tempdir().unwrap();
    let stranger = tmp.path().join("stranger-key.pem");
    std::fs::write(&stranger, TestCa::new("x").client().key_pem).unwrap();
    let tls = TlsSettings::verified(dir.join("ca.pem")).with_client_identity(dir.join("cert.pem"), &stranger);
    let msg = client(&format!("https://{}", tls_authority()), Some(tls)).unwrap_err().to_string();
    assert!(msg.contains("cert.pem") && msg.contains("stranger-key.pem"), "{msg}");
}

#[test]
fn https_without_tls_settings_says_what_is_missing() {
    let msg = client("https://127.0.0.1:2376", None).unwrap_err().to_string();
    assert!(msg.contains("https://127.0.0.1:2376") && msg.contains("CA"), "{msg}");
}

#[tokio::test]
async fn system_roots_are_trusted_only_when_asked_and_do_not_include_the_test_ca() {
    let url = format!("https://{}", tls_authority());
    let dir = tls_dir();
    // The system's roots do not know the test CA: the handshake fails on the issuer.
    let system = TlsSettings::native_roots().with_client_identity(dir.join("cert.pem"), dir.join("key.pem"));
    assert!(system.trusts_native_roots());
    let err = client(&url, Some(system)).unwrap().ping().await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // The system's roots plus the CA: the CA still works.
    let both = good_tls().with_native_roots();
    client(&url, Some(both)).unwrap().ping().await.unwrap();
    // By default only the CA is trusted.
    assert!(!good_tls().trusts_native_roots());
}
