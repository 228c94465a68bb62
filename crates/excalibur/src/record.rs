//! The recording queue: a bounded channel the request path writes to without waiting,
//! and one writer task that batches flows and audit events into the store. With
//! `[audit] durability = "durable"` (the default) a request about to carry a secret
//! first queues its write-ahead flow and waits for the transaction that commits it:
//! every intent queued meanwhile rides in the same transaction (group commit), so the
//! cost of a commit is shared by the concurrent requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use excalibur_core::api::Flow;
use excalibur_core::audit::NewEvent;
use excalibur_core::record::{Durable, NotDurable, QueueFull, Recorder};
use excalibur_store::{RecordBatch, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Queue capacity: records beyond this make the proxy fail closed (503).
const QUEUE_CAPACITY: usize = 65_536;
/// Most records written in one transaction.
const BATCH: usize = 1024;
/// How long records that nobody waits for wait for company before they are written.
/// It bounds how late a flow shows in the API, and what a crash can lose in batched
/// mode beyond what is queued.
const LINGER: Duration = Duration::from_millis(10);

#[derive(Debug)]
enum Item {
    Event(NewEvent),
    Flow(Flow),
    /// A write-ahead flow, and who waits for its commit.
    Intent(Flow, tokio::sync::oneshot::Sender<bool>),
    /// A reader waiting for everything queued before it to be written.
    Settle(tokio::sync::oneshot::Sender<bool>),
}

impl Item {
    /// Someone waits for this item's commit: its batch does not linger.
    fn waited_for(&self) -> bool {
        matches!(self, Item::Intent(..) | Item::Settle(..))
    }
}

/// When the record of a redemption is durable (`[audit] durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Committed before the request carrying a secret leaves (group commit).
    Durable,
    /// Queued and written in batches after the response: a crash loses what is queued.
    Batched,
}

/// The request path's end of the queue.
#[derive(Debug, Clone)]
pub(crate) struct ChannelRecorder {
    tx: mpsc::Sender<Item>,
    /// Set by the writer while the store refuses records.
    failing: Arc<AtomicBool>,
    durability: Durability,
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

    fn intent(&self, flow: Flow) -> Durable {
        if self.durability == Durability::Batched {
            return Box::pin(std::future::ready(Ok(())));
        }
        let (done, committed) = tokio::sync::oneshot::channel();
        let queued = self.tx.try_send(Item::Intent(flow, done)).is_ok();
        Box::pin(async move {
            if queued && committed.await == Ok(true) {
                Ok(())
            } else {
                Err(NotDurable)
            }
        })
    }

    fn settle(&self) -> Durable {
        let (done, written) = tokio::sync::oneshot::channel();
        let queued = self.tx.try_send(Item::Settle(done)).is_ok();
        Box::pin(async move {
            if queued && written.await == Ok(true) {
                Ok(())
            } else {
                Err(NotDurable)
            }
        })
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
/// `gateway`: this process's instance id, the mark on its flows in flight.
pub(crate) fn start(
    store: Arc<dyn Store>,
    cancel: CancellationToken,
    depth: prometheus_client::metrics::gauge::Gauge<i64>,
    gateway: String,
    durability: Durability,
) -> (ChannelRecorder, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let failing = Arc::new(AtomicBool::new(false));
    let writer = Writer {
        store,
        gateway,
        failing: Arc::clone(&failing),
        cancel,
    };
    let writer = tokio::spawn(write_loop(writer, rx, depth));
    (
        ChannelRecorder {
            tx,
            failing,
            durability,
        },
        writer,
    )
}

struct Writer {
    store: Arc<dyn Store>,
    gateway: String,
    failing: Arc<AtomicBool>,
    cancel: CancellationToken,
}

async fn write_loop(
    w: Writer,
    mut rx: mpsc::Receiver<Item>,
    depth: prometheus_client::metrics::gauge::Gauge<i64>,
) {
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut buf, BATCH) => n,
            () = w.cancel.cancelled() => {
                rx.close();
                while rx.recv_many(&mut buf, BATCH).await > 0 {
                    w.flush(&mut buf, &mut rx).await;
                }
                return;
            }
        };
        if n == 0 {
            return;
        }
        linger(&mut buf, &mut rx, &w.cancel).await;
        depth.set(i64::try_from(rx.len() + buf.len()).unwrap_or(i64::MAX));
        w.flush(&mut buf, &mut rx).await;
        depth.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
    }
}

/// Holds a batch nobody waits for up to [`LINGER`], gathering what comes meanwhile; it
/// goes at once when an intent or a reader arrives (someone waits), the batch is
/// full, or the process stops.
async fn linger(buf: &mut Vec<Item>, rx: &mut mpsc::Receiver<Item>, cancel: &CancellationToken) {
    let waited_for = |items: &[Item]| items.iter().any(Item::waited_for);
    if waited_for(buf) {
        return;
    }
    let until = tokio::time::Instant::now() + LINGER;
    while buf.len() < BATCH {
        let seen = buf.len();
        tokio::select! {
            () = tokio::time::sleep_until(until) => return,
            () = cancel.cancelled() => return,
            n = rx.recv_many(buf, BATCH - seen) => {
                if n == 0 || waited_for(buf.get(seen..).unwrap_or_default()) {
                    return;
                }
            }
        }
    }
}

/// How long records are retried at shutdown before the process gives up on them.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(10);

/// Waits `wait` before a retry. Meanwhile a request waiting for its intent is refused
/// at once, not kept waiting behind the retry; other records join the batch (up to the
/// queue's capacity, so memory stays bounded).
async fn backoff(
    wait: Duration,
    rx: &mut mpsc::Receiver<Item>,
    flows: &mut Vec<Flow>,
    events: &mut Vec<NewEvent>,
) {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let room = flows.len() + events.len() < QUEUE_CAPACITY;
        tokio::select! {
            () = tokio::time::sleep_until(until) => return,
            item = rx.recv(), if room => match item {
                Some(Item::Intent(_, done) | Item::Settle(done)) => {
                    let _ = done.send(false);
                }
                Some(Item::Flow(f)) => {
                    events.push(excalibur_core::record::flow_event(&f));
                    flows.push(f);
                }
                Some(Item::Event(e)) => events.push(e),
                None => tokio::time::sleep_until(until).await,
            },
        }
    }
}

impl Writer {
    /// Writes one batch in one transaction. Intents are answered by its outcome and
    /// never retried: a request whose intent failed is refused, so nothing was sent.
    /// While the store refuses the rest it is kept and retried (backoff up to 1 s) and
    /// `failing` is set, so the request path fails closed instead of redeeming with
    /// nothing recorded; the queue behind it is bounded. Only at shutdown, after
    /// [`SHUTDOWN_RETRY`], is a batch lost (and said so).
    async fn flush(&self, buf: &mut Vec<Item>, rx: &mut mpsc::Receiver<Item>) {
        let mut batch = RecordBatch {
            gateway: self.gateway.clone(),
            ..RecordBatch::default()
        };
        let mut waiting = Vec::new();
        for item in buf.drain(..) {
            match item {
                Item::Event(e) => batch.events.push(e),
                Item::Flow(f) => {
                    batch.events.push(excalibur_core::record::flow_event(&f));
                    batch.flows.push(f);
                }
                Item::Intent(f, done) => {
                    batch.intents.push(f);
                    waiting.push(done);
                }
                Item::Settle(done) => waiting.push(done),
            }
        }
        if batch.flows.is_empty() && batch.events.is_empty() && batch.intents.is_empty() {
            // Only readers waiting: what came before them is written.
            for done in waiting {
                let _ = done.send(true);
            }
            return;
        }
        let mut cancelled_at: Option<std::time::Instant> = None;
        let mut attempt = 0u32;
        loop {
            let shared = Arc::new(batch);
            let outcome = self.store.record_with_intents(Arc::clone(&shared)).await;
            // The store has let go of its handle: no copy unless it still holds one.
            batch = Arc::unwrap_or_clone(shared);
            // Intents are answered once and never retried.
            batch.intents.clear();
            for done in waiting.drain(..) {
                let _ = done.send(outcome.is_ok());
            }
            match outcome {
                Ok(()) => {
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::warn!(attempts = attempt + 1, "records are written again");
                    }
                    return;
                }
                Err(e) => {
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(error = %excalibur_core::ErrorChain(&e), "writing flows and audit events failed; redeeming nothing until they are written");
                    }
                    if self.cancel.is_cancelled() {
                        cancelled_at.get_or_insert_with(std::time::Instant::now);
                    }
                    if cancelled_at.is_some_and(|at| at.elapsed() > SHUTDOWN_RETRY) {
                        tracing::error!(
                            flows = batch.flows.len(),
                            events = batch.events.len(),
                            "records lost at shutdown: the store refused them"
                        );
                        return;
                    }
                    if batch.flows.is_empty() && batch.events.is_empty() {
                        return;
                    }
                    attempt += 1;
                    let wait = Duration::from_millis(50 * u64::from(attempt.min(20)));
                    backoff(wait, rx, &mut batch.flows, &mut batch.events).await;
                }
            }
        }
    }
}
