//! Serving the requests inside an intercepted tunnel, and parking it while it is idle.
//!
//! An HTTP/1 tunnel that has started no request for [`PARK_AFTER`] gives its HTTP state
//! back: hyper's read and write buffers, the slot of the request in flight, the cached
//! headers. The connection then holds only its TLS session and its socket, and waits for
//! the workload's next byte with no buffer of its own ([`ReadAhead`]). That byte brings
//! a new HTTP/1 connection state over the same TLS session, and nothing read is lost: the
//! bytes hyper had read and not yet parsed come back first ([`Rewound`]).
//!
//! Parking is invisible to the workload. It is only asked for when no request is being
//! served (so no response head is written with `Connection: close`), and a response body
//! still streaming when it is asked for finishes first. A parked tunnel is closed when
//! the workload sends nothing for the header read timeout, as hyper closes an idle one.
//! HTTP/2 tunnels (ALPN `h2`) are served as they are: their state is per connection and
//! shared by streams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio_util::sync::CancellationToken;

/// A tunnel that has started no request for this long is parked.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(50);

/// Time a closing tunnel gives its last bytes and close_notify.
const CLOSE: Duration = Duration::from_secs(1);

/// Time a stopping gateway gives a tunnel's request in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// What a tunnel's service and its I/O count for the parking decision: requests
/// started, requests whose response is not ready yet, and whether the workload sent
/// bytes since the last response was ready (the start of a head hyper holds).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    in_flight: AtomicU64,
    input: AtomicBool,
}

impl Activity {
    /// Counts a request from its start until the guard drops (its response is ready).
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// A request is being served, or a head may be partly read: parking now would
    /// answer it with `Connection: close`.
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0 || self.input.load(Ordering::Relaxed)
    }
}

/// A request being served (see [`Activity::start`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.input.store(false, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How one tunnel is served.
pub(crate) struct Http1Tunnel {
    pub(crate) builder: http1::Builder,
    pub(crate) activity: Arc<Activity>,
    pub(crate) cancel: CancellationToken,
    /// How long a parked tunnel waits for the workload's next byte.
    pub(crate) parked_limit: Duration,
    /// Counts the tunnels parked now.
    pub(crate) parked: prometheus_client::metrics::gauge::Gauge,
}

impl Http1Tunnel {
    /// Serves HTTP/1 on `io` until the workload closes it, it idles out, or the gateway
    /// stops; parks it whenever it idles for [`PARK_AFTER`].
    pub(crate) async fn serve<T, S, B>(self, mut io: Rewound<T>, service: S)
    where
        T: Parkable,
        S: HttpService<Incoming, ResBody = B> + Clone + Unpin,
        S::Future: Unpin,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        loop {
            // Boxed: a parked tunnel's task holds none of a round's state.
            let Some(parts) = Box::pin(self.serve_until_idle(io, service.clone())).await else {
                return;
            };
            io = parts;
            if io.has_prefix() {
                continue;
            }
            self.parked.inc();
            let woke = tokio::select! {
                r = tokio::time::timeout(self.parked_limit, std::future::poll_fn(|cx| io.inner.poll_wake(cx))) => r,
                () = self.cancel.cancelled() => Ok(Ok(false)),
            };
            self.parked.dec();
            match woke {
                Ok(Ok(true)) => {}
                Ok(Ok(false) | Err(_)) => return,
                Err(_) => {
                    let _ = tokio::time::timeout(CLOSE, io.shutdown()).await;
                    return;
                }
            }
        }
    }

    /// One HTTP/1 connection state over `io`. `Some(io)` when it was parked (with what
    /// hyper read and did not parse in front), `None` when the tunnel is done.
    async fn serve_until_idle<T, S, B>(&self, io: Rewound<T>, service: S) -> Option<Rewound<T>>
    where
        T: Parkable,
        S: HttpService<Incoming, ResBody = B> + Unpin,
        S::Future: Unpin,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // Boxed, so that a parked tunnel's task holds none of it.
        let mut conn = Box::new(self.builder.serve_connection(TokioIo::new(io), service));
        let window = tokio::time::sleep(PARK_AFTER);
        tokio::pin!(window);
        let mut seen = self.activity.started();
        let mut parking = false;
        loop {
            tokio::select! {
                r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                    if r.is_err() {
                        // A refused head (431, 400): its answer and close_notify still go
                        // out before the socket closes.
                        let mut io = conn.into_parts().io.into_inner();
                        let _ = tokio::time::timeout(CLOSE, io.shutdown()).await;
                        return None;
                    }
                    break;
                }
                () = &mut window, if !parking => {
                    let started = self.activity.started();
                    if started == seen && !self.activity.busy() {
                        Pin::new(&mut *conn).graceful_shutdown();
                        parking = true;
                    } else {
                        seen = started;
                        window.as_mut().reset(tokio::time::Instant::now() + PARK_AFTER);
                    }
                }
                () = self.cancel.cancelled() => {
                    Pin::new(&mut *conn).graceful_shutdown();
                    let _ = tokio::time::timeout(
                        DRAIN,
                        std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)),
                    )
                    .await;
                    return None;
                }
            }
        }
        let parts = conn.into_parts();
        let mut io = parts.io.into_inner();
        if !parking {
            // The workload closed, or a response ended the connection: close the TLS
            // session properly (close_notify) before the socket.
            let _ = tokio::time::timeout(CLOSE, io.shutdown()).await;
            return None;
        }
        // An empty read buffer still holds hyper's allocation: only bytes come back.
        if !parts.read_buf.is_empty() {
            io.rewind(parts.read_buf);
        }
        Some(io)
    }
}

/// An I/O a parked tunnel can wait on without a read buffer.
pub(crate) trait Parkable: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready with `true` once the peer has sent something (kept to be read next), with
    /// `false` at its end.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>>;
}

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Parkable
    for tokio_rustls::server::TlsStream<ReadAhead<I>>
{
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        // Below the TLS session: rustls's own read would first size its buffer.
        self.get_mut().0.poll_fill(cx)
    }
}

/// A raw I/O that can read one byte ahead and hold it, to learn that the peer sent
/// something without a buffer.
#[derive(Debug)]
pub(crate) struct ReadAhead<I> {
    inner: I,
    held: Option<u8>,
}

impl<I> ReadAhead<I> {
    /// Wraps `inner`; nothing is held.
    pub(crate) fn new(inner: I) -> Self {
        Self { inner, held: None }
    }
}

impl<I: AsyncRead + Unpin> ReadAhead<I> {
    /// Reads one byte and holds it: `true` when one is held, `false` at the end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.held.is_some() {
            return Poll::Ready(Ok(true));
        }
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
        if buf.filled().is_empty() {
            return Poll::Ready(Ok(false));
        }
        self.held = Some(byte[0]);
        Poll::Ready(Ok(true))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ReadAhead<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(byte) = self.held else {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        buf.put_slice(&[byte]);
        self.held = None;
        // Whatever else is there already comes along; the held byte is enough to return.
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if buf.filled().is_empty() => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ReadAhead<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

/// A tunnel's plaintext I/O, with bytes already read from it put back in front, that
/// tells its [`Activity`] when the workload sent something. The I/O (a TLS session, over
/// a kilobyte) is boxed, so that moving it between HTTP/1 connection states and the
/// parked wait copies a pointer, and no future holds it inline.
#[derive(Debug)]
pub(crate) struct Rewound<T> {
    prefix: Bytes,
    inner: Box<T>,
    activity: Arc<Activity>,
}

impl<T> Rewound<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            prefix: Bytes::new(),
            inner: Box::new(inner),
            activity,
        }
    }

    fn rewind(&mut self, bytes: Bytes) {
        debug_assert!(self.prefix.is_empty(), "a rewind over unread bytes");
        self.prefix = bytes;
    }

    fn has_prefix(&self) -> bool {
        !self.prefix.is_empty()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewound<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            let before = buf.filled().len();
            let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.activity.input.store(true, Ordering::Relaxed);
            }
            return r;
        }
        let n = self.prefix.len().min(buf.remaining());
        let front = self.prefix.split_to(n);
        buf.put_slice(&front);
        self.activity.input.store(true, Ordering::Relaxed);
        if self.prefix.is_empty() {
            // Release the buffer hyper read into.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewound<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// A boxed response future: hyper can take a tunnel's connection state back only when
/// the service's future is `Unpin`.
pub(crate) type Responding<R> =
    Pin<Box<dyn Future<Output = Result<R, std::convert::Infallible>> + Send>>;

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn a_held_byte_is_read_first_and_the_end_is_seen() {
        let (ours, mut peer) = tokio::io::duplex(64);
        let mut io = ReadAhead::new(ours);
        peer.write_all(b"abc").await.unwrap();
        assert!(std::future::poll_fn(|cx| io.poll_fill(cx)).await.unwrap());
        // Waking twice holds the same byte: nothing is read past it.
        assert!(std::future::poll_fn(|cx| io.poll_fill(cx)).await.unwrap());
        let mut buf = [0u8; 8];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"abc");
        drop(peer);
        assert!(!std::future::poll_fn(|cx| io.poll_fill(cx)).await.unwrap());
    }

    #[tokio::test]
    async fn rewound_bytes_come_first_and_input_is_noticed() {
        let (ours, mut peer) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        let mut io = Rewound::new(ours, Arc::clone(&activity));
        io.rewind(Bytes::from_static(b"GET / HT"));
        peer.write_all(b"TP/1.1\r\n").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4];
        while got.len() < 16 {
            let n = io.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"GET / HTTP/1.1\r\n");
        assert!(activity.busy(), "bytes read count as a head begun");
        // A response made ready ends it.
        drop(activity.start());
        assert!(!activity.busy());
    }
}
