//! HTTPS for the server (R3-03): a certificate and key from two files (swarm secrets in
//! the stack), read again on SIGHUP. A reload that fails keeps the pair in use, so a
//! half-written file never takes the server off the air.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The two files HTTPS is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A certificate or key file that cannot be used. The message never quotes key material.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail} (--tls-cert/DOCKHAND_TLS_CERT_FILE, --tls-key/DOCKHAND_TLS_KEY_FILE)")]
pub struct TlsError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub detail: String,
}

fn fail(path: &Path, detail: impl Into<String>) -> TlsError {
    TlsError { path: path.display().to_string(), detail: detail.into() }
}

/// The pair in `files`, checked: the key must be the certificate's.
pub(crate) fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let pem = std::fs::read(&files.cert).map_err(|e| fail(&files.cert, format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&files.cert, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(fail(&files.cert, "holds no PEM certificate"));
    }
    let pem = std::fs::read(&files.key).map_err(|e| fail(&files.key, format!("cannot read it: {e}")))?;
    // The parser's error is kept out: it could quote key material.
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| fail(&files.key, "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
        fail(&files.key, format!("does not go with the certificate {}: {e}", files.cert.display()))
    })?;
    Ok(Arc::new(certified))
}

/// The pair in use, swapped whole by [`Reloading::reload`].
#[derive(Debug)]
pub(crate) struct Reloading {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloading {
    /// Loads `files` once; an error here stops the server from starting.
    pub(crate) fn new(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(load(&files)?);
        Ok(Arc::new(Self { files, current }))
    }

    /// Reads the files again: the new pair serves the next handshakes, or, when they do not
    /// load, the old one stays and the error is returned.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.files)?;
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(())
    }

    /// The rustls configuration that serves the pair in use (HTTP/1.1 only).
    pub(crate) fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(&self.files.cert, format!("no TLS version to serve: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

/// A client configuration that trusts exactly the certificate in `files` (its first), as
/// `--healthcheck` uses it: the container asks itself, sends no credential, and its
/// certificate names the service, not `localhost`. The handshake's signatures are still
/// checked against that certificate.
pub(crate) fn pinned_client(files: &TlsFiles) -> Result<rustls::ClientConfig, TlsError> {
    let pinned =
        load(files)?.cert.first().cloned().ok_or_else(|| fail(&files.cert, "holds no certificate"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&files.cert, format!("no TLS version to use: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pinned, algorithms }))
        .with_no_client_auth();
    Ok(config)
}

#[derive(Debug)]
struct Pinned {
    pinned: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the certificate of --tls-cert".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_wrong_file_is_named_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") };
        let e = load(&files).unwrap_err().to_string();
        assert!(e.contains("cert.pem") && e.contains("cannot read it"), "{e}");
        std::fs::write(&files.cert, "not pem").unwrap();
        let e = load(&files).unwrap_err().to_string();
        assert!(e.contains("cert.pem") && e.contains("no PEM certificate"), "{e}");
        std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap();
        std::fs::write(&files.key, "secret-key-material-9f").unwrap();
        let e = load(&files).unwrap_err().to_string();
        assert!(e.contains("key.pem") && !e.contains("secret-key-material"), "{e}");
    }
}
