//! Platform tokens (JWTs) a workload exchanges for a proxy bearer: Kubernetes projected
//! service-account tokens, SPIFFE JWT-SVIDs and generic OIDC workload tokens (GitHub
//! Actions, GitLab CI, ...). Each issuer's keys come from its JWKS, refreshed when a token
//! names an unknown `kid` (rate-limited). Algorithms are pinned by the key, never taken
//! from the token alone.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// Least time between two JWKS refreshes triggered by unknown key ids.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Where an issuer's JWKS comes from (a URL or a file); implemented at the edge.
pub trait JwksSource: Send + Sync + std::fmt::Debug {
    /// Fetches the JWKS document.
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
}

/// Why a subject token was refused. All map to RFC 8693 `invalid_request`.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The JWT header or claims are malformed.
    #[error("the subject token is malformed: {0}")]
    Malformed(String),
    /// The signature, issuer, audience or lifetime check failed.
    #[error("the subject token is invalid: {0}")]
    Invalid(String),
    /// No key with this id, even after a refresh.
    #[error("the subject token is signed with unknown key `{0}`")]
    UnknownKey(String),
    /// The JWKS could not be loaded.
    #[error("the issuer's keys are unavailable: {0}")]
    Jwks(String),
    /// No configured issuer accepts this token.
    #[error("no trusted issuer for this token")]
    UntrustedIssuer,
}

/// A verified platform identity, ready to become a workload principal.
#[derive(Debug, Clone)]
pub struct Attested {
    /// Principal id, e.g. `k8s:prod/payments/api` or `spiffe://td/svc/billing`.
    pub principal: String,
    /// Namespace (Kubernetes namespace, SPIFFE trust domain, mapped OIDC claim).
    pub namespace: String,
    /// `kubernetes`, `spiffe-jwt`, `oidc`, `gcp`, `azure` or `aws`.
    pub attestation: &'static str,
    /// Replay key: the token's `jti`, or a hash of the token when it has none.
    pub jti: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Attestation facts for the audit event.
    pub details: serde_json::Value,
    /// Attributes mapped from the token's claims (`tag_claims`), sorted by name.
    pub tags: Vec<(String, String)>,
}

/// `(tag, claim path)` pairs: the tag gets the claim's value; a path walks nested
/// objects with `/` (`kubernetes.io/namespace`). Strings, numbers and booleans only.
pub type TagClaims = Vec<(String, String)>;

/// The payload of a compact JWS, decoded but **not verified**: only for a token that
/// was verified already, or whose hash is on record as one Excalibur issued.
pub fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The tags of a verified token (its payload read again, after verification).
pub(crate) fn tags_of(token: &str, mapping: &[(String, String)]) -> Vec<(String, String)> {
    if mapping.is_empty() {
        return Vec::new();
    }
    let claims = unverified_claims(token).unwrap_or_default();
    let mut tags: Vec<(String, String)> = mapping
        .iter()
        .filter_map(|(tag, path)| {
            let mut v = &claims;
            for segment in path.split('/') {
                v = v.get(segment)?;
            }
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            (text.len() <= 256).then(|| (tag.clone(), text))
        })
        .collect();
    tags.sort();
    tags
}

struct Keys(HashMap<String, (DecodingKey, Algorithm)>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// One issuer's verification keys.
#[derive(Debug)]
pub struct JwksCache {
    source: Box<dyn JwksSource>,
    /// Only keys with this `use` count (SPIFFE bundles: `jwt-svid`).
    require_use: Option<&'static str>,
    keys: RwLock<Arc<Keys>>,
    last_refresh: Mutex<Option<Instant>>,
}

impl JwksCache {
    /// A cache over `source`; keys are loaded on first use.
    pub fn new(source: Box<dyn JwksSource>) -> Self {
        Self {
            source,
            require_use: None,
            keys: RwLock::new(Arc::new(Keys(HashMap::new()))),
            last_refresh: Mutex::new(None),
        }
    }

    /// A cache that keeps only keys whose `use` is `key_use` (SPIFFE bundle semantics).
    pub fn with_use(source: Box<dyn JwksSource>, key_use: &'static str) -> Self {
        Self {
            require_use: Some(key_use),
            ..Self::new(source)
        }
    }

    fn current(&self) -> Arc<Keys> {
        self.keys
            .read()
            .map(|k| Arc::clone(&k))
            .unwrap_or_else(|_| Arc::new(Keys(HashMap::new())))
    }

    async fn refresh(&self) -> Result<(), TokenError> {
        {
            let Ok(mut last) = self.last_refresh.lock() else {
                return Ok(());
            };
            if last.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let text = self.source.fetch().await.map_err(TokenError::Jwks)?;
        let keys = parse_jwks(&text, self.require_use)?;
        if let Ok(mut k) = self.keys.write() {
            *k = Arc::new(keys);
        }
        Ok(())
    }

    /// Verifies `token`'s signature with the key its header names, with the algorithm
    /// that key pins (which must be in `allowed`), then the claim checks `configure` sets.
    pub(crate) async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        allowed: &[Algorithm],
        configure: impl FnOnce(&mut Validation),
    ) -> Result<T, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let kid = header
            .kid
            .clone()
            .ok_or_else(|| TokenError::Malformed("no `kid` in the header".to_owned()))?;
        if !self.current().0.contains_key(&kid) {
            self.refresh().await?;
        }
        let keys = self.current();
        let (key, alg) = keys
            .0
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        if header.alg != *alg || !allowed.contains(alg) {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not allowed for key `{kid}`",
                header.alg
            )));
        }
        let mut validation = Validation::new(*alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        configure(&mut validation);
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

/// Parses a JWKS, pinning each key's algorithm from its key type. Keys without a `kid`,
/// symmetric keys and unknown types are ignored.
fn parse_jwks(text: &str, require_use: Option<&str>) -> Result<Keys, TokenError> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|e| TokenError::Jwks(format!("not a JWKS: {e}")))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if let Some(wanted) = require_use {
            let matches = matches!(&jwk.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Other(u)) if u == wanted);
            if !matches {
                continue;
            }
        }
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => continue,
            },
            _ => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        keys.insert(kid, (key, alg));
    }
    Ok(Keys(keys))
}

fn now_secs() -> i64 {
    excalibur_core::time::Timestamp::now().millis() / 1000
}

pub(crate) fn replay_key(jti: Option<String>, token: &str) -> String {
    jti.unwrap_or_else(|| excalibur_core::secret::fingerprint(token.as_bytes()))
}

// ------------------------------------------------------------------- Kubernetes

/// Trust settings for one cluster.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// Expected `iss`, byte for byte.
    pub issuer: String,
    /// Cluster name recorded on principals.
    pub cluster: String,
    /// The audience the SA token must carry (Excalibur's own).
    pub audience: String,
}

#[derive(Debug, Deserialize)]
struct K8sTokenClaims {
    sub: String,
    exp: i64,
    jti: Option<String>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: K8sClaims,
}

#[derive(Debug, Deserialize)]
struct K8sClaims {
    namespace: String,
    serviceaccount: Named,
    pod: Option<Named>,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

/// A cluster's verifier.
#[derive(Debug)]
pub struct Kubernetes {
    config: KubernetesConfig,
    keys: JwksCache,
    /// Claims mapped to tags.
    pub tag_claims: TagClaims,
}

impl Kubernetes {
    /// A verifier; keys are loaded on first use.
    pub fn new(config: KubernetesConfig, source: Box<dyn JwksSource>) -> Self {
        Self {
            config,
            keys: JwksCache::new(source),
            tag_claims: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    /// Verifies a projected SA token: signature, `iss`, `aud` (must contain ours),
    /// `exp`/`nbf` with 30 s leeway, and the `kubernetes.io` claims agreeing with `sub`.
    pub async fn verify(&self, token: &str) -> Result<Attested, TokenError> {
        let (issuer, audience) = (&self.config.issuer, &self.config.audience);
        let c: K8sTokenClaims = self
            .keys
            .decode(
                token,
                &[Algorithm::RS256, Algorithm::ES256, Algorithm::ES384],
                |v| {
                    v.set_issuer(&[issuer]);
                    v.set_audience(&[audience]);
                    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                },
            )
            .await?;
        let (ns, sa) = (&c.kubernetes.namespace, &c.kubernetes.serviceaccount.name);
        if c.sub != format!("system:serviceaccount:{ns}:{sa}") {
            return Err(TokenError::Invalid(
                "`sub` does not match the kubernetes.io claims".to_owned(),
            ));
        }
        if c.exp + i64::try_from(LEEWAY_SECS).unwrap_or(0) <= now_secs() {
            return Err(TokenError::Invalid("the token has expired".to_owned()));
        }
        let cluster = &self.config.cluster;
        Ok(Attested {
            principal: format!("k8s:{cluster}/{ns}/{sa}"),
            namespace: ns.clone(),
            attestation: "kubernetes",
            jti: replay_key(c.jti, token),
            exp: c.exp,
            details: serde_json::json!({
                "cluster": cluster, "subject": format!("{ns}/{sa}"), "pod": c.kubernetes.pod.map(|p| p.name),
            }),
            tags: tags_of(token, &self.tag_claims),
        })
    }
}

// ------------------------------------------------------------------- SPIFFE

/// A SPIFFE trust domain whose JWT-SVIDs are accepted.
#[derive(Debug)]
pub struct SpiffeTrustDomain {
    /// Trust domain name, e.g. `prod.example.com`.
    pub trust_domain: String,
    /// Excalibur's audience, which the SVID's `aud` must contain.
    pub audience: String,
    /// Path prefixes admitted (empty = any path in the domain).
    pub admit_paths: Vec<String>,
    keys: JwksCache,
    /// Claims mapped to tags.
    pub tag_claims: TagClaims,
}

#[derive(Debug, Deserialize)]
struct SvidClaims {
    sub: String,
    exp: i64,
    jti: Option<String>,
}

/// Checks a SPIFFE ID (SPIFFE-ID §2): scheme, lowercase trust domain of `[a-z0-9.-_]`, a
/// non-empty path of `[a-zA-Z0-9.-_]` segments, no empty, `.` or `..` segments, no
/// query, fragment, port, userinfo or percent-encoding. Returns `(trust domain, path)`.
pub fn parse_spiffe_id(id: &str) -> Option<(&str, &str)> {
    if id.len() > 2048 {
        return None;
    }
    let rest = id.strip_prefix("spiffe://")?;
    let (td, path) = rest.split_once('/')?;
    let td_ok = !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    let path_ok = !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        });
    (td_ok && path_ok).then_some((td, path))
}

impl SpiffeTrustDomain {
    /// A trust domain verified with the `jwt-svid` keys of its bundle (a JWKS).
    pub fn new(
        trust_domain: String,
        audience: String,
        admit_paths: Vec<String>,
        bundle: Box<dyn JwksSource>,
    ) -> Self {
        Self {
            trust_domain,
            audience,
            admit_paths,
            keys: JwksCache::with_use(bundle, "jwt-svid"),
            tag_claims: Vec::new(),
        }
    }

    /// Verifies a JWT-SVID (JWT-SVID spec): RS/ES/PS algorithms only, `sub` a valid
    /// SPIFFE ID in this trust domain and an admitted path, `aud` containing ours, `exp`.
    pub async fn verify(&self, token: &str) -> Result<Attested, TokenError> {
        let allowed = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ];
        let audience = &self.audience;
        let c: SvidClaims = self
            .keys
            .decode(token, &allowed, |v| {
                v.set_audience(&[audience]);
                v.set_required_spec_claims(&["exp", "aud", "sub"]);
            })
            .await?;
        let Some((td, path)) = parse_spiffe_id(&c.sub) else {
            return Err(TokenError::Invalid(
                "`sub` is not a valid SPIFFE ID".to_owned(),
            ));
        };
        if td != self.trust_domain {
            return Err(TokenError::Invalid(format!(
                "`sub` is outside trust domain `{}`",
                self.trust_domain
            )));
        }
        let admitted = self.admit_paths.is_empty()
            || self
                .admit_paths
                .iter()
                .any(|p| format!("/{path}").starts_with(p.as_str()));
        if !admitted {
            return Err(TokenError::Invalid(
                "the SPIFFE ID's path is not admitted".to_owned(),
            ));
        }
        Ok(Attested {
            principal: c.sub.clone(),
            namespace: td.to_owned(),
            attestation: "spiffe-jwt",
            jti: replay_key(c.jti, token),
            exp: c.exp,
            details: serde_json::json!({"trust_domain": td, "subject": c.sub}),
            tags: tags_of(token, &self.tag_claims),
        })
    }
}

// ------------------------------------------------------------------- generic OIDC

/// A generic OIDC workload issuer and how its claims map to a principal.
#[derive(Debug)]
pub struct OidcIssuer {
    /// Short name used in principal ids (`oidc:<name>/<claim>`).
    pub name: String,
    /// Expected `iss`, byte for byte.
    pub issuer: String,
    /// Excalibur's audience, which `aud` must contain.
    pub audience: String,
    /// Claim naming the workload (e.g. `sub`, `repository`, `project_path`).
    pub principal_claim: String,
    /// Claim giving its namespace (e.g. `repository_owner`), if any.
    pub namespace_claim: Option<String>,
    keys: JwksCache,
    /// Claims mapped to tags.
    pub tag_claims: TagClaims,
}

impl OidcIssuer {
    /// An issuer verified with its JWKS.
    pub fn new(
        name: String,
        issuer: String,
        audience: String,
        principal_claim: String,
        namespace_claim: Option<String>,
        jwks: Box<dyn JwksSource>,
    ) -> Self {
        Self {
            name,
            issuer,
            audience,
            principal_claim,
            namespace_claim,
            keys: JwksCache::new(jwks),
            tag_claims: Vec::new(),
        }
    }

    /// Verifies signature, `iss`, `aud`, `exp`/`nbf`, then maps the claims.
    pub async fn verify(&self, token: &str) -> Result<Attested, TokenError> {
        let (issuer, audience) = (&self.issuer, &self.audience);
        let claims: serde_json::Map<String, serde_json::Value> = self
            .keys
            .decode(
                token,
                &[Algorithm::RS256, Algorithm::ES256, Algorithm::ES384],
                |v| {
                    v.set_issuer(&[issuer]);
                    v.set_audience(&[audience]);
                    v.set_required_spec_claims(&["exp", "iss", "aud"]);
                },
            )
            .await?;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let who = text(&self.principal_claim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                TokenError::Invalid(format!("claim `{}` is missing", self.principal_claim))
            })?;
        let namespace = self
            .namespace_claim
            .as_deref()
            .and_then(text)
            .unwrap_or_default();
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        Ok(Attested {
            principal: format!("oidc:{}/{who}", self.name),
            namespace,
            attestation: "oidc",
            jti: replay_key(text("jti"), token),
            exp,
            details: serde_json::json!({"issuer": self.issuer, "subject": text("sub"), self.principal_claim.clone(): who}),
            tags: tags_of(token, &self.tag_claims),
        })
    }
}

// ------------------------------------------------------------------- dispatch

/// Every trusted workload issuer; picks the verifier by the token's claims, then
/// verifies fully with that issuer only.
#[derive(Debug, Default)]
pub struct Attestors {
    /// The Kubernetes cluster, if configured.
    pub kubernetes: Option<Kubernetes>,
    /// SPIFFE trust domains.
    pub spiffe: Vec<SpiffeTrustDomain>,
    /// Generic OIDC issuers.
    pub oidc: Vec<OidcIssuer>,
    /// GCP projects whose service accounts' ID tokens are accepted (`gcp-wif`).
    pub gcp: Vec<crate::cloud::Gcp>,
    /// Azure tenants whose managed identities' tokens are accepted (`azure-mi`).
    pub azure: Vec<crate::cloud::Azure>,
    /// AWS STS endpoints whose signed GetCallerIdentity requests are accepted (`aws-sts`).
    pub aws: Vec<crate::aws::Aws>,
}

/// What kind of subject token an exchange says it carries (`subject_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// Any JWT: routed by its `iss` (or SPIFFE `sub`) to Kubernetes, SPIFFE or OIDC.
    Jwt,
    /// A GCP service account's Google-signed ID token.
    GcpWif,
    /// An Azure managed identity's Entra ID access token.
    AzureMi,
    /// A signed AWS `sts:GetCallerIdentity` request.
    AwsSts,
}

#[derive(Debug, Deserialize)]
struct Peek {
    iss: Option<String>,
    sub: Option<String>,
}

impl Attestors {
    /// True when no issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.kubernetes.is_none()
            && self.spiffe.is_empty()
            && self.oidc.is_empty()
            && self.gcp.is_empty()
            && self.azure.is_empty()
            && self.aws.is_empty()
    }

    /// Verifies a subject token of the kind the exchange names: a cloud token only by
    /// the cloud attestors of that kind, any other JWT as [`Attestors::verify`] does.
    pub async fn verify_as(&self, kind: SubjectKind, token: &str) -> Result<Attested, TokenError> {
        match kind {
            SubjectKind::Jwt => self.verify(token).await,
            SubjectKind::GcpWif => crate::cloud::verify_gcp(&self.gcp, token).await,
            SubjectKind::AzureMi => crate::cloud::verify_azure(&self.azure, token).await,
            SubjectKind::AwsSts => crate::aws::verify_aws(&self.aws, token).await,
        }
    }

    /// Verifies a subject token against the one issuer it claims to come from.
    pub async fn verify(&self, token: &str) -> Result<Attested, TokenError> {
        // Unverified routing only: the chosen issuer then checks everything.
        let payload = token
            .split('.')
            .nth(1)
            .ok_or_else(|| TokenError::Malformed("not a JWT".to_owned()))?;
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            payload.trim_end_matches('='),
        )
        .map_err(|_| TokenError::Malformed("payload is not base64url".to_owned()))?;
        let peek: Peek =
            serde_json::from_slice(&bytes).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if let Some(sub) = peek.sub.as_deref().filter(|s| s.starts_with("spiffe://")) {
            let td = parse_spiffe_id(sub)
                .map(|(td, _)| td)
                .ok_or_else(|| TokenError::Invalid("invalid SPIFFE ID".to_owned()))?;
            let domain = self
                .spiffe
                .iter()
                .find(|d| d.trust_domain == td)
                .ok_or(TokenError::UntrustedIssuer)?;
            return domain.verify(token).await;
        }
        let iss = peek.iss.unwrap_or_default();
        if let Some(k8s) = self.kubernetes.as_ref().filter(|k| k.config.issuer == iss) {
            return k8s.verify(token).await;
        }
        if let Some(issuer) = self.oidc.iter().find(|o| o.issuer == iss) {
            return issuer.verify(token).await;
        }
        Err(TokenError::UntrustedIssuer)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spiffe_ids() {
        for (id, ok) in [
            ("spiffe://prod.example.com/svc/billing", true),
            ("spiffe://td/a", true),
            ("spiffe://Prod.example.com/svc", false),
            ("spiffe://td/", false),
            ("spiffe://td", false),
            ("spiffe://td//a", false),
            ("spiffe://td/a/./b", false),
            ("spiffe://td/a/../b", false),
            ("spiffe://td/a%2Fb", false),
            ("spiffe://td:443/x", false),
            ("spiffe://td/x?q=1", false),
            ("https://td/x", false),
        ] {
            assert_eq!(super::parse_spiffe_id(id).is_some(), ok, "{id}");
        }
    }
}
