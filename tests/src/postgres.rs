//! A real PostgreSQL for the shared job store's tests: Debian's server, started on loopback
//! with a data directory of its own (as the `postgres` user when the tests run as root),
//! password authentication (scram-sha-256), and stopped on drop.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The user and password the tests connect with.
pub const PG_USER: &str = "dockhand";
/// Its password (a test value).
pub const PG_PASSWORD: &str = "pg-test-7c1e9a";

/// A running server; stopped on drop.
#[derive(Debug)]
pub struct PgPeer {
    bin: PathBuf,
    data: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    as_postgres: bool,
}

/// PostgreSQL's `bin` directory: `DOCKHAND_TEST_PG_BIN` (set by `cargo xtask ci`), else the
/// newest `/usr/lib/postgresql/<version>/bin`.
///
/// # Panics
/// When there is none: `cargo xtask ci` installs Debian's `postgresql`.
pub fn pg_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("DOCKHAND_TEST_PG_BIN") {
        return PathBuf::from(bin);
    }
    installed_pg_bin().expect(
        "PostgreSQL is not installed: `cargo xtask ci` installs Debian's postgresql (apt-get install postgresql)",
    )
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has an `initdb`.
pub fn installed_pg_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

impl PgPeer {
    /// Makes a data directory, starts the server on a free port and waits until it
    /// accepts connections.
    ///
    /// # Panics
    /// When PostgreSQL is missing or does not start.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// As [`PgPeer::start`], with TLS only: a server certificate for 127.0.0.1 from `ca`,
    /// and `pg_hba.conf` accepting TCP connections over TLS alone (`hostssl`).
    ///
    /// # Panics
    /// When PostgreSQL is missing or does not start.
    pub fn start_tls(ca: &crate::pki::TestCa) -> Self {
        Self::start_with(Some(ca))
    }

    fn start_with(ca: Option<&crate::pki::TestCa>) -> Self {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let as_postgres = rustix::process::geteuid().is_root();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).expect("the password file");
        if as_postgres {
            // initdb refuses root: the server runs as Debian's postgres user.
            let uid = user_id("postgres");
            for path in [dir.path().to_path_buf(), pwfile.clone()] {
                std::os::unix::fs::chown(&path, Some(uid), None).expect("chown to postgres");
            }
        }
        let port = crate::webhook::free_port();
        let mut peer = Self { bin, data, port, dir, as_postgres };
        peer.run(
            "initdb",
            &[
                "-D",
                &peer.data.display().to_string(),
                "-U",
                PG_USER,
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "--no-sync",
            ],
        );
        let mut options = format!("-h 127.0.0.1 -p {port} -k {} -c fsync=off", peer.dir.path().display());
        if let Some(ca) = ca {
            let server = ca.server();
            let (cert, key) = (peer.data.join("server.crt"), peer.data.join("server.key"));
            std::fs::write(&cert, server.cert_pem).expect("the server certificate");
            std::fs::write(&key, server.key_pem).expect("the server key");
            std::fs::write(
                peer.data.join("pg_hba.conf"),
                "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .expect("pg_hba.conf");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("the key's mode");
            if as_postgres {
                let uid = user_id("postgres");
                for path in [&cert, &key, &peer.data.join("pg_hba.conf")] {
                    std::os::unix::fs::chown(path, Some(uid), None).expect("chown to postgres");
                }
            }
            options.push_str(" -c ssl=on");
        }
        let log = peer.dir.path().join("log");
        peer.run(
            "pg_ctl",
            &[
                "-D",
                &peer.data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        peer.port = port;
        peer
    }

    /// `postgres://dockhand@127.0.0.1:<port>/postgres?sslmode=disable`: the URL without
    /// its password.
    pub fn url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres?sslmode=disable", self.port)
    }

    /// The URL asking for TLS (`sslmode=require`).
    pub fn tls_url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres?sslmode=require", self.port)
    }

    /// Restarts the server (`pg_ctl restart -m fast`, with the options it started with):
    /// every client connection is closed under its user, as a failover or an upgrade does.
    pub fn restart(&mut self) {
        let (data, log) =
            (self.data.display().to_string(), self.dir.path().join("log").display().to_string());
        self.run("pg_ctl", &["-D", &data, "-l", &log, "-m", "fast", "-w", "restart"]);
    }

    fn run(&mut self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).current_dir(self.dir.path()).output().expect("PostgreSQL's tools run");
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn user_id(name: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let mut fields = l.split(':');
            (fields.next() == Some(name)).then(|| fields.nth(1)?.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no user {name}: Debian's postgresql package creates it"))
}

impl Drop for PgPeer {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}
