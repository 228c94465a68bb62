//! `/api/crypto/jwt-bearer`: JWT-bearer mappings.

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

use super::crypto::{MappingRecord, root_path};

/// How a JWT-bearer mapping turns its key into the credential it injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
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
    /// Azure workload identity federation: Excalibur's issuer signs the client assertion
    /// (`aud` default `api://AzureADTokenExchange`) for an app registration's federated
    /// credential; `client_credentials` at `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    /// No key is stored.
    AzureFederated,
    /// GCP workload identity federation: Excalibur's issuer signs the subject token,
    /// exchanged at `https://sts.googleapis.com/v1/token` (RFC 8693; `audience` = the
    /// pool provider resource) for a federated access token. No key is stored.
    GcpWorkloadIdentity,
}

impl JwtBearerPreset {
    /// The assertion is signed by Excalibur's OIDC issuer keys, not a stored key.
    pub fn federated(self) -> bool {
        matches!(self, Self::AzureFederated | Self::GcpWorkloadIdentity)
    }
}

/// `POST /api/crypto/jwt-bearer/mappings` (seed 001 §1). With `id`, replaces that mapping.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    #[serde(default)]
    pub issuer: Option<String>,
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
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_exposed")]
    pub real_private_pem: Option<SecretString>,
}

/// A JWT-bearer mapping as listed (the seed's table columns plus its settings).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
