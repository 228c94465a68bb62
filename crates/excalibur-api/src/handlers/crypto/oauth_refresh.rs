//! OAuth2 refresh: the proxy holds the refresh token (and client secret) and injects
//! fresh access tokens.

use excalibur_core::api::{
    CreateOauthRefreshMapping, CryptoFamily, MappingRecord, OauthRefreshKeys, OauthRefreshMapping,
};
use excalibur_core::ids::OauthRefreshMappingId;

use super::{Family, Prepared, exact_hosts, host, mapping_provider, paths, sealed_json};
use crate::{ApiError, ApiState, validate};

pub(super) struct OauthRefresh;

super::family_api!(
    OauthRefresh,
    "/api/crypto/oauth-refresh/mappings",
    "/api/crypto/oauth-refresh/mappings/{id}",
    excalibur_core::api::CreateOauthRefreshMapping,
    excalibur_core::api::OauthRefreshMapping,
    list: "List OAuth2 refresh mappings (never the tokens or secret) (role: operator)",
    create: "Create an OAuth2 refresh mapping, or replace one by `id` (bumps its generation); emits oauth_refresh_mapping_created / oauth_refresh_mapping_updated. Rotated refresh tokens are stored by the proxy (oauth_refresh_mapping_updated by `system`) (role: admin)",
    delete: "Delete an OAuth2 refresh mapping; emits oauth_refresh_mapping_deleted (role: admin)"
);

impl Family for OauthRefresh {
    const FAMILY: CryptoFamily = CryptoFamily::OauthRefresh;
    type Create = CreateOauthRefreshMapping;
    type Listed = OauthRefreshMapping;

    fn listed(record: &MappingRecord) -> OauthRefreshMapping {
        OauthRefreshMapping::from_record(record)
    }

    fn fresh_id() -> String {
        OauthRefreshMappingId::generate().as_str().to_owned()
    }

    async fn prepare(
        s: &ApiState,
        req: CreateOauthRefreshMapping,
        existing: &[MappingRecord],
    ) -> Result<Prepared, ApiError> {
        validate::ident_pub("provider_id", &req.provider_id)?;
        let token_host = host(&req.token_host);
        let resource_host = req
            .resource_host
            .as_deref()
            .map_or_else(|| token_host.clone(), host);
        exact_hosts(&[
            ("token_host", &token_host),
            ("resource_host", &resource_host),
        ])?;
        let token_path = req
            .token_path
            .clone()
            .unwrap_or_else(|| "/token".to_owned());
        paths(&[
            ("token_path", &token_path),
            ("path_prefix", &req.path_prefix),
        ])?;
        validate::oauth_refresh_credentials(&req)?;
        mapping_provider(
            s,
            &req.provider_id,
            &[
                ("token_host", &token_host),
                ("resource_host", &resource_host),
            ],
        )
        .await?;
        // A replacement starts a new generation: tokens refreshed under the old one are
        // no longer used.
        let generation = req
            .id
            .as_ref()
            .and_then(|id| existing.iter().find(|m| &m.id == id))
            .and_then(|m| {
                m.config
                    .get("generation")
                    .and_then(serde_json::Value::as_u64)
            })
            .unwrap_or(0)
            + 1;
        let config = serde_json::json!({
            "token_host": token_host,
            "token_path": token_path,
            "resource_host": resource_host,
            "path_prefix": req.path_prefix,
            "client_id": req.client_id,
            "scope": req.scope,
            "generation": generation,
        });
        let secret = sealed_json(&OauthRefreshKeys {
            client_secret: req.real_client_secret,
            refresh_token: req.real_refresh_token,
        })?;
        Ok(Prepared {
            replace: req.id,
            provider_id: req.provider_id,
            config,
            secret,
        })
    }
}
