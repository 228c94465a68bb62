//! Envelope encryption: AES-256-GCM data keys, each wrapped by the master key.
//!
//! Sealed blobs are `nonce(12) || ciphertext || tag(16)` with an AAD naming the row
//! they belong to, so a blob copied into another row fails to open.

use std::collections::HashMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use excalibur_core::Secret;
use excalibur_core::ids::random_bytes;
use zeroize::Zeroizing;

/// Errors while sealing or opening.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Decryption failed: wrong key, or the blob or its AAD was altered.
    #[error("sealed value `{0}` could not be opened (wrong master key or tampered data)")]
    Open(String),
    /// The blob names a data key that is not loaded.
    #[error("data key `{0}` is unknown")]
    UnknownKey(String),
    /// A key had the wrong length.
    #[error("key material has the wrong length")]
    KeyLength,
}

/// The master key: 32 bytes from `EXCALIBUR_MASTER_KEY` or the `master.key` file.
#[derive(Debug)]
pub struct MasterKey(Secret);

impl MasterKey {
    /// Wraps 32 bytes.
    pub fn new(bytes: Secret) -> Result<Self, SealError> {
        if bytes.len() != 32 {
            return Err(SealError::KeyLength);
        }
        Ok(Self(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Secret::new(random_bytes::<32>().to_vec()))
    }

    /// The key bytes, for writing the key file.
    pub fn bytes(&self) -> &Secret {
        &self.0
    }

    fn aead(&self) -> Result<LessSafeKey, SealError> {
        aead_key(self.0.expose())
    }

    /// A key for authenticating the audit head, derived from the master key.
    /// The key that authenticates the configuration rows (not stored in the database).
    pub(crate) fn config_key(&self) -> hmac::Key {
        let k = hmac::Key::new(hmac::HMAC_SHA256, self.0.expose());
        let derived = hmac::sign(&k, b"excalibur configuration v1");
        hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
    }

    pub(crate) fn audit_head_key(&self) -> hmac::Key {
        let k = hmac::Key::new(hmac::HMAC_SHA256, self.0.expose());
        let derived = hmac::sign(&k, b"excalibur audit head v1");
        hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
    }
}

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::KeyLength)
}

/// Seals with the active data key; opens with any loaded one.
#[derive(Debug)]
pub struct Sealer {
    active: String,
    keys: HashMap<String, LessSafeKeyDebug>,
}

struct LessSafeKeyDebug(LessSafeKey);

impl std::fmt::Debug for LessSafeKeyDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// A data key wrapped by the master key, as stored.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    /// Key id.
    pub id: String,
    /// `nonce || ciphertext || tag`.
    pub wrapped: Vec<u8>,
}

impl Sealer {
    /// Unwraps stored data keys; the last one is active. With none, generates one and
    /// returns it for the caller to persist.
    pub fn load(
        master: &MasterKey,
        stored: &[WrappedKey],
    ) -> Result<(Self, Option<WrappedKey>), SealError> {
        let mk = master.aead()?;
        let mut keys = HashMap::new();
        let mut active = None;
        for k in stored {
            let raw = open_with(&mk, &k.wrapped, &data_key_aad(&k.id))
                .map_err(|_| SealError::Open(format!("data key {}", k.id)))?;
            keys.insert(k.id.clone(), LessSafeKeyDebug(aead_key(&raw)?));
            active = Some(k.id.clone());
        }
        if let Some(active) = active {
            return Ok((Self { active, keys }, None));
        }
        let id = format!("dk_{}", excalibur_core::secret::hex(&random_bytes::<6>()));
        let raw = Zeroizing::new(random_bytes::<32>().to_vec());
        let wrapped = seal_with(&mk, &raw, &data_key_aad(&id));
        keys.insert(id.clone(), LessSafeKeyDebug(aead_key(&raw)?));
        Ok((
            Self {
                active: id.clone(),
                keys,
            },
            Some(WrappedKey { id, wrapped }),
        ))
    }

    /// Seals `plain` for the row named by `context`; returns `(key_id, blob)`.
    pub fn seal(&self, plain: &Secret, context: &str) -> Result<(String, Vec<u8>), SealError> {
        let key = self
            .keys
            .get(&self.active)
            .ok_or_else(|| SealError::UnknownKey(self.active.clone()))?;
        Ok((
            self.active.clone(),
            seal_with(&key.0, plain.expose(), context.as_bytes()),
        ))
    }

    /// Opens a blob sealed for `context` under `key_id`.
    pub fn open(&self, key_id: &str, blob: &[u8], context: &str) -> Result<Secret, SealError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_owned()))?;
        open_with(&key.0, blob, context.as_bytes())
            .map(|v| Secret::new(v.to_vec()))
            .map_err(|_| SealError::Open(context.to_owned()))
    }
}

fn data_key_aad(id: &str) -> Vec<u8> {
    format!("excalibur data key {id}").into_bytes()
}

fn seal_with(key: &LessSafeKey, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce_bytes = random_bytes::<NONCE_LEN>();
    let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
    out.extend_from_slice(&nonce_bytes);
    let mut body = plain.to_vec();
    // INVARIANT: AES-GCM sealing fails only for inputs over ~64 GiB.
    #[expect(clippy::expect_used, reason = "inputs are far below the AES-GCM limit")]
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::from(aad),
        &mut body,
    )
    .expect("AES-GCM seal");
    out.extend_from_slice(&body);
    zeroize::Zeroize::zeroize(&mut body);
    out
}

fn open_with(key: &LessSafeKey, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
    let (nonce, body) = blob.split_at_checked(NONCE_LEN).ok_or(())?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| ())?;
    let mut buf = Zeroizing::new(body.to_vec());
    let plain_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| ())?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_binding() {
        let mk = MasterKey::generate();
        let (sealer, new_key) = Sealer::load(&mk, &[]).unwrap();
        let new_key = new_key.unwrap();
        let secret = Secret::new(b"sk_live_123".to_vec());
        let (kid, blob) = sealer.seal(&secret, "placeholder:A").unwrap();
        assert!(!blob.windows(11).any(|w| w == b"sk_live_123"));
        assert!(
            sealer
                .open(&kid, &blob, "placeholder:A")
                .unwrap()
                .ct_eq(&secret)
        );
        assert!(sealer.open(&kid, &blob, "placeholder:B").is_err());

        // Reload with the stored wrapped key: same data key.
        let (again, none) = Sealer::load(&mk, std::slice::from_ref(&new_key)).unwrap();
        assert!(none.is_none());
        assert!(
            again
                .open(&kid, &blob, "placeholder:A")
                .unwrap()
                .ct_eq(&secret)
        );
        // A different master key cannot unwrap it.
        assert!(Sealer::load(&MasterKey::generate(), &[new_key]).is_err());
    }
}
