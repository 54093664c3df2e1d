//! An SMTP server on loopback: aiosmtpd (PyPI; `cargo xtask ci` installs it under
//! `target/tools/aiosmtpd/`, `DOCKHAND_TEST_SMTP_PYTHON` names its Python) with a TLS
//! certificate of a test CA, STARTTLS required, and a login required over TLS. Each message
//! it accepts is written to a file, with its recipients beside it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::webhook::free_port;

const SERVER: &str = r#"
import os, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
cert, key, out, user, password, port = sys.argv[1:7]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out) if f.endswith(".eml")])
        with open(os.path.join(out, f"{n}.rcpt"), "w") as f:
            f.write(",".join(envelope.rcpt_tos))
        with open(os.path.join(out, f"{n}.eml"), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        return "250 OK"
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
    return AuthResult(success=ok, handled=False)
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=context,
                        require_starttls=True, authenticator=check, auth_require_tls=True,
                        auth_required=True)
controller.start()
while True:
    time.sleep(3600)
"#;

/// The server process; stopped on drop.
#[derive(Debug)]
pub struct SmtpServer {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The CA file that verifies its certificate.
    pub ca_file: PathBuf,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

/// aiosmtpd's Python: `DOCKHAND_TEST_SMTP_PYTHON`, else the one `cargo xtask ci` installs.
///
/// # Panics
/// When neither is there: an SMTP test fails, never skips.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("DOCKHAND_TEST_SMTP_PYTHON") {
        return PathBuf::from(python);
    }
    let python = crate::workspace_root().join("target/tools/aiosmtpd/bin/python3");
    assert!(
        python.is_file(),
        "aiosmtpd is not installed: `cargo xtask test` installs it into {}",
        python.display()
    );
    python
}

impl SmtpServer {
    /// Starts it for the login `user`/`password` and waits until it listens.
    ///
    /// # Panics
    /// When it does not start.
    pub fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = crate::pki::TestCa::new("dockhand SMTP test CA");
        let server = ca.server();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("a test file");
            path
        };
        let (cert, key, ca_file) = (
            write("cert.pem", &server.cert_pem),
            write("key.pem", &server.key_pem),
            write("ca.pem", ca.cert_pem()),
        );
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).expect("the mail directory");
        let port = free_port();
        let child = std::process::Command::new(python())
            .args(["-c", SERVER])
            .args([&cert, &key, &out])
            .args([user, password, &port.to_string()])
            .spawn()
            .expect("aiosmtpd runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the SMTP server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, ca_file, out, _dir: dir }
    }

    /// Each message received so far, with its recipients, in order.
    pub fn messages(&self) -> Vec<(String, String)> {
        let read = |n: usize, ext: &str| std::fs::read_to_string(self.out.join(format!("{n}.{ext}"))).ok();
        (0..).map_while(|n| Some((read(n, "eml")?, read(n, "rcpt")?))).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
