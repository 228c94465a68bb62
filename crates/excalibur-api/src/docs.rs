//! OpenAPI: the document's frame (info, the bearer scheme, the problem response) and
//! the schemas of the few answers built as JSON rather than from a DTO. Everything else
//! in the document is generated from the handlers' `#[utoipa::path]` attributes and the
//! DTOs' `ToSchema` derives ([`crate::openapi`]).

#![allow(
    dead_code,
    reason = "schema-only types: read by utoipa, never constructed"
)]

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The document's frame; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Excalibur API",
        version = "0.1.0",
        description = "Control plane of the Excalibur credential-mediating egress gateway. Errors are application/problem+json. Reads need an operator or admin token; writes need admin."
    ),
    security(("bearer" = [])),
    modifiers(&Bearer),
    components(schemas(excalibur_core::api::Problem))
)]
pub(crate) struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// RFC 8693 token exchange answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenExchangeResponse {
    access_token: String,
    issued_token_type: String,
    token_type: String,
    scope: Option<String>,
    expires_in: i64,
}

/// RFC 6749 error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct OAuthError {
    /// `invalid_request`, `unsupported_grant_type`, `invalid_target`, `server_error`.
    error: String,
    error_description: String,
}

/// The form of `POST /api/oauth/token` (and the JSON of `POST /v1/exchange/token`).
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenExchangeRequest {
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    grant_type: String,
    subject_token: String,
    /// `urn:ietf:params:oauth:token-type:jwt`, `urn:starfly:token-type:spiffe-svid`,
    /// `urn:starfly:token-type:aws-sts` (a signed GetCallerIdentity request, base64 JSON),
    /// `urn:starfly:token-type:gcp-wif` (a GCP service account's ID token) or
    /// `urn:starfly:token-type:azure-mi` (an Azure managed identity's token).
    subject_token_type: String,
    audience: Option<String>,
    scope: Option<String>,
    actor_token: Option<String>,
    actor_token_type: Option<String>,
}

/// The form of `POST /v1/introspect` (RFC 7662).
#[derive(Serialize, ToSchema)]
pub(crate) struct IntrospectRequest {
    token: String,
    token_type_hint: Option<String>,
}

/// RFC 7662 answer: `{"active": false}`, or the token's claims with `active: true`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Introspection {
    active: bool,
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    scope: Option<String>,
    td: Option<String>,
    token_type: Option<String>,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    ready: bool,
    /// Why this replica should get no traffic (503): `recording_failing`,
    /// `audit_queue_full`, `snapshot_stale`, `ca_expired`.
    problems: Vec<String>,
    /// Shared or early-warning states that do not drain the replica:
    /// `database_unavailable`, `recording_failing`, `snapshot_stale`, `ca_expiring`.
    degraded: Vec<String>,
    /// When the CA certificate expires.
    ca_not_after: Option<String>,
    /// PostgreSQL only: age of the snapshot in force.
    snapshot_age_ms: Option<i64>,
}

/// `GET /healthz` when a restart is needed (503).
#[derive(Serialize, ToSchema)]
pub(crate) struct Liveness {
    alive: bool,
    /// `recorder_stopped`, `snapshot_stuck`.
    problems: Vec<String>,
    details: serde_json::Value,
}

/// RFC 9162 inclusion proof.
#[derive(Serialize, ToSchema)]
pub(crate) struct InclusionProof {
    seq: i64,
    tree_size: i64,
    leaf_hash: String,
    root_hash: String,
    audit_path: Vec<String>,
}

/// RFC 9162 consistency proof.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsistencyProof {
    from: i64,
    to: i64,
    from_root: String,
    to_root: String,
    proof: Vec<String>,
}

/// The new signing key's id.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyId {
    kid: String,
}

/// How many bearers a revocation ended.
#[derive(Serialize, ToSchema)]
pub(crate) struct Revoked {
    revoked: i64,
}
