//! Running a command in a container: create, start attached over a hijacked connection,
//! demultiplex the output as it comes, then inspect for the exit code.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, StatusCode};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, ReadHalf, WriteHalf};

use crate::query::segment;
use crate::stream::{Chunk, Demux};
use crate::{ApiVersion, Client, Error};

/// A command to run in a container.
///
/// ```
/// use dockhand_engine::ExecSpec;
///
/// let spec = ExecSpec::new(["sh", "-c", "rm -rf /cache/*"]).with_user("1000").with_env("MODE=clean");
/// assert_eq!(spec.cmd(), ["sh", "-c", "rm -rf /cache/*"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecSpec {
    cmd: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    tty: bool,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
}

impl ExecSpec {
    /// Runs `cmd` (an argument vector, no shell), attached to stdout and stderr.
    pub fn new<S: Into<String>>(cmd: impl IntoIterator<Item = S>) -> Self {
        Self {
            cmd: cmd.into_iter().map(Into::into).collect(),
            attach_stdout: true,
            attach_stderr: true,
            ..Self::default()
        }
    }

    /// Adds a `NAME=value` environment entry.
    pub fn with_env(mut self, entry: impl Into<String>) -> Self {
        self.env.push(entry.into());
        self
    }

    /// Runs as this user (`name`, `uid` or `uid:gid`).
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Runs in this directory.
    pub fn with_working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Attaches stdin: [`ExecOutput::take_stdin`] then gives a writer to the command's
    /// stdin, closed when it is dropped or shut down.
    pub fn with_stdin(mut self, stdin: bool) -> Self {
        self.attach_stdin = stdin;
        self
    }

    /// Allocates a TTY: output is one raw stream, stdout and stderr merged.
    pub fn with_tty(mut self, tty: bool) -> Self {
        self.tty = tty;
        self
    }

    /// The command.
    pub fn cmd(&self) -> &[String] {
        &self.cmd
    }
}

/// What `GET /exec/{id}/json` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[non_exhaustive]
pub struct ExecInspect {
    /// The exec's ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// True while the command runs.
    pub running: bool,
    /// Its exit code, once it has exited.
    pub exit_code: Option<i64>,
    /// The container.
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    /// The command's pid on the host (0 once it has exited).
    pub pid: i64,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

/// The hijacked connection, split: output is read from one half, stdin written to the other.
type Hijacked = TokioIo<Upgraded>;

/// A running command's output, read chunk by chunk.
pub struct ExecOutput {
    client: Client,
    id: String,
    demux: Demux<ReadHalf<Hijacked>>,
    stdin: Option<ExecStdin>,
    exit: Option<i64>,
}

/// The command's stdin, when the exec attached it ([`ExecSpec::with_stdin`]). Shutting it
/// down (or dropping it) closes the command's stdin, as end-of-file.
pub struct ExecStdin {
    writer: WriteHalf<Hijacked>,
}

impl std::fmt::Debug for ExecStdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecStdin")
    }
}

impl AsyncWrite for ExecStdin {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}

impl std::fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOutput").field("id", &self.id).finish_non_exhaustive()
    }
}

impl ExecOutput {
    /// The exec's ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The writer to the command's stdin, once; `None` when stdin was not attached.
    pub fn take_stdin(&mut self) -> Option<ExecStdin> {
        self.stdin.take()
    }

    /// The next piece of output; `None` when the command closed its output.
    pub async fn next(&mut self) -> Option<Result<Chunk, Error>> {
        self.demux.next().await
    }

    /// Reads what is left of the output, then returns the exit code.
    pub async fn exit_code(mut self) -> Result<i64, Error> {
        self.wait_exit().await
    }

    /// Reads what is left of the output (discarding it), then waits for the exit code;
    /// the output can still be asked for it afterwards.
    pub async fn wait_exit(&mut self) -> Result<i64, Error> {
        if let Some(code) = self.exit {
            return Ok(code);
        }
        while let Some(chunk) = self.next().await {
            chunk?;
        }
        // The stream closes when the process closes its output, a moment before the
        // engine records its exit.
        // Usually a few milliseconds: look again soon, then back off to every 50 ms.
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        while started.elapsed() < Duration::from_secs(5) {
            let inspect = self.client.inspect_exec(&self.id).await?;
            if let (false, Some(code)) = (inspect.running, inspect.exit_code) {
                self.exit = Some(code);
                return Ok(code);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Err(Error::Stream {
            context: format!("exec {} on {}", self.id, self.client.url()),
            detail: "the output ended but the engine reports no exit code after 5 s".to_owned(),
            source: None,
        })
    }
}

impl Client {
    /// `POST /containers/{id}/exec`: prepares a command; returns the exec ID.
    ///
    /// A stopped container gives a conflict ([`Error::is_conflict`]).
    pub async fn create_exec(&self, container: &str, spec: &ExecSpec) -> Result<String, Error> {
        if spec.cmd.is_empty() {
            return Err(Error::InvalidArgument {
                what: "exec command".to_owned(),
                detail: "it is empty".to_owned(),
            });
        }
        let body = self.json("exec spec", spec)?;
        let created: Created = self
            .call(Method::POST, &format!("/containers/{}/exec", segment("container", container)?), Some(body))
            .await?;
        Ok(created.id)
    }

    /// `POST /exec/{id}/start`, attached: the engine hijacks the connection and streams
    /// the output. `tty` must match the spec the exec was created with.
    pub async fn start_exec(&self, id: &str, tty: bool) -> Result<ExecOutput, Error> {
        self.start_exec_with(id, tty, false).await
    }

    /// [`Client::start_exec`], keeping the write half for the command's stdin when
    /// `stdin` (the exec must have been created [`ExecSpec::with_stdin`]).
    async fn start_exec_with(&self, id: &str, tty: bool, stdin: bool) -> Result<ExecOutput, Error> {
        let path = self.versioned(&format!("/exec/{}/start", segment("exec", id)?)).await?;
        let body = self.json("exec start", &serde_json::json!({ "Detach": false, "Tty": tty }))?;
        let response = self.send_upgrade(Method::POST, &path, Some(body), true).await?;
        let response = self.check(&Method::POST, &path, response).await?;
        let context = format!("POST {path} on {}", self.url());
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(Error::Stream {
                context,
                detail: format!(
                    "the engine answered {} instead of upgrading the connection",
                    response.status()
                ),
                source: None,
            });
        }
        // From API 1.42 the content type says whether the stream is multiplexed; before,
        // only the TTY setting does.
        let content_type =
            response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let multiplexed = if self.api_version().await? >= ApiVersion::new(1, 42) && !content_type.is_empty() {
            content_type.contains("multiplexed-stream")
        } else {
            !tty
        };
        let upgraded = hyper::upgrade::on(response).await.map_err(|e| Error::Stream {
            context: context.clone(),
            detail: "the upgrade failed".to_owned(),
            source: Some(Box::new(e)),
        })?;
        let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
        Ok(ExecOutput {
            client: self.clone(),
            id: id.to_owned(),
            demux: Demux::new(reader, multiplexed, context),
            stdin: stdin.then_some(ExecStdin { writer }),
            exit: None,
        })
    }

    /// `GET /exec/{id}/json`.
    pub async fn inspect_exec(&self, id: &str) -> Result<ExecInspect, Error> {
        self.get_json(&format!("/exec/{}/json", segment("exec", id)?)).await
    }

    /// Creates and starts `spec` in `container`: the usual way to run a command.
    pub async fn exec(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput, Error> {
        let id = self.create_exec(container, spec).await?;
        self.start_exec_with(&id, spec.tty, spec.attach_stdin).await
    }
}
