//! The recording queue: a bounded channel the request path writes to without waiting,
//! and one writer (a task on a thread of its own, which commits on that thread) that
//! batches flows and audit events into the store. With
//! `[audit] durability = "durable"` (the default) a request about to carry a secret
//! first queues its write-ahead flow and waits for the transaction that commits it:
//! every intent queued meanwhile rides in the same transaction (group commit), so the
//! cost of a commit is shared by the concurrent requests. That transaction carries the
//! intents alone: flows and events nobody waits for keep to their own batches (every
//! [`LINGER`]), so a request waits for a commit of a few hundred bytes (on SQLite not
//! even a transaction: one append to the store's journal of flows in flight).

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

/// When the record of a redemption is durable (`[audit] durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Committed before the request carrying a secret leaves (group commit): a crash of
    /// the process loses no record; a power loss may lose the last moments' (SQLite
    /// syncs them to disk at its next checkpoint, within a second).
    Durable,
    /// As `Durable`, and on disk before the request leaves: a power loss loses none.
    Synced,
    /// Queued and written in batches after the response: a crash loses what is queued.
    Batched,
}

/// The request path's end of the queue.
#[derive(Debug, Clone)]
pub(crate) struct ChannelRecorder {
    /// Flows and events: nobody waits for them, so sending one never wakes a writer
    /// that is lingering (only [`Self::urgent`] does).
    tx: mpsc::Sender<Item>,
    /// Intents and settle barriers: someone waits for each.
    urgent: mpsc::Sender<Item>,
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
        let queued = self.urgent.try_send(Item::Intent(flow, done)).is_ok();
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
        let queued = self.urgent.try_send(Item::Settle(done)).is_ok();
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
        !self.tx.is_closed() && !self.urgent.is_closed()
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
    let (tx, lazy) = mpsc::channel(QUEUE_CAPACITY);
    let (urgent, urgent_rx) = mpsc::channel(QUEUE_CAPACITY);
    let rx = Queues {
        lazy,
        urgent: urgent_rx,
    };
    let failing = Arc::new(AtomicBool::new(false));
    let writer = Writer {
        store,
        gateway,
        synced: durability == Durability::Synced,
        failing: Arc::clone(&failing),
        cancel,
    };
    // The writer has a thread of its own, with a runtime of its own (for its timers),
    // and commits on it: a request waiting for its intent is woken by the thread that
    // committed it, with no hop through a blocking pool in between.
    let (ended, on_end) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("excalibur-recorder".to_owned())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => write_loop(&rt, &writer, rx, &depth),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the recorder's runtime; nothing is recorded");
                }
            }
            drop(ended);
        });
    if let Err(e) = spawned {
        // The queues' receivers are gone with the closure: every request fails closed.
        tracing::error!(error = %e, "cannot start the recorder thread; nothing is recorded");
    }
    let writer = tokio::spawn(async move {
        let _ = on_end.await;
    });
    (
        ChannelRecorder {
            tx,
            urgent,
            failing,
            durability,
        },
        writer,
    )
}

struct Writer {
    store: Arc<dyn Store>,
    gateway: String,
    /// Every batch is on disk before its commit returns (`Durability::Synced`).
    synced: bool,
    failing: Arc<AtomicBool>,
    cancel: CancellationToken,
}

/// The writer's ends of the two queues.
struct Queues {
    lazy: mpsc::Receiver<Item>,
    urgent: mpsc::Receiver<Item>,
}

/// What woke the writer.
enum Woke {
    /// Records to look at (or the lingering batch is due).
    Ready,
    /// The process stops: write what is left.
    Cancelled,
    /// Both queues are closed and empty, and nothing is held.
    Closed,
}

impl Queues {
    /// Waits for an intent or a reader on the urgent queue, for the first record on
    /// the lazy one (when `lazy` holds none), or for the held records' [`LINGER`] to
    /// end (`since`: when `lazy` got its first). Records sent to the lazy queue
    /// meanwhile wait there without waking the writer.
    async fn wait(
        &mut self,
        urgent: &mut Vec<Item>,
        lazy: &mut Vec<Item>,
        since: Option<tokio::time::Instant>,
        cancel: &CancellationToken,
    ) -> Woke {
        loop {
            let urgent_open = !self.urgent.is_closed() || !self.urgent.is_empty();
            let lazy_open = since.is_none() && (!self.lazy.is_closed() || !self.lazy.is_empty());
            let due = since.map(|at| at + LINGER);
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Woke::Cancelled,
                n = self.urgent.recv_many(urgent, BATCH), if urgent_open => {
                    if n > 0 {
                        return Woke::Ready;
                    }
                }
                n = self.lazy.recv_many(lazy, BATCH), if lazy_open => {
                    if n > 0 {
                        return Woke::Ready;
                    }
                }
                () = sleep_until_some(due), if due.is_some() => return Woke::Ready,
                else => return Woke::Closed,
            }
        }
    }

    /// Moves what the lazy queue holds now into `buf`, without waiting: up to
    /// [`BATCH`], or all of it when a reader waits (it must see everything queued
    /// before it).
    fn drain_lazy(&mut self, buf: &mut Vec<Item>, settling: bool) {
        // INVARIANT: nothing else receives from `lazy`, so its length only grows
        // while this runs; taking what it held on entry is all a reader waits for.
        let limit = if settling {
            BATCH.max(buf.len() + self.lazy.len())
        } else {
            BATCH
        };
        while buf.len() < limit {
            match self.lazy.try_recv() {
                Ok(item) => buf.push(item),
                Err(_) => return,
            }
        }
    }

    /// Moves up to a batch of each queue into `buf`, without waiting (at shutdown).
    fn drain(&mut self, buf: &mut Vec<Item>) {
        while buf.len() < BATCH
            && let Ok(item) = self.urgent.try_recv()
        {
            buf.push(item);
        }
        self.drain_lazy(buf, false);
    }

    fn len(&self) -> usize {
        self.lazy.len() + self.urgent.len()
    }

    fn close(&mut self) {
        self.lazy.close();
        self.urgent.close();
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// The writer thread's loop. It waits for records inside `rt` and commits outside it:
/// a store client may run a runtime of its own (PostgreSQL's does), which cannot start
/// inside another.
///
/// Intents (and readers' barriers) are committed as soon as they come, with whatever
/// intents queued meanwhile; flows and events nobody waits for are held until
/// [`LINGER`] has passed since the first of them, a batch is full, or a reader needs
/// them written.
fn write_loop(
    rt: &tokio::runtime::Runtime,
    w: &Writer,
    mut rx: Queues,
    depth: &prometheus_client::metrics::gauge::Gauge<i64>,
) {
    let mut urgent = Vec::with_capacity(BATCH);
    let mut lazy = Vec::with_capacity(BATCH);
    let mut since = None;
    loop {
        match rt.block_on(rx.wait(&mut urgent, &mut lazy, since, &w.cancel)) {
            Woke::Ready => {}
            Woke::Closed => return,
            Woke::Cancelled => {
                rx.close();
                let mut buf = std::mem::take(&mut urgent);
                buf.append(&mut lazy);
                loop {
                    rx.drain(&mut buf);
                    if buf.is_empty() {
                        return;
                    }
                    w.flush(rt, &mut buf, &mut rx);
                }
            }
        }
        if !lazy.is_empty() {
            since.get_or_insert_with(tokio::time::Instant::now);
        }
        let settling = urgent.iter().any(|i| matches!(i, Item::Settle(_)));
        let due = settling
            || lazy.len() >= BATCH
            || since.is_some_and(|at| at + LINGER <= tokio::time::Instant::now());
        if due {
            // Everything queued so far goes in this batch: all a settle barrier waits for.
            rx.drain_lazy(&mut lazy, settling);
            urgent.append(&mut lazy);
            since = None;
        }
        if urgent.is_empty() {
            continue;
        }
        depth.set(i64::try_from(rx.len() + urgent.len() + lazy.len()).unwrap_or(i64::MAX));
        w.flush(rt, &mut urgent, &mut rx);
        depth.set(i64::try_from(rx.len() + lazy.len()).unwrap_or(i64::MAX));
    }
}

/// How long records are retried at shutdown before the process gives up on them.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(10);

/// Waits `wait` before a retry. Meanwhile a request waiting for its intent is refused
/// at once, not kept waiting behind the retry; other records join the batch (up to the
/// queue's capacity, so memory stays bounded).
async fn backoff(
    wait: Duration,
    rx: &mut Queues,
    flows: &mut Vec<Flow>,
    events: &mut Vec<NewEvent>,
) {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let room = flows.len() + events.len() < QUEUE_CAPACITY;
        tokio::select! {
            () = tokio::time::sleep_until(until) => return,
            item = rx.urgent.recv() => match item {
                Some(Item::Intent(_, done) | Item::Settle(done)) => {
                    let _ = done.send(false);
                }
                Some(_) => {}
                None => tokio::time::sleep_until(until).await,
            },
            item = rx.lazy.recv(), if room => match item {
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
    fn flush(&self, rt: &tokio::runtime::Runtime, buf: &mut Vec<Item>, rx: &mut Queues) {
        let mut batch = RecordBatch {
            gateway: self.gateway.clone(),
            synced: self.synced,
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
            // On this thread, outside its runtime: the thread is the writer's own.
            let outcome = self.store.record_with_intents_here(&batch);
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
                    rt.block_on(backoff(wait, rx, &mut batch.flows, &mut batch.events));
                }
            }
        }
    }
}
