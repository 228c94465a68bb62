//! Kubernetes projected service-account tokens: verification against the cluster's
//! JWKS (refreshed on an unknown `kid`, rate-limited), and the claims Excalibur derives a
//! workload principal from.

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

/// Where the cluster's JWKS comes from (a URL or a file); implemented at the edge.
pub trait JwksSource: Send + Sync + std::fmt::Debug {
    /// Fetches the JWKS document.
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
}

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
    #[error("the cluster's keys are unavailable: {0}")]
    Jwks(String),
}

/// What a verified SA token says.
#[derive(Debug, Clone)]
pub struct ServiceAccountToken {
    /// Namespace.
    pub namespace: String,
    /// Service account name.
    pub service_account: String,
    /// Pod name, when the token is pod-bound.
    pub pod: Option<String>,
    /// Token id (or a hash of the token when the cluster sets none): the replay key.
    pub jti: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

#[derive(Debug, Deserialize)]
struct Claims {
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

struct Keys(HashMap<String, (DecodingKey, Algorithm)>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// A cluster's verifier: configuration plus its cached keys.
#[derive(Debug)]
pub struct Kubernetes {
    config: KubernetesConfig,
    source: Box<dyn JwksSource>,
    keys: RwLock<Arc<Keys>>,
    last_refresh: Mutex<Option<Instant>>,
}

impl Kubernetes {
    /// A verifier; keys are loaded on first use.
    pub fn new(config: KubernetesConfig, source: Box<dyn JwksSource>) -> Self {
        Self {
            config,
            source,
            keys: RwLock::new(Arc::new(Keys(HashMap::new()))),
            last_refresh: Mutex::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    /// Verifies a projected SA token: signature by a JWKS key with its pinned algorithm,
    /// `iss`, `aud` (must contain ours), `exp`/`nbf` with 30 s leeway, and the
    /// `kubernetes.io` claims agreeing with `sub`. An unknown `kid` refreshes the JWKS once.
    pub async fn verify(&self, token: &str, now: i64) -> Result<ServiceAccountToken, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let kid = header
            .kid
            .clone()
            .ok_or_else(|| TokenError::Malformed("no `kid` in the header".to_owned()))?;
        let mut keys = self.current();
        if !keys.0.contains_key(&kid) {
            self.refresh().await?;
            keys = self.current();
        }
        let (key, alg) = keys
            .0
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        if header.alg != *alg {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} does not match key `{kid}`",
                header.alg
            )));
        }
        let mut validation = Validation::new(*alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let c = data.claims;
        let expected_sub = format!(
            "system:serviceaccount:{}:{}",
            c.kubernetes.namespace, c.kubernetes.serviceaccount.name
        );
        if c.sub != expected_sub {
            return Err(TokenError::Invalid(
                "`sub` does not match the kubernetes.io claims".to_owned(),
            ));
        }
        if c.exp + i64::try_from(LEEWAY_SECS).unwrap_or(0) <= now {
            return Err(TokenError::Invalid("the token has expired".to_owned()));
        }
        let jti = c
            .jti
            .unwrap_or_else(|| excalibur_core::secret::fingerprint(token.as_bytes()));
        Ok(ServiceAccountToken {
            namespace: c.kubernetes.namespace,
            service_account: c.kubernetes.serviceaccount.name,
            pod: c.kubernetes.pod.map(|p| p.name),
            jti,
            exp: c.exp,
        })
    }

    fn current(&self) -> Arc<Keys> {
        self.keys
            .read()
            .map(|k| Arc::clone(&k))
            .unwrap_or_else(|_| Arc::new(Keys(HashMap::new())))
    }

    /// Reloads the JWKS, at most once per [`REFRESH_INTERVAL`].
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
        let keys = parse_jwks(&text)?;
        if let Ok(mut k) = self.keys.write() {
            *k = Arc::new(keys);
        }
        Ok(())
    }
}

/// Parses a JWKS, pinning each key's algorithm from its `alg` or its key type. Keys
/// without a `kid`, symmetric keys and unknown types are ignored.
fn parse_jwks(text: &str) -> Result<Keys, TokenError> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|e| TokenError::Jwks(format!("not a JWKS: {e}")))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), _) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(p), _) => match p.curve {
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
