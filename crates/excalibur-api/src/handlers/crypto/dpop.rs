//! RFC 9449 DPoP: the proxy proves possession of a key it generated itself.

use excalibur_core::api::{CreateDpopMapping, CryptoFamily, DpopMapping, MappingRecord};
use excalibur_core::ids::DpopMappingId;

use super::{Family, Prepared, exact_hosts, host, mapping_provider, paths};
use crate::{ApiError, ApiState, validate};

pub(super) struct Dpop;

impl Family for Dpop {
    const FAMILY: CryptoFamily = CryptoFamily::Dpop;
    const PATH: &'static str = "/api/crypto/dpop/mappings";
    const ITEM: &'static str = "/api/crypto/dpop/mappings/{id}";
    type Create = CreateDpopMapping;
    type Listed = DpopMapping;

    fn listed(record: &MappingRecord) -> DpopMapping {
        DpopMapping::from_record(record)
    }

    fn fresh_id() -> String {
        DpopMappingId::generate().as_str().to_owned()
    }

    async fn prepare(
        s: &ApiState,
        req: CreateDpopMapping,
        _: &[MappingRecord],
    ) -> Result<Prepared, ApiError> {
        validate::ident_pub("provider_id", &req.provider_id)?;
        let token_host = host(&req.token_host);
        let resource_host = host(&req.resource_host);
        exact_hosts(&[
            ("token_host", &token_host),
            ("resource_host", &resource_host),
        ])?;
        let token_prefix = req
            .token_path_prefix
            .clone()
            .unwrap_or_else(|| "/token".to_owned());
        let resource_prefix = req
            .resource_path_prefix
            .clone()
            .unwrap_or_else(|| "/".to_owned());
        paths(&[
            ("token_path_prefix", &token_prefix),
            ("resource_path_prefix", &resource_prefix),
        ])?;
        mapping_provider(
            s,
            &req.provider_id,
            &[
                ("token_host", &token_host),
                ("resource_host", &resource_host),
            ],
        )
        .await?;
        let (key, jkt) = (s.dpop_keygen)()
            .ok_or_else(|| ApiError::internal(&std::io::Error::other("key generation failed")))?;
        let config = serde_json::json!({
            "token_host": token_host,
            "token_path_prefix": token_prefix,
            "resource_host": resource_host,
            "resource_path_prefix": resource_prefix,
            "client_id": req.client_id,
            "jkt": jkt,
        });
        Ok(Prepared {
            replace: req.id,
            provider_id: req.provider_id,
            config,
            secret: key,
        })
    }
}
