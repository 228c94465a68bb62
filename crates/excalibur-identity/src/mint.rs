//! Audience-scoped workload tokens Excalibur signs (ES256), and the signing keys behind
//! them: generated and rotated here, sealed by the store, published as a JWKS. Retired
//! keys stay published until every token they signed has expired.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use excalibur_core::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Signing keys could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// Key generation failed.
    #[error("signing key generation failed")]
    Generate,
    /// The stored key set did not parse.
    #[error("the stored signing keys are corrupt")]
    Corrupt,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    pkcs8: String,
    created_ms: i64,
    retired_ms: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The signing key set; the newest unretired key signs.
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    keys: Vec<StoredKey>,
}

impl SigningKeys {
    /// Loads the sealed key set (JSON) the store holds.
    pub fn from_secret(secret: &Secret) -> Result<Self, MintError> {
        let keys = serde_json::from_slice(secret.expose()).map_err(|_| MintError::Corrupt)?;
        Ok(Self { keys })
    }

    /// The key set as a secret, for the store to seal.
    pub fn to_secret(&self) -> Secret {
        Secret::new(serde_json::to_vec(&self.keys).unwrap_or_default())
    }

    /// Adds a new active key and retires the previous one (kept published).
    pub fn rotate(&mut self, now_ms: i64) -> Result<String, MintError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| MintError::Generate)?;
        for k in &mut self.keys {
            k.retired_ms.get_or_insert(now_ms);
        }
        let kid = format!(
            "xk_{}",
            excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<6>())
        );
        self.keys.push(StoredKey {
            kid: kid.clone(),
            pkcs8: STANDARD.encode(pkcs8.as_ref()),
            created_ms: now_ms,
            retired_ms: None,
        });
        Ok(kid)
    }

    /// The active key id.
    pub fn active_kid(&self) -> Option<&str> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.retired_ms.is_none())
            .map(|k| k.kid.as_str())
    }

    /// Forgets keys retired more than `keep_ms` ago (their tokens have all expired).
    pub fn prune(&mut self, now_ms: i64, keep_ms: i64) {
        self.keys
            .retain(|k| k.retired_ms.is_none_or(|r| now_ms - r < keep_ms));
    }

    /// The public JWKS: every key still kept.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter_map(|k| {
                let der = STANDARD.decode(&k.pkcs8).ok()?;
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).ok()?;
                let point = pair.public_key().as_ref();
                let (x, y) = (point.get(1..33)?, point.get(33..65)?);
                Some(
                    json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": k.kid,
                            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
                )
            })
            .collect();
        json!({"keys": keys})
    }

    /// Signs `claims` with the active key.
    pub fn sign(&self, claims: &Value) -> Result<String, MintError> {
        let key = self
            .keys
            .iter()
            .rev()
            .find(|k| k.retired_ms.is_none())
            .ok_or(MintError::Sign)?;
        let der = zeroize::Zeroizing::new(
            STANDARD
                .decode(&key.pkcs8)
                .map_err(|_| MintError::Corrupt)?,
        );
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&der))
            .map_err(|_| MintError::Sign)
    }
}

/// A SPIFFE-shaped subject for a principal id: SPIFFE IDs stay as they are; others are
/// mapped into an `excalibur` trust domain (`spiffe://excalibur/k8s/<cluster>/<ns>/<sa>`).
pub fn spiffe_subject(principal: &str) -> String {
    spiffe_subject_in("excalibur", principal)
}

/// [`spiffe_subject`] in the trust domain `td` (`spiffe://<td>/k8s/<cluster>/<ns>/<sa>`).
pub fn spiffe_subject_in(td: &str, principal: &str) -> String {
    if principal.starts_with("spiffe://") {
        return principal.to_owned();
    }
    let path: String = principal
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._/".contains(c) {
                c
            } else {
                '/'
            }
        })
        .collect();
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .collect();
    format!("spiffe://{td}/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_sign_publish() {
        let mut keys = SigningKeys::default();
        let first = keys.rotate(1_000).unwrap();
        let token = keys
            .sign(&json!({"sub": "x", "exp": 9_999_999_999i64}))
            .unwrap();
        let second = keys.rotate(2_000).unwrap();
        assert_ne!(first, second);
        assert_eq!(keys.active_kid(), Some(second.as_str()));
        assert_eq!(
            keys.jwks()["keys"].as_array().unwrap().len(),
            2,
            "the retired key stays published"
        );
        let again = SigningKeys::from_secret(&keys.to_secret()).unwrap();
        assert_eq!(again.active_kid(), Some(second.as_str()));
        keys.prune(2_000 + 10, 5);
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 1);
        assert!(token.split('.').count() == 3);
        assert_eq!(
            spiffe_subject("k8s:prod/payments/api"),
            "spiffe://excalibur/k8s/prod/payments/api"
        );
        assert_eq!(spiffe_subject("spiffe://td/a"), "spiffe://td/a");
    }
}
