//! Request and response bodies of the REST API; field names match the user docs.
//!
//! Requests reject unknown fields so a typo is an error, not a silent default.

use serde::{Deserialize, Serialize};

use crate::ids::{CredentialId, Role, RuleId, TokenId};
use crate::secret::{SecretString, ShownOnce};

/// `application/problem+json` body (RFC 9457).
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// `POST /api/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label for the token.
    pub name: String,
    /// `admin`, `operator` or `introspection` (only `POST /v1/introspect`).
    pub role: Role,
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Token id.
    pub id: TokenId,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// First characters of the token.
    pub prefix: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// Response of `POST /api/tokens`: the only time the token is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    /// The stored record.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token; shown once.
    pub token: ShownOnce,
}

/// `POST /api/placeholders`: an atomic upsert by placeholder name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertPlaceholder {
    /// The placeholder the workload sends, e.g. `XCALIBUR_GITHUB_TOKEN`.
    pub placeholder: String,
    /// The real value; sealed at rest, never returned.
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// `POST /api/service-credentials` (seed 000 §1).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedServiceCredential {
    /// The stored record.
    #[serde(flatten)]
    pub info: ServiceCredentialInfo,
    /// The proxy bearer.
    pub token: ShownOnce,
}

/// `POST /api/import`: many objects at once, written in one transaction (all or
/// nothing), each with the audit event its own endpoint writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Providers (created or replaced), written first.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Placeholders (created or rotated).
    #[serde(default)]
    pub placeholders: Vec<UpsertPlaceholder>,
    /// Translation rules (created).
    #[serde(default)]
    pub translation_rules: Vec<CreateTranslationRule>,
    /// Service credentials (created; their tokens are in the answer, once).
    #[serde(default)]
    pub service_credentials: Vec<CreateServiceCredential>,
}

/// The answer to `POST /api/import`.
#[derive(Debug, Clone, Serialize)]
pub struct ImportResponse {
    /// Providers as stored.
    pub providers: Vec<Provider>,
    /// Placeholders as stored (fingerprints only).
    pub placeholders: Vec<UpsertedPlaceholder>,
    /// Rules as stored.
    pub translation_rules: Vec<TranslationRule>,
    /// Credentials with their tokens (shown once).
    pub service_credentials: Vec<CreatedServiceCredential>,
}

/// `POST /api/translation-rules`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTranslationRule {
    /// Principal selector: `*`, an exact principal id (`service:ci-runner`) or a glob.
    #[serde(default = "star")]
    pub principal: String,
    /// Placeholder name or glob.
    pub placeholder: String,
    /// Hosts the rule applies to (exact or `*.suffix`); must lie within the provider's hosts.
    pub hosts: Vec<String>,
    /// Path prefix (default `/`).
    #[serde(default = "slash")]
    pub path_prefix: String,
    /// Methods (empty = any).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Also substitute in request bodies (streaming, bounded).
    #[serde(default)]
    pub substitute_body: bool,
}

fn star() -> String {
    "*".to_owned()
}

fn slash() -> String {
    "/".to_owned()
}

/// A stored translation rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranslationRule {
    /// Id.
    pub id: RuleId,
    /// The rule as created.
    #[serde(flatten)]
    pub rule: CreateTranslationRule,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// One proxied request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    /// Flow id.
    pub id: String,
    /// Its place in the recording order (the paging cursor of `GET /api/flows`); set
    /// when read back, absent in what is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// RFC 3339 start time.
    pub ts: String,
    /// Principal id, or empty when unidentified.
    pub principal: String,
    /// Method.
    pub method: String,
    /// Destination host.
    pub host: String,
    /// Request path (no query).
    pub path: String,
    /// Status returned to the workload.
    pub status: u16,
    /// Request body bytes sent upstream.
    pub bytes_up: u64,
    /// Response body bytes sent to the workload.
    pub bytes_down: u64,
    /// Latency in milliseconds.
    pub latency_ms: u64,
    /// Placeholders substituted.
    pub placeholders: Vec<String>,
    /// `allow` or `deny`.
    pub decision: String,
    /// Reason code for a deny or failure.
    pub reason: Option<String>,
}

/// `POST /api/policies`: an operator Cedar policy, validated against the schema on write.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The policy as created.
    #[serde(flatten)]
    pub policy: CreatePolicy,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// The principal of a dry-run evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalResource {
    /// `Host` (for `connect`) or `Placeholder` (for `redeem`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Host name or placeholder name.
    pub id: String,
}

/// The context of a dry-run evaluation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluateResponse {
    /// `allow` or `deny`.
    pub decision: String,
    /// Ids of the determining policies.
    pub policies: Vec<String>,
    /// Reason code for a deny.
    pub reason: Option<String>,
}

/// `POST /api/webhooks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://` (or `http://`) receiver URL.
    pub url: String,
    /// Event types or globs, e.g. `credential_rotated`, `credential_expired`, `placeholder_*`.
    pub event_types: Vec<String>,
    /// Signing secret (at least 16 characters); generated and shown once when absent.
    #[serde(default)]
    pub secret: Option<SecretString>,
}

/// A webhook as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedWebhook {
    /// The stored record.
    #[serde(flatten)]
    pub info: WebhookInfo,
    /// The generated signing secret, shown once (absent when the caller chose it).
    pub secret: Option<ShownOnce>,
}

/// One delivery attempt series of one event to one webhook.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// `POST /api/namespaces` (upsert) and the listed form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Kubernetes namespace (or tenant) name.
    pub name: String,
    /// Destinations workloads of this namespace may reach.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
}

/// A workload that exchanged a platform token for a proxy bearer (Fleet & Namespaces).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret_values() {
        let req = UpsertPlaceholder {
            placeholder: "XCALIBUR_X_TOKEN".into(),
            real_value: "sk_live_SECRET".into(),
            provider_id: "p".into(),
            route_family: None,
            expires_at: None,
        };
        let hook = CreateWebhook {
            url: "https://h".into(),
            event_types: vec![],
            secret: Some("whsec_SECRET".into()),
        };
        for text in [format!("{req:?}"), format!("{hook:?}")] {
            assert!(!text.contains("SECRET"), "{text}");
        }
    }

    /// Every request DTO with a secret field, read from JSON as the API reads it: its
    /// `Debug` shows none of the secrets (the field type redacts, not a hand-written impl).
    #[test]
    fn request_dtos_redact_their_secrets_structurally() {
        fn debug_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(
            v: serde_json::Value,
        ) -> String {
            format!("{:?}", serde_json::from_value::<T>(v).unwrap())
        }
        let texts = [
            debug_of::<CreateSigv4Mapping>(serde_json::json!({
                "provider_id": "aws", "target_host": "s3.example", "region": "us-east-1", "service": "s3",
                "real_access_key_id": "AKIAEXAMPLE", "real_secret_access_key": "SECRET_sak", "real_session_token": "SECRET_st"})),
            debug_of::<CreateJwtBearerMapping>(serde_json::json!({
                "provider_id": "p", "token_host": "t.example", "resource_host": "r.example", "issuer": "i",
                "real_private_pem": "-----BEGIN PRIVATE KEY-----SECRET"})),
            debug_of::<CreateMtlsMapping>(serde_json::json!({
                "provider_id": "p", "target_authority": "m.example:443",
                "real_client_cert_pem": "cert", "real_client_key_pem": "-----BEGIN PRIVATE KEY-----SECRET"})),
            debug_of::<CreateOauthRefreshMapping>(serde_json::json!({
                "provider_id": "p", "token_host": "t.example", "resource_host": "r.example", "client_id": "c",
                "real_client_secret": "SECRET_cs", "real_refresh_token": "SECRET_rt"})),
            debug_of::<CreateSshRoute>(serde_json::json!({
                "user": "u", "source_network": "10.0.0.0/8", "target_host": "h", "target_user": "t",
                "target_host_key": "ssh-ed25519 AAAA", "target_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----SECRET"})),
            format!(
                "{:?}",
                Sigv4Keys {
                    access_key_id: "AKIAEXAMPLE".into(),
                    secret_access_key: "SECRET_sak".into(),
                    session_token: Some("SECRET_st".into()),
                }
            ),
        ];
        for text in texts {
            assert!(!text.contains("SECRET"), "{text}");
        }
        // The sealed payload still carries the values (it is sealed, never answered).
        let keys = Sigv4Keys {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "SECRET_sak".into(),
            session_token: None,
        };
        let sealed = serde_json::to_string(&keys).unwrap();
        assert!(sealed.contains("SECRET_sak"), "{sealed}");
        let back: Sigv4Keys = serde_json::from_str(&sealed).unwrap();
        assert_eq!(back.secret_access_key.expose(), "SECRET_sak");
    }
}

/// A crypto-mediation family; each has its own mappings table in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CryptoFamily {
    /// AWS Signature Version 4.
    Sigv4,
    /// RFC 7523 JWT-bearer assertions exchanged for access tokens.
    JwtBearer,
    /// Upstream mutual TLS with a client certificate the proxy holds.
    Mtls,
    /// RFC 9449 DPoP proofs with a key the proxy generated.
    Dpop,
    /// OAuth2 access tokens refreshed from a refresh token the proxy holds.
    OauthRefresh,
}

impl CryptoFamily {
    /// Wire name, also the id prefix of its mappings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sigv4 => "sigv4",
            Self::JwtBearer => "jwt_bearer",
            Self::Mtls => "mtls",
            Self::Dpop => "dpop",
            Self::OauthRefresh => "oauth_refresh",
        }
    }

    /// Events for created / updated / deleted mappings.
    pub fn events(self) -> [crate::audit::EventType; 3] {
        use crate::audit::EventType as E;
        match self {
            Self::Sigv4 => [
                E::Sigv4MappingCreated,
                E::Sigv4MappingUpdated,
                E::Sigv4MappingDeleted,
            ],
            Self::JwtBearer => [
                E::JwtBearerMappingCreated,
                E::JwtBearerMappingUpdated,
                E::JwtBearerMappingDeleted,
            ],
            Self::Mtls => [
                E::MtlsMappingCreated,
                E::MtlsMappingUpdated,
                E::MtlsMappingDeleted,
            ],
            Self::Dpop => [
                E::DpopMappingCreated,
                E::DpopMappingUpdated,
                E::DpopMappingDeleted,
            ],
            Self::OauthRefresh => [
                E::OauthRefreshMappingCreated,
                E::OauthRefreshMappingUpdated,
                E::OauthRefreshMappingDeleted,
            ],
        }
    }
}

/// A stored crypto mapping: non-secret settings as JSON, the secret sealed elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MappingRecord {
    /// Family.
    pub family: CryptoFamily,
    /// Mapping id (`<family>_<hex>`); also the name policy decides redemption on.
    pub id: String,
    /// The provider whose hosts bound where the mapping's key may be used.
    pub provider_id: String,
    /// Family-specific non-secret settings.
    pub config: serde_json::Value,
    /// `sha256:<hex>` of the sealed secret material.
    pub fingerprint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl MappingRecord {
    /// A text setting from `config`.
    pub fn setting(&self, key: &str) -> Option<String> {
        self.config
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }

    /// The family's listed form (as the API returns it), as JSON.
    pub fn listed(&self) -> serde_json::Value {
        let v = match self.family {
            CryptoFamily::Sigv4 => serde_json::to_value(Sigv4Mapping::from_record(self)),
            CryptoFamily::JwtBearer => serde_json::to_value(JwtBearerMapping::from_record(self)),
            CryptoFamily::Mtls => serde_json::to_value(MtlsMapping::from_record(self)),
            CryptoFamily::Dpop => serde_json::to_value(DpopMapping::from_record(self)),
            CryptoFamily::OauthRefresh => {
                serde_json::to_value(OauthRefreshMapping::from_record(self))
            }
        };
        v.unwrap_or_default()
    }
}

/// `POST /api/crypto/sigv4/mappings` (seed 001 §4). With `id`, replaces that mapping
/// (rotation); without, creates one.
#[derive(Debug, Clone, Deserialize)]
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
    /// Real access key id (sealed; listed as a prefix).
    pub real_access_key_id: String,
    /// Real secret access key (sealed; never returned).
    pub real_secret_access_key: SecretString,
    /// Session token for temporary credentials (sealed; never returned).
    #[serde(default)]
    pub real_session_token: Option<SecretString>,
}

fn root_path() -> String {
    "/".to_owned()
}

/// The sealed part of a SigV4 mapping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sigv4Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    #[serde(serialize_with = "SecretString::serialize_for_sealing")]
    pub secret_access_key: SecretString,
    /// Session token.
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_for_sealing")]
    pub session_token: Option<SecretString>,
}

/// A SigV4 mapping as listed (the seed's table columns plus its settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresignedUrl {
    /// The URL (a bearer credential until it expires).
    pub url: ShownOnce,
    /// RFC 3339 expiry.
    pub expires_at: String,
}

/// How a JWT-bearer mapping turns its key into the credential it injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum JwtBearerPreset {
    /// RFC 7523 §2.1: POST `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and the
    /// assertion to the token endpoint; inject the returned `access_token`.
    #[default]
    Rfc7523,
    /// Google service account: as RFC 7523, with a `scope` claim and `aud` = token URL.
    Google,
    /// GitHub App: the app JWT (RS256, `iss` = app id, `exp` <= 10 min) is POSTed as a
    /// bearer to `token_path` (`/app/installations/{id}/access_tokens`); inject `token`.
    GithubApp,
    /// No exchange: inject the self-signed assertion itself (GitHub `/app` endpoints).
    SelfSigned,
}

/// `POST /api/crypto/jwt-bearer/mappings` (seed 001 §1). With `id`, replaces that mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJwtBearerMapping {
    /// Existing mapping to replace.
    #[serde(default)]
    pub id: Option<String>,
    /// Provider; the token host and resource host must be among its hosts.
    pub provider_id: String,
    /// Where the assertion is exchanged.
    pub token_host: String,
    /// Token endpoint path on `token_host` (default `/token`).
    #[serde(default)]
    pub token_path: Option<String>,
    /// Where the access token is presented (default: `token_host`).
    #[serde(default)]
    pub resource_host: Option<String>,
    /// Requests under this path on the resource host get the token.
    #[serde(default = "root_path")]
    pub path_prefix: String,
    /// OAuth client id (sent as `client_id` when set).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `iss` claim.
    pub issuer: String,
    /// `sub` claim (default: `issuer`).
    #[serde(default)]
    pub subject: Option<String>,
    /// `aud` claim (the authorization server's issuer or token endpoint URL).
    #[serde(default)]
    pub audience: Option<String>,
    /// Space-delimited scopes (`scope` claim for Google, `scope` parameter otherwise).
    #[serde(default)]
    pub scope: Option<String>,
    /// Exchange shape.
    #[serde(default)]
    pub preset: JwtBearerPreset,
    /// PKCS#8 / SEC1 / PKCS#1 private key, PEM (RSA -> RS256, P-256 -> ES256, Ed25519 -> EdDSA).
    pub real_private_pem: SecretString,
}

/// A JWT-bearer mapping as listed (the seed's table columns plus its settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JwtBearerMapping {
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
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: Option<String>,
    /// Exchange shape.
    pub preset: JwtBearerPreset,
    /// JWS algorithm of the key.
    pub alg: String,
    /// UI column "Surrogate": the key id (`kid`) assertions carry.
    pub surrogate: String,
    /// `sha256:<hex>` of the sealed key (changes on rotation).
    pub fingerprint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl JwtBearerMapping {
    /// The listed form of a stored mapping.
    pub fn from_record(r: &MappingRecord) -> Self {
        let text = |k: &str| r.setting(k).unwrap_or_default();
        let opt = |k: &str| r.setting(k);
        let resource = text("resource_host");
        Self {
            id: r.id.clone(),
            provider_id: r.provider_id.clone(),
            authority: resource.clone(),
            token_host: text("token_host"),
            token_path: text("token_path"),
            resource_host: resource,
            path_prefix: text("path_prefix"),
            issuer: text("issuer"),
            audience: opt("audience"),
            preset: r
                .config
                .get("preset")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            alg: text("alg"),
            surrogate: text("kid"),
            fingerprint: r.fingerprint.clone(),
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}

/// `POST /api/crypto/mtls/mappings` (seed 001 §3). With `id`, replaces that mapping.
#[derive(Debug, Clone, Deserialize)]
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
    pub real_client_key_pem: SecretString,
}

/// An mTLS mapping as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// `POST /api/crypto/dpop/mappings` (seed 001 §2). The proof key is generated by the
/// proxy; with `id`, the mapping is replaced and gets a new key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDpopMapping {
    /// Existing mapping to replace.
    #[serde(default)]
    pub id: Option<String>,
    /// Provider; both hosts must be among its hosts.
    pub provider_id: String,
    /// Authorization server host (token requests get proofs).
    pub token_host: String,
    /// Token endpoint path prefix (default `/token`).
    #[serde(default)]
    pub token_path_prefix: Option<String>,
    /// Resource server host (calls get `Authorization: DPoP` and a proof with `ath`).
    pub resource_host: String,
    /// Resource path prefix (default `/`).
    #[serde(default)]
    pub resource_path_prefix: Option<String>,
    /// OAuth client id (informational; the workload authenticates its token request).
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A DPoP mapping as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DpopMapping {
    /// Mapping id; translation rules name it as the placeholder to redeem.
    pub id: String,
    /// Provider.
    pub provider_id: String,
    /// UI column "Authority": the resource host.
    pub authority: String,
    /// UI column "Token host".
    pub token_host: String,
    /// Token endpoint path prefix.
    pub token_path_prefix: String,
    /// UI column "Resource host".
    pub resource_host: String,
    /// UI column "Path prefix": the resource path prefix.
    pub path_prefix: String,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// RFC 7638 thumbprint of the proof key (what `cnf.jkt` of bound tokens carries).
    pub jkt: String,
    /// UI column "Surrogate": the key thumbprint.
    pub surrogate: String,
    /// `sha256:<hex>` of the sealed key.
    pub fingerprint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl DpopMapping {
    /// The listed form of a stored mapping.
    pub fn from_record(r: &MappingRecord) -> Self {
        let text = |k: &str| r.setting(k).unwrap_or_default();
        Self {
            id: r.id.clone(),
            provider_id: r.provider_id.clone(),
            authority: text("resource_host"),
            token_host: text("token_host"),
            token_path_prefix: text("token_path_prefix"),
            resource_host: text("resource_host"),
            path_prefix: text("resource_path_prefix"),
            client_id: r
                .config
                .get("client_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            jkt: text("jkt"),
            surrogate: text("jkt"),
            fingerprint: r.fingerprint.clone(),
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}

/// `POST /api/crypto/oauth-refresh/mappings`. With `id`, replaces that mapping (a new
/// refresh token from the operator starts afresh).
#[derive(Debug, Clone, Deserialize)]
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
    pub real_client_secret: Option<SecretString>,
    /// Refresh token (sealed; rotated ones are stored by the proxy).
    pub real_refresh_token: SecretString,
    /// Scope to ask for on refresh.
    #[serde(default)]
    pub scope: Option<String>,
}

/// The sealed part of an OAuth2 refresh mapping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OauthRefreshKeys {
    /// Client secret.
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_for_sealing")]
    pub client_secret: Option<SecretString>,
    /// Current refresh token.
    #[serde(serialize_with = "SecretString::serialize_for_sealing")]
    pub refresh_token: SecretString,
}

/// An OAuth2 refresh mapping as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// `GET /api/netbird/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetbirdStatus {
    /// Whether `EXCALIBUR_NETBIRD_SYNC_URL` is set.
    pub configured: bool,
    /// The management API base URL.
    pub sync_url: Option<String>,
    /// RFC 3339 time of the last attempt.
    pub last_sync_at: Option<String>,
    /// RFC 3339 time of the last successful sync.
    pub last_success_at: Option<String>,
    /// The last attempt's error (the last good state stays in force).
    pub error: Option<String>,
    /// Peers synced.
    pub peers: usize,
    /// Groups synced.
    pub groups: usize,
    /// Routes synced.
    pub routes: usize,
    /// Policies synced.
    pub policies: usize,
}

/// A NetBird peer as Excalibur uses it (`GET /api/netbird/peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetbirdPeer {
    /// NetBird peer id.
    pub id: String,
    /// The principal it becomes: `developer_device:<id>`.
    pub principal: String,
    /// Peer name.
    pub name: String,
    /// Overlay address (what identifies it to the proxy).
    pub ip: String,
    /// The NetBird user the device belongs to.
    pub user: String,
    /// Group names.
    pub groups: Vec<String>,
    /// Connected to the overlay at the last sync.
    pub connected: bool,
    /// Domains from the route ACLs distributed to its groups.
    pub allowed_domains: Vec<String>,
    /// Networks (CIDRs) from the network routes distributed to its groups.
    pub networks: Vec<String>,
    /// Whether an exit-node (default) route applies to it.
    pub default_route: bool,
}

/// `POST /api/ssh/routes`: which target a user reaches from which network (seed 000 §2).
/// With an existing `id` it replaces that route (a rotation of its target key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSshRoute {
    /// Replace this route (absent: a new route).
    #[serde(default)]
    pub id: Option<String>,
    /// The SSH user name the client logs in as.
    pub user: String,
    /// The network the client must connect from (CIDR).
    pub source_network: String,
    /// Target host (name or address).
    pub target_host: String,
    /// Target port.
    #[serde(default = "default_ssh_port")]
    pub target_port: u16,
    /// The account the gateway logs in as on the target.
    pub target_user: String,
    /// The target's host key (OpenSSH public-key line); a target presenting another key
    /// is refused.
    pub target_host_key: String,
    /// The gateway's private key for the target (OpenSSH PEM; sealed, never returned).
    /// Absent: the gateway's own client key (`GET /api/ssh/gateway`).
    #[serde(default)]
    pub target_private_key: Option<SecretString>,
    /// Public keys (OpenSSH lines) the user may log in with; users with a certificate
    /// from a trusted user CA need none.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// Where HTTP requests from the session's shell may go (exact or `*.suffix`).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Set `HTTP_PROXY`/`HTTPS_PROXY` with a session-bound proxy token in the shell.
    #[serde(default = "default_true")]
    pub inject_proxy: bool,
    /// Allow `ssh -L` (direct-tcpip) through this route.
    #[serde(default)]
    pub port_forwarding: bool,
}

fn default_ssh_port() -> u16 {
    22
}

fn default_true() -> bool {
    true
}

/// An SSH route as listed (the target key only as a fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshRoute {
    /// Id (`sshr_…`).
    pub id: String,
    /// SSH user name.
    pub user: String,
    /// Source CIDR.
    pub source_network: String,
    /// Target host.
    pub target_host: String,
    /// Target port.
    pub target_port: u16,
    /// Target account.
    pub target_user: String,
    /// Pinned target host key (public).
    pub target_host_key: String,
    /// `gateway` (the gateway's client key) or `route` (a sealed per-route key).
    pub target_key: String,
    /// SHA-256 fingerprint of the route's own key, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_fingerprint: Option<String>,
    /// Authorized user keys (public).
    pub authorized_keys: Vec<String>,
    /// Allowed HTTP destinations for the session's shell.
    pub allowed_domains: Vec<String>,
    /// Proxy variables injected into the shell.
    pub inject_proxy: bool,
    /// `ssh -L` allowed.
    pub port_forwarding: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// An SSH-gateway session (`GET /api/sessions`; the seed's Session, User, Source,
/// Started, State).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSession {
    /// Session id (`sess_…`).
    pub id: String,
    /// The SSH user.
    pub user: String,
    /// The principal its HTTP requests are attributed to: `user_session:<user>@<id>`.
    pub principal: String,
    /// The route that chose the target.
    pub route_id: String,
    /// The client's address.
    pub source: String,
    /// `host:port` of the target.
    pub target: String,
    /// How the user authenticated: `publickey` or `certificate`.
    pub auth: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// `active`, `ended` or `revoked`.
    pub state: String,
    /// RFC 3339 end time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Why it ended (`closed`, `revoked`, `gateway_lost`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// The address proxy requests from this session must come from (the target's).
    #[serde(default)]
    pub proxy_source: String,
    /// The gateway process holding the connection (a replica instance id).
    #[serde(default)]
    pub gateway: String,
    /// Factors the user CA asserted in the certificate (`factors@excalibur.dev`, e.g.
    /// `Fido2`), beyond the login method in `auth`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<String>,
    /// Tags the user CA asserted (`<tag>@excalibur.dev` extensions), for Cedar.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// `GET /api/ssh/gateway`: what operators put on targets and in `known_hosts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshGatewayInfo {
    /// Whether the gateway listens.
    pub enabled: bool,
    /// The gateway's host key (OpenSSH public-key line), for clients' `known_hosts`.
    pub host_key: String,
    /// The gateway's client key (OpenSSH public-key line), for targets' `authorized_keys`.
    pub client_key: String,
    /// Fingerprints of trusted user-certificate CAs.
    pub user_ca_fingerprints: Vec<String>,
}
