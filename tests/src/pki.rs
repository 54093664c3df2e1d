//! Test certificates made on the spot with rcgen: a CA, a server certificate for
//! loopback, and a client certificate, written where the docker CLI expects them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate authority that can issue server and client certificates.
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, in PEM.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl TestCa {
    /// A new self-signed CA named `name`.
    ///
    /// # Panics
    /// When rcgen cannot make a key or certificate.
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { cert_pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A server certificate for the DNS `names` (the names a service has on its network,
    /// such as `dockhand` and `swarm-utils`).
    pub fn server_for(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server params");
        params.distinguished_name.push(DnType::CommonName, names.first().map_or("server", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate.
    pub fn client(&self) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, "dockhand-test-client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf certificate");
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// Writes a full set into `dir`: `ca.pem`, `server-cert.pem`, `server-key.pem`, and the
    /// client's `cert.pem` and `key.pem` (the names `DOCKER_CERT_PATH` expects).
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn write_set(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let server = self.server();
        let client = self.client();
        std::fs::write(dir.join("ca.pem"), self.cert_pem())?;
        std::fs::write(dir.join("server-cert.pem"), server.cert_pem)?;
        std::fs::write(dir.join("server-key.pem"), server.key_pem)?;
        std::fs::write(dir.join("cert.pem"), client.cert_pem)?;
        std::fs::write(dir.join("key.pem"), client.key_pem)
    }
}
