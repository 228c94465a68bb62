//! The recording queue: a bounded channel the request path writes to without waiting,
//! and one writer task that batches flows and audit events into the store.

use std::sync::Arc;
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
}

/// Creates the queue and its writer; the writer drains everything left on shutdown.
pub(crate) fn start(
    store: Arc<dyn Store>,
    cancel: CancellationToken,
    depth: prometheus_client::metrics::gauge::Gauge<i64>,
) -> (ChannelRecorder, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let writer = tokio::spawn(write_loop(store, rx, cancel, depth));
    (ChannelRecorder { tx }, writer)
}

async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Item>,
    cancel: CancellationToken,
    depth: prometheus_client::metrics::gauge::Gauge<i64>,
) {
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut buf, BATCH) => n,
            () = cancel.cancelled() => {
                rx.close();
                while rx.recv_many(&mut buf, BATCH).await > 0 {
                    flush(store.as_ref(), &mut buf).await;
                }
                return;
            }
        };
        if n == 0 {
            return;
        }
        depth.set(i64::try_from(rx.len() + n).unwrap_or(i64::MAX));
        flush(store.as_ref(), &mut buf).await;
        depth.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
    }
}

async fn flush(store: &dyn Store, buf: &mut Vec<Item>) {
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
    for attempt in 0..3u32 {
        match store.record(flows.clone(), events.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %excalibur_core::ErrorChain(&e), attempt, "writing flows and audit events failed");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
            }
        }
    }
    tracing::error!(
        flows = flows.len(),
        events = events.len(),
        "records lost after retries"
    );
}
