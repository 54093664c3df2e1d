//! A real S3 endpoint on loopback: SeaweedFS (`weed mini`), which enforces request
//! signatures. Each [`S3Peer`] is a server of its own, on fourteen ports of its own and a
//! temporary directory, so a test may stop it mid-upload without disturbing another; it is
//! killed when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the peer accepts.
pub const ACCESS_KEY: &str = "dockhand-test-access";
/// The secret key the peer accepts.
pub const SECRET_KEY: &str = "dockhand-test-secret-0123456789";
/// The bucket it creates at start.
pub const BUCKET: &str = "dockhand-test";

/// How many ports one server takes, from its base port on.
const PORTS: u16 = 14;

/// One running SeaweedFS server.
#[derive(Debug)]
pub struct S3Peer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    base: u16,
    weed: String,
    _dir: tempfile::TempDir,
}

impl S3Peer {
    /// Starts a server with [`ACCESS_KEY`], [`SECRET_KEY`] and [`BUCKET`], and waits until
    /// its S3 port answers.
    ///
    /// # Panics
    /// When the `weed` binary is missing (run `cargo xtask engine up`) or it does not start.
    pub fn start() -> Self {
        Self::start_with(&crate::peer("WEED"))
    }

    /// [`S3Peer::start`] with the `weed` binary at `weed`.
    ///
    /// # Panics
    /// When it does not start.
    pub fn start_with(weed: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        check_free_space(dir.path());
        let base = free_base();
        let child = Self::spawn(weed, dir.path(), base);
        let mut peer = Self {
            child,
            endpoint: format!("http://127.0.0.1:{base}"),
            base,
            weed: weed.to_owned(),
            _dir: dir,
        };
        peer.wait_ready(base);
        peer
    }

    /// Starts the server again on the same ports and data, after [`S3Peer::kill`].
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.weed, self._dir.path(), self.base);
        self.wait_ready(self.base);
    }

    /// The server's port flags, each with its offset from the base port.
    const FLAGS: [(&str, u16); 14] = [
        ("s3.port", 0),
        ("s3.port.grpc", 1),
        ("master.port", 2),
        ("master.port.grpc", 3),
        ("volume.port", 4),
        ("volume.port.grpc", 5),
        ("filer.port", 6),
        ("filer.port.grpc", 7),
        ("admin.port", 8),
        ("admin.port.grpc", 9),
        ("webdav.port", 10),
        ("s3.port.iceberg", 11),
        ("s3.port.lance", 12),
        ("debug.port", 13),
    ];

    fn spawn(weed: &str, dir: &std::path::Path, base: u16) -> Child {
        let port = |offset: u16| (base + offset).to_string();
        let flags = Self::FLAGS;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("weed.log"))
            .expect("the log file");
        let mut cmd = Command::new(weed);
        cmd.arg("mini")
            .arg(format!("-dir={}", dir.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false", "-admin.ui=false"])
            .arg(format!("-bucket={BUCKET}"))
            .args(flags.iter().map(|(flag, offset)| format!("-{flag}={}", port(*offset))))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log);
        cmd.spawn().unwrap_or_else(|e| panic!("cannot start {weed}: {e}"))
    }

    fn wait_ready(&mut self, base: u16) {
        let started = Instant::now();
        // The bucket exists once the S3 gateway answers an unsigned request for it (403).
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weed exited at start ({status}): {}", self.log());
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, base)).is_ok() && self.bucket_ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("weed did not answer on port {base} within 60 s: {}", self.log());
    }

    fn bucket_ready(&self) -> bool {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{}/{BUCKET}", self.endpoint))
            .output();
        out.is_ok_and(|o| matches!(String::from_utf8_lossy(&o.stdout).as_ref(), "403" | "200"))
    }

    /// The server's log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("weed.log")).unwrap_or_default()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server where it stands (SIGSTOP): it holds its connections and answers
    /// nothing, as a hung endpoint does, until [`S3Peer::resume`].
    ///
    /// # Panics
    /// When the server is not running.
    pub fn pause(&self) {
        self.signal(rustix::process::Signal::STOP).expect("the S3 peer runs");
    }

    /// Lets a paused server go on (SIGCONT).
    ///
    /// # Panics
    /// When the server is not running.
    pub fn resume(&self) {
        self.signal(rustix::process::Signal::CONT).expect("the S3 peer runs");
    }

    fn signal(&self, signal: rustix::process::Signal) -> rustix::io::Result<()> {
        let pid = i32::try_from(self.child.id()).ok().and_then(rustix::process::Pid::from_raw);
        pid.map_or(Err(rustix::io::Errno::SRCH), |pid| rustix::process::kill_process(pid, signal))
    }

    /// A configuration file's `storage.targets.<name>` entry for this server, with the
    /// credentials read from the variables `S3_KEY` and `S3_SECRET`.
    pub fn target_yaml(&self, name: &str, prefix: &str) -> String {
        format!(
            "    {name}:\n      type: s3\n      endpoint: {}\n      bucket: {BUCKET}\n      prefix: {prefix}\n      \
             access_key_id_env: S3_KEY\n      secret_access_key_env: S3_SECRET\n",
            self.endpoint
        )
    }
}

impl Drop for S3Peer {
    fn drop(&mut self) {
        let _ = self.signal(rustix::process::Signal::CONT);
        self.kill();
    }
}

/// SeaweedFS marks every volume read-only when less than 1% of its disk is free, and its S3
/// gateway then answers each write with a bare `500 InternalError` after half a minute of
/// retries. The tests need some room beyond that for their own archives (up to 256 MiB), so a
/// disk nearer full fails here, naming the cause, rather than in a test's upload.
fn check_free_space(dir: &std::path::Path) {
    use crate::gib;
    const ROOM: u64 = 1 << 30;
    let (free, total) = crate::disk_space(dir).unwrap_or_else(|e| panic!("statvfs {}: {e}", dir.display()));
    let needed = total / 100 + ROOM;
    assert!(
        free >= needed,
        "the S3 peer's disk ({}) has {:.1} GiB free of {:.1} GiB: SeaweedFS turns read-only under 1% \
         free, and the tests need {:.1} GiB more for their archives; free some space (an old \
         `target/`?) and run again",
        dir.display(),
        gib(free),
        gib(total),
        gib(ROOM),
    );
}

/// A base port with the fourteen ports after it free, different for each call in this
/// process and spread by process id across processes.
fn free_base() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let spread = (std::process::id() % 50) as u16;
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = 20_000 + ((spread * 7 + n) % 1_000) * 20;
        if (0..PORTS).all(|i| TcpListener::bind((Ipv4Addr::LOCALHOST, base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of {PORTS} ports on loopback between 20000 and 40000");
}
