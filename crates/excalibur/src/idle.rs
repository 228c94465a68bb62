//! [`IdleIo`]: closes a connection that makes no progress in either direction for a
//! while (slow or stalled clients, idle keep-alives, abandoned tunnels), and holds the
//! connection's budget slots for as long as its socket lives.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An I/O wrapper whose reads fail with `TimedOut` after `limit` without any progress.
#[derive(Debug)]
pub(crate) struct IdleIo<I> {
    inner: I,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    /// Released when the socket is dropped, wherever it went: a CONNECT tunnel takes the
    /// socket past the HTTP connection that admitted it.
    lease: Option<Box<dyn std::fmt::Debug + Send>>,
}

impl<I> IdleIo<I> {
    pub(crate) fn new(inner: I, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            lease: None,
        }
    }

    /// Holds `lease` (the connection's budget slots) until the socket is dropped.
    pub(crate) fn hold(&mut self, lease: impl std::fmt::Debug + Send + 'static) {
        self.lease = Some(Box::new(lease));
    }

    fn progressed(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.limit);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }

    /// A write's outcome: bytes written are progress; a write still blocked after the
    /// limit fails.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle too long",
            ))),
            other => other,
        }
    }

    pub(crate) fn get_ref(&self) -> &I {
        &self.inner
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(120);

    /// A read that is still waiting after `after` of silence (`None`), or its outcome.
    async fn read_after(
        io: &mut IdleIo<tokio::io::DuplexStream>,
        after: Duration,
    ) -> Option<io::Result<usize>> {
        let mut buf = [0u8; 16];
        tokio::time::timeout(after, io.read(&mut buf)).await.ok()
    }

    #[tokio::test(start_paused = true)]
    async fn silence_in_both_directions_ends_a_connection_and_progress_resets_it() {
        let (ours, mut peer) = tokio::io::duplex(64);
        let mut io = IdleIo::new(ours, LIMIT);
        // Just under the limit: still open.
        assert!(
            read_after(&mut io, LIMIT - Duration::from_secs(1))
                .await
                .is_none()
        );
        // Progress (a byte from the peer) starts the clock again.
        peer.write_all(b"x").await.unwrap();
        assert!(matches!(
            read_after(&mut io, Duration::from_secs(1)).await,
            Some(Ok(1))
        ));
        assert!(
            read_after(&mut io, LIMIT - Duration::from_secs(1))
                .await
                .is_none()
        );
        // Our own writes count as progress too.
        io.write_all(b"y").await.unwrap();
        assert!(
            read_after(&mut io, LIMIT - Duration::from_secs(1))
                .await
                .is_none()
        );
        // Then a full limit of silence: the read fails with TimedOut.
        let outcome = read_after(&mut io, LIMIT + Duration::from_secs(1)).await;
        let Some(Err(e)) = outcome else {
            panic!("still open after the limit: {outcome:?}")
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
