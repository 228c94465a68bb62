//! `/api/crypto/<family>/mappings`: the crypto mediation families, and SigV4 presigning.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use excalibur_core::api::{
    CreateDpopMapping, CreateJwtBearerMapping, CreateMtlsMapping, CreateOauthRefreshMapping,
    CreateSigv4Mapping, CryptoFamily, DpopMapping, JwtBearerMapping, JwtBearerPreset,
    MappingRecord, MtlsMapping, OauthRefreshKeys, OauthRefreshMapping, PresignRequest, Sigv4Keys,
    Sigv4Mapping,
};
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::hosts::HostPattern;
use excalibur_core::ids::{
    DpopMappingId, JwtBearerMappingId, MtlsMappingId, OauthRefreshMappingId, Sigv4MappingId,
};
use excalibur_core::{Secret, SecretString};

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, validate};

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .get("/api/crypto/dpop/mappings", dpop_list)
        .post("/api/crypto/dpop/mappings", dpop_create)
        .delete("/api/crypto/dpop/mappings/{id}", dpop_delete)
        .get("/api/crypto/jwt-bearer/mappings", jwt_bearer_list)
        .post("/api/crypto/jwt-bearer/mappings", jwt_bearer_create)
        .delete("/api/crypto/jwt-bearer/mappings/{id}", jwt_bearer_delete)
        .get("/api/crypto/mtls/mappings", mtls_list)
        .post("/api/crypto/mtls/mappings", mtls_create)
        .delete("/api/crypto/mtls/mappings/{id}", mtls_delete)
        .get("/api/crypto/oauth-refresh/mappings", oauth_refresh_list)
        .post("/api/crypto/oauth-refresh/mappings", oauth_refresh_create)
        .delete(
            "/api/crypto/oauth-refresh/mappings/{id}",
            oauth_refresh_delete,
        )
        .get("/api/crypto/sigv4/mappings", sigv4_list)
        .post("/api/crypto/sigv4/mappings", sigv4_create)
        .delete("/api/crypto/sigv4/mappings/{id}", sigv4_delete)
        .post("/api/crypto/sigv4/presign", sigv4_presign)
}

pub(crate) async fn sigv4_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(&s, CryptoFamily::Sigv4, Sigv4Mapping::from_record).await
}

pub(crate) async fn sigv4_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateSigv4Mapping>,
) -> ApiResult {
    validate::sigv4(&req)?;
    let target = HostPattern::parse(&req.target_host)
        .map_err(|e| ApiError::unprocessable(format!("`target_host`: {e}")))?;
    mapping_provider(&s, &req.provider_id, &[("target_host", target.as_str())]).await?;
    let id = mapping_id(&s, CryptoFamily::Sigv4, req.id.as_ref(), || {
        Sigv4MappingId::generate().as_str().to_owned()
    })
    .await?;
    let prefix: String = req.real_access_key_id.chars().take(8).collect();
    let config = serde_json::json!({
        "target_host": target.as_str(),
        "path_prefix": req.path_prefix,
        "region": req.region,
        "service": req.service,
        "access_key_id_prefix": format!("{prefix}…"),
        "session_token": req.real_session_token.is_some(),
    });
    let keys = Sigv4Keys {
        access_key_id: req.real_access_key_id,
        secret_access_key: req.real_secret_access_key,
        session_token: req.real_session_token,
    };
    let sealed = Secret::new(serde_json::to_vec(&keys).map_err(|e| ApiError::internal(&e))?);
    drop(keys);
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::Sigv4,
        id,
        req.provider_id,
        config,
        sealed,
    )
    .await?;
    Ok((status, Json(Sigv4Mapping::from_record(&record))).into_response())
}

pub(crate) async fn sigv4_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::Sigv4, id).await
}

/// Presigns a URL with a mapping's key. The URL is a bearer credential until it expires:
/// admin only, audited, never cached.
pub(crate) async fn sigv4_presign(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<PresignRequest>,
) -> ApiResult {
    let mapping = req.mapping_id.clone();
    let presigned = (s.presign)(req).map_err(|e| match e {
        crate::PresignFailure::UnknownMapping => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no SigV4 mapping `{mapping}`"),
        ),
        crate::PresignFailure::Invalid(detail) => ApiError::unprocessable(detail),
    })?;
    let event = NewEvent::new(
        EventType::Sigv4Presigned,
        c.actor(),
        serde_json::json!({
            "mapping": mapping,
            "host": presigned.host,
            "path": presigned.path,
            "method": presigned.method,
            "expires_at": presigned.url.expires_at,
        }),
    );
    s.store.record(Vec::new(), vec![event]).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(presigned.url)).into_response())
}

/// The provider named by a mapping, which must exist, not be passthrough, and list
/// every host in `hosts`.
async fn mapping_provider(
    s: &ApiState,
    provider_id: &str,
    hosts: &[(&str, &str)],
) -> Result<(), ApiError> {
    let providers = s.store.provider_list().await?;
    let Some(provider) = providers.iter().find(|p| p.id == provider_id) else {
        return Err(ApiError::unprocessable(format!(
            "provider `{provider_id}` does not exist; create it first with POST /api/providers"
        )));
    };
    if provider.passthrough {
        return Err(ApiError::unprocessable(format!(
            "provider `{provider_id}` is passthrough: its traffic is tunnelled and cannot be mediated"
        )));
    }
    for (field, host) in hosts {
        let target = HostPattern::parse(host)
            .map_err(|e| ApiError::unprocessable(format!("`{field}`: {e}")))?;
        let covered = provider
            .hosts
            .iter()
            .filter_map(|h| HostPattern::parse(h).ok())
            .any(|h| target.within(&h));
        if !covered {
            return Err(ApiError::unprocessable(format!(
                "`{field}` `{host}` is not one of provider `{provider_id}`'s hosts {:?}",
                provider.hosts
            )));
        }
    }
    Ok(())
}

/// Stores a mapping (sealing `secret`), reloads the snapshot, and answers 201 for a new
/// mapping, 200 for a replaced one.
async fn save_mapping(
    s: &ApiState,
    actor: String,
    family: CryptoFamily,
    id: String,
    provider_id: String,
    config: serde_json::Value,
    secret: Secret,
) -> Result<(MappingRecord, StatusCode), ApiError> {
    let record = MappingRecord {
        family,
        id,
        provider_id,
        config,
        fingerprint: String::new(),
        created_at: String::new(),
        updated_at: String::new(),
    };
    let (record, created) = s.store.mapping_upsert(record, secret, actor).await?;
    (s.reload)().await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((record, status))
}

/// The id to write: a new one, or an existing mapping of this family (404 otherwise,
/// which also answers any id that is not one of ours).
async fn mapping_id(
    s: &ApiState,
    family: CryptoFamily,
    id: Option<&String>,
    fresh: impl FnOnce() -> String,
) -> Result<String, ApiError> {
    match id {
        Some(id) => {
            let existing = s.store.mapping_list(family).await?;
            if !existing.iter().any(|m| &m.id == id) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!(
                        "no {} mapping `{id}`; omit `id` to create one",
                        family.as_str()
                    ),
                ));
            }
            Ok(id.clone())
        }
        None => Ok(fresh()),
    }
}

pub(crate) async fn jwt_bearer_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(&s, CryptoFamily::JwtBearer, JwtBearerMapping::from_record).await
}

pub(crate) async fn jwt_bearer_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateJwtBearerMapping>,
) -> ApiResult {
    validate::jwt_bearer(&req)?;
    let token_host = req.token_host.trim_end_matches('.').to_ascii_lowercase();
    let resource_host = req.resource_host.as_deref().map_or_else(
        || token_host.clone(),
        |h| h.trim_end_matches('.').to_ascii_lowercase(),
    );
    mapping_provider(
        &s,
        &req.provider_id,
        &[
            ("token_host", &token_host),
            ("resource_host", &resource_host),
        ],
    )
    .await?;
    let pem = req.real_private_pem.to_secret();
    let (alg, kid) = (s.key_info)(&pem).ok_or_else(|| {
        ApiError::unprocessable(
            "`real_private_pem` is not an RSA, EC (P-256/P-384) or Ed25519 private key",
        )
    })?;
    let id = mapping_id(&s, CryptoFamily::JwtBearer, req.id.as_ref(), || {
        JwtBearerMappingId::generate().as_str().to_owned()
    })
    .await?;
    let token_path = match (&req.token_path, req.preset) {
        (Some(p), _) => p.clone(),
        (None, JwtBearerPreset::GithubApp) => {
            return Err(ApiError::unprocessable(
                "`token_path` is required for github_app: /app/installations/{installation_id}/access_tokens",
            ));
        }
        (None, _) => "/token".to_owned(),
    };
    let config = serde_json::json!({
        "token_host": token_host,
        "token_path": token_path,
        "resource_host": resource_host,
        "path_prefix": req.path_prefix,
        "client_id": req.client_id,
        "issuer": req.issuer,
        "subject": req.subject,
        "audience": req.audience,
        "scope": req.scope,
        "preset": req.preset,
        "alg": alg,
        "kid": kid,
    });
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::JwtBearer,
        id,
        req.provider_id.clone(),
        config,
        pem,
    )
    .await?;
    Ok((status, Json(JwtBearerMapping::from_record(&record))).into_response())
}

pub(crate) async fn jwt_bearer_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::JwtBearer, id).await
}

pub(crate) async fn mtls_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(&s, CryptoFamily::Mtls, MtlsMapping::from_record).await
}

pub(crate) async fn mtls_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateMtlsMapping>,
) -> ApiResult {
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
    mapping_provider(&s, &req.provider_id, &[("target_authority", &host)]).await?;
    if req.real_client_cert_pem.len() > 64 * 1024 || req.real_client_key_pem.len() > 16 * 1024 {
        return Err(ApiError::unprocessable(
            "the certificate or key PEM is too large",
        ));
    }
    let key = req.real_client_key_pem.to_secret();
    let cert_fp =
        (s.client_identity)(&req.real_client_cert_pem, &key).map_err(ApiError::unprocessable)?;
    let id = mapping_id(&s, CryptoFamily::Mtls, req.id.as_ref(), || {
        MtlsMappingId::generate().as_str().to_owned()
    })
    .await?;
    let config = serde_json::json!({
        "target_authority": format!("{host}:{port}"),
        "host": host,
        "cert_pem": req.real_client_cert_pem,
        "certificate_fingerprint": cert_fp,
    });
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::Mtls,
        id,
        req.provider_id.clone(),
        config,
        key,
    )
    .await?;
    Ok((status, Json(MtlsMapping::from_record(&record))).into_response())
}

pub(crate) async fn mtls_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::Mtls, id).await
}

pub(crate) async fn dpop_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(&s, CryptoFamily::Dpop, DpopMapping::from_record).await
}

pub(crate) async fn dpop_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateDpopMapping>,
) -> ApiResult {
    validate::ident_pub("provider_id", &req.provider_id)?;
    let token_host = req.token_host.trim_end_matches('.').to_ascii_lowercase();
    let resource_host = req.resource_host.trim_end_matches('.').to_ascii_lowercase();
    for (field, h) in [
        ("token_host", &token_host),
        ("resource_host", &resource_host),
    ] {
        if !excalibur_core::hosts::is_host_name(h) {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be an exact host name"
            )));
        }
    }
    let token_prefix = req
        .token_path_prefix
        .clone()
        .unwrap_or_else(|| "/token".to_owned());
    let resource_prefix = req
        .resource_path_prefix
        .clone()
        .unwrap_or_else(|| "/".to_owned());
    for (field, v) in [
        ("token_path_prefix", &token_prefix),
        ("resource_path_prefix", &resource_prefix),
    ] {
        if !v.starts_with('/')
            || v.len() > 1024
            || v.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must start with `/` (no spaces)"
            )));
        }
    }
    mapping_provider(
        &s,
        &req.provider_id,
        &[
            ("token_host", &token_host),
            ("resource_host", &resource_host),
        ],
    )
    .await?;
    let (key, jkt) = (s.dpop_keygen)()
        .ok_or_else(|| ApiError::internal(&std::io::Error::other("key generation failed")))?;
    let id = mapping_id(&s, CryptoFamily::Dpop, req.id.as_ref(), || {
        DpopMappingId::generate().as_str().to_owned()
    })
    .await?;
    let config = serde_json::json!({
        "token_host": token_host,
        "token_path_prefix": token_prefix,
        "resource_host": resource_host,
        "resource_path_prefix": resource_prefix,
        "client_id": req.client_id,
        "jkt": jkt,
    });
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::Dpop,
        id,
        req.provider_id.clone(),
        config,
        key,
    )
    .await?;
    Ok((status, Json(DpopMapping::from_record(&record))).into_response())
}

pub(crate) async fn dpop_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::Dpop, id).await
}

pub(crate) async fn oauth_refresh_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(
        &s,
        CryptoFamily::OauthRefresh,
        OauthRefreshMapping::from_record,
    )
    .await
}

pub(crate) async fn oauth_refresh_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateOauthRefreshMapping>,
) -> ApiResult {
    validate::ident_pub("provider_id", &req.provider_id)?;
    let token_host = req.token_host.trim_end_matches('.').to_ascii_lowercase();
    let resource_host = req.resource_host.as_deref().map_or_else(
        || token_host.clone(),
        |h| h.trim_end_matches('.').to_ascii_lowercase(),
    );
    for (field, h) in [
        ("token_host", &token_host),
        ("resource_host", &resource_host),
    ] {
        if !excalibur_core::hosts::is_host_name(h) {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be an exact host name"
            )));
        }
    }
    let token_path = req
        .token_path
        .clone()
        .unwrap_or_else(|| "/token".to_owned());
    for (field, v) in [
        ("token_path", &token_path),
        ("path_prefix", &req.path_prefix),
    ] {
        if !v.starts_with('/')
            || v.len() > 1024
            || v.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must start with `/` (no spaces)"
            )));
        }
    }
    for (field, v) in [
        ("client_id", Some(req.client_id.as_str())),
        (
            "real_client_secret",
            req.real_client_secret.as_ref().map(SecretString::expose),
        ),
        ("real_refresh_token", Some(req.real_refresh_token.expose())),
    ] {
        if let Some(v) = v
            && (v.is_empty() || v.len() > 8192 || !v.bytes().all(|b| (0x21..0x7f).contains(&b)))
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be 1 to 8192 printable characters without spaces"
            )));
        }
    }
    mapping_provider(
        &s,
        &req.provider_id,
        &[
            ("token_host", &token_host),
            ("resource_host", &resource_host),
        ],
    )
    .await?;
    let existing = s.store.mapping_list(CryptoFamily::OauthRefresh).await?;
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
    let id = mapping_id(&s, CryptoFamily::OauthRefresh, req.id.as_ref(), || {
        OauthRefreshMappingId::generate().as_str().to_owned()
    })
    .await?;
    let config = serde_json::json!({
        "token_host": token_host,
        "token_path": token_path,
        "resource_host": resource_host,
        "path_prefix": req.path_prefix,
        "client_id": req.client_id,
        "scope": req.scope,
        "generation": generation,
    });
    let keys = OauthRefreshKeys {
        client_secret: req.real_client_secret,
        refresh_token: req.real_refresh_token,
    };
    let sealed = Secret::new(serde_json::to_vec(&keys).map_err(|e| ApiError::internal(&e))?);
    drop(keys);
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::OauthRefresh,
        id,
        req.provider_id.clone(),
        config,
        sealed,
    )
    .await?;
    Ok((status, Json(OauthRefreshMapping::from_record(&record))).into_response())
}

pub(crate) async fn oauth_refresh_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::OauthRefresh, id).await
}

/// `GET /api/crypto/<family>/mappings`: the family's mappings in their listed form.
async fn list_mappings<T: serde::Serialize>(
    s: &ApiState,
    family: CryptoFamily,
    listed: fn(&MappingRecord) -> T,
) -> ApiResult {
    let records = s.store.mapping_list(family).await?;
    Ok(Json(records.iter().map(listed).collect::<Vec<_>>()).into_response())
}

/// `DELETE /api/crypto/<family>/mappings/{id}`: in effect when the answer arrives.
async fn delete_mapping(
    s: &ApiState,
    actor: String,
    family: CryptoFamily,
    id: String,
) -> ApiResult {
    s.store.mapping_delete(family, id, actor).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
