//! `/api/crypto/oauth-refresh`: OAuth2 refresh mappings.

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

use super::crypto::{MappingRecord, root_path};

/// `POST /api/crypto/oauth-refresh/mappings`. With `id`, replaces that mapping (a new
/// refresh token from the operator starts afresh).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOauthRefreshMapping {
    /// Existing mapping to replace.
    #[serde(default)]
    pub id: Option<String>,
    /// Provider; both hosts must be among its hosts.
    pub provider_id: String,
    /// Authorization server host.
    pub token_host: String,
    /// Token endpoint path (default `/token`).
    #[serde(default)]
    pub token_path: Option<String>,
    /// Where the access token is presented (default: `token_host`).
    #[serde(default)]
    pub resource_host: Option<String>,
    /// Requests under this path on the resource host get the token.
    #[serde(default = "root_path")]
    pub path_prefix: String,
    /// OAuth client id.
    pub client_id: String,
    /// Client secret (sealed; omit for public clients).
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_exposed")]
    pub real_client_secret: Option<SecretString>,
    /// Refresh token (sealed; rotated ones are stored by the proxy).
    #[serde(serialize_with = "SecretString::serialize_exposed")]
    pub real_refresh_token: SecretString,
    /// Scope to ask for on refresh.
    #[serde(default)]
    pub scope: Option<String>,
}

/// The sealed part of an OAuth2 refresh mapping.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OauthRefreshKeys {
    /// Client secret.
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_exposed")]
    pub client_secret: Option<SecretString>,
    /// Current refresh token.
    #[serde(serialize_with = "SecretString::serialize_exposed")]
    pub refresh_token: SecretString,
}

/// An OAuth2 refresh mapping as listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OauthRefreshMapping {
    /// Mapping id; translation rules name it as the placeholder to redeem.
    pub id: String,
    /// Provider.
    pub provider_id: String,
    /// UI column "Authority": the resource host.
    pub authority: String,
    /// UI column "Token host".
    pub token_host: String,
    /// Token endpoint path.
    pub token_path: String,
    /// UI column "Resource host".
    pub resource_host: String,
    /// UI column "Path prefix".
    pub path_prefix: String,
    /// OAuth client id.
    pub client_id: String,
    /// UI column "Surrogate": what flows record in place of the token (the mapping id).
    pub surrogate: String,
    /// Operator generation: bumped by every API upsert (not by proxy-stored rotations).
    pub generation: u64,
    /// `sha256:<hex>` of the sealed secrets (changes when a rotated token is stored).
    pub fingerprint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl OauthRefreshMapping {
    /// The listed form of a stored mapping.
    pub fn from_record(r: &MappingRecord) -> Self {
        let text = |k: &str| r.setting(k).unwrap_or_default();
        Self {
            id: r.id.clone(),
            provider_id: r.provider_id.clone(),
            authority: text("resource_host"),
            token_host: text("token_host"),
            token_path: text("token_path"),
            resource_host: text("resource_host"),
            path_prefix: text("path_prefix"),
            client_id: text("client_id"),
            surrogate: r.id.clone(),
            generation: r
                .config
                .get("generation")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            fingerprint: r.fingerprint.clone(),
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}
