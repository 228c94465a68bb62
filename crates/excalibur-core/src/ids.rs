//! Typed identifiers, roles, and issued bearer tokens.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::secret::hex;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[schema(value_type = String)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id with this kind's prefix.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "_{}"), hex(&random_bytes::<8>())))
            }
            /// Wraps an existing id (from the store or a URL path).
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// Id of an API token.
    TokenId,
    "tok"
);
string_id!(
    /// Id of a service credential.
    CredentialId,
    "svc"
);
string_id!(
    /// Id of a translation rule.
    RuleId,
    "rule"
);
string_id!(
    /// Id of a SigV4 crypto mapping.
    Sigv4MappingId,
    "sigv4"
);

string_id!(
    /// Id of a JWT-bearer crypto mapping.
    JwtBearerMappingId,
    "jwtb"
);

string_id!(
    /// Id of an upstream mTLS crypto mapping.
    MtlsMappingId,
    "mtls"
);

string_id!(
    /// Id of a DPoP crypto mapping.
    DpopMappingId,
    "dpop"
);

string_id!(
    /// Id of an OAuth2 refresh crypto mapping.
    OauthRefreshMappingId,
    "oauthr"
);

string_id!(
    /// Id of a recorded flow.
    FlowId,
    "flow"
);

impl FlowId {
    /// A fresh id that sorts by creation time (milliseconds, then 8 random bytes): a
    /// new flow's index entry lands on the rightmost page, not on a random one, so
    /// recording touches a few hot pages per batch instead of one cold page per flow.
    pub fn generate_ordered() -> Self {
        let ms = crate::time::Timestamp::now().millis().max(0);
        Self(format!("flow_{ms:012x}{}", hex(&random_bytes::<8>())))
    }
}

/// Position of an event in the audit chain, starting at 1.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = i64)]
pub struct AuditSeq(pub i64);

/// What an API token may do: operators read, admins read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and writes.
    Admin,
    /// Reads only.
    Operator,
    /// Only `POST /v1/introspect`: what a downstream that receives audience tokens holds.
    Introspection,
}

impl Role {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Introspection => "introspection",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "introspection" => Some(Role::Introspection),
            _ => None,
        }
    }

    /// True when this role may perform writes.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Admin)
    }

    /// True when this role may read the API and the UI.
    pub fn can_read(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }
}

/// A freshly issued bearer token: shown once, stored only as its hash.
#[derive(Debug)]
pub struct IssuedToken {
    /// The full token (`<kind>_<43 chars>`): return it once, never store it.
    pub token: crate::Secret,
    /// The first characters, safe to show.
    pub prefix: String,
    /// Hex SHA-256 of the token: what the store keeps.
    pub hash: String,
}

impl IssuedToken {
    /// Generates a 256-bit token with a readable kind prefix such as `xca` or `xcs`.
    pub fn generate(kind: &str) -> Self {
        let token = format!("{kind}_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
        Self::from_value(&token)
    }

    /// Wraps a token chosen by the operator (e.g. `EXCALIBUR_ADMIN_TOKEN`).
    pub fn from_value(token: &str) -> Self {
        Self {
            prefix: token_prefix(token),
            hash: token_hash(token),
            token: crate::Secret::new(token.as_bytes().to_vec()),
        }
    }
}

/// Hex SHA-256 of a presented token, the lookup key in the store.
pub fn token_hash(token: &str) -> String {
    hex(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// The displayable prefix of a token: its first 10 characters.
pub fn token_prefix(token: &str) -> String {
    token.chars().take(10).collect()
}

/// `N` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // INVARIANT: the system RNG only fails if the OS has no entropy source at all,
    // in which case nothing secure can be done; zero bytes would be worse than aborting.
    #[expect(clippy::expect_used, reason = "no entropy source means no security")]
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random source unavailable");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = IssuedToken::generate("xca");
        let b = IssuedToken::generate("xca");
        assert_ne!(a.hash, b.hash);
        assert!(a.prefix.starts_with("xca_"));
        assert_eq!(a.hash.len(), 64);
        let s = std::str::from_utf8(a.token.expose()).unwrap();
        assert_eq!(token_hash(s), a.hash);
        assert_eq!(s.len(), 4 + 43);
    }
}
