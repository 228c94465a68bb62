//! Body plumbing: the boxed body type, a body wrapper that rewrites (substitute or
//! scrub) as bytes stream, counts them for the flow record, and enforces a size cap.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use excalibur_core::api::Flow;
use excalibur_core::record::Recorder;
use excalibur_mediation::StreamRewriter;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};

/// Boxed error type of bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type every proxy and API response uses.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A hyper body, boxed.
pub fn incoming(b: hyper::body::Incoming) -> ProxyBody {
    b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()
}

/// Reads a whole body of at most `limit` bytes (trailers are dropped). `None` when it
/// is larger or fails.
pub async fn collect_limited(mut body: ProxyBody, limit: usize) -> Option<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        if out.len() + data.len() > limit {
            return None;
        }
        out.extend_from_slice(&data);
    }
    Some(out.freeze())
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The body exceeded the configured cap for a rewritten body.
#[derive(Debug, thiserror::Error)]
#[error("body exceeds the {0}-byte limit for substitution")]
pub struct BodyTooLarge(pub u64);

/// Why the workload's request body was cut off. The transport error that ends the
/// upstream request (an HTTP/2 stream reset) need not carry the cause, so the flow
/// keeps it for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFault {
    /// Past `max_substitute_body_bytes`.
    TooLarge,
    /// A placeholder in the request trailers.
    PlaceholderInTrailers,
}

/// A flow being recorded: emitted exactly once, when the last body referencing it is
/// dropped (finished, failed or cancelled).
#[derive(Debug)]
pub struct FlowState {
    flow: Mutex<Option<Flow>>,
    fault: std::sync::OnceLock<BodyFault>,
    metrics: Option<(crate::metrics::ProxyMetrics, &'static str)>,
    up: AtomicU64,
    down: AtomicU64,
    recorder: Arc<dyn Recorder>,
}

impl FlowState {
    /// Starts recording `flow`.
    pub fn new(flow: Flow, recorder: Arc<dyn Recorder>) -> Arc<Self> {
        Self::with_metrics(flow, recorder, None)
    }

    /// Starts recording `flow`, also counting it in `metrics` under `principal_kind`.
    pub fn with_metrics(
        flow: Flow,
        recorder: Arc<dyn Recorder>,
        metrics: Option<(crate::metrics::ProxyMetrics, &'static str)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            flow: Mutex::new(Some(flow)),
            fault: std::sync::OnceLock::new(),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            recorder,
        })
    }

    /// The flow as it stands (for its write-ahead record).
    pub fn current(&self) -> Option<Flow> {
        self.flow.lock().ok().and_then(|f| f.clone())
    }

    /// Records why the request body failed (the first reason wins).
    pub(crate) fn body_failed(&self, fault: BodyFault) {
        let _ = self.fault.set(fault);
    }

    /// Why the request body failed, if it did.
    pub(crate) fn body_fault(&self) -> Option<BodyFault> {
        self.fault.get().copied()
    }

    /// Updates the flow in place (status, latency, placeholders).
    pub fn update(&self, f: impl FnOnce(&mut Flow)) {
        if let Ok(mut guard) = self.flow.lock()
            && let Some(flow) = guard.as_mut()
        {
            f(flow);
        }
    }
}

impl FlowState {
    /// Records the flow, once: at the end of its response body, or when the last
    /// reference goes. Updates after it change nothing.
    pub(crate) fn complete(&self) {
        let flow = self.flow.lock().ok().and_then(|mut f| f.take());
        if let Some(mut flow) = flow {
            if let Some((m, kind)) = &self.metrics {
                m.request(&flow.decision, kind);
            }
            flow.bytes_up = self.up.load(Ordering::Relaxed);
            flow.bytes_down = self.down.load(Ordering::Relaxed);
            if self.recorder.flow(flow).is_err() {
                tracing::error!("flow dropped: the audit queue is full");
            }
        }
    }
}

impl Drop for FlowState {
    fn drop(&mut self) {
        self.complete();
    }
}

/// Which way bytes flow, for counting.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// Workload to upstream.
    Up,
    /// Upstream to workload.
    Down,
}

/// What happens to a body's trailer fields.
#[derive(Debug, Default)]
pub enum Trailers {
    /// Forwarded as they are (nothing secret can be in them).
    #[default]
    Pass,
    /// Response trailers: scrubbed like headers (names and values).
    Scrub(crate::scrub::Scrubber),
    /// Request trailers: a placeholder in them (any form) fails the body; trailers
    /// are never substituted.
    Refuse(Arc<excalibur_mediation::Mediator>),
}

/// A request trailer carried a placeholder: it is never sent on.
#[derive(Debug, thiserror::Error)]
#[error("a placeholder in the request trailers is not allowed")]
pub struct PlaceholderInTrailers;

/// Wraps a body: streaming rewrites (applied in order), byte counting, an optional
/// size cap, and what to do with trailers.
#[derive(Debug)]
pub struct Mediated<B> {
    inner: B,
    rewriters: Vec<StreamRewriter>,
    trailers: Trailers,
    flow: Option<Arc<FlowState>>,
    direction: Direction,
    limit: Option<u64>,
    seen: u64,
    /// Final bytes not returned yet: a rewritten chunk may come out as several pieces
    /// (slices of it where nothing matched).
    queued: std::collections::VecDeque<Bytes>,
    pending_trailers: Option<http::HeaderMap>,
    finished: bool,
}

impl<B> Mediated<B> {
    /// Wraps `inner`.
    pub fn new(
        inner: B,
        rewriter: Option<StreamRewriter>,
        flow: Option<Arc<FlowState>>,
        direction: Direction,
        limit: Option<u64>,
    ) -> Self {
        Self::chain(
            inner,
            rewriter.into_iter().collect(),
            Trailers::Pass,
            flow,
            direction,
            limit,
        )
    }

    /// Wraps `inner` with every rewriter of `rewriters`, in order, and a trailer rule.
    pub fn chain(
        inner: B,
        rewriters: Vec<StreamRewriter>,
        trailers: Trailers,
        flow: Option<Arc<FlowState>>,
        direction: Direction,
        limit: Option<u64>,
    ) -> Self {
        Self {
            inner,
            rewriters,
            trailers,
            flow,
            direction,
            limit,
            seen: 0,
            queued: std::collections::VecDeque::new(),
            pending_trailers: None,
            finished: false,
        }
    }

    fn count(&self, n: usize) {
        if let Some(flow) = &self.flow {
            let counter = match self.direction {
                Direction::Up => &flow.up,
                Direction::Down => &flow.down,
            };
            counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }

    /// Runs `data` through every rewriter, in order, and queues what is final; the
    /// number of bytes queued.
    fn push(&mut self, data: Bytes) -> usize {
        let mut pieces = vec![data];
        for r in &mut self.rewriters {
            let mut next = Vec::with_capacity(pieces.len() + 1);
            for piece in pieces {
                r.push_bytes(piece, &mut next);
            }
            pieces = next;
        }
        self.queue(pieces)
    }

    /// Flushes every rewriter, each one's rest going through the ones after it, and
    /// queues it; the number of bytes queued.
    fn finish(&mut self) -> usize {
        let mut pieces: Vec<Bytes> = Vec::new();
        for r in &mut self.rewriters {
            let mut next = Vec::with_capacity(pieces.len() + 1);
            for piece in pieces {
                r.push_bytes(piece, &mut next);
            }
            let rest = r.finish();
            if !rest.is_empty() {
                next.push(Bytes::from(rest));
            }
            pieces = next;
        }
        self.queue(pieces)
    }

    fn queue(&mut self, pieces: Vec<Bytes>) -> usize {
        pieces.into_iter().map(|piece| self.queue_one(piece)).sum()
    }

    /// Queues `piece` unless it is empty; its length.
    fn queue_one(&mut self, piece: Bytes) -> usize {
        let n = piece.len();
        if n > 0 {
            self.queued.push_back(piece);
        }
        n
    }

    /// The response body has given its last byte: its flow is recorded now, before
    /// those bytes reach the workload, so a read the workload makes once it has the
    /// whole response lists the flow (not only when the body is dropped, later).
    fn ended(&self) {
        if let (Direction::Down, Some(flow)) = (self.direction, &self.flow) {
            flow.complete();
        }
    }

    /// Keeps why a request body failed on its flow.
    fn fault(&self, fault: BodyFault) {
        if let (Direction::Up, Some(flow)) = (self.direction, &self.flow) {
            flow.body_failed(fault);
        }
    }

    /// Applies the trailer rule; `Err` fails the body.
    fn trailers(&self, mut trailers: http::HeaderMap) -> Result<http::HeaderMap, BoxError> {
        match &self.trailers {
            Trailers::Pass => Ok(trailers),
            Trailers::Scrub(s) => {
                s.headers(&mut trailers);
                Ok(trailers)
            }
            Trailers::Refuse(m) => {
                let mut found = std::collections::BTreeSet::new();
                for (name, value) in &trailers {
                    for bytes in [name.as_str().as_bytes(), value.as_bytes()] {
                        m.find(bytes, &mut found);
                        m.find_encoded(bytes, &mut found);
                    }
                }
                if found.is_empty() {
                    Ok(trailers)
                } else {
                    self.fault(BodyFault::PlaceholderInTrailers);
                    Err(Box::new(PlaceholderInTrailers))
                }
            }
        }
    }
}

impl<B> Body for Mediated<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(piece) = this.queued.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            if let Some(trailers) = this.pending_trailers.take() {
                this.finished = true;
                this.ended();
                return Poll::Ready(Some(this.trailers(trailers).map(Frame::trailers)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.seen += u64::try_from(data.len()).unwrap_or(u64::MAX);
                        if let Some(limit) = this.limit
                            && this.seen > limit
                        {
                            this.fault(BodyFault::TooLarge);
                            return Poll::Ready(Some(Err(Box::new(BodyTooLarge(limit)))));
                        }
                        let mut queued = if this.rewriters.is_empty() {
                            this.queue_one(data)
                        } else {
                            this.push(data)
                        };
                        // The upstream's last bytes (no trailers follow): flushed and
                        // recorded before they leave.
                        let last =
                            matches!(this.direction, Direction::Down) && this.inner.is_end_stream();
                        if last {
                            queued += this.finish();
                            this.finished = true;
                        }
                        this.count(queued);
                        if last {
                            this.ended();
                        }
                    }
                    Err(frame) => {
                        let Ok(trailers) = frame.into_trailers() else {
                            continue;
                        };
                        let rest = this.finish();
                        if rest == 0 {
                            this.finished = true;
                            this.ended();
                            return Poll::Ready(Some(this.trailers(trailers).map(Frame::trailers)));
                        }
                        this.pending_trailers = Some(trailers);
                        this.count(rest);
                    }
                },
                Poll::Ready(None) => {
                    this.finished = true;
                    let rest = this.finish();
                    this.count(rest);
                    this.ended();
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.queued.is_empty() && self.pending_trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.rewriters.is_empty() {
            self.inner.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

/// Where a workload's request body waits when whoever read it let go early (the
/// upstream answered before the upload ended, or the handler refused without reading):
/// it is drained, bounded, once the response to the workload has been sent, whichever
/// of the two lets go last.
#[derive(Debug, Clone)]
pub struct Parking(Arc<Mutex<ParkingState>>);

#[derive(Debug)]
struct ParkingState {
    body: Option<hyper::body::Incoming>,
    response_sent: bool,
    tasks: tokio_util::task::TaskTracker,
}

impl Parking {
    /// An empty slot; drains run on `tasks`.
    pub fn new(tasks: tokio_util::task::TaskTracker) -> Self {
        Self(Arc::new(Mutex::new(ParkingState {
            body: None,
            response_sent: false,
            tasks,
        })))
    }

    /// A slot already holding `body` (a refusal that never reads it).
    pub fn with(body: hyper::body::Incoming, tasks: tokio_util::task::TaskTracker) -> Self {
        let p = Self::new(tasks);
        p.park(body);
        p
    }

    /// The request body let go: drained now if the response is out, else kept.
    fn park(&self, body: hyper::body::Incoming) {
        if let Ok(mut s) = self.0.lock() {
            if s.response_sent {
                drain_on(&s.tasks, body);
            } else {
                s.body = Some(body);
            }
        }
    }

    /// The response is out: drain what waits, and what comes later.
    fn response_sent(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.response_sent = true;
            if let Some(body) = s.body.take() {
                drain_on(&s.tasks, body);
            }
        }
    }
}

fn drain_on(tasks: &tokio_util::task::TaskTracker, body: hyper::body::Incoming) {
    if tokio::runtime::Handle::try_current().is_ok() {
        tasks.spawn(drain(body));
    }
}

/// The workload's request body on its way upstream: when dropped before its end (an
/// early upstream answer), it goes to its [`Parking`] instead of being dropped, so an
/// HTTP/2 stream is not reset before the workload has the answer.
#[derive(Debug)]
pub struct Parked {
    inner: Option<hyper::body::Incoming>,
    parking: Parking,
}

impl Parked {
    /// `body`, parked in `parking` if dropped unfinished.
    pub fn new(body: hyper::body::Incoming, parking: &Parking) -> Self {
        Self {
            inner: Some(body),
            parking: parking.clone(),
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take()
            && !body.is_end_stream()
        {
            self.parking.park(body);
        }
    }
}

impl Body for Parked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// A response body that, once sent (dropped), lets its [`Parking`] drain the request
/// body, bounded, in the background: the stream then ends normally instead of with a
/// reset some clients report as an empty reply; past the bound it is dropped, and HTTP/2
/// resets it with NO_ERROR (RFC 9113 §8.1), the response already complete.
#[derive(Debug)]
pub struct Held<B> {
    inner: B,
    parking: Parking,
}

impl<B> Held<B> {
    /// `inner`, releasing `parking` when it is done.
    pub fn new(inner: B, parking: Parking) -> Self {
        Self { inner, parking }
    }
}

impl<B> Drop for Held<B> {
    fn drop(&mut self) {
        self.parking.response_sent();
    }
}

/// Reads and discards a request body, at most 8 MiB and 10 s: the peer still sending
/// finishes, so the answer it is owed is not lost to a reset.
pub async fn drain<B: Body<Data = Bytes> + Unpin>(mut body: B) {
    const LIMIT: usize = 8 << 20;
    let mut seen = 0;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > LIMIT {
                break;
            }
        }
    })
    .await;
}

impl<B> Body for Held<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body re-framed as it streams (aws-chunked re-signing, chunk encoding, event
/// re-signing). A framing error fails the body: the upstream never sees a valid end.
pub struct Reframed<B> {
    inner: B,
    reframe: Box<dyn excalibur_mediation::sigv4::Reframe>,
    finished: bool,
}

impl<B> std::fmt::Debug for Reframed<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reframed")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<B> Reframed<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, reframe: Box<dyn excalibur_mediation::sigv4::Reframe>) -> Self {
        Self {
            inner,
            reframe,
            finished: false,
        }
    }
}

impl<B> Body for Reframed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => {
                    // HTTP trailers have no place in a re-framed body; data only.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if let Err(e) = this.reframe.push(&data, &mut out) {
                        this.finished = true;
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    if let Err(e) = this.reframe.finish(&mut out) {
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}
