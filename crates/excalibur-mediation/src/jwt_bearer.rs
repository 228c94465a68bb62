//! RFC 7523 JWT-bearer assertions: load a private key from PEM, sign short-lived
//! assertions (fresh `jti` each time), and read token endpoint responses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use excalibur_core::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Why an assertion could not be made or a token response read.
#[derive(Debug, thiserror::Error)]
pub enum JwtBearerError {
    /// The PEM is not an RSA, P-256/P-384 or Ed25519 private key.
    #[error("the private key is not an RSA, EC (P-256/P-384) or Ed25519 PEM")]
    Key,
    /// Signing failed.
    #[error("signing the assertion failed")]
    Sign,
    /// The token endpoint's answer has no usable token.
    #[error("the token response has no usable access token: {0}")]
    Response(&'static str),
}

/// A signing key for assertions. The key never leaves this type.
pub struct AssertionKey {
    alg: Algorithm,
    key: EncodingKey,
    kid: String,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

type KeyLoader = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;

#[derive(Serialize)]
struct Probe {
    p: u8,
}

impl AssertionKey {
    /// Loads a PEM private key; the algorithm follows the key (RS256, ES256/ES384, EdDSA).
    /// The `kid` is a digest of the key, stable across restarts, revealing nothing.
    pub fn from_pem(pem: &Secret) -> Result<Self, JwtBearerError> {
        let bytes = pem.expose();
        let kid = excalibur_core::secret::hex(&Sha256::digest(bytes))
            .chars()
            .take(16)
            .collect::<String>();
        let candidates: [(KeyLoader, &[Algorithm]); 3] = [
            (EncodingKey::from_rsa_pem, &[Algorithm::RS256]),
            (
                EncodingKey::from_ec_pem,
                &[Algorithm::ES256, Algorithm::ES384],
            ),
            (EncodingKey::from_ed_pem, &[Algorithm::EdDSA]),
        ];
        for (load, algs) in candidates {
            let Ok(key) = load(bytes) else {
                continue;
            };
            for &alg in algs {
                // A probe signature proves the key and algorithm agree (curve size).
                if jsonwebtoken::encode(&Header::new(alg), &Probe { p: 1 }, &key).is_ok() {
                    return Ok(Self { alg, key, kid });
                }
            }
        }
        Err(JwtBearerError::Key)
    }

    /// JWS algorithm name.
    pub fn alg(&self) -> &'static str {
        match self.alg {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            _ => "unknown",
        }
    }

    /// Key id carried in assertion headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// What an assertion says.
#[derive(Debug, Clone)]
pub struct Assertion<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `sub` (omitted when `None`).
    pub subject: Option<&'a str>,
    /// `aud` (a single value; omitted when `None`, as GitHub wants).
    pub audience: Option<&'a str>,
    /// `scope` claim (Google).
    pub scope: Option<&'a str>,
    /// `exp - iat`.
    pub lifetime: Duration,
    /// `iat` is set this far in the past (GitHub recommends 60 s for clock drift).
    pub backdate: Duration,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    iat: u64,
    exp: u64,
    jti: String,
}

/// Signs `a` at `now` with a fresh random `jti` (128 bits).
pub fn sign(
    key: &AssertionKey,
    a: &Assertion<'_>,
    now: SystemTime,
) -> Result<Secret, JwtBearerError> {
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let iat = now_s.saturating_sub(a.backdate.as_secs());
    let claims = Claims {
        iss: a.issuer,
        sub: a.subject,
        aud: a.audience,
        scope: a.scope,
        iat,
        exp: now_s + a.lifetime.as_secs(),
        jti: URL_SAFE_NO_PAD.encode(excalibur_core::ids::random_bytes::<16>()),
    };
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.key)
        .map(|t| Secret::new(t.into_bytes()))
        .map_err(|_| JwtBearerError::Sign)
}

/// An access token and how long it lives.
#[derive(Debug)]
pub struct AccessToken {
    /// The token.
    pub value: Secret,
    /// Lifetime from now (`None`: the server did not say).
    pub expires_in: Option<Duration>,
}

/// Reads an OAuth token response (`access_token`, `expires_in`, `token_type` Bearer) or
/// a GitHub installation token response (`token`, `expires_at`).
pub fn parse_token_response(body: &[u8], now: SystemTime) -> Result<AccessToken, JwtBearerError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| JwtBearerError::Response("not JSON"))?;
    if let Some(token) = v.get("access_token").and_then(|t| t.as_str()) {
        let kind = v
            .get("token_type")
            .and_then(|t| t.as_str())
            .unwrap_or("Bearer");
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(JwtBearerError::Response("token_type is not Bearer"));
        }
        return Ok(AccessToken {
            value: checked(token)?,
            expires_in: v
                .get("expires_in")
                .and_then(serde_json::Value::as_u64)
                .map(Duration::from_secs),
        });
    }
    if let Some(token) = v.get("token").and_then(|t| t.as_str()) {
        let expires_in = v
            .get("expires_at")
            .and_then(|t| t.as_str())
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .and_then(|t| {
                let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).ok()?);
                at.duration_since(now).ok()
            });
        return Ok(AccessToken {
            value: checked(token)?,
            expires_in,
        });
    }
    Err(JwtBearerError::Response("no access_token"))
}

/// `Bearer <token>`, the `Authorization` value that presents `token`.
pub fn bearer(token: &Secret) -> Vec<u8> {
    [&b"Bearer "[..], token.expose()].concat()
}

/// Opens an OAuth2 refresh mapping's sealed keys: `(client_secret, refresh_token)`.
pub fn open_refresh_keys(sealed: &Secret) -> Option<(Option<Secret>, Secret)> {
    let keys: excalibur_core::api::OauthRefreshKeys =
        serde_json::from_slice(sealed.expose()).ok()?;
    Some((
        keys.client_secret
            .as_ref()
            .map(excalibur_core::SecretString::to_secret),
        keys.refresh_token.to_secret(),
    ))
}

/// The sealed form of an OAuth2 refresh mapping's keys.
pub fn seal_refresh_keys(client_secret: Option<&Secret>, refresh_token: &Secret) -> Secret {
    let text = |s: &Secret| {
        excalibur_core::SecretString::new(String::from_utf8_lossy(s.expose()).into_owned())
    };
    let keys = excalibur_core::api::OauthRefreshKeys {
        client_secret: client_secret.map(text),
        refresh_token: text(refresh_token),
    };
    Secret::new(serde_json::to_vec(&keys).unwrap_or_default())
}

/// A secret as an `application/x-www-form-urlencoded` value.
pub fn form_value(s: &Secret) -> String {
    crate::sigv4::uri_encode(&String::from_utf8_lossy(s.expose()), false)
}

/// The `refresh_token` of a token response, when the server rotated it.
pub fn rotated_refresh_token(body: &[u8]) -> Option<Secret> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let t = v.get("refresh_token")?.as_str()?;
    checked(t).ok()
}

/// A token goes into a header: printable ASCII only.
fn checked(token: &str) -> Result<Secret, JwtBearerError> {
    if token.is_empty()
        || token.len() > 16 * 1024
        || !token.bytes().all(|b| (0x21..0x7f).contains(&b))
    {
        return Err(JwtBearerError::Response(
            "the token is not a header-safe string",
        ));
    }
    Ok(Secret::new(token.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_part(jwt: &str, i: usize) -> serde_json::Value {
        let part = jwt.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn keys_of_each_kind_sign_verifiable_assertions() {
        for (alg, rcgen_alg) in [
            ("ES256", &rcgen::PKCS_ECDSA_P256_SHA256),
            ("ES384", &rcgen::PKCS_ECDSA_P384_SHA384),
            ("EdDSA", &rcgen::PKCS_ED25519),
            ("RS256", &rcgen::PKCS_RSA_SHA256),
        ] {
            let kp = rcgen::KeyPair::generate_for(rcgen_alg).unwrap();
            let key =
                AssertionKey::from_pem(&Secret::new(kp.serialize_pem().into_bytes())).unwrap();
            assert_eq!(key.alg(), alg);
            let a = Assertion {
                issuer: "client-1",
                subject: Some("client-1"),
                audience: Some("https://as.example/token"),
                scope: None,
                lifetime: Duration::from_secs(300),
                backdate: Duration::from_secs(60),
            };
            let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
            let jwt = sign(&key, &a, now).unwrap();
            let jwt = std::str::from_utf8(jwt.expose()).unwrap().to_owned();
            let header = decode_part(&jwt, 0);
            assert_eq!(header["alg"], alg);
            assert_eq!(header["kid"], key.kid());
            let claims = decode_part(&jwt, 1);
            assert_eq!(claims["iss"], "client-1");
            assert_eq!(claims["aud"], "https://as.example/token");
            assert_eq!(claims["iat"], 1_800_000_000 - 60);
            assert_eq!(claims["exp"], 1_800_000_300);
            assert!(claims["jti"].as_str().unwrap().len() >= 22);
            // Verified with the public key by an independent path (jsonwebtoken's verifier).
            let public = kp.public_key_pem();
            let dk = match alg {
                "RS256" => jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()),
                "EdDSA" => jsonwebtoken::DecodingKey::from_ed_pem(public.as_bytes()),
                _ => jsonwebtoken::DecodingKey::from_ec_pem(public.as_bytes()),
            }
            .unwrap();
            let mut v = jsonwebtoken::Validation::new(key.alg);
            v.set_audience(&["https://as.example/token"]);
            v.validate_exp = false;
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &dk, &v).unwrap();
            // Two assertions never share a jti.
            let other = sign(&key, &a, now).unwrap();
            let other = std::str::from_utf8(other.expose()).unwrap().to_owned();
            assert_ne!(decode_part(&other, 1)["jti"], claims["jti"]);
        }
        assert!(
            AssertionKey::from_pem(&Secret::new(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec()
            ))
            .is_err()
        );
    }

    #[test]
    fn token_responses() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t = parse_token_response(
            br#"{"access_token":"at-1","token_type":"Bearer","expires_in":3599}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.value.expose(), b"at-1");
        assert_eq!(t.expires_in, Some(Duration::from_secs(3599)));
        let at = time::OffsetDateTime::from_unix_timestamp(1_800_003_600)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let body = format!(r#"{{"token":"ghs_x","expires_at":"{at}"}}"#);
        let gh = parse_token_response(body.as_bytes(), now).unwrap();
        assert_eq!(gh.value.expose(), b"ghs_x");
        assert_eq!(gh.expires_in, Some(Duration::from_secs(3600)));
        for bad in [
            &br#"{"error":"invalid_grant"}"#[..],
            br#"{"access_token":"a b","token_type":"Bearer"}"#,
            br#"{"access_token":"x","token_type":"DPoP"}"#,
            b"not json",
        ] {
            assert!(
                parse_token_response(bad, now).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
