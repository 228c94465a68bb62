//! The recording queue: a bounded channel the request path writes to without waiting,
//! and one writer task that batches flows and audit events into the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use excalibur_core::api::Flow;
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::record::{QueueFull, Recorder};
use excalibur_store::Store;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Queue capacity: records beyond this make the proxy fail closed (503).
const QUEUE_CAPACITY: usize = 65_536;
/// Most records written in one transaction.
const BATCH: usize = 1024;

#[derive(Debug)]
enum Item {
    Event(NewEvent),
    Flow(Flow),
}

/// The request path's end of the queue.
#[derive(Debug, Clone)]
pub(crate) struct ChannelRecorder {
    tx: mpsc::Sender<Item>,
    /// Set by the writer while the store refuses records.
    failing: Arc<AtomicBool>,
}

impl Recorder for ChannelRecorder {
    fn event(&self, event: NewEvent) -> Result<(), QueueFull> {
        self.tx.try_send(Item::Event(event)).map_err(|_| QueueFull)
    }

    fn flow(&self, flow: Flow) -> Result<(), QueueFull> {
        self.tx.try_send(Item::Flow(flow)).map_err(|_| QueueFull)
    }

    fn has_capacity(&self) -> bool {
        // A request writes at most a handful of records.
        self.tx.capacity() > 8
    }

    fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

impl ChannelRecorder {
    /// False once the writer task has ended (at shutdown, or after a panic): nothing
    /// queued from then on is written.
    pub(crate) fn writer_alive(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// Creates the queue and its writer; the writer drains everything left on shutdown.
pub(crate) fn start(
    store: Arc<dyn Store>,
    cancel: CancellationToken,
    depth: prometheus_client::metrics::gauge::Gauge<i64>,
) -> (ChannelRecorder, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let failing = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_loop(store, rx, cancel, depth, Arc::clone(&failing)));
    (ChannelRecorder { tx, failing }, writer)
}

async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Item>,
    cancel: CancellationToken,
    depth: prometheus_client::metrics::gauge::Gauge<i64>,
    failing: Arc<AtomicBool>,
) {
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut buf, BATCH) => n,
            () = cancel.cancelled() => {
                rx.close();
                while rx.recv_many(&mut buf, BATCH).await > 0 {
                    flush(store.as_ref(), &mut buf, &failing, &cancel).await;
                }
                return;
            }
        };
        if n == 0 {
            return;
        }
        depth.set(i64::try_from(rx.len() + n).unwrap_or(i64::MAX));
        flush(store.as_ref(), &mut buf, &failing, &cancel).await;
        depth.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
    }
}

/// How long records are retried at shutdown before the process gives up on them.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(10);

/// Writes one batch. While the store refuses it the batch is kept and retried (backoff
/// up to 1 s) and `failing` is set, so the request path fails closed instead of
/// redeeming with nothing recorded; the queue behind it is bounded. Only at shutdown
/// (`cancel`), after [`SHUTDOWN_RETRY`], is a batch lost (and said so).
async fn flush(
    store: &dyn Store,
    buf: &mut Vec<Item>,
    failing: &AtomicBool,
    cancel: &CancellationToken,
) {
    let mut flows = Vec::new();
    let mut events = Vec::new();
    for item in buf.drain(..) {
        match item {
            Item::Event(e) => events.push(e),
            Item::Flow(f) => {
                events.push(NewEvent::new(
                    EventType::FlowRecorded,
                    f.principal.clone(),
                    json!({"flow_id": f.id, "method": f.method, "host": f.host, "path": f.path, "status": f.status,
                           "decision": f.decision, "reason": f.reason, "placeholders": f.placeholders,
                           "bytes_up": f.bytes_up, "bytes_down": f.bytes_down, "latency_ms": f.latency_ms}),
                ));
                flows.push(f);
            }
        }
    }
    let mut cancelled_at: Option<std::time::Instant> = None;
    let mut attempt = 0u32;
    loop {
        match store.record(flows.clone(), events.clone()).await {
            Ok(()) => {
                if failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!(attempts = attempt + 1, "records are written again");
                }
                return;
            }
            Err(e) => {
                if !failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %excalibur_core::ErrorChain(&e), "writing flows and audit events failed; redeeming nothing until they are written");
                }
                if cancel.is_cancelled() {
                    cancelled_at.get_or_insert_with(std::time::Instant::now);
                }
                if cancelled_at.is_some_and(|at| at.elapsed() > SHUTDOWN_RETRY) {
                    tracing::error!(
                        flows = flows.len(),
                        events = events.len(),
                        "records lost at shutdown: the store refused them"
                    );
                    return;
                }
                attempt += 1;
                let wait = 50 * u64::from(attempt.min(20));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
}
