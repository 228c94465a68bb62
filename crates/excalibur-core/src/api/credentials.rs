//! `/api/service-credentials`.

use serde::{Deserialize, Serialize};

use crate::ids::CredentialId;
use crate::secret::ShownOnce;

/// `POST /api/service-credentials` (seed 000 §1).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceCredential {
    /// Label.
    pub name: String,
    /// The user the workload acts for.
    pub user: String,
    /// The CIDR the credential may be used from.
    pub source_network: String,
    /// Destinations this principal may reach (exact or `*.suffix`).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// When the credential is revoked automatically (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A service credential as listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceCredentialInfo {
    /// Id.
    pub id: CredentialId,
    /// Label.
    pub name: String,
    /// User.
    pub user: String,
    /// Source CIDR.
    pub source_network: String,
    /// Allowed destinations.
    pub allowed_domains: Vec<String>,
    /// Token prefix.
    pub prefix: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 revocation time.
    pub revoked_at: Option<String>,
    /// Why it was revoked (`admin`, `source_network_mismatch`, `expired`).
    pub revoked_reason: Option<String>,
    /// RFC 3339 expiry, if any.
    pub expires_at: Option<String>,
}

/// Response of `POST /api/service-credentials`: the token is shown once.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedServiceCredential {
    /// The stored record.
    #[serde(flatten)]
    pub info: ServiceCredentialInfo,
    /// The proxy bearer.
    pub token: ShownOnce,
}
