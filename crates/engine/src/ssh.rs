//! The ssh transport: one ControlMaster session per client, shared by every connection.
//!
//! Each connection is a `docker system dial-stdio` channel over the master (`docker --host
//! unix://PATH system dial-stdio` when the URL names the remote socket), its stdin and
//! stdout carrying the HTTP bytes. When the remote has no docker CLI, the remote socket is
//! forwarded to a local one instead. Channels are limited below the server's `MaxSessions`
//! (10 by default). ssh's stderr goes into connection errors.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use openssh::{ForwardType, KnownHosts, Session, SessionBuilder, Socket, Stdio};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::SshEndpoint;

/// Channels open at once over one master: below sshd's default `MaxSessions` of 10,
/// leaving room for the probe and for an operator's own session.
pub(crate) const MAX_CHANNELS: usize = 8;

/// How much of ssh's stderr is kept for error messages.
const STDERR_KEEP: usize = 4096;

/// How ssh is run: the user's own ssh configuration unless told otherwise.
///
/// ```
/// use dockhand_engine::{HostKeyChecking, SshSettings};
///
/// let ssh = SshSettings::new().with_config_file("/etc/dockhand/ssh_config").with_identity("/etc/dockhand/id_ed25519");
/// assert_eq!(ssh.host_key_checking(), HostKeyChecking::FromConfig);
/// let strict = ssh.with_host_key_checking(HostKeyChecking::Strict);
/// assert_eq!(strict.host_key_checking(), HostKeyChecking::Strict);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshSettings {
    config_file: Option<PathBuf>,
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    host_keys: HostKeyChecking,
}

/// What ssh does with a host key that is not in known_hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HostKeyChecking {
    /// Whatever the user's ssh configuration says for that host (`StrictHostKeyChecking`
    /// as `ssh -G` prints it), as the docker CLI does: the default.
    #[default]
    FromConfig,
    /// Refuse an unknown key (`StrictHostKeyChecking=yes`).
    Strict,
    /// Add an unknown key to known_hosts on first use (`accept-new`); a changed key is
    /// still refused.
    AcceptNew,
    /// Accept any key (`StrictHostKeyChecking=no`).
    Off,
}

impl HostKeyChecking {
    /// The policy an `ssh -G` output names; ssh's default (`ask`, which without a
    /// terminal refuses) is strict.
    pub(crate) fn from_ssh_g(output: &str) -> Self {
        let value = output
            .lines()
            .find_map(|l| l.strip_prefix("stricthostkeychecking "))
            .map(|v| v.trim().to_ascii_lowercase());
        match value.as_deref() {
            Some("no" | "false" | "off") => Self::Off,
            Some("accept-new") => Self::AcceptNew,
            _ => Self::Strict,
        }
    }
}

impl Default for SshSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl SshSettings {
    /// ssh's defaults: the user's ssh configuration decides, host key checking included.
    pub fn new() -> Self {
        Self { config_file: None, identity: None, known_hosts: None, host_keys: HostKeyChecking::FromConfig }
    }

    /// Use this ssh config file (`ssh -F`) instead of `~/.ssh/config`.
    pub fn with_config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Authenticate with this private key (`ssh -i`).
    pub fn with_identity(mut self, path: impl Into<PathBuf>) -> Self {
        self.identity = Some(path.into());
        self
    }

    /// Check host keys against this file instead of `~/.ssh/known_hosts`.
    pub fn with_known_hosts(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_hosts = Some(path.into());
        self
    }

    /// Override the ssh configuration's host key policy.
    pub fn with_host_key_checking(mut self, policy: HostKeyChecking) -> Self {
        self.host_keys = policy;
        self
    }

    /// The host key policy asked for.
    pub fn host_key_checking(&self) -> HostKeyChecking {
        self.host_keys
    }
}

/// The hint added to ssh's "Host key verification failed".
pub(crate) fn host_key_hint(endpoint: &SshEndpoint) -> String {
    let port = endpoint.port().map(|p| format!("-p {p} ")).unwrap_or_default();
    format!(
        "the host key of {host} is unknown or has changed: add it to known_hosts \
         (`ssh-keyscan {port}{host} >> ~/.ssh/known_hosts`, then check its fingerprint), \
         or set StrictHostKeyChecking for this host in ~/.ssh/config",
        host = endpoint.host()
    )
}

/// How connections reach the remote engine once the master is up.
enum Mode {
    /// `docker system dial-stdio` per connection.
    DialStdio(Arc<Session>),
    /// The remote socket forwarded to a local one.
    Forward {
        // Kept so the master (and the forward) lives as long as the dialer.
        _session: Arc<Session>,
        local: PathBuf,
        _dir: tempfile::TempDir,
    },
}

/// Opens connections to one ssh endpoint.
pub(crate) struct SshDialer {
    endpoint: SshEndpoint,
    settings: SshSettings,
    mode: OnceCell<Mode>,
    permits: Arc<Semaphore>,
    stderr: Arc<Mutex<String>>,
}

impl SshDialer {
    pub(crate) fn new(endpoint: SshEndpoint, settings: SshSettings) -> Self {
        Self {
            endpoint,
            settings,
            mode: OnceCell::new(),
            permits: Arc::new(Semaphore::new(MAX_CHANNELS)),
            stderr: Arc::new(Mutex::new(String::new())),
        }
    }

    /// What ssh or the remote command last wrote on stderr.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.trim().to_owned()).unwrap_or_default()
    }

    /// A new connection: a dial-stdio channel, or a connection to the forwarded socket.
    pub(crate) async fn connect(&self) -> io::Result<SshConnection> {
        match self.mode.get_or_try_init(|| self.start()).await? {
            Mode::DialStdio(session) => {
                let permit = Arc::clone(&self.permits).acquire_owned().await.map_err(io::Error::other)?;
                let mut cmd = Session::arc_command(Arc::clone(session), "docker");
                if let Some(socket) = self.endpoint.socket() {
                    cmd.arg("--host").arg(format!("unix://{socket}"));
                }
                let mut child = cmd
                    .arg("system")
                    .arg("dial-stdio")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .await
                    .map_err(|e| io::Error::other(format!("cannot start docker system dial-stdio: {e}")))?;
                let stdin =
                    child.stdin().take().ok_or_else(|| io::Error::other("dial-stdio has no stdin"))?;
                let stdout =
                    child.stdout().take().ok_or_else(|| io::Error::other("dial-stdio has no stdout"))?;
                if let Some(mut err) = child.stderr().take() {
                    let keep = Arc::clone(&self.stderr);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 1024];
                        while let Ok(n) = err.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if let Ok(mut text) = keep.lock() {
                                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                                if text.len() > STDERR_KEEP {
                                    let cut = text.len() - STDERR_KEEP;
                                    let cut =
                                        (cut..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(0);
                                    text.drain(..cut);
                                }
                            }
                        }
                    });
                }
                Ok(SshConnection::Channel(Box::new(Channel {
                    stdin,
                    stdout,
                    _child: child,
                    _permit: permit,
                })))
            }
            Mode::Forward { local, .. } => {
                Ok(SshConnection::Forwarded(tokio::net::UnixStream::connect(local).await?))
            }
        }
    }

    /// Starts the master, then picks dial-stdio or forwarding.
    async fn start(&self) -> io::Result<Mode> {
        let session = Arc::new(open_session(&self.endpoint, &self.settings).await?);
        // Does the remote have a docker CLI? The probe is a plain argument vector.
        let probe = session.command("docker").arg("--version").output().await;
        if probe.is_ok_and(|out| out.status.success()) {
            tracing::debug!(host = self.endpoint.host(), "ssh: using docker system dial-stdio");
            return Ok(Mode::DialStdio(session));
        }
        let remote = self.endpoint.socket().unwrap_or("/var/run/docker.sock");
        tracing::debug!(
            host = self.endpoint.host(),
            remote,
            "ssh: no remote docker CLI, forwarding the socket"
        );
        let dir = tempfile::Builder::new().prefix("dockhand-ssh-").tempdir()?;
        let local = dir.path().join("docker.sock");
        session
            .request_port_forward(
                ForwardType::Local,
                Socket::UnixSocket { path: local.as_path().into() },
                Socket::UnixSocket { path: Path::new(remote).into() },
            )
            .await
            .map_err(|e| io::Error::other(format!("cannot forward the remote socket {remote}: {e}")))?;
        Ok(Mode::Forward { _session: session, local, _dir: dir })
    }
}

/// The host key policy of the user's ssh configuration for `endpoint`, from `ssh -G`
/// (which resolves `Host` and `Match` blocks as a connection would, and connects nowhere).
async fn configured_host_keys(endpoint: &SshEndpoint, settings: &SshSettings) -> io::Result<HostKeyChecking> {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.arg("-G");
    if let Some(file) = &settings.config_file {
        cmd.arg("-F").arg(file);
    }
    if let Some(user) = endpoint.user() {
        cmd.arg("-l").arg(user);
    }
    if let Some(port) = endpoint.port() {
        cmd.arg("-p").arg(port.to_string());
    }
    let out = cmd
        .arg("--")
        .arg(endpoint.host())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `ssh -G`: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`ssh -G {}` failed: {}",
            endpoint.host(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(HostKeyChecking::from_ssh_g(&String::from_utf8_lossy(&out.stdout)))
}

/// An ssh master session to `endpoint`, run as `settings` say: the one way dockhand opens
/// ssh, for the engine transport and for SFTP storage targets alike. A refused host key
/// gets the hint that says how to add it.
///
/// # Errors
/// When ssh cannot run, or the session does not come up; the message carries ssh's words.
pub async fn open_session(endpoint: &SshEndpoint, settings: &SshSettings) -> io::Result<Session> {
    let policy = match settings.host_keys {
        HostKeyChecking::FromConfig => configured_host_keys(endpoint, settings).await?,
        other => other,
    };
    let mut builder = SessionBuilder::default();
    builder.known_hosts_check(match policy {
        HostKeyChecking::AcceptNew => KnownHosts::Add,
        HostKeyChecking::Off => KnownHosts::Accept,
        HostKeyChecking::FromConfig | HostKeyChecking::Strict => KnownHosts::Strict,
    });
    if let Some(user) = endpoint.user() {
        builder.user(user.to_owned());
    }
    if let Some(port) = endpoint.port() {
        builder.port(port);
    }
    if let Some(file) = &settings.config_file {
        builder.config_file(file);
    }
    if let Some(key) = &settings.identity {
        builder.keyfile(key);
    }
    if let Some(file) = &settings.known_hosts {
        builder.user_known_hosts_file(file);
    }
    builder.connect(endpoint.host()).await.map_err(|e| {
        let said = crate::error::chain(&e);
        let hint = if said.contains("Host key verification failed") {
            format!(" ({})", host_key_hint(endpoint))
        } else {
            String::new()
        };
        io::Error::other(format!("cannot open an ssh session: {said}{hint}"))
    })
}

/// One connection over ssh.
pub(crate) enum SshConnection {
    /// A dial-stdio channel.
    Channel(Box<Channel>),
    /// A connection to the forwarded socket.
    Forwarded(tokio::net::UnixStream),
}

/// A dial-stdio channel: reads from its stdout, writes to its stdin. Dropping it closes
/// stdin (dial-stdio then exits) and frees its place under `MaxSessions`.
pub(crate) struct Channel {
    stdin: openssh::ChildStdin,
    stdout: openssh::ChildStdout,
    _child: openssh::Child<Arc<Session>>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for SshConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Channel(c) => Pin::new(&mut c.stdout).poll_read(cx, buf),
            Self::Forwarded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SshConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Channel(c) => Pin::new(&mut c.stdin).poll_write(cx, buf),
            Self::Forwarded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Channel(c) => Pin::new(&mut c.stdin).poll_flush(cx),
            Self::Forwarded(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Channel(c) => Pin::new(&mut c.stdin).poll_shutdown(cx),
            Self::Forwarded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HostKeyChecking;

    #[test]
    fn ssh_g_output_maps_to_a_policy() {
        let case = |line: &str| HostKeyChecking::from_ssh_g(&format!("user root\n{line}\nport 22\n"));
        assert_eq!(case("stricthostkeychecking false"), HostKeyChecking::Off);
        assert_eq!(case("stricthostkeychecking no"), HostKeyChecking::Off);
        assert_eq!(case("stricthostkeychecking accept-new"), HostKeyChecking::AcceptNew);
        assert_eq!(case("stricthostkeychecking true"), HostKeyChecking::Strict);
        assert_eq!(case("stricthostkeychecking ask"), HostKeyChecking::Strict);
        assert_eq!(HostKeyChecking::from_ssh_g("user root\n"), HostKeyChecking::Strict);
    }
}
