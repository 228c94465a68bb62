//! The [`Recorder`] seam: the request path hands flows and audit events to a bounded
//! queue and never waits on the store.

use crate::api::Flow;
use crate::audit::NewEvent;

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
}
