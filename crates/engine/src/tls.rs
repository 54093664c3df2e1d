//! TLS settings and their loaded form: rustls with an explicit crypto provider (ring),
//! trusting only the CA it is given, unless the system's roots are asked for.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;
use crate::error::BoxError;

/// TLS settings as a user gives them: file paths, read when the client is built.
///
/// ```
/// use dockhand_engine::TlsSettings;
///
/// let tls = TlsSettings::verified("/etc/docker/ca.pem")
///     .with_client_identity("/etc/docker/cert.pem", "/etc/docker/key.pem");
/// assert!(tls.verifies_server());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    ca: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
    verify: bool,
    native_roots: bool,
}

impl TlsSettings {
    /// Verify the engine's certificate against this CA only (`--tlsverify --tlscacert`).
    pub fn verified(ca: impl Into<PathBuf>) -> Self {
        Self { ca: Some(ca.into()), identity: None, verify: true, native_roots: false }
    }

    /// Verify the engine's certificate against the operating system's trusted roots (for
    /// an engine behind a publicly trusted certificate). Combine with a CA by calling
    /// [`with_native_roots`](Self::with_native_roots) on [`verified`](Self::verified).
    pub fn native_roots() -> Self {
        Self { ca: None, identity: None, verify: true, native_roots: true }
    }

    /// Also trust the operating system's roots, besides the CA.
    pub fn with_native_roots(mut self) -> Self {
        self.native_roots = true;
        self
    }

    /// TLS without verifying the engine's certificate (`--tls` without `--tlsverify`).
    /// The connection is encrypted but the engine is not authenticated.
    pub fn unverified() -> Self {
        Self { ca: None, identity: None, verify: false, native_roots: false }
    }

    /// Present this client certificate and key (`--tlscert`, `--tlskey`).
    pub fn with_client_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    /// Whether the operating system's roots are trusted.
    pub fn trusts_native_roots(&self) -> bool {
        self.native_roots
    }

    /// Whether the engine's certificate is verified.
    pub fn verifies_server(&self) -> bool {
        self.verify
    }

    /// The CA file, if any.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The client certificate and key files, if any.
    pub fn client_identity(&self) -> Option<(&Path, &Path)> {
        self.identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))
    }
}

/// Loaded TLS: files read and checked once, shared by every connection.
pub(crate) struct TlsConfig {
    connector: tokio_rustls::TlsConnector,
}

impl TlsConfig {
    pub(crate) fn load(settings: &TlsSettings) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::TlsSetup {
                detail: "no protocol version in common".to_owned(),
                source: Some(Box::new(e)),
            })?;

        let builder = if settings.verify {
            let mut roots = RootCertStore::empty();
            if settings.native_roots {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found.errors.into_iter().next();
                    return Err(Error::TlsSetup {
                        detail: format!(
                            "no usable system root certificates{}",
                            if why.is_none() { ": none found" } else { "" }
                        ),
                        source: why.map(|e| Box::new(e) as BoxError),
                    });
                }
            }
            match settings.ca.as_deref() {
                Some(ca) => {
                    for cert in read_certs(ca)? {
                        roots
                            .add(cert)
                            .map_err(|e| tls_file(ca, "not a usable CA certificate", Some(Box::new(e))))?;
                    }
                }
                None if !settings.native_roots => {
                    return Err(Error::TlsSetup {
                        detail: "verifying the engine needs a CA certificate (ca.pem), or the system roots"
                            .to_owned(),
                        source: None,
                    });
                }
                None => {}
            }
            builder.with_root_certificates(roots)
        } else {
            let verifier = AcceptAnyServer { algorithms: provider.signature_verification_algorithms };
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier))
        };

        let config = match &settings.identity {
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key_der = read_key(key)?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| Error::TlsSetup {
                    detail: format!(
                        "client certificate {} and key {} cannot be used together",
                        cert.display(),
                        key.display()
                    ),
                    source: Some(Box::new(e)),
                })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Self { connector: tokio_rustls::TlsConnector::from(Arc::new(config)) })
    }

    pub(crate) fn connector(&self) -> &tokio_rustls::TlsConnector {
        &self.connector
    }

    /// The name the engine's certificate must carry: a DNS name or an IP address.
    pub(crate) fn server_name(&self, host: &str) -> io::Result<ServerName<'static>> {
        ServerName::try_from(host.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a valid TLS server name: {e}"),
            )
        })
    }
}

fn tls_file(path: &Path, detail: &'static str, source: Option<BoxError>) -> Error {
    Error::TlsFile { path: path.to_owned(), detail, source }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| tls_file(path, "cannot read it", Some(Box::new(e))))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_file(path, "not a PEM certificate file", Some(Box::new(e))))?;
    if certs.is_empty() {
        return Err(tls_file(path, "holds no PEM certificate", None));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read(path)?;
    // The error of the PEM parser is kept out: it could quote key material.
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| tls_file(path, "holds no PEM private key (PKCS#1, PKCS#8 or SEC1)", None))
}

/// The verifier for `--tls` without `--tlsverify`: any certificate is accepted, but the
/// handshake signatures are still checked, so the session is bound to that certificate.
#[derive(Debug)]
struct AcceptAnyServer {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
