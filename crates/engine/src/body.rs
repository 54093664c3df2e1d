//! Response bodies read as they arrive: bytes (archives, logs) and JSON lines (events,
//! progress). Nothing is buffered beyond what the caller asks for, so a slow reader
//! slows the engine down (backpressure) instead of filling memory.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::Error;

/// A streamed response body.
pub struct ByteStream {
    body: Incoming,
    context: String,
    idle: Option<Duration>,
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream").field("context", &self.context).field("idle", &self.idle).finish()
    }
}

impl ByteStream {
    pub(crate) fn new(body: Incoming, context: String, idle: Option<Duration>) -> Self {
        Self { body, context, idle }
    }

    /// Fails the stream when no data comes for `idle` (`None`: wait for ever).
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle = idle;
        self
    }

    /// The next piece of the body; `None` at its end.
    pub async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            let frame = match self.idle {
                Some(limit) => match tokio::time::timeout(limit, self.body.frame()).await {
                    Ok(frame) => frame,
                    Err(_) => {
                        return Some(Err(Error::Stream {
                            context: self.context.clone(),
                            detail: format!("no data for {limit:?}"),
                            source: None,
                        }));
                    }
                },
                None => self.body.frame().await,
            };
            match frame? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Some(Ok(data)),
                    // Trailers: not data, keep reading.
                    Err(_) => continue,
                },
                Err(e) => {
                    return Some(Err(Error::Stream {
                        context: self.context.clone(),
                        detail: "the body broke".to_owned(),
                        source: Some(Box::new(e)),
                    }));
                }
            }
        }
    }

    /// Reads the rest and counts it, keeping nothing.
    pub async fn drain(mut self) -> Result<u64, Error> {
        let mut total = 0u64;
        while let Some(chunk) = self.next().await {
            total += chunk?.len() as u64;
        }
        Ok(total)
    }

    pub(crate) fn context(&self) -> &str {
        &self.context
    }

    pub(crate) fn into_body(self) -> Incoming {
        self.body
    }
}

/// Newline-delimited JSON values from a body. `\r\n` line ends are accepted, blank lines
/// skipped, and an object carrying `errorDetail` or `error` becomes an error.
pub struct JsonStream<T> {
    bytes: ByteStream,
    buf: Vec<u8>,
    done: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for JsonStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonStream").field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

/// The most one JSON line may weigh.
const MAX_LINE: usize = 16 * 1024 * 1024;

impl<T: DeserializeOwned> JsonStream<T> {
    pub(crate) fn new(bytes: ByteStream) -> Self {
        Self { bytes, buf: Vec::new(), done: false, _t: PhantomData }
    }

    /// Fails the stream when no data comes for `idle` (`None`: wait for ever).
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.bytes = self.bytes.with_idle_timeout(idle);
        self
    }

    /// The next value; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                match self.decode(&line) {
                    Some(item) => return Some(item),
                    None => continue,
                }
            }
            if self.done {
                let rest = std::mem::take(&mut self.buf);
                return self.decode(&rest);
            }
            match self.bytes.next().await {
                Some(Ok(data)) => {
                    self.buf.extend_from_slice(&data);
                    if self.buf.len() > MAX_LINE {
                        self.done = true;
                        self.buf.clear();
                        return Some(Err(self.error(format!("a JSON line exceeds {MAX_LINE} bytes"))));
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None => self.done = true,
            }
        }
    }

    fn decode(&self, line: &[u8]) -> Option<Result<T, Error>> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Failure {
            #[serde(rename = "errorDetail")]
            detail: Option<Detail>,
            error: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Detail {
            message: Option<String>,
        }
        if let Ok(Failure { detail, error }) = serde_json::from_slice::<Failure>(line) {
            let message = detail.and_then(|d| d.message).or(error);
            if let Some(message) = message {
                return Some(Err(self.error(format!("the engine reported: {message}"))));
            }
        }
        Some(serde_json::from_slice(line).map_err(|e| self.error(format!("cannot decode a JSON line: {e}"))))
    }

    fn error(&self, detail: String) -> Error {
        Error::Stream { context: self.bytes.context().to_owned(), detail, source: None }
    }
}

/// A body as a tokio `AsyncRead`, for the demultiplexer.
pub(crate) struct BodyReader {
    body: Incoming,
    leftover: Bytes,
}

impl BodyReader {
    pub(crate) fn new(body: Incoming) -> Self {
        Self { body, leftover: Bytes::new() }
    }
}

impl tokio::io::AsyncRead for BodyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use hyper::body::Body as _;
        use std::task::Poll;
        loop {
            if !self.leftover.is_empty() {
                let n = self.leftover.len().min(buf.remaining());
                let piece = self.leftover.split_to(n);
                buf.put_slice(&piece);
                return Poll::Ready(Ok(()));
            }
            match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.leftover = data;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
