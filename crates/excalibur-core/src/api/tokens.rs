//! `/api/tokens`.

use serde::{Deserialize, Serialize};

use crate::ids::{Role, TokenId};
use crate::secret::ShownOnce;

/// `POST /api/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label for the token.
    pub name: String,
    /// `admin`, `operator` or `introspection` (only `POST /v1/introspect`).
    pub role: Role,
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Token id.
    pub id: TokenId,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// First characters of the token.
    pub prefix: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// Response of `POST /api/tokens`: the only time the token is shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The stored record.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token; shown once.
    pub token: ShownOnce,
}
