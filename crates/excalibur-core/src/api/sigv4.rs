//! `/api/crypto/sigv4`: SigV4 mappings and presigning.

use serde::{Deserialize, Serialize};

use crate::secret::{SecretString, ShownOnce};

use super::crypto::{MappingRecord, root_path};

/// `POST /api/crypto/sigv4/mappings` (seed 001 §4). With `id`, replaces that mapping
/// (rotation); without, creates one.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSigv4Mapping {
    /// Existing mapping to replace.
    #[serde(default)]
    pub id: Option<String>,
    /// Provider; `target_host` must be one of its hosts.
    pub provider_id: String,
    /// Upstream host (exact or `*.suffix`), e.g. `s3.eu-west-1.amazonaws.com`.
    pub target_host: String,
    /// Only requests under this path are signed.
    #[serde(default = "root_path")]
    pub path_prefix: String,
    /// Signing region.
    pub region: String,
    /// Signing service name (`s3`, `sts`, ...).
    pub service: String,
    /// Real access key id (sealed; listed as a prefix). Absent with `role_arn`.
    #[serde(default)]
    pub real_access_key_id: Option<String>,
    /// Real secret access key (sealed; never returned). Absent with `role_arn`.
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_exposed")]
    pub real_secret_access_key: Option<SecretString>,
    /// Session token for temporary credentials (sealed; never returned).
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_exposed")]
    pub real_session_token: Option<SecretString>,
    /// Instead of a static key: the role Excalibur assumes with
    /// `AssumeRoleWithWebIdentity`, presenting a JWT it signs as an OIDC issuer.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Session name of the assumed role (default: the mapping id).
    #[serde(default)]
    pub session_name: Option<String>,
    /// Lifetime asked for the temporary credentials (900 to 43,200 s; default 3,600).
    #[serde(default)]
    pub duration_seconds: Option<u32>,
    /// STS endpoint (default `https://sts.<region>.amazonaws.com/`).
    #[serde(default)]
    pub sts_endpoint: Option<String>,
}

/// The sealed part of a SigV4 mapping.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sigv4Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    #[serde(serialize_with = "SecretString::serialize_exposed")]
    pub secret_access_key: SecretString,
    /// Session token.
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_exposed")]
    pub session_token: Option<SecretString>,
}

/// A SigV4 mapping as listed (the seed's table columns plus its settings).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sigv4Mapping {
    /// Mapping id; translation rules name it as the placeholder to redeem.
    pub id: String,
    /// Provider.
    pub provider_id: String,
    /// Upstream host.
    pub target_host: String,
    /// Path prefix.
    pub path_prefix: String,
    /// Region.
    pub region: String,
    /// Service.
    pub service: String,
    /// First eight characters of the access key id.
    pub access_key_id_prefix: String,
    /// Whether a session token is configured.
    pub session_token: bool,
    /// The role assumed for temporary credentials, when the mapping holds no key.
    pub role_arn: Option<String>,
    /// `sha256:<hex>` of the sealed keys (changes on rotation).
    pub fingerprint: String,
    /// UI column "Authority": the host requests are signed for.
    pub authority: String,
    /// UI column "Token host": none for SigV4.
    pub token_host: Option<String>,
    /// UI column "Resource host".
    pub resource_host: String,
    /// UI column "Surrogate": what the workload's flows record in place of the key.
    pub surrogate: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl Sigv4Mapping {
    /// The listed form of a stored mapping.
    pub fn from_record(r: &MappingRecord) -> Self {
        let text = |k: &str| r.setting(k).unwrap_or_default();
        let host = text("target_host");
        Self {
            id: r.id.clone(),
            provider_id: r.provider_id.clone(),
            path_prefix: text("path_prefix"),
            region: text("region"),
            service: text("service"),
            access_key_id_prefix: text("access_key_id_prefix"),
            session_token: r
                .config
                .get("session_token")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            role_arn: r.setting("role_arn"),
            fingerprint: r.fingerprint.clone(),
            authority: host.clone(),
            token_host: None,
            resource_host: host.clone(),
            surrogate: r.id.clone(),
            target_host: host,
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}

/// `POST /api/crypto/sigv4/presign`: an operator asks for a presigned URL.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresignRequest {
    /// Mapping to sign with.
    pub mapping_id: String,
    /// Method the URL is for (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// Path (and optional query) on the mapping's host, e.g. `/bucket/key`.
    pub path: String,
    /// Host, when the mapping's `target_host` is a wildcard.
    #[serde(default)]
    pub host: Option<String>,
    /// Lifetime in seconds (default 900, at most 604800).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// Response of `POST /api/crypto/sigv4/presign`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresignedUrl {
    /// The URL (a bearer credential until it expires).
    pub url: ShownOnce,
    /// RFC 3339 expiry.
    pub expires_at: String,
}
