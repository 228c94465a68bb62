//! Fixtures for the crate's unit tests.

/// A flow about to carry a secret: `id`, allowed, one placeholder, not yet answered.
pub(crate) fn flow(id: &str) -> excalibur_core::api::Flow {
    serde_json::from_value(serde_json::json!({
        "id": id, "ts": "2026-12-04T00:00:00Z", "principal": "svc:ci",
        "method": "GET", "host": "api.example", "path": "/", "status": 0, "bytes_up": 0,
        "bytes_down": 0, "latency_ms": 0, "placeholders": ["XCALIBUR_X"], "decision": "allow"
    }))
    .expect("a valid flow")
}
