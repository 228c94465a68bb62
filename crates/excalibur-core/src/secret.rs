//! [`Secret`]: a real credential value held in memory.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use zeroize::Zeroizing;

/// A secret byte string: zeroized on drop, redacted in `Debug`, never serialized.
///
/// Compare with [`Secret::ct_eq`]. Read the bytes with [`Secret::expose`] only where
/// the value must go on the wire or into a cipher (sealing, substitution, signing).
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes; the caller's copy should be dropped or zeroized.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes. Calls are confined to the allowlisted modules (see the tidy test).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Secret) -> bool {
        verify_slices_are_equal(&self.0, &other.0).is_ok()
    }

    /// `sha256:<hex>` of the value: safe to show and log.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// A secret given as text in a request (a real value, a private key, a client secret):
/// read from JSON or a form, zeroized on drop, redacted in `Debug`, and **not**
/// `Serialize`, so no response type can carry one by accident. The two places that must
/// write one out opt in field by field with
/// `#[serde(serialize_with = "SecretString::serialize_exposed")]`: a request DTO a client
/// sends (`excalibur-ctl`), and a payload sealed before it is stored.
///
/// ```compile_fail
/// fn answerable<T: serde::Serialize>() {}
/// answerable::<excalibur_core::SecretString>();
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a value; the caller's copy moves in.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The text, for sealing, validation of its shape, or the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value as a [`Secret`] (bytes).
    pub fn to_secret(&self) -> Secret {
        Secret::new(self.0.as_bytes().to_vec())
    }

    /// `sha256:<hex>` of the value: safe to show and log.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }

    /// Serializes the value itself: for a request a client sends, or a payload sealed
    /// before it is stored; never for a response.
    pub fn serialize_exposed<S: serde::Serializer>(v: &Self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.0)
    }

    /// [`Self::serialize_exposed`] for an optional value.
    pub fn serialize_option_exposed<S: serde::Serializer>(
        v: &Option<Self>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(v.0.as_str()),
            None => s.serialize_none(),
        }
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// A secret the API shows exactly once, in the response that creates it (a new token,
/// a generated signing secret, a presigned URL): serialized into that response, redacted
/// in `Debug`, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ShownOnce(Zeroizing<String>);

impl ShownOnce {
    /// Wraps a value; the caller's copy moves in.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl serde::Serialize for ShownOnce {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ShownOnce {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// `sha256:<hex>` of arbitrary bytes.
pub fn fingerprint(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex(digest::digest(&digest::SHA256, bytes).as_ref())
    )
}

/// Lowercase hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

/// Decodes lowercase or uppercase hex; `None` on odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

impl utoipa::PartialSchema for SecretString {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .write_only(Some(true))
            .description(Some("A secret: sealed at rest, never returned."))
            .into()
    }
}

impl utoipa::ToSchema for SecretString {}

impl utoipa::PartialSchema for ShownOnce {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .read_only(Some(true))
            .description(Some("Shown once, in this response only."))
            .into()
    }
}

impl utoipa::ToSchema for ShownOnce {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_value() {
        let s = Secret::new(b"sk_live_abc".to_vec());
        assert_eq!(format!("{s:?}"), "**REDACTED**");
        assert!(s.fingerprint().starts_with("sha256:"));
        assert!(!s.fingerprint().contains("sk_live"));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(
            hex(&(0..=255u8).collect::<Vec<_>>()),
            (0..=255u8).map(|b| format!("{b:02x}")).collect::<String>()
        );
        assert_eq!(
            unhex(&hex(&[0, 1, 254, 255])).unwrap(),
            vec![0, 1, 254, 255]
        );
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
