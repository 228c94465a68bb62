//! `/api/webhooks` and their deliveries.

use serde::{Deserialize, Serialize};

use crate::secret::{SecretString, ShownOnce};

/// `POST /api/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://` (or `http://`) receiver URL.
    pub url: String,
    /// Event types or globs, e.g. `credential_rotated`, `credential_expired`, `placeholder_*`.
    pub event_types: Vec<String>,
    /// Signing secret (at least 16 characters); generated and shown once when absent.
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_exposed")]
    pub secret: Option<SecretString>,
}

/// A webhook as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    /// Id.
    pub id: String,
    /// Receiver URL.
    pub url: String,
    /// Subscribed event types or globs.
    pub event_types: Vec<String>,
    /// `sha256:` fingerprint of the signing secret.
    pub secret_fingerprint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// Response of `POST /api/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    /// The stored record.
    #[serde(flatten)]
    pub info: WebhookInfo,
    /// The generated signing secret, shown once (absent when the caller chose it).
    pub secret: Option<ShownOnce>,
}

/// One delivery attempt series of one event to one webhook.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Delivery id (also sent as `X-Excalibur-Delivery`).
    pub id: String,
    /// Webhook id.
    pub webhook_id: String,
    /// Audit seq of the event.
    pub event_seq: i64,
    /// Event type as delivered (aliases resolved, e.g. `credential_rotated`).
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// HTTP status of the last attempt.
    pub last_status: Option<u16>,
    /// Error of the last attempt.
    pub last_error: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}
