//! `/api/flows`: recorded requests.

use serde::{Deserialize, Serialize};

/// One proxied request.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Flow {
    /// Flow id.
    pub id: String,
    /// Its place in the recording order (the paging cursor of `GET /api/flows`); set
    /// when read back, absent in what is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// RFC 3339 start time.
    pub ts: String,
    /// Principal id, or empty when unidentified.
    pub principal: String,
    /// Method.
    pub method: String,
    /// Destination host.
    pub host: String,
    /// Request path (no query).
    pub path: String,
    /// Status returned to the workload.
    pub status: u16,
    /// Request body bytes sent upstream.
    pub bytes_up: u64,
    /// Response body bytes sent to the workload.
    pub bytes_down: u64,
    /// Latency in milliseconds.
    pub latency_ms: u64,
    /// Placeholders substituted.
    pub placeholders: Vec<String>,
    /// `allow` or `deny`.
    pub decision: String,
    /// Reason code for a deny or failure.
    pub reason: Option<String>,
}
