//! AWS SigV4: the proxy signs with an access key the workload never holds.

use excalibur_core::api::{
    CreateSigv4Mapping, CryptoFamily, MappingRecord, Sigv4Keys, Sigv4Mapping,
};
use excalibur_core::hosts::HostPattern;
use excalibur_core::ids::Sigv4MappingId;

use super::{Family, Prepared, mapping_provider, sealed_json};
use crate::{ApiError, ApiState, validate};

pub(super) struct Sigv4;

super::family_api!(
    Sigv4,
    "/api/crypto/sigv4/mappings",
    "/api/crypto/sigv4/mappings/{id}",
    excalibur_core::api::CreateSigv4Mapping,
    excalibur_core::api::Sigv4Mapping,
    list: "List SigV4 mappings (key id prefix and fingerprint, never keys) (role: operator)",
    create: "Create a SigV4 mapping, or replace one by `id` (rotation); emits sigv4_mapping_created / sigv4_mapping_updated. `target_host` must be one of the provider's hosts. Workloads need a translation rule whose placeholder glob matches the mapping id (role: admin)",
    delete: "Delete a SigV4 mapping; emits sigv4_mapping_deleted (role: admin)"
);

impl Family for Sigv4 {
    const FAMILY: CryptoFamily = CryptoFamily::Sigv4;
    type Create = CreateSigv4Mapping;
    type Listed = Sigv4Mapping;

    fn listed(record: &MappingRecord) -> Sigv4Mapping {
        Sigv4Mapping::from_record(record)
    }

    fn fresh_id() -> String {
        Sigv4MappingId::generate().as_str().to_owned()
    }

    async fn prepare(
        s: &ApiState,
        req: CreateSigv4Mapping,
        _: &[MappingRecord],
    ) -> Result<Prepared, ApiError> {
        validate::sigv4(&req)?;
        let target = HostPattern::parse(&req.target_host)
            .map_err(|e| ApiError::unprocessable(format!("`target_host`: {e}")))?;
        mapping_provider(s, &req.provider_id, &[("target_host", target.as_str())]).await?;
        let mut config = serde_json::json!({
            "target_host": target.as_str(),
            "path_prefix": req.path_prefix,
            "region": req.region,
            "service": req.service,
            "session_token": req.real_session_token.is_some() || req.role_arn.is_some(),
        });
        let secret = match (
            req.role_arn,
            req.real_access_key_id,
            req.real_secret_access_key,
        ) {
            (Some(role), _, _) => {
                if let Some(obj) = config.as_object_mut() {
                    let endpoint = req
                        .sts_endpoint
                        .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com/", req.region));
                    obj.insert("role_arn".into(), role.into());
                    obj.insert("session_name".into(), req.session_name.into());
                    obj.insert(
                        "duration_seconds".into(),
                        req.duration_seconds.unwrap_or(3600).into(),
                    );
                    obj.insert("sts_endpoint".into(), endpoint.into());
                    obj.insert("access_key_id_prefix".into(), "assumed…".into());
                }
                // No key at rest: the credentials are assumed when needed.
                excalibur_core::Secret::new(b"{}".to_vec())
            }
            (None, Some(akid), Some(secret)) => {
                let prefix: String = akid.chars().take(8).collect();
                if let Some(obj) = config.as_object_mut() {
                    obj.insert("access_key_id_prefix".into(), format!("{prefix}…").into());
                }
                sealed_json(&Sigv4Keys {
                    access_key_id: akid,
                    secret_access_key: secret,
                    session_token: req.real_session_token,
                })?
            }
            _ => return Err(ApiError::unprocessable("no key and no role")),
        };
        Ok(Prepared {
            replace: req.id,
            provider_id: req.provider_id,
            config,
            secret,
        })
    }
}
