//! The framing of an archive on a helper's connection (size, progress, data), and the
//! connection's ends: a listener that accepts one peer, a dial, and a stall guard.

use std::io::Write;
use std::time::{Duration, Instant};

use super::protocol::AgentLine;

pub(super) fn io_error(what: &str) -> impl Fn(std::io::Error) -> crate::archive::ArchiveError + '_ {
    move |source| crate::archive::ArchiveError::Io { path: what.into(), source }
}

pub(super) fn with_peer(e: crate::archive::ArchiveError, peer: &str) -> crate::archive::ArchiveError {
    match e {
        crate::archive::ArchiveError::Damaged(m) => {
            crate::archive::ArchiveError::Damaged(format!("{m} (from {peer})"))
        }
        other => other,
    }
}

/// The archive on a transfer connection, from `serve-pack` to `fetch`, in frames: a kind
/// byte, a big-endian u32 length, the payload. `S` (first) carries the content's size and
/// `R` what has been read of it so far (u64 each, at most once a second): what the relay
/// reports so dockhand can show an ETA for a remote volume. `D` carries archive bytes. A
/// connection that ends inside a frame is an error, never a shorter archive.
pub(super) struct Framed<'a, W: Write> {
    out: W,
    read: &'a std::sync::atomic::AtomicU64,
    last: Instant,
}

const FRAME_SIZE: u8 = b'S';
const FRAME_READ: u8 = b'R';
const FRAME_DATA: u8 = b'D';

impl<'a, W: Write> Framed<'a, W> {
    pub(super) fn new(
        mut out: W,
        size: u64,
        read: &'a std::sync::atomic::AtomicU64,
    ) -> std::io::Result<Self> {
        frame(&mut out, FRAME_SIZE, &size.to_be_bytes())?;
        Ok(Self { out, read, last: Instant::now() })
    }
}

pub(super) fn frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
    out.write_all(&[kind])?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(payload)
}

impl<W: Write> Write for Framed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.last.elapsed() >= Duration::from_secs(1) {
            let read = self.read.load(std::sync::atomic::Ordering::Relaxed);
            frame(&mut self.out, FRAME_READ, &read.to_be_bytes())?;
            self.last = Instant::now();
        }
        let n = buf.len().min(1 << 20);
        frame(&mut self.out, FRAME_DATA, &buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads frames until the connection ends: archive bytes to `out`, sizes and progress to
/// `report` as [`AgentLine::Size`] and [`AgentLine::Read`].
pub(super) fn unframe(
    mut input: impl std::io::Read,
    out: &mut impl Write,
    report: &(dyn Fn(AgentLine) + Sync),
) -> std::io::Result<()> {
    let cut = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the archive stream was cut short {what}"),
        )
    };
    let mut head = [0u8; 5];
    let mut payload = Vec::new();
    loop {
        // The end may come only between frames.
        let mut got = 0;
        while got < head.len() {
            match input.read(&mut head[got..])? {
                0 if got == 0 => return Ok(()),
                0 => return Err(cut("in a frame header")),
                n => got += n,
            }
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        // A frame is at most what one write of the 1 MiB buffer makes.
        if ![FRAME_DATA, FRAME_SIZE, FRAME_READ].contains(&head[0]) || len > 16 << 20 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a dockhand transfer stream (frame kind {:#04x}, {len} bytes)", head[0]),
            ));
        }
        payload.resize(len, 0);
        input
            .read_exact(&mut payload)
            .map_err(|e| if e.kind() == std::io::ErrorKind::UnexpectedEof { cut("in a frame") } else { e })?;
        let number = || payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
        match head[0] {
            FRAME_DATA => out.write_all(&payload)?,
            FRAME_SIZE => report(AgentLine::Size { bytes: number().ok_or_else(|| cut("in a size frame"))? }),
            FRAME_READ => {
                report(AgentLine::Read { bytes: number().ok_or_else(|| cut("in a progress frame"))? })
            }
            other => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a dockhand transfer stream (frame kind {other:#04x})"),
                ));
            }
        }
    }
}

/// How long a transfer connection may go without moving a byte before it is given up:
/// the other side is gone or stuck, and waiting would only hold the job to its deadline.
const STALL: Duration = Duration::from_secs(120);

/// A transfer connection whose reads and writes fail, naming the peer, once nothing has
/// moved for [`STALL`].
pub(super) struct NoStall {
    pub(super) stream: std::net::TcpStream,
    peer: String,
}

impl NoStall {
    /// The receiving end of a transfer: it closes at once once it has read the end.
    pub(super) fn receiving(stream: std::net::TcpStream, peer: &str) -> Self {
        // Setting a non-zero timeout on a connected socket cannot fail on Linux; if it
        // did, the job's own deadline still holds.
        let _ = stream.set_read_timeout(Some(STALL));
        let _ = stream.set_write_timeout(Some(STALL));
        Self { stream, peer: peer.to_owned() }
    }

    /// The sending end: closing waits until the peer has acknowledged everything, the FIN
    /// included. A helper exits right after, and its task's network goes with it: without
    /// this, the last segments or the FIN could be lost with the namespace, and the other
    /// side would wait for an end that never comes.
    ///
    /// Only the sender lingers. A receiver's FIN goes to a sender that may be gone already
    /// (it exits once its own FIN is acknowledged, and its namespace with it): nothing
    /// would ever acknowledge it, and a lingering close would hold the receiver, and the
    /// archive's last bytes it still has to pass on, for the whole [`STALL`].
    pub(super) fn sending(stream: std::net::TcpStream, peer: &str) -> Self {
        let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(STALL));
        Self::receiving(stream, peer)
    }

    fn stalled(&self, e: std::io::Error) -> std::io::Error {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("nothing moved on the connection with {} for {} s", self.peer, STALL.as_secs()),
            )
        } else {
            e
        }
    }
}

impl std::io::Read for &NoStall {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&self.stream).read(buf).map_err(|e| self.stalled(e))
    }
}

impl std::io::Write for &NoStall {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&self.stream).write(buf).map_err(|e| self.stalled(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&self.stream).flush()
    }
}

/// The first connection on `port` within `seconds`.
pub(super) fn accept_one(
    port: u16,
    seconds: u64,
) -> Result<(std::net::TcpStream, String), crate::archive::ArchiveError> {
    let what = format!("port {port}");
    let listener = std::net::TcpListener::bind(("0.0.0.0", port)).map_err(io_error(&what))?;
    listener.set_nonblocking(true).map_err(io_error(&what))?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false).map_err(io_error(&what))?;
                return Ok((stream, peer.to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let source = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {seconds} s"),
                );
                return Err(io_error(&what)(source));
            }
            Err(e) => return Err(io_error(&what)(e)),
        }
    }
}

/// A connection to `address`, retried (the other side's task may still be starting, its
/// name not yet in DNS) until `seconds` have passed.
pub(super) fn connect(
    address: &str,
    seconds: u64,
) -> Result<std::net::TcpStream, crate::archive::ArchiveError> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        match std::net::TcpStream::connect(address) {
            Ok(stream) => return Ok(stream),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(io_error(address)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sending_end_of_a_transfer_lingers_on_close() {
        // A receiver's FIN goes to a sender whose namespace may be gone: a lingering close
        // there held the last bytes of a volume move for the whole stall time (CI, twice).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(address).unwrap();
        let (server, _) = listener.accept().unwrap();
        let receiving = NoStall::receiving(client, "test");
        let sending = NoStall::sending(server, "test");
        assert_eq!(rustix::net::sockopt::socket_linger(&receiving.stream).unwrap(), None);
        assert_eq!(rustix::net::sockopt::socket_linger(&sending.stream).unwrap(), Some(STALL));
        assert_eq!(receiving.stream.read_timeout().unwrap(), Some(STALL));
        assert_eq!(sending.stream.write_timeout().unwrap(), Some(STALL));
    }

    #[test]
    fn frames_carry_the_archive_its_size_and_progress_and_a_cut_is_an_error() {
        use std::sync::Mutex;
        let read = std::sync::atomic::AtomicU64::new(0);
        let mut wire = Vec::new();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut framed = Framed::new(&mut wire, 12_345, &read).unwrap();
            framed.last = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
            read.store(777, std::sync::atomic::Ordering::Relaxed);
            for chunk in data.chunks(30_000) {
                framed.write_all(chunk).unwrap();
            }
        }
        let lines = Mutex::new(Vec::new());
        let report = |l: AgentLine| lines.lock().unwrap().push(l);
        let mut out = Vec::new();
        unframe(wire.as_slice(), &mut out, &report).unwrap();
        assert_eq!(out, data);
        assert_eq!(
            *lines.lock().unwrap(),
            [AgentLine::Size { bytes: 12_345 }, AgentLine::Read { bytes: 777 }]
        );
        let err = unframe(&wire[..wire.len() - 10], &mut Vec::new(), &report).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        let err = unframe(&b"hello world"[..], &mut Vec::new(), &report).unwrap_err();
        assert!(err.to_string().contains("not a dockhand transfer stream"), "{err}");
    }
}
