//! A webhook receiver: a real HTTP server on loopback (Python's `http.server`) that appends
//! each body it is posted to a file, one per line, and answers 200.

use std::path::PathBuf;
use std::time::{Duration, Instant};

const RECEIVER: &str = r#"
import http.server, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// The receiver process; stopped on drop.
#[derive(Debug)]
pub struct WebhookReceiver {
    child: std::process::Child,
    /// Where to post: a path with a secret-looking part, as Slack's URLs have.
    pub url: String,
    bodies: PathBuf,
    _dir: tempfile::TempDir,
}

/// A port nothing listens on (for a receiver that is down).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(1)
}

impl WebhookReceiver {
    /// Starts it and waits until it listens.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bodies = dir.path().join("bodies");
        let port = free_port();
        let child = std::process::Command::new("python3")
            .args(["-c", RECEIVER, &port.to_string()])
            .arg(&bodies)
            .spawn()
            .expect("python3 runs the webhook receiver");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the webhook receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, url: format!("http://127.0.0.1:{port}/hooks/T0SECRETPATH"), bodies, _dir: dir }
    }

    /// The bodies received so far, in order.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.bodies)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
