//! `/api/policies` and the dry run `/api/policies/evaluate`.

use serde::{Deserialize, Serialize};

/// `POST /api/policies`: an operator Cedar policy, validated against the schema on write.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    /// Policy id (letters, digits, `-`, `_`, `.`; the prefixes `egress:`, `provider:`,
    /// `builtin:` and `rule_` are reserved for compiled policies).
    pub id: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// One Cedar policy.
    pub policy: String,
}

/// A stored operator policy.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyRecord {
    /// The policy as created.
    #[serde(flatten)]
    pub policy: CreatePolicy,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// The principal of a dry-run evaluation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalPrincipal {
    /// `Workload` or `Human`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Principal id, e.g. `service:ci-runner`.
    pub id: String,
    /// User.
    #[serde(default)]
    pub user: String,
    /// Namespace or tenant.
    #[serde(default)]
    pub namespace: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attestation kind.
    #[serde(default)]
    pub attestation: String,
    /// Completed authentication factors (humans).
    #[serde(default)]
    pub factors_completed: Vec<String>,
    /// Source address (default 127.0.0.1).
    #[serde(default)]
    pub source: Option<String>,
    /// Tags (what claims map to), e.g. `{"tenant_id": "acme"}`.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// The actor of a delegated exchange.
    #[serde(default)]
    pub actor: Option<String>,
    /// A scoped bearer's scopes (`provider:<id>`); none: unscoped.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The resource of a dry-run evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalResource {
    /// `Host` (for `connect`) or `Placeholder` (for `redeem`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Host name or placeholder name.
    pub id: String,
}

/// The context of a dry-run evaluation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalContext {
    /// Destination host (redeem).
    #[serde(default)]
    pub host: Option<String>,
    /// Path (redeem).
    #[serde(default)]
    pub path: Option<String>,
    /// Method.
    #[serde(default)]
    pub method: Option<String>,
    /// Port (default 443).
    #[serde(default)]
    pub port: Option<u16>,
    /// Scheme of the upstream leg, `https` (default) or `http` (redeem).
    #[serde(default)]
    pub scheme: Option<String>,
}

/// `POST /api/policies/evaluate`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// Who.
    pub principal: EvalPrincipal,
    /// `connect` or `redeem`.
    pub action: String,
    /// What.
    pub resource: EvalResource,
    /// Request context.
    #[serde(default)]
    pub context: EvalContext,
}

/// The decision of a dry run.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvaluateResponse {
    /// `allow` or `deny`.
    pub decision: String,
    /// Ids of the determining policies.
    pub policies: Vec<String>,
    /// Reason code for a deny.
    pub reason: Option<String>,
}
