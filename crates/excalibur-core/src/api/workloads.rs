//! Namespaces, attested workloads and revocations.

use serde::{Deserialize, Serialize};

/// `POST /api/namespaces` (upsert) and the listed form.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Kubernetes namespace (or tenant) name.
    pub name: String,
    /// Destinations workloads of this namespace may reach.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
}

/// A workload that exchanged a platform token for a proxy bearer (Fleet & Namespaces).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkloadInfo {
    /// Id.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Principal id, e.g. `k8s:prod-eu-west/payments/api`.
    pub principal: String,
    /// How it was attested, e.g. `kubernetes`.
    pub attestation: String,
    /// Address the exchange came from (the token is bound to it).
    pub source: String,
    /// Proxy bearer prefix.
    pub token_prefix: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 expiry of the proxy bearer.
    pub expires_at: String,
    /// Attestation facts (cluster, service account, pod, scopes, audience).
    pub details: serde_json::Value,
}

/// `POST /api/revocations`: revoke one workload bearer (by id or by its subject token's
/// `jti`), or every bearer of a principal (the kill switch). Exactly one field.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// A workload id from `GET /api/workloads`.
    #[serde(default)]
    pub workload_id: Option<String>,
    /// A principal id: every live bearer it holds.
    #[serde(default)]
    pub principal: Option<String>,
    /// The `jti` of a subject token: every bearer issued for it.
    #[serde(default)]
    pub jti: Option<String>,
}

/// A standing revocation of a principal (the kill switch), listed at
/// `GET /api/revocations` and lifted with `DELETE /api/revocations/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PrincipalRevocation {
    /// Id, `rev_<hex>`.
    pub id: String,
    /// The principal that may not exchange again until lifted.
    pub principal: String,
    /// RFC 3339 time of the revocation.
    pub created_at: String,
    /// Who revoked it.
    pub actor: String,
}
