//! Upstream mutual TLS: the proxy presents a client certificate whose key the workload
//! never holds.

use excalibur_core::api::{CreateMtlsMapping, CryptoFamily, MappingRecord, MtlsMapping};
use excalibur_core::ids::MtlsMappingId;

use super::{Family, Prepared, mapping_provider};
use crate::{ApiError, ApiState};

pub(super) struct Mtls;

super::family_api!(
    Mtls,
    "/api/crypto/mtls/mappings",
    "/api/crypto/mtls/mappings/{id}",
    excalibur_core::api::CreateMtlsMapping,
    excalibur_core::api::MtlsMapping,
    list: "List upstream mTLS mappings (certificate fingerprint, never the key) (role: operator)",
    create: "Create an upstream mTLS mapping, or replace one by `id` (rotation); emits mtls_mapping_created / mtls_mapping_updated. The key must match the certificate; the host must be the provider's (role: admin)",
    delete: "Delete an mTLS mapping; emits mtls_mapping_deleted (role: admin)"
);

impl Family for Mtls {
    const FAMILY: CryptoFamily = CryptoFamily::Mtls;
    type Create = CreateMtlsMapping;
    type Listed = MtlsMapping;

    fn listed(record: &MappingRecord) -> MtlsMapping {
        MtlsMapping::from_record(record)
    }

    fn fresh_id() -> String {
        MtlsMappingId::generate().as_str().to_owned()
    }

    async fn prepare(
        s: &ApiState,
        req: CreateMtlsMapping,
        _: &[MappingRecord],
    ) -> Result<Prepared, ApiError> {
        let authority = req.target_authority.trim().to_ascii_lowercase();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse::<u16>().ok().filter(|p| *p > 0)),
            None => (authority.clone(), Some(443)),
        };
        let Some(port) = port.filter(|_| excalibur_core::hosts::is_host_name(&host)) else {
            return Err(ApiError::unprocessable(
                "`target_authority` must be `host` or `host:port`",
            ));
        };
        mapping_provider(s, &req.provider_id, &[("target_authority", &host)]).await?;
        if req.real_client_cert_pem.len() > 64 * 1024 || req.real_client_key_pem.len() > 16 * 1024 {
            return Err(ApiError::unprocessable(
                "the certificate or key PEM is too large",
            ));
        }
        let key = req.real_client_key_pem.to_secret();
        let cert_fp = (s.client_identity)(&req.real_client_cert_pem, &key)
            .map_err(ApiError::unprocessable)?;
        let config = serde_json::json!({
            "target_authority": format!("{host}:{port}"),
            "host": host,
            "cert_pem": req.real_client_cert_pem,
            "certificate_fingerprint": cert_fp,
        });
        Ok(Prepared {
            replace: req.id,
            provider_id: req.provider_id,
            config,
            secret: key,
        })
    }
}
