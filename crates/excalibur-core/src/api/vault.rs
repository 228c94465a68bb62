//! `/api/placeholders` and `/api/providers`: the vault and where its values may go.

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

/// `POST /api/placeholders`: an atomic upsert by placeholder name.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertPlaceholder {
    /// The placeholder the workload sends, e.g. `XCALIBUR_GITHUB_TOKEN`.
    pub placeholder: String,
    /// The real value; sealed at rest, never returned.
    #[serde(serialize_with = "SecretString::serialize_exposed")]
    pub real_value: SecretString,
    /// The provider whose hosts may receive the value.
    pub provider_id: String,
    /// Route family (defaults to the provider id).
    #[serde(default)]
    pub route_family: Option<String>,
    /// When the value stops being substituted (RFC 3339); `credential_expired` fires then.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A placeholder as listed: fingerprint only.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaceholderInfo {
    /// Placeholder name.
    pub placeholder: String,
    /// Provider id.
    pub provider_id: String,
    /// Route family.
    pub route_family: String,
    /// `sha256:<hex>` of the real value.
    pub fingerprint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time the value last changed.
    pub last_rotated_at: String,
    /// RFC 3339 time of the last upsert.
    pub updated_at: String,
    /// RFC 3339 expiry, if any.
    pub expires_at: Option<String>,
    /// True once `expires_at` has passed: the placeholder is no longer redeemed.
    #[serde(default)]
    pub expired: bool,
}

/// Response of `POST /api/placeholders`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpsertedPlaceholder {
    /// The record after the upsert.
    #[serde(flatten)]
    pub info: PlaceholderInfo,
    /// True when the placeholder did not exist before.
    pub created: bool,
    /// True when the real value changed.
    pub rotated: bool,
}

/// `POST /api/providers` (upsert) and the listed form.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Provider id, e.g. `github`.
    pub id: String,
    /// The only hosts this provider's secrets may ever be sent to (exact or `*.suffix`).
    pub hosts: Vec<String>,
    /// Hosts tunnelled without TLS interception (no substitution possible).
    #[serde(default)]
    pub passthrough: bool,
    /// Let this provider's secrets, injected tokens and signatures travel over a
    /// cleartext `http://` upstream leg (an internal upstream without TLS). Off by
    /// default: without it such a redemption is refused with `plaintext_upstream`.
    #[serde(default)]
    pub dangerous_allow_plaintext: bool,
}
