//! A real Azure Blob Storage endpoint on loopback: Azurite, Microsoft's storage emulator
//! (from the npm registry), which checks every request's Shared Key or SAS signature as
//! Azure does. Each [`AzuritePeer`] is a server of its own, on a port of its own and a
//! temporary directory, with the account [`ACCOUNT`] and the container [`CONTAINER`]; it is
//! killed when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// The storage account the peer serves.
pub const ACCOUNT: &str = "dockhandtest";
/// The account's key (base64 of 32 bytes), the one credential the peer accepts.
pub const ACCESS_KEY: &str = "ZG9ja2hhbmQtdGVzdC1henVyaXRlLWtleS0wMTIzNDU=";
/// The container it creates at start.
pub const CONTAINER: &str = "dockhand-test";
/// The API version the peer's own requests (and SAS tokens) name.
const VERSION: &str = "2021-08-06";

/// One running Azurite blob service.
#[derive(Debug)]
pub struct AzuritePeer {
    child: Child,
    /// The account's URL, path style: `http://127.0.0.1:<port>/<account>`.
    pub endpoint: String,
    port: u16,
    dir: tempfile::TempDir,
}

impl AzuritePeer {
    /// Starts a server with [`ACCOUNT`] and [`ACCESS_KEY`], creates [`CONTAINER`], and waits
    /// until it answers.
    ///
    /// # Panics
    /// When Azurite is missing (`DOCKHAND_TEST_AZURITE`, else the one `cargo xtask test`
    /// installs under `target/tools/azurite`) or does not start: an Azure test fails, never
    /// skips.
    pub fn start() -> Self {
        let azurite = match std::env::var("DOCKHAND_TEST_AZURITE") {
            Ok(path) if !path.is_empty() => path,
            _ => {
                let path =
                    crate::workspace_root().join("target/tools/azurite/node_modules/.bin/azurite-blob");
                assert!(
                    path.is_file(),
                    "azurite is not installed: `cargo xtask test` installs it into {}",
                    path.display()
                );
                path.display().to_string()
            }
        };
        Self::start_with(&azurite)
    }

    /// [`AzuritePeer::start`] with the `azurite-blob` command at `azurite`.
    ///
    /// # Panics
    /// When it does not start.
    pub fn start_with(azurite: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let log = std::fs::File::create(dir.path().join("azurite.log")).expect("the log file");
        let child = Command::new(azurite)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
            .arg(dir.path().join("data"))
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--loose", "--debug"])
            .arg(dir.path().join("debug.log"))
            .env("AZURITE_ACCOUNTS", format!("{ACCOUNT}:{ACCESS_KEY}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {azurite}: {e}"));
        let mut peer = Self { child, endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"), port, dir };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = peer.child.try_wait() {
                panic!("azurite exited at start ({status}): {}", peer.log());
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "azurite did not answer on port {port}: {}",
                peer.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = peer.create_container(CONTAINER);
        assert_eq!(status, 201, "creating the container {CONTAINER}: {}", peer.log());
        peer
    }

    /// Creates `container` with a Shared Key request, as an operator would before
    /// pointing dockhand at it; answers the HTTP status.
    pub fn create_container(&self, container: &str) -> u16 {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let path = format!("/{ACCOUNT}/{container}");
        // Path style, as the emulator is addressed: the account appears twice.
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{ACCOUNT}{path}\nrestype:container"
        );
        let signature = sign(&to_sign);
        let request = format!(
            "PUT {path}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\n\
             x-ms-version: {VERSION}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).expect("connect to azurite");
        stream.write_all(request.as_bytes()).expect("send to azurite");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// A service SAS token for [`CONTAINER`] (no leading `?`), the least an operator would
    /// hand out: read, add, create, write, delete and list on that container alone, until
    /// 2099, signed with [`ACCESS_KEY`].
    pub fn sas(&self) -> String {
        let (permissions, expiry, protocols) = ("racwdl", "2099-01-01T00:00:00Z", "https,http");
        let resource = format!("/blob/{ACCOUNT}/{CONTAINER}");
        // signedPermissions, start, expiry, resource, identifier, IP, protocol, version,
        // signedResource (c: the container), snapshot time, encryption scope, and the five
        // response headers.
        let to_sign =
            format!("{permissions}\n\n{expiry}\n{resource}\n\n\n{protocols}\n{VERSION}\nc\n\n\n\n\n\n\n");
        let encoded: String = sign(&to_sign)
            .bytes()
            .map(|b| match b {
                b'+' => "%2B".to_owned(),
                b'/' => "%2F".to_owned(),
                b'=' => "%3D".to_owned(),
                _ => char::from(b).to_string(),
            })
            .collect();
        format!("sv={VERSION}&sr=c&sp={permissions}&se={expiry}&spr={protocols}&sig={encoded}")
    }

    /// The server's log and its debug log, for a failure message.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let debug = read("debug.log");
        let start = debug.char_indices().rev().nth(8000).map_or(0, |(i, _)| i);
        format!("{}\n(debug log, last part) {}", read("azurite.log"), &debug[start..])
    }

    /// A configuration file's `storage.targets.<name>` entry for this server, with the
    /// account key read from the variable `AZURE_KEY`.
    pub fn target_yaml(&self, name: &str, prefix: &str) -> String {
        format!(
            "    {name}:\n      type: azure\n      endpoint: {}\n      account: {ACCOUNT}\n      container: \
             {CONTAINER}\n      prefix: {prefix}\n      access_key_env: AZURE_KEY\n",
            self.endpoint
        )
    }
}

/// base64 of HMAC-SHA256 of `text` under the account key.
fn sign(text: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD.decode(ACCESS_KEY).expect("the key is base64");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, text.as_bytes()).as_ref())
}

impl Drop for AzuritePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
