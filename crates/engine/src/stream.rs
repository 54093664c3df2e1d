//! Docker's multiplexed stream format, demultiplexed incrementally.
//!
//! Each frame is an 8-byte header, `[stream, 0, 0, 0, size as u32 big-endian]`, then
//! `size` bytes. Stream 0 is stdin, 1 stdout, 2 stderr; 3 carries an error from the engine
//! (a "system error"), which becomes [`Error`]. A frame is handed on in pieces of at most
//! [`MAX_CHUNK`] bytes, so memory stays bounded whatever size a header claims.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;

/// The most bytes one [`Chunk`] holds.
pub const MAX_CHUNK: usize = 64 * 1024;

/// Which stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Standard input (echoed by some engines).
    Stdin,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of a demultiplexed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Which stream.
    pub stream: StreamKind,
    /// The bytes, at most [`MAX_CHUNK`].
    pub data: Bytes,
}

/// Reads chunks from a raw or multiplexed stream.
pub(crate) struct Demux<R> {
    reader: R,
    /// False for a TTY's raw stream: everything is stdout.
    multiplexed: bool,
    /// What is left of the current frame.
    remaining: usize,
    current: StreamKind,
    /// For errors: which request this stream answers.
    context: String,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Demux<R> {
    pub(crate) fn new(reader: R, multiplexed: bool, context: String) -> Self {
        Self {
            reader,
            multiplexed,
            remaining: 0,
            current: StreamKind::Stdout,
            context,
            buf: vec![0; MAX_CHUNK],
        }
    }

    /// The next chunk; `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Option<Result<Chunk, Error>> {
        if !self.multiplexed {
            return match self.reader.read(&mut self.buf).await {
                Ok(0) => None,
                Ok(n) => Some(Ok(Chunk {
                    stream: StreamKind::Stdout,
                    data: Bytes::copy_from_slice(&self.buf[..n]),
                })),
                Err(e) => Some(Err(self.broken(format!("reading the stream failed: {e}")))),
            };
        }
        while self.remaining == 0 {
            let mut header = [0u8; 8];
            match read_full(&mut self.reader, &mut header).await {
                Ok(0) => return None,
                Ok(8) => {}
                Ok(n) => {
                    return Some(Err(
                        self.broken(format!("the stream ended inside a frame header ({n} of 8 bytes)"))
                    ));
                }
                Err(e) => return Some(Err(self.broken(format!("reading the stream failed: {e}")))),
            }
            let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            self.current = match header[0] {
                0 => StreamKind::Stdin,
                1 => StreamKind::Stdout,
                2 => StreamKind::Stderr,
                3 => return Some(Err(self.system_error(size).await)),
                other => {
                    return Some(Err(self.broken(format!("unknown stream type {other} in a frame header"))));
                }
            };
            self.remaining = size;
        }
        let want = self.remaining.min(MAX_CHUNK);
        match self.reader.read(&mut self.buf[..want]).await {
            Ok(0) => Some(Err(
                self.broken(format!("the stream ended with {} bytes of a frame unread", self.remaining))
            )),
            Ok(n) => {
                self.remaining -= n;
                Some(Ok(Chunk { stream: self.current, data: Bytes::copy_from_slice(&self.buf[..n]) }))
            }
            Err(e) => Some(Err(self.broken(format!("reading the stream failed: {e}")))),
        }
    }

    /// Frame type 3: the engine's own error message.
    async fn system_error(&mut self, size: usize) -> Error {
        let mut message = vec![0u8; size.min(MAX_CHUNK)];
        let n = read_full(&mut self.reader, &mut message).await.unwrap_or(0);
        Error::Stream {
            context: self.context.clone(),
            detail: format!("the engine reported: {}", String::from_utf8_lossy(&message[..n]).trim()),
            source: None,
        }
    }

    fn broken(&self, detail: String) -> Error {
        Error::Stream { context: self.context.clone(), detail, source: None }
    }
}

/// Fills `buf` unless the stream ends first; returns how much was read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![kind, 0, 0, 0];
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    async fn collect(bytes: Vec<u8>, multiplexed: bool) -> (Vec<(StreamKind, Vec<u8>)>, Option<String>) {
        let mut demux = Demux::new(&bytes[..], multiplexed, "POST /exec/x/start".into());
        let mut out: Vec<(StreamKind, Vec<u8>)> = Vec::new();
        while let Some(next) = demux.next().await {
            match next {
                Ok(chunk) => match out.last_mut() {
                    Some((kind, data)) if *kind == chunk.stream => data.extend_from_slice(&chunk.data),
                    _ => out.push((chunk.stream, chunk.data.to_vec())),
                },
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn demultiplexes_in_order() {
        let mut wire = frame(1, b"out1 ");
        wire.extend(frame(2, b"err1"));
        wire.extend(frame(1, b"out2"));
        wire.extend(frame(1, b""));
        let (out, err) = collect(wire, true).await;
        assert_eq!(err, None);
        assert_eq!(
            out,
            vec![
                (StreamKind::Stdout, b"out1 ".to_vec()),
                (StreamKind::Stderr, b"err1".to_vec()),
                (StreamKind::Stdout, b"out2".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn a_large_frame_comes_in_bounded_chunks() {
        let big = vec![b'x'; MAX_CHUNK * 3 + 5];
        let wire = frame(1, &big);
        let mut demux = Demux::new(&wire[..], true, "x".into());
        let mut total = 0;
        while let Some(chunk) = demux.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.data.len() <= MAX_CHUNK);
            total += chunk.data.len();
        }
        assert_eq!(total, big.len());
    }

    #[tokio::test]
    async fn type_3_is_an_error_with_the_engines_message() {
        let mut wire = frame(1, b"partial");
        wire.extend(frame(3, b"oci runtime exec failed\n"));
        let (out, err) = collect(wire, true).await;
        assert_eq!(out, vec![(StreamKind::Stdout, b"partial".to_vec())]);
        let err = err.unwrap();
        assert!(err.contains("POST /exec/x/start") && err.contains("oci runtime exec failed"), "{err}");
    }

    #[tokio::test]
    async fn truncation_and_garbage_are_errors() {
        let mut wire = frame(1, b"abcdef");
        wire.truncate(10);
        assert!(collect(wire, true).await.1.unwrap().contains("unread"));
        assert!(collect(vec![1, 0, 0], true).await.1.unwrap().contains("frame header"));
        assert!(collect(frame(9, b"x"), true).await.1.unwrap().contains("unknown stream type 9"));
    }

    #[tokio::test]
    async fn a_tty_stream_is_raw_stdout() {
        let (out, err) = collect(b"\x01\x00raw".to_vec(), false).await;
        assert_eq!(err, None);
        assert_eq!(out, vec![(StreamKind::Stdout, b"\x01\x00raw".to_vec())]);
    }
}
