//! A real browser for the status page's tests: Debian's headless Chromium, driven over the
//! W3C WebDriver protocol by Debian's ChromeDriver (`cargo xtask ci` installs both;
//! `DOCKHAND_TEST_CHROMEDRIVER` and `DOCKHAND_TEST_CHROMIUM` name them, else
//! `/usr/bin/chromedriver` and `/usr/bin/chromium`). The few commands the tests use are
//! spoken here: open a page, type into and click an element, read the page's live DOM,
//! take a screenshot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::webhook::free_port;

/// The key a WebDriver element reference is under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What went wrong with the browser: the command and what the driver said.
#[derive(Debug)]
pub struct BrowserError(pub String);

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BrowserError {}

type Result<T> = std::result::Result<T, BrowserError>;

fn tool(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A ChromeDriver and one headless Chromium session; both end on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and a headless Chromium session in a new
    /// empty profile, `width`×`height` pixels.
    ///
    /// # Errors
    /// When ChromeDriver or Chromium is not installed or does not start.
    pub async fn start(width: u32, height: u32) -> Result<Self> {
        let driver_path = tool("DOCKHAND_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("DOCKHAND_TEST_CHROMIUM", "/usr/bin/chromium");
        for path in [&driver_path, &chromium] {
            if !path.is_file() {
                return Err(BrowserError(format!(
                    "{} is not installed: `cargo xtask test` installs Debian's chromium and chromium-driver",
                    path.display()
                )));
            }
        }
        let port = free_port();
        use std::os::unix::process::CommandExt as _;
        // Its own process group: Chromium's processes end with it (see `Drop`).
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| BrowserError(format!("{} does not start: {e}", driver_path.display())))?;
        // reqwest's TLS takes the process's provider, even for the driver's plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let profile = tempfile::tempdir().map_err(|e| BrowserError(format!("a profile directory: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| BrowserError(format!("an HTTP client: {e}")))?;
        let mut browser = Self { driver, base: format!("http://127.0.0.1:{port}"), http, profile };
        browser.wait_ready().await?;
        let session = browser.new_session(&chromium, width, height).await?;
        browser.base = format!("{}/session/{session}", browser.base);
        Ok(browser)
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.http.get(format!("{}/status", self.base)).send().await;
            let status = match answer {
                Ok(answer) => answer.json::<Value>().await.unwrap_or_default(),
                Err(_) => Value::Null,
            };
            if status["value"]["ready"] == true {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BrowserError("ChromeDriver was not ready within 30 s".to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn new_session(&self, chromium: &Path, width: u32, height: u32) -> Result<String> {
        // As root, without a sandbox; without background networking, which this machine's
        // closed network refuses many times a start.
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", self.profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let answer = self.command("POST", &format!("{}/session", self.base), Some(capabilities)).await?;
        answer["sessionId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BrowserError(format!("no session: {answer}")))
    }

    async fn command(&self, method: &str, url: &str, body: Option<Value>) -> Result<Value> {
        let request = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
            "DELETE" => self.http.delete(url),
            _ => self.http.get(url),
        };
        let answer = request.send().await.map_err(|e| BrowserError(format!("{method} {url}: {e}")))?;
        let status = answer.status();
        let value: Value =
            answer.json().await.map_err(|e| BrowserError(format!("{method} {url}: the answer: {e}")))?;
        if !status.is_success() {
            return Err(BrowserError(format!("{method} {url}: {status}: {}", value["value"])));
        }
        Ok(value["value"].clone())
    }

    async fn session(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.command(method, &format!("{}{path}", self.base), body).await
    }

    /// Opens `url` and waits for it to load.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn open(&self, url: &str) -> Result<()> {
        self.session("POST", "/url", Some(json!({"url": url}))).await.map(drop)
    }

    async fn find(&self, css: &str) -> Result<String> {
        let found =
            self.session("POST", "/element", Some(json!({"using": "css selector", "value": css}))).await?;
        found[ELEMENT].as_str().map(str::to_owned).ok_or_else(|| BrowserError(format!("no element {css}")))
    }

    /// Types `text` into the element `css` selects.
    ///
    /// # Errors
    /// When no element matches or the driver fails.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let element = self.find(css).await?;
        self.session("POST", &format!("/element/{element}/value"), Some(json!({"text": text})))
            .await
            .map(drop)
    }

    /// Clicks the element `css` selects (and waits for what it loads).
    ///
    /// # Errors
    /// When no element matches or the driver fails.
    pub async fn click(&self, css: &str) -> Result<()> {
        let element = self.find(css).await?;
        self.session("POST", &format!("/element/{element}/click"), None).await.map(drop)
    }

    /// The page's DOM as it is now, serialized.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn source(&self) -> Result<String> {
        let source = self.session("GET", "/source", None).await?;
        Ok(source.as_str().unwrap_or_default().to_owned())
    }

    /// The address the page is at.
    ///
    /// # Errors
    /// When the driver fails.
    pub async fn url(&self) -> Result<String> {
        Ok(self.session("GET", "/url", None).await?.as_str().unwrap_or_default().to_owned())
    }

    /// The DOM once `done` holds of it, trying for up to `wait`.
    ///
    /// # Errors
    /// When it does not come to hold (with the last DOM), or the driver fails.
    pub async fn wait_for(&self, wait: Duration, done: impl Fn(&str) -> bool) -> Result<String> {
        self.poll(None, wait, done).await
    }

    /// Opens `url` again and again until `done` holds of its DOM, for up to `wait`: for a
    /// page that does not change by itself.
    ///
    /// # Errors
    /// When it does not come to hold (with the last DOM), or the driver fails.
    pub async fn open_until(&self, url: &str, wait: Duration, done: impl Fn(&str) -> bool) -> Result<String> {
        self.poll(Some(url), wait, done).await
    }

    async fn poll(
        &self,
        reopen: Option<&str>,
        wait: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(url) = reopen {
                self.open(url).await?;
            }
            let source = self.source().await?;
            if done(&source) {
                return Ok(source);
            }
            if Instant::now() > deadline {
                return Err(BrowserError(format!("not within {wait:?}; the page:\n{source}")));
            }
            tokio::time::sleep(Duration::from_millis(if reopen.is_some() { 500 } else { 250 })).await;
        }
    }

    /// A PNG of the viewport, written to `path`.
    ///
    /// # Errors
    /// When the driver fails or the file cannot be written.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine as _;
        let encoded = self.session("GET", "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .map_err(|e| BrowserError(format!("the screenshot is not base64: {e}")))?;
        std::fs::write(path, png).map_err(|e| BrowserError(format!("{}: {e}", path.display())))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver and every Chromium process it started: one process group.
        if let Some(group) = i32::try_from(self.driver.id()).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
