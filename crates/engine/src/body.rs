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
    buf: LineBuffer,
    done: bool,
    _t: PhantomData<fn() -> T>,
}

/// Bytes split into lines, each byte looked at once: the search for the next newline
/// resumes where the last one stopped, and taken lines are skipped by an offset rather
/// than moved (review finding 14: rescanning the buffer on every chunk was quadratic on a
/// long line, and draining line by line on many short ones).
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// Where the unread part starts.
    start: usize,
    /// How far past `start` is known to hold no newline.
    scanned: usize,
    /// Bytes examined in all, for the test that scanning is linear.
    #[cfg(test)]
    examined: usize,
}

impl LineBuffer {
    /// Appends a chunk.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole line, without its newline.
    pub(crate) fn next_line(&mut self) -> Option<Vec<u8>> {
        let from = self.start + self.scanned;
        let found = self.buf[from..].iter().position(|&b| b == b'\n');
        #[cfg(test)]
        {
            self.examined += found.map_or(self.buf.len() - from, |i| i + 1);
        }
        match found {
            Some(i) => {
                let end = from + i;
                let line = self.buf[self.start..end].to_vec();
                self.start = end + 1;
                self.scanned = 0;
                Some(line)
            }
            None => {
                self.scanned = self.buf.len() - self.start;
                None
            }
        }
    }

    /// The bytes not yet taken as a line.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes whatever is left (the last line, without a newline).
    pub(crate) fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf[self.start..].to_vec();
        self.clear();
        rest
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
    }
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
        Self { bytes, buf: LineBuffer::default(), done: false, _t: PhantomData }
    }

    /// Fails the stream when no data comes for `idle` (`None`: wait for ever).
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.bytes = self.bytes.with_idle_timeout(idle);
        self
    }

    /// The next value; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        loop {
            if let Some(line) = self.buf.next_line() {
                match self.decode(&line) {
                    Some(item) => return Some(item),
                    None => continue,
                }
            }
            if self.done {
                let rest = self.buf.take_rest();
                return self.decode(&rest);
            }
            match self.bytes.next().await {
                Some(Ok(data)) => {
                    self.buf.extend(&data);
                    if self.buf.pending() > MAX_LINE {
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

#[cfg(test)]
mod tests {
    use super::LineBuffer;

    /// Review finding 14: a line near the limit arriving in small chunks, and many short
    /// lines in one chunk, are each examined about once (not once per chunk or per line).
    #[test]
    fn each_byte_is_examined_about_once() {
        let mut lines = LineBuffer::default();
        let long = vec![b'x'; 1 << 20];
        for chunk in long.chunks(512) {
            lines.extend(chunk);
            assert!(lines.next_line().is_none());
        }
        lines.extend(b"\n");
        assert_eq!(lines.next_line().map(|l| l.len()), Some(1 << 20));
        assert!(lines.examined <= (1 << 20) + 2, "examined {} bytes for 1 MiB", lines.examined);

        let mut lines = LineBuffer::default();
        let many: Vec<u8> = (0..100_000).flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes()).collect();
        lines.extend(&many);
        let mut count = 0;
        while let Some(line) = lines.next_line() {
            assert!(line.starts_with(b"{\"n\":"));
            count += 1;
        }
        assert_eq!(count, 100_000);
        assert!(lines.examined <= many.len() + 1, "examined {} of {} bytes", lines.examined, many.len());
        assert_eq!(lines.pending(), 0);
        lines.extend(b"tail");
        assert_eq!(lines.take_rest(), b"tail");
    }
}
