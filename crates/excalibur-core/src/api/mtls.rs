//! `/api/crypto/mtls`: upstream mTLS mappings.

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

use super::crypto::MappingRecord;

/// `POST /api/crypto/mtls/mappings` (seed 001 §3). With `id`, replaces that mapping.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMtlsMapping {
    /// Existing mapping to replace.
    #[serde(default)]
    pub id: Option<String>,
    /// Provider; the target host must be among its hosts.
    pub provider_id: String,
    /// `host` or `host:port` (default port 443) whose handshakes present the certificate.
    pub target_authority: String,
    /// Client certificate chain, PEM (leaf first).
    pub real_client_cert_pem: String,
    /// Its private key, PEM (sealed; never returned).
    #[serde(serialize_with = "SecretString::serialize_exposed")]
    pub real_client_key_pem: SecretString,
}

/// An mTLS mapping as listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MtlsMapping {
    /// Mapping id; translation rules name it as the placeholder to redeem.
    pub id: String,
    /// Provider.
    pub provider_id: String,
    /// `host:port` the certificate is presented to (matches the SNI).
    pub target_authority: String,
    /// UI column "Authority".
    pub authority: String,
    /// UI column "Token host": none for mTLS.
    pub token_host: Option<String>,
    /// UI column "Resource host".
    pub resource_host: String,
    /// UI column "Path prefix": every path.
    pub path_prefix: String,
    /// The opaque authority the proxy tracks the identity under (never sent anywhere).
    pub surrogate_authority: String,
    /// UI column "Surrogate".
    pub surrogate: String,
    /// `sha256:<hex>` of the leaf certificate (DER).
    pub certificate_fingerprint: String,
    /// `sha256:<hex>` of the sealed key (changes on rotation).
    pub fingerprint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl MtlsMapping {
    /// The listed form of a stored mapping.
    pub fn from_record(r: &MappingRecord) -> Self {
        let text = |k: &str| r.setting(k).unwrap_or_default();
        let surrogate = format!("{}.mtls.excalibur.invalid", r.id);
        Self {
            id: r.id.clone(),
            provider_id: r.provider_id.clone(),
            target_authority: text("target_authority"),
            authority: text("target_authority"),
            token_host: None,
            resource_host: text("host"),
            path_prefix: "/".to_owned(),
            surrogate_authority: surrogate.clone(),
            surrogate,
            certificate_fingerprint: text("certificate_fingerprint"),
            fingerprint: r.fingerprint.clone(),
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}
