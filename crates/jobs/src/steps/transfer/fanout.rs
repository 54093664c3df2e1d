//! One archive written to several targets as it streams (`backup.target=near,far`): each
//! chunk goes to every writer still standing before the next is taken, so the slowest
//! target sets the pace and nothing is spooled. A writer that fails is set aside with its
//! error; the others go on. Only when every writer has failed does the copy stop.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;

/// Several writers behind one [`AsyncWrite`].
pub(crate) struct Fanout<W> {
    outs: Vec<Out<W>>,
    /// A chunk accepted from the caller that not every writer has taken yet.
    pending: Vec<u8>,
}

struct Out<W> {
    writer: W,
    /// How much of `pending` it has taken.
    taken: usize,
    failed: Option<std::io::Error>,
}

impl<W: AsyncWrite + Unpin> Fanout<W> {
    pub(crate) fn new(writers: Vec<W>) -> Self {
        let outs = writers.into_iter().map(|writer| Out { writer, taken: 0, failed: None }).collect();
        Self { outs, pending: Vec::new() }
    }

    /// Waits until every writer still standing took what was accepted; an error when none
    /// is left.
    pub(crate) async fn settle(&mut self) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.drive(cx)).await
    }

    /// The writers, each with its error if it failed.
    pub(crate) fn into_parts(self) -> Vec<(W, Option<std::io::Error>)> {
        self.outs.into_iter().map(|o| (o.writer, o.failed)).collect()
    }

    /// Gives the pending chunk to every writer still standing; ready once all took it.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut waiting = false;
        for out in self.outs.iter_mut().filter(|o| o.failed.is_none()) {
            while out.taken < self.pending.len() {
                match Pin::new(&mut out.writer).poll_write(cx, &self.pending[out.taken..]) {
                    Poll::Ready(Ok(0)) => {
                        out.failed = Some(std::io::ErrorKind::WriteZero.into());
                        break;
                    }
                    Poll::Ready(Ok(n)) => out.taken += n,
                    Poll::Ready(Err(e)) => {
                        out.failed = Some(e);
                        break;
                    }
                    Poll::Pending => {
                        // Its waker is registered; the others go on meanwhile.
                        waiting = true;
                        break;
                    }
                }
            }
        }
        if waiting {
            return Poll::Pending;
        }
        self.pending.clear();
        for out in &mut self.outs {
            out.taken = 0;
        }
        self.standing()
    }

    /// An error once no writer is left.
    fn standing(&self) -> Poll<std::io::Result<()>> {
        if self.outs.iter().all(|o| o.failed.is_some()) {
            return Poll::Ready(Err(std::io::Error::other("every target refused the archive")));
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Fanout<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.drive(cx))?;
        self.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drive(cx))?;
        for out in self.outs.iter_mut().filter(|o| o.failed.is_none()) {
            if let Err(e) = ready!(Pin::new(&mut out.writer).poll_flush(cx)) {
                out.failed = Some(e);
            }
        }
        self.standing()
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        for out in self.outs.iter_mut().filter(|o| o.failed.is_none()) {
            if let Err(e) = ready!(Pin::new(&mut out.writer).poll_shutdown(cx)) {
                out.failed = Some(e);
            }
        }
        self.standing()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A writer that takes at most `step` bytes a call, says Pending every other call, and
    /// fails after `fail_after` bytes.
    struct Slow {
        got: Vec<u8>,
        step: usize,
        fail_after: usize,
        turn: bool,
    }

    impl AsyncWrite for Slow {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.turn = !self.turn;
            if self.turn {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.got.len() >= self.fail_after {
                return Poll::Ready(Err(std::io::Error::other("disk full")));
            }
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn slow(step: usize, fail_after: usize) -> Slow {
        Slow { got: Vec::new(), step, fail_after, turn: false }
    }

    /// Every writer gets every byte in order, whatever each takes at a time; one that fails
    /// is set aside with its error and the others get the whole.
    #[tokio::test]
    async fn every_writer_gets_every_byte_and_a_failed_one_is_set_aside() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut fan = Fanout::new(vec![slow(7, usize::MAX), slow(4096, usize::MAX), slow(1000, 30_000)]);
        for chunk in data.chunks(3000) {
            fan.write_all(chunk).await.unwrap();
        }
        fan.shutdown().await.unwrap();
        let parts = fan.into_parts();
        assert_eq!(parts[0].0.got, data);
        assert_eq!(parts[1].0.got, data);
        assert!(parts[0].1.is_none() && parts[1].1.is_none());
        assert_eq!(parts[2].1.as_ref().map(ToString::to_string).as_deref(), Some("disk full"));
        assert!(parts[2].0.got.len() < data.len());
    }

    /// When the last writer fails, the copy is told.
    #[tokio::test]
    async fn the_copy_stops_when_every_writer_failed() {
        let mut fan = Fanout::new(vec![slow(100, 500), slow(100, 800)]);
        let mut result = Ok(());
        for chunk in [[1u8; 300]; 10] {
            result = fan.write_all(&chunk).await;
            if result.is_err() {
                break;
            }
        }
        let err = result.unwrap_err().to_string();
        assert!(err.contains("every target refused"), "{err}");
        assert!(fan.into_parts().iter().all(|(_, e)| e.is_some()));
    }
}
