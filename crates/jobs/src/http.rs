//! TLS for peers other than the engine and object storage (webhooks, CI identity issuers,
//! PostgreSQL): rustls with ring, the one crypto provider, and either a CA file or the
//! system's roots; and the HTTPS client built on it. No redirects: a peer that moves is told
//! by its answer.

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;

/// An HTTPS client that cannot be built: its CA file (which, and why), or TLS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HttpClientError(String);

impl HttpClientError {
    pub(crate) fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}

/// An HTTPS client for a peer that is neither an engine nor object storage (a CI identity
/// issuer): rustls with ring, a CA file or the system's roots, no redirects.
#[derive(Debug, Clone)]
pub struct HttpsClient(reqwest::Client);

/// A GET that did not answer a body: the URL and why (connection, TLS, status, timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {detail}")]
pub struct HttpGetError {
    /// What was asked.
    pub url: String,
    /// Why it failed.
    pub detail: String,
}

impl HttpsClient {
    /// A client trusting `ca_file` (PEM) or the system's roots; with `https_only`, an
    /// `http://` URL is refused. Each request has `timeout` (connecting, 5 s of it at most).
    pub fn new(ca_file: Option<&Path>, https_only: bool, timeout: Duration) -> Result<Self, HttpClientError> {
        client(ca_file, https_only, timeout).map(Self)
    }

    /// GETs `url`; its body as text when the status is a success.
    pub async fn get_text(&self, url: &str) -> Result<String, HttpGetError> {
        let fail = |e: reqwest::Error| HttpGetError { url: url.to_owned(), detail: e.to_string() };
        self.0
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(fail)?
            .text()
            .await
            .map_err(fail)
    }
}

/// A client trusting `ca_file` (PEM) or the system's roots; with `https_only`, an
/// `http://` URL is refused. Each request has `timeout` (connecting, 5 s of it at most).
pub(crate) fn client(
    ca_file: Option<&Path>,
    https_only: bool,
    timeout: Duration,
) -> Result<reqwest::Client, HttpClientError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(ca_file).map_err(HttpClientError)?)
        .https_only(https_only)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .build()
        .map_err(|e| HttpClientError(e.to_string()))
}

/// A rustls client configuration (ring) that verifies servers against `ca_file` (PEM) or
/// the system's roots.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
