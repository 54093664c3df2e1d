//! A real WebDAV server on loopback: Debian's Apache with `mod_dav` and `mod_dav_fs`, over
//! TLS (a certificate of a test CA of its own) with HTTP basic authentication, as an
//! operator would put one in front of a NAS. Each [`DavPeer`] is a server of its own, on a
//! port of its own and a temporary directory; it is stopped when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The user the peer accepts.
pub const USER: &str = "dockhand";
/// Its password.
pub const PASSWORD: &str = "dockhand-webdav-password-0123";
/// Apache's binary on Debian.
const APACHE: &str = "/usr/sbin/apache2";
/// Its modules.
const MODULES: &str = "/usr/lib/apache2/modules";

/// One running Apache with a WebDAV collection at `/dav`.
#[derive(Debug)]
pub struct DavPeer {
    /// The collection's URL: `https://127.0.0.1:<port>/dav`.
    pub url: String,
    /// The PEM of the CA that signed its certificate.
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
}

impl DavPeer {
    /// Starts Apache and waits until it answers.
    ///
    /// # Panics
    /// When Apache is missing (Debian's `apache2` and `apache2-utils`, which `cargo xtask
    /// test` installs) or does not start: a WebDAV test fails, never skips.
    pub fn start() -> Self {
        assert!(
            Path::new(APACHE).is_file(),
            "{APACHE} is missing: `cargo xtask test` installs Debian's apache2 and apache2-utils"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        for sub in ["dav", "lock", "run"] {
            std::fs::create_dir(root.join(sub)).expect("the peer's directories");
        }
        let ca = crate::pki::TestCa::new("dockhand webdav test CA");
        let server = ca.server_for(&["127.0.0.1"]);
        let ca_file = root.join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).expect("the CA file");
        std::fs::write(root.join("cert.pem"), &server.cert_pem).expect("the certificate");
        std::fs::write(root.join("key.pem"), &server.key_pem).expect("the key");
        let htpasswd = Command::new("htpasswd")
            .args(["-cbB"])
            .arg(root.join("htpasswd"))
            .args([USER, PASSWORD])
            .output()
            .unwrap_or_else(|e| panic!("htpasswd (apache2-utils) does not run: {e}"));
        assert!(htpasswd.status.success(), "htpasswd: {}", String::from_utf8_lossy(&htpasswd.stderr));
        // Run as root, Apache serves as www-data: the collection and the lock database are
        // its own, the rest readable.
        let as_root = rustix::process::geteuid().is_root();
        if as_root {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755));
            for path in [root.join("htpasswd"), root.join("key.pem")] {
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
            }
            let chown = Command::new("chown")
                .args(["-R", "www-data:www-data"])
                .args([root.join("dav"), root.join("lock")])
                .status();
            assert!(chown.is_ok_and(|s| s.success()), "chown www-data of the WebDAV peer's directories");
        }
        let user = if as_root { "User www-data\nGroup www-data\n" } else { "" };
        let d = root.display();
        let config = format!(
            "ServerRoot \"{d}\"\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\nPidFile {d}/run/httpd.pid\n\
             DefaultRuntimeDir {d}/run\nMutex file:{d}/run default\nErrorLog {d}/error.log\n\
             LogFormat \"%h %u \\\"%r\\\" %>s %b\" short\nCustomLog {d}/access.log short\n\
             LoadModule mpm_event_module {MODULES}/mod_mpm_event.so\n\
             LoadModule authn_core_module {MODULES}/mod_authn_core.so\n\
             LoadModule authn_file_module {MODULES}/mod_authn_file.so\n\
             LoadModule authz_core_module {MODULES}/mod_authz_core.so\n\
             LoadModule authz_user_module {MODULES}/mod_authz_user.so\n\
             LoadModule auth_basic_module {MODULES}/mod_auth_basic.so\n\
             LoadModule alias_module {MODULES}/mod_alias.so\n\
             LoadModule dav_module {MODULES}/mod_dav.so\nLoadModule dav_fs_module {MODULES}/mod_dav_fs.so\n\
             LoadModule ssl_module {MODULES}/mod_ssl.so\n{user}DAVLockDB {d}/lock/DAVLock\n\
             LimitRequestBody 0\nSSLEngine on\nSSLCertificateFile {d}/cert.pem\nSSLCertificateKeyFile {d}/key.pem\n\
             Alias /dav {d}/dav\n<Directory {d}/dav>\n  Dav On\n  AuthType Basic\n  AuthName dockhand\n  \
             AuthUserFile {d}/htpasswd\n  Require valid-user\n</Directory>\n"
        );
        std::fs::write(root.join("httpd.conf"), config).expect("the configuration");
        let started = Command::new(APACHE)
            .arg("-f")
            .arg(root.join("httpd.conf"))
            .args(["-k", "start"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot start {APACHE}: {e}"));
        let peer = Self { url: format!("https://127.0.0.1:{port}/dav"), ca_file, dir };
        assert!(
            started.status.success(),
            "apache did not start: {}{}",
            String::from_utf8_lossy(&started.stderr),
            peer.log()
        );
        let since = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "apache did not listen on {port}: {}",
                peer.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        peer
    }

    /// The files under the collection, relative to it, sorted: what the server holds.
    pub fn files(&self) -> Vec<String> {
        crate::files_under(&self.dir.path().join("dav"))
    }

    /// The error and access logs, for a failure message.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("(error log) {}\n(access log) {}", read("error.log"), read("access.log"))
    }

    /// A configuration file's `storage.targets.<name>` entry for this server, with the
    /// password read from the variable `DAV_PASSWORD`.
    pub fn target_yaml(&self, name: &str, prefix: &str) -> String {
        format!(
            "    {name}:\n      type: webdav\n      url: {}\n      username: {USER}\n      password_env: DAV_PASSWORD\n      \
             ca_file: {}\n      prefix: {prefix}\n",
            self.url,
            self.ca_file.display()
        )
    }
}

impl Drop for DavPeer {
    fn drop(&mut self) {
        let _ = Command::new(APACHE)
            .arg("-f")
            .arg(self.dir.path().join("httpd.conf"))
            .args(["-k", "stop"])
            .output();
        // `-k stop` returns before the children are gone; give them a moment so that the
        // directory can be removed.
        let pid_file = self.dir.path().join("run/httpd.pid");
        let since = Instant::now();
        while pid_file.exists() && since.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
