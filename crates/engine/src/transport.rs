//! The connector: a `Service<Uri>` that dials the client's endpoint, whatever the request
//! URI says, and yields a connection hyper can speak HTTP/1.1 over.
//!
//! One connector type serves every transport, so the pooled hyper client, its timeouts and
//! its error handling are the same for a unix socket, plain TCP and TLS.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::ssh::{SshConnection, SshDialer};
use crate::tls::TlsConfig;

/// Where and how the connector dials.
#[derive(Clone)]
pub(crate) enum Dial {
    /// A unix socket, through hyperlocal.
    Unix(PathBuf),
    /// Plain TCP.
    Tcp { host: String, port: u16 },
    /// TLS over TCP; the host is also the name the server's certificate must carry.
    Tls { host: String, port: u16, tls: Arc<TlsConfig> },
    /// ssh, through one master session.
    Ssh(Arc<SshDialer>),
}

impl Dial {
    /// What the transport itself said, for error messages (ssh's stderr).
    pub(crate) fn diagnostics(&self) -> Option<String> {
        match self {
            Self::Ssh(dialer) => Some(dialer.stderr()).filter(|s| !s.is_empty()),
            _ => None,
        }
    }

    /// After a failure, waits up to 500 ms for the transport's diagnostics to arrive.
    pub(crate) async fn settle_diagnostics(&self) {
        if let Self::Ssh(dialer) = self {
            for _ in 0..25 {
                if !dialer.stderr().is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// The connector handed to hyper's pooled client.
#[derive(Clone)]
pub(crate) struct Connector {
    dial: Arc<Dial>,
    timeout: Option<Duration>,
}

impl Connector {
    pub(crate) fn new(dial: Dial, timeout: Option<Duration>) -> Self {
        Self { dial: Arc::new(dial), timeout }
    }

    /// The dial this connector uses.
    pub(crate) fn dial(&self) -> Arc<Dial> {
        Arc::clone(&self.dial)
    }
}

/// The error a connection attempt ends with when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("no connection within {0:?}")]
struct ConnectTimedOut(Duration);

/// The deadline, when a hyper connect error was our connect timeout.
pub(crate) fn connect_timed_out(err: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    let mut source = Some(err);
    while let Some(e) = source {
        // `io::Error::source` skips the payload it wraps: look inside explicitly.
        let payload = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .map(|p| p as &(dyn std::error::Error + 'static));
        if let Some(ConnectTimedOut(after)) = payload.unwrap_or(e).downcast_ref::<ConnectTimedOut>() {
            return Some(*after);
        }
        source = e.source();
    }
    None
}

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = Conn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: hyper::Uri) -> Self::Future {
        let dial = Arc::clone(&self.dial);
        let timeout = self.timeout;
        Box::pin(async move {
            let connect = connect(&dial);
            match timeout {
                Some(limit) => tokio::time::timeout(limit, connect)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, ConnectTimedOut(limit)))?,
                None => connect.await,
            }
        })
    }
}

async fn connect(dial: &Dial) -> io::Result<Conn> {
    match dial {
        Dial::Unix(path) => {
            let uri = hyperlocal::Uri::new(path, "/").into();
            let stream = tower_service::Service::call(&mut hyperlocal::UnixConnector, uri).await?;
            Ok(Conn::Unix(stream))
        }
        Dial::Tcp { host, port } => Ok(Conn::Tcp(TokioIo::new(tcp(host, *port).await?))),
        Dial::Tls { host, port, tls } => {
            let stream = tcp(host, *port).await?;
            let tls = tls.connector().connect(tls.server_name(host)?, stream).await?;
            Ok(Conn::Tls(Box::new(TokioIo::new(tls))))
        }
        Dial::Ssh(dialer) => Ok(Conn::Ssh(Box::new(TokioIo::new(dialer.connect().await?)))),
    }
}

async fn tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((host, port)).await?;
    // Engine API calls are small request/response exchanges: do not wait to fill packets.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One connection to an engine.
pub(crate) enum Conn {
    Unix(hyperlocal::UnixStream),
    Tcp(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
    Ssh(Box<TokioIo<SshConnection>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Forwards a method to whichever stream this connection holds.
macro_rules! delegate {
    ($self:ident, $inner:ident => $call:expr) => {
        match $self.get_mut() {
            Conn::Unix($inner) => {
                let $inner = Pin::new($inner);
                $call
            }
            Conn::Tcp($inner) => {
                let $inner = Pin::new($inner);
                $call
            }
            Conn::Tls($inner) => {
                let $inner = Pin::new(&mut **$inner);
                $call
            }
            Conn::Ssh($inner) => {
                let $inner = Pin::new(&mut **$inner);
                $call
            }
        }
    };
}

impl Read for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
