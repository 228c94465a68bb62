//! Cloud runtime identities as subject tokens, so a workload on a cloud VM, function or
//! pod exchanges the credential its platform already issues:
//!
//! - **`gcp-wif`**: a service account's Google-signed OIDC ID token, as the metadata
//!   server issues it (`.../service-accounts/default/identity?audience=...`). Checked:
//!   signature (Google's JWKS by default), `iss`, `aud`, `exp`, `email_verified`, and
//!   `azp` = `sub` (a token the service account obtained for itself). Principal
//!   `gcp:<project>/<service-account email>`.
//! - **`azure-mi`**: a managed identity's Entra ID access token, as IMDS issues it
//!   (`/metadata/identity/oauth2/token?resource=...`). Checked: signature (the
//!   tenant's JWKS by default), `iss` (v1 `sts.windows.net/<tenant>/` or v2
//!   `login.microsoftonline.com/<tenant>/v2.0`), `aud`, `exp`, `tid`, `oid`. Principal
//!   `azure:<tenant>/<object id>`.
//!
//! Each configured project or tenant is an allowlist: a token from anywhere else is an
//! untrusted issuer, whatever its signature.

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::attest::{Attested, JwksCache, JwksSource, TagClaims, TokenError, replay_key, tags_of};

/// Google's ID-token issuers (both spellings are in use).
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// Google's signing keys.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// The JWKS of an Entra ID tenant.
pub fn azure_jwks_url(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys")
}

/// Claims of a verified token, with a text accessor.
struct Claims(Map<String, Value>);

impl Claims {
    fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn exp(&self) -> i64 {
        self.0.get("exp").and_then(Value::as_i64).unwrap_or(0)
    }
}

/// Whether `value` matches a `*` glob (`*` matches any run of characters).
pub(crate) fn glob(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}

// ---------------------------------------------------------------------------- GCP

/// One trusted GCP audience and the projects (and service accounts) it admits.
#[derive(Debug, Clone)]
pub struct GcpConfig {
    /// The `aud` the workload asks the metadata server for (Excalibur's URL).
    pub audience: String,
    /// Projects whose service accounts are admitted.
    pub projects: Vec<String>,
    /// Service-account emails admitted (`*` globs); empty: any in the projects.
    pub service_accounts: Vec<String>,
    /// Namespace of the principals; the project id when absent.
    pub namespace: Option<String>,
}

/// The `gcp-wif` attestor for one audience.
#[derive(Debug)]
pub struct Gcp {
    config: GcpConfig,
    keys: JwksCache,
    /// Claims mapped to tags.
    pub tag_claims: TagClaims,
}

impl Gcp {
    /// An attestor verifying with `jwks` (Google's keys, or a test's).
    pub fn new(config: GcpConfig, jwks: Box<dyn JwksSource>) -> Self {
        Self {
            config,
            keys: JwksCache::new(jwks),
            tag_claims: Vec::new(),
        }
    }

    /// The audience this attestor accepts.
    pub fn audience(&self) -> &str {
        &self.config.audience
    }

    /// Verifies a Google-signed ID token of a service account.
    pub async fn verify(&self, token: &str) -> Result<Attested, TokenError> {
        let audience = self.config.audience.as_str();
        let c = Claims(
            self.keys
                .decode(token, &[Algorithm::RS256, Algorithm::ES256], |v| {
                    v.set_issuer(&GOOGLE_ISSUERS);
                    v.set_audience(&[audience]);
                    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                })
                .await?,
        );
        let invalid = |why: &str| TokenError::Invalid(why.to_owned());
        if c.0.get("email_verified").and_then(Value::as_bool) != Some(true) {
            return Err(invalid("`email_verified` is not true"));
        }
        let email = c.text("email").ok_or_else(|| invalid("no `email` claim"))?;
        // A token the service account obtained for itself, not one a user's OAuth client
        // minted for it.
        if c.text("azp").is_none() || c.text("azp") != c.text("sub") {
            return Err(invalid("`azp` is not the service account's own id (`sub`)"));
        }
        let project = project_of(email, &c.0).ok_or_else(|| {
            invalid("cannot tell the project: neither a *.iam.gserviceaccount.com email nor google.compute_engine.project_id")
        })?;
        if !self.config.projects.iter().any(|p| p == &project) {
            return Err(TokenError::Invalid(format!(
                "project `{project}` is not admitted"
            )));
        }
        if !self.config.service_accounts.is_empty()
            && !self.config.service_accounts.iter().any(|p| glob(p, email))
        {
            return Err(TokenError::Invalid(format!(
                "service account `{email}` is not admitted"
            )));
        }
        let engine = c.0.get("google").and_then(|g| g.get("compute_engine"));
        Ok(Attested {
            principal: format!("gcp:{project}/{email}"),
            namespace: self
                .config
                .namespace
                .clone()
                .unwrap_or_else(|| project.clone()),
            attestation: "gcp",
            jti: replay_key(c.text("jti").map(str::to_owned), token),
            exp: c.exp(),
            details: serde_json::json!({
                "project": project,
                "service_account": email,
                "subject": c.text("sub"),
                "instance_id": engine.and_then(|e| e.get("instance_id")),
                "zone": engine.and_then(|e| e.get("zone")),
            }),
            tags: tags_of(token, &self.tag_claims),
        })
    }
}

/// The project of a service account: `<name>@<project>.iam.gserviceaccount.com`, or the
/// Compute Engine project of a default account.
fn project_of(email: &str, claims: &Map<String, Value>) -> Option<String> {
    let (_, domain) = email.rsplit_once('@')?;
    if let Some(project) = domain.strip_suffix(".iam.gserviceaccount.com") {
        return Some(project.to_owned()).filter(|p| !p.is_empty() && !p.contains('.'));
    }
    claims
        .get("google")?
        .get("compute_engine")?
        .get("project_id")?
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

/// Verifies with the attestor of the token's audience.
pub(crate) async fn verify_gcp(attestors: &[Gcp], token: &str) -> Result<Attested, TokenError> {
    let aud = crate::attest::unverified_claims(token)
        .and_then(|c| c.get("aud").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| TokenError::Malformed("no `aud` claim".to_owned()))?;
    let gcp = attestors
        .iter()
        .find(|g| g.config.audience == aud)
        .ok_or(TokenError::UntrustedIssuer)?;
    gcp.verify(token).await
}

// -------------------------------------------------------------------------- Azure

/// One trusted Entra ID tenant and the managed identities it admits.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    /// Tenant id (`tid`).
    pub tenant: String,
    /// The `aud` of the tokens: the resource the workload asks IMDS for.
    pub audience: String,
    /// Object ids (`oid`) admitted; empty: any identity of the tenant.
    pub object_ids: Vec<String>,
    /// Namespace of the principals; the tenant id when absent.
    pub namespace: Option<String>,
}

/// The `azure-mi` attestor for one tenant.
#[derive(Debug)]
pub struct Azure {
    config: AzureConfig,
    issuers: [String; 2],
    keys: JwksCache,
    /// Claims mapped to tags.
    pub tag_claims: TagClaims,
}

impl Azure {
    /// An attestor verifying with `jwks` (the tenant's keys, or a test's).
    pub fn new(config: AzureConfig, jwks: Box<dyn JwksSource>) -> Self {
        let issuers = [
            format!("https://sts.windows.net/{}/", config.tenant),
            format!("https://login.microsoftonline.com/{}/v2.0", config.tenant),
        ];
        Self {
            config,
            issuers,
            keys: JwksCache::new(jwks),
            tag_claims: Vec::new(),
        }
    }

    /// Verifies an Entra ID token of a managed identity.
    pub async fn verify(&self, token: &str) -> Result<Attested, TokenError> {
        let (issuers, audience) = (&self.issuers, self.config.audience.as_str());
        let c = Claims(
            self.keys
                .decode(token, &[Algorithm::RS256, Algorithm::ES256], |v| {
                    v.set_issuer(issuers);
                    v.set_audience(&[audience]);
                    v.set_required_spec_claims(&["exp", "iss", "aud"]);
                })
                .await?,
        );
        let invalid = |why: &str| TokenError::Invalid(why.to_owned());
        if c.text("tid") != Some(self.config.tenant.as_str()) {
            return Err(invalid("`tid` is not the configured tenant"));
        }
        let oid = c.text("oid").ok_or_else(|| invalid("no `oid` claim"))?;
        if !self.config.object_ids.is_empty() && !self.config.object_ids.iter().any(|o| o == oid) {
            return Err(TokenError::Invalid(format!(
                "object id `{oid}` is not admitted"
            )));
        }
        let tenant = &self.config.tenant;
        Ok(Attested {
            principal: format!("azure:{tenant}/{oid}"),
            namespace: self
                .config
                .namespace
                .clone()
                .unwrap_or_else(|| tenant.clone()),
            attestation: "azure",
            jti: replay_key(c.text("uti").or(c.text("jti")).map(str::to_owned), token),
            exp: c.exp(),
            details: serde_json::json!({
                "tenant": tenant,
                "object_id": oid,
                "managed_identity": c.text("xms_mirid"),
                "app_id": c.text("appid").or(c.text("azp")),
            }),
            tags: tags_of(token, &self.tag_claims),
        })
    }
}

/// Verifies with the attestor of the token's tenant.
pub(crate) async fn verify_azure(attestors: &[Azure], token: &str) -> Result<Attested, TokenError> {
    let tid = crate::attest::unverified_claims(token)
        .and_then(|c| c.get("tid").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| TokenError::Malformed("no `tid` claim".to_owned()))?;
    let azure = attestors
        .iter()
        .find(|a| a.config.tenant == tid)
        .ok_or(TokenError::UntrustedIssuer)?;
    azure.verify(token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_projects() {
        assert!(glob(
            "ci-*@acme.iam.gserviceaccount.com",
            "ci-7@acme.iam.gserviceaccount.com"
        ));
        assert!(!glob(
            "ci-*@acme.iam.gserviceaccount.com",
            "ci-7@evil.iam.gserviceaccount.com"
        ));
        assert!(glob("*", "x"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("a*b*c", "a-c"));
        let none = Map::new();
        assert_eq!(
            project_of("ci@acme-prod.iam.gserviceaccount.com", &none).as_deref(),
            Some("acme-prod")
        );
        assert_eq!(project_of("ci@a.b.iam.gserviceaccount.com", &none), None);
        assert_eq!(
            project_of("123-compute@developer.gserviceaccount.com", &none),
            None
        );
        let engine: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"google": {"compute_engine": {"project_id": "acme-prod"}}}),
        )
        .unwrap();
        assert_eq!(
            project_of("123-compute@developer.gserviceaccount.com", &engine).as_deref(),
            Some("acme-prod")
        );
    }
}
