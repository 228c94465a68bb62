//! What every crypto mediation family shares: the family and the stored mapping.

use serde::{Deserialize, Serialize};

use super::dpop::DpopMapping;
use super::jwt_bearer::JwtBearerMapping;
use super::mtls::MtlsMapping;
use super::oauth_refresh::OauthRefreshMapping;
use super::sigv4::Sigv4Mapping;

/// A crypto-mediation family; each has its own mappings table in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CryptoFamily {
    /// AWS Signature Version 4.
    Sigv4,
    /// RFC 7523 JWT-bearer assertions exchanged for access tokens.
    JwtBearer,
    /// Upstream mutual TLS with a client certificate the proxy holds.
    Mtls,
    /// RFC 9449 DPoP proofs with a key the proxy generated.
    Dpop,
    /// OAuth2 access tokens refreshed from a refresh token the proxy holds.
    OauthRefresh,
}

impl CryptoFamily {
    /// Wire name, also the id prefix of its mappings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sigv4 => "sigv4",
            Self::JwtBearer => "jwt_bearer",
            Self::Mtls => "mtls",
            Self::Dpop => "dpop",
            Self::OauthRefresh => "oauth_refresh",
        }
    }

    /// Events for created / updated / deleted mappings.
    pub fn events(self) -> [crate::audit::EventType; 3] {
        use crate::audit::EventType as E;
        match self {
            Self::Sigv4 => [
                E::Sigv4MappingCreated,
                E::Sigv4MappingUpdated,
                E::Sigv4MappingDeleted,
            ],
            Self::JwtBearer => [
                E::JwtBearerMappingCreated,
                E::JwtBearerMappingUpdated,
                E::JwtBearerMappingDeleted,
            ],
            Self::Mtls => [
                E::MtlsMappingCreated,
                E::MtlsMappingUpdated,
                E::MtlsMappingDeleted,
            ],
            Self::Dpop => [
                E::DpopMappingCreated,
                E::DpopMappingUpdated,
                E::DpopMappingDeleted,
            ],
            Self::OauthRefresh => [
                E::OauthRefreshMappingCreated,
                E::OauthRefreshMappingUpdated,
                E::OauthRefreshMappingDeleted,
            ],
        }
    }
}

/// A stored crypto mapping: non-secret settings as JSON, the secret sealed elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MappingRecord {
    /// Family.
    pub family: CryptoFamily,
    /// Mapping id (`<family>_<hex>`); also the name policy decides redemption on.
    pub id: String,
    /// The provider whose hosts bound where the mapping's key may be used.
    pub provider_id: String,
    /// Family-specific non-secret settings.
    pub config: serde_json::Value,
    /// `sha256:<hex>` of the sealed secret material.
    pub fingerprint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl MappingRecord {
    /// A text setting from `config`.
    pub fn setting(&self, key: &str) -> Option<String> {
        self.config
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }

    /// The family's listed form (as the API returns it), as JSON.
    pub fn listed(&self) -> serde_json::Value {
        let v = match self.family {
            CryptoFamily::Sigv4 => serde_json::to_value(Sigv4Mapping::from_record(self)),
            CryptoFamily::JwtBearer => serde_json::to_value(JwtBearerMapping::from_record(self)),
            CryptoFamily::Mtls => serde_json::to_value(MtlsMapping::from_record(self)),
            CryptoFamily::Dpop => serde_json::to_value(DpopMapping::from_record(self)),
            CryptoFamily::OauthRefresh => {
                serde_json::to_value(OauthRefreshMapping::from_record(self))
            }
        };
        v.unwrap_or_default()
    }
}

pub(super) fn root_path() -> String {
    "/".to_owned()
}
