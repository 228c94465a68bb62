//! The `application/problem+json` error body.

use serde::{Deserialize, Serialize};

/// `application/problem+json` body (RFC 9457).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short, human-readable summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong with this request, specifically.
    pub detail: String,
    /// Machine-readable code, e.g. `invalid_body`.
    pub code: String,
}
