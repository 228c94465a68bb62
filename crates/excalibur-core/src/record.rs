//! The [`Recorder`] seam: the request path hands flows and audit events to a bounded
//! queue and never waits on the store, except for the write-ahead record of a request
//! about to carry a secret ([`Recorder::intent`]), which is committed (group commit)
//! before that request leaves.

use std::future::Future;
use std::pin::Pin;

use crate::api::Flow;
use crate::audit::{EventType, NewEvent};

/// The record of a request could not be made durable; it must not be sent.
#[derive(Debug, thiserror::Error)]
#[error("the record could not be made durable")]
pub struct NotDurable;

/// A write-ahead commit in progress.
pub type Durable = Pin<Box<dyn Future<Output = Result<(), NotDurable>> + Send>>;

/// The `flow_recorded` audit event of `flow` (one per outbound request).
pub fn flow_event(flow: &Flow) -> NewEvent {
    NewEvent::new(
        EventType::FlowRecorded,
        flow.principal.clone(),
        serde_json::json!({"flow_id": flow.id, "method": flow.method, "host": flow.host, "path": flow.path,
               "status": flow.status, "decision": flow.decision, "reason": flow.reason,
               "placeholders": flow.placeholders, "bytes_up": flow.bytes_up,
               "bytes_down": flow.bytes_down, "latency_ms": flow.latency_ms}),
    )
}

/// The recording queue is full; the request must fail closed.
#[derive(Debug, thiserror::Error)]
#[error("the audit queue is full")]
pub struct QueueFull;

/// Accepts flows and audit events without blocking.
pub trait Recorder: Send + Sync + std::fmt::Debug {
    /// Queues audit events.
    fn event(&self, event: NewEvent) -> Result<(), QueueFull>;
    /// Queues one flow with its `flow_recorded` event.
    fn flow(&self, flow: Flow) -> Result<(), QueueFull>;
    /// True when the queue can take at least one more request's records.
    fn has_capacity(&self) -> bool;
    /// True while records cannot be stored (the store refuses them): the request path
    /// then redeems nothing (503 `audit_unavailable`) until they can again.
    fn failing(&self) -> bool {
        false
    }
    /// Makes `flow` durable as in flight before the request it describes leaves with a
    /// secret; resolves once committed. Default: nothing to wait for (batched
    /// durability).
    fn intent(&self, flow: Flow) -> Durable {
        drop(flow);
        Box::pin(std::future::ready(Ok(())))
    }
    /// Resolves once every record queued before the call is written (or could not
    /// be): a reader of flows and audit events sees what was answered before it asked.
    /// Default: nothing is queued.
    fn settle(&self) -> Durable {
        Box::pin(std::future::ready(Ok(())))
    }
}
