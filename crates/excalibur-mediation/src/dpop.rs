//! RFC 9449 DPoP as a client: a P-256 proof key per mapping (generated here, sealed by
//! the store, never exported), a fresh proof per request, `htu` normalization, `ath`,
//! and the RFC 7638 thumbprint (`jkt`) tokens get bound to.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use excalibur_core::Secret;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The key could not be made or used.
#[derive(Debug, thiserror::Error)]
#[error("DPoP proof key error")]
pub struct DpopError;

/// A DPoP proof key (ES256).
pub struct ProofKey {
    pair: EcdsaKeyPair,
    x: String,
    y: String,
}

impl std::fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKey")
            .field("jkt", &self.jkt())
            .finish_non_exhaustive()
    }
}

impl ProofKey {
    /// A new key, as PKCS#8 DER to seal.
    pub fn generate() -> Result<Secret, DpopError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| DpopError)?;
        Ok(Secret::new(doc.as_ref().to_vec()))
    }

    /// Loads a sealed key.
    pub fn from_pkcs8(der: &Secret) -> Result<Self, DpopError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.expose())
            .map_err(|_| DpopError)?;
        // Uncompressed point: 0x04 || x (32) || y (32).
        let point = pair.public_key().as_ref();
        let (x, y) = match point {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => return Err(DpopError),
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        Ok(Self { pair, x, y })
    }

    /// The public JWK (no private members).
    pub fn jwk(&self) -> serde_json::Value {
        json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y})
    }

    /// RFC 7638 thumbprint of the public key.
    pub fn jkt(&self) -> String {
        jkt(&self.x, &self.y)
    }

    /// A fresh proof for `htm` on `htu` (see [`htu`]); `ath` when presenting a token,
    /// `nonce` once the server has provided one.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&Secret>,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<String, DpopError> {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()});
        let mut claims = json!({
            "jti": URL_SAFE_NO_PAD.encode(excalibur_core::ids::random_bytes::<16>()),
            "htm": htm,
            "htu": htu,
            "iat": now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs(),
        });
        if let Some(map) = claims.as_object_mut() {
            if let Some(t) = access_token {
                map.insert("ath".into(), json!(ath(t)));
            }
            if let Some(n) = nonce {
                map.insert("nonce".into(), json!(n));
            }
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| DpopError)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }
}

/// RFC 7638 thumbprint of a P-256 public key given as base64url coordinates.
pub fn jkt(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// `DPoP <token>`, the `Authorization` value that presents a DPoP-bound token.
pub fn authorization(token: &Secret) -> Vec<u8> {
    [&b"DPoP "[..], token.expose()].concat()
}

/// `ath`: base64url SHA-256 of the access token.
pub fn ath(token: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.expose()))
}

/// `htu` for a request: lowercase scheme and host, no default port, no query or fragment.
pub fn htu(https: bool, host: &str, port: u16, path: &str) -> String {
    let scheme = if https { "https" } else { "http" };
    let default = if https { 443 } else { 80 };
    let host = host.to_ascii_lowercase();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    if port == default {
        format!("{scheme}://{host}{path}")
    } else {
        format!("{scheme}://{host}:{port}{path}")
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    use super::*;

    /// RFC 9449 §4.1 example proof key and §7.1 example token (with RFC 7638 thumbprint
    /// and `ath` as the RFC gives them).
    #[test]
    fn rfc_9449_thumbprint_and_ath_vectors() {
        assert_eq!(
            jkt(
                "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
            ),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        let token = Secret::new(b"Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".to_vec());
        assert_eq!(ath(&token), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }

    #[test]
    fn proofs_verify_with_their_own_jwk_and_never_repeat() {
        let key = ProofKey::from_pkcs8(&ProofKey::generate().unwrap()).unwrap();
        let token = Secret::new(b"Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".to_vec());
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let p = key
            .proof(
                "GET",
                "https://api.example/v1/x",
                Some(&token),
                Some("n-1"),
                now,
            )
            .unwrap();
        let parts: Vec<&str> = p.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(
            header["jwk"].get("d").is_none(),
            "no private member in the jwk"
        );
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://api.example/v1/x");
        assert_eq!(claims["iat"], 1_800_000_000);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
        // Verify with the public key rebuilt from the JWK.
        let x = URL_SAFE_NO_PAD
            .decode(header["jwk"]["x"].as_str().unwrap())
            .unwrap();
        let y = URL_SAFE_NO_PAD
            .decode(header["jwk"]["y"].as_str().unwrap())
            .unwrap();
        let point = [&[4u8][..], &x, &y].concat();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let again = key
            .proof("GET", "https://api.example/v1/x", None, None, now)
            .unwrap();
        let claims2: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(again.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_ne!(claims2["jti"], claims["jti"]);
        assert!(claims2.get("ath").is_none() && claims2.get("nonce").is_none());
    }

    #[test]
    fn htu_is_normalized() {
        assert_eq!(
            htu(true, "API.Example", 443, "/v1/x?a=1#f"),
            "https://api.example/v1/x"
        );
        assert_eq!(
            htu(true, "api.example", 8443, ""),
            "https://api.example:8443/"
        );
        assert_eq!(htu(false, "h", 80, "/t"), "http://h/t");
    }
}
