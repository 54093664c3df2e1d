//! A real sshd on loopback with its SFTP subsystem (`internal-sftp`), as an operator's
//! backup host would run it: key authentication only, a host key made now and written to
//! a known_hosts file of the peer's own. Each [`SftpPeer`] is a server of its own, on a
//! port of its own and a temporary directory; it is stopped when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's sshd.
const SSHD: &str = "/usr/sbin/sshd";

/// One running sshd serving SFTP into `<dir>/files`.
#[derive(Debug)]
pub struct SftpPeer {
    /// `sftp://USER@127.0.0.1:PORT/<dir>/files`.
    pub url: String,
    /// The key the server accepts.
    pub identity_file: PathBuf,
    /// A key the server does not accept.
    pub wrong_identity_file: PathBuf,
    /// The known_hosts file that holds the server's key.
    pub known_hosts: PathBuf,
    dir: tempfile::TempDir,
    sshd: Child,
}

/// Makes an ed25519 key pair at `path` (and `path.pub`).
fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen (openssh-client) does not run: {e}"));
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

impl SftpPeer {
    /// Starts sshd and waits until it listens.
    ///
    /// # Panics
    /// When sshd is missing (Debian's `openssh-server`, which `cargo xtask test` installs)
    /// or does not start: an SFTP test fails, never skips.
    pub fn start() -> Self {
        assert!(Path::new(SSHD).is_file(), "{SSHD} is missing: `cargo xtask test` installs openssh-server");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        std::fs::create_dir(root.join("files")).expect("the served directory");
        keygen(&root.join("host_key"), "dockhand-sftp-host");
        keygen(&root.join("id_ed25519"), "dockhand-sftp-client");
        keygen(&root.join("wrong_ed25519"), "dockhand-sftp-stranger");
        std::fs::copy(root.join("id_ed25519.pub"), root.join("authorized_keys")).expect("authorized_keys");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let host_key = std::fs::read_to_string(root.join("host_key.pub")).expect("the host key");
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        let known_hosts = root.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")))
            .expect("known_hosts");
        let d = root.display();
        std::fs::write(
            root.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n\
                 StrictModes no\nSubsystem sftp internal-sftp\n"
            ),
        )
        .expect("sshd_config");
        // sshd's privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = std::fs::File::create(root.join("sshd.log")).expect("the log");
        let sshd = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(root.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        let user = if rustix::process::geteuid().is_root() {
            "root".to_owned()
        } else {
            std::env::var("USER").expect("USER: the SFTP peer logs in as the current user")
        };
        let mut peer = Self {
            url: format!("sftp://{user}@127.0.0.1:{port}{d}/files"),
            identity_file: root.join("id_ed25519"),
            wrong_identity_file: root.join("wrong_ed25519"),
            known_hosts,
            dir,
            sshd,
        };
        let since = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            let exited = peer.sshd.try_wait().ok().flatten();
            assert!(exited.is_none(), "sshd exited at start ({exited:?}): {}", peer.log());
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "sshd did not listen on {port}: {}",
                peer.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        peer
    }

    /// The files under the served directory, relative to it, sorted: what the server holds.
    pub fn files(&self) -> Vec<String> {
        crate::files_under(&self.dir.path().join("files"))
    }

    /// sshd's log, for a failure message.
    pub fn log(&self) -> String {
        format!("(sshd) {}", std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default())
    }

    /// A configuration file's `storage.targets.<name>` entry for this server.
    pub fn target_yaml(&self, name: &str, prefix: &str) -> String {
        self.yaml_with(name, prefix, &self.identity_file)
    }

    /// The same entry signing in with a key the server refuses.
    pub fn wrong_target_yaml(&self, name: &str, prefix: &str) -> String {
        self.yaml_with(name, prefix, &self.wrong_identity_file)
    }

    fn yaml_with(&self, name: &str, prefix: &str, identity: &Path) -> String {
        format!(
            "    {name}:\n      type: sftp\n      url: {}\n      identity_file: {}\n      known_hosts: {}\n      \
             prefix: {prefix}\n",
            self.url,
            identity.display(),
            self.known_hosts.display()
        )
    }

    /// A line from the middle of the accepted private key: it must never be printed.
    pub fn key_material(&self) -> String {
        let key = std::fs::read_to_string(&self.identity_file).expect("the private key");
        key.lines().nth(1).expect("a key body").to_owned()
    }
}

impl Drop for SftpPeer {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}
