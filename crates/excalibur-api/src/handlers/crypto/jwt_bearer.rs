//! RFC 7523 JWT-bearer (and the Google and GitHub App presets): the proxy signs
//! assertions with a private key the workload never holds.

use excalibur_core::api::{
    CreateJwtBearerMapping, CryptoFamily, JwtBearerMapping, JwtBearerPreset, MappingRecord,
};
use excalibur_core::ids::JwtBearerMappingId;

use super::{Family, Prepared, host, mapping_provider};
use crate::{ApiError, ApiState, validate};

pub(super) struct JwtBearer;

super::family_api!(
    JwtBearer,
    "/api/crypto/jwt-bearer/mappings",
    "/api/crypto/jwt-bearer/mappings/{id}",
    excalibur_core::api::CreateJwtBearerMapping,
    excalibur_core::api::JwtBearerMapping,
    list: "List JWT-bearer mappings (key id and fingerprint, never the key) (role: operator)",
    create: "Create a JWT-bearer mapping, or replace one by `id` (rotation); emits jwt_bearer_mapping_created / jwt_bearer_mapping_updated. Token and resource hosts must be the provider's hosts; workloads need a translation rule naming the mapping id (role: admin)",
    delete: "Delete a JWT-bearer mapping; emits jwt_bearer_mapping_deleted (role: admin)"
);

impl Family for JwtBearer {
    const FAMILY: CryptoFamily = CryptoFamily::JwtBearer;
    type Create = CreateJwtBearerMapping;
    type Listed = JwtBearerMapping;

    fn listed(record: &MappingRecord) -> JwtBearerMapping {
        JwtBearerMapping::from_record(record)
    }

    fn fresh_id() -> String {
        JwtBearerMappingId::generate().as_str().to_owned()
    }

    async fn prepare(
        s: &ApiState,
        req: CreateJwtBearerMapping,
        _: &[MappingRecord],
    ) -> Result<Prepared, ApiError> {
        validate::jwt_bearer(&req)?;
        let token_host = host(&req.token_host);
        let resource_host = req
            .resource_host
            .as_deref()
            .map_or_else(|| token_host.clone(), host);
        mapping_provider(
            s,
            &req.provider_id,
            &[
                ("token_host", &token_host),
                ("resource_host", &resource_host),
            ],
        )
        .await?;
        let (secret, alg, kid) = match &req.real_private_pem {
            Some(pem) => {
                let pem = pem.to_secret();
                let (alg, kid) = (s.key_info)(&pem).ok_or_else(|| {
                    ApiError::unprocessable(
                        "`real_private_pem` is not an RSA, EC (P-256/P-384) or Ed25519 private key",
                    )
                })?;
                (pem, alg, kid)
            }
            // Federated: signed by Excalibur's issuer keys when needed; nothing stored.
            None => (
                excalibur_core::Secret::new(b"{}".to_vec()),
                "ES256".to_owned(),
                "excalibur-issuer".to_owned(),
            ),
        };
        let issuer = req
            .issuer
            .clone()
            .unwrap_or_else(|| s.exchange.issuer_url.clone());
        let token_path = match (&req.token_path, req.preset) {
            (Some(p), _) => p.clone(),
            (None, JwtBearerPreset::GithubApp) => {
                return Err(ApiError::unprocessable(
                    "`token_path` is required for github_app: /app/installations/{installation_id}/access_tokens",
                ));
            }
            (None, JwtBearerPreset::GcpWorkloadIdentity) => "/v1/token".to_owned(),
            (None, _) => "/token".to_owned(),
        };
        let config = serde_json::json!({
            "token_host": token_host,
            "token_path": token_path,
            "resource_host": resource_host,
            "path_prefix": req.path_prefix,
            "client_id": req.client_id,
            "issuer": issuer,
            "subject": req.subject,
            "audience": req.audience,
            "scope": req.scope,
            "preset": req.preset,
            "alg": alg,
            "kid": kid,
        });
        Ok(Prepared {
            replace: req.id,
            provider_id: req.provider_id,
            config,
            secret,
        })
    }
}
