//! `/api/crypto/<family>/mappings`: the crypto mediation families through one seam.
//! Each family (`sigv4`, `jwt_bearer`, `mtls`, `dpop`, `oauth_refresh`) implements
//! [`Family`]: its request DTO, its listed form, and how a validated request becomes a
//! stored mapping. Create, list and delete are generic over it, so every family answers
//! the same way (201 new / 200 replaced / 404 unknown id / 422 naming the field / 204).
//! Plus SigV4 presigning.

use std::future::Future;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use excalibur_core::Secret;
use excalibur_core::api::{CryptoFamily, MappingRecord, PresignRequest};
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::hosts::HostPattern;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState};

use utoipa_axum::routes;

use super::{ApiResult, Routes};

mod dpop;
mod jwt_bearer;
mod mtls;
mod oauth_refresh;
mod sigv4;

/// This resource's routes: every family's three, and presigning.
pub(super) fn routes() -> Routes {
    dpop::api::routes()
        .merge(jwt_bearer::api::routes())
        .merge(mtls::api::routes())
        .merge(oauth_refresh::api::routes())
        .merge(sigv4::api::routes())
        .add(routes!(sigv4_presign))
}

/// A family's three documented routes over the generic handlers: `GET` and `POST` on
/// `$path`, `DELETE` on `$item`, with the family's DTOs in the OpenAPI document.
macro_rules! family_api {
    ($family:ident, $path:tt, $item:tt, $create:ty, $listed:ty,
     list: $list_doc:tt, create: $create_doc:tt, delete: $delete_doc:tt) => {
        /// The family's documented routes.
        pub(super) mod api {
            use axum::extract::{Path, State};
            use utoipa_axum::routes;

            use super::super::{ApiResult, Routes};
            use crate::ApiState;
            use crate::auth::{Admin, Reader};
            use crate::extract::JsonBody;

            #[utoipa::path(get, path = $path, tag = "crypto", summary = $list_doc,
                responses(
                    (status = 200, description = "mappings", body = Vec<$listed>),
                    (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"),
                    (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"),
                    (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json")))]
            async fn list(r: Reader, s: State<ApiState>) -> ApiResult {
                super::super::list::<super::$family>(r, s).await
            }

            #[utoipa::path(post, path = $path, tag = "crypto", summary = $create_doc,
                request_body = $create,
                responses(
                    (status = 201, description = "created", body = $listed),
                    (status = 200, description = "replaced", body = $listed),
                    (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"),
                    (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"),
                    (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json")))]
            async fn create(a: Admin, s: State<ApiState>, req: JsonBody<$create>) -> ApiResult {
                super::super::create::<super::$family>(a, s, req).await
            }

            #[utoipa::path(delete, path = $item, tag = "crypto", summary = $delete_doc,
                params(("id" = String, Path, description = "Mapping id")),
                responses(
                    (status = 204, description = "deleted"),
                    (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"),
                    (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"),
                    (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json")))]
            async fn delete(a: Admin, s: State<ApiState>, id: Path<String>) -> ApiResult {
                super::super::delete::<super::$family>(a, s, id).await
            }

            pub(in super::super) fn routes() -> Routes {
                Routes::default()
                    .add(routes!(list))
                    .add(routes!(create))
                    .add(routes!(delete))
            }
        }
    };
}
use family_api;

/// One crypto mediation family, as the API sees it.
pub(super) trait Family: Send + Sync + 'static {
    /// The family.
    const FAMILY: CryptoFamily;
    /// The create/replace request.
    type Create: DeserializeOwned + Send + 'static;
    /// The listed form (never a secret).
    type Listed: Serialize;

    /// The listed form of a stored mapping.
    fn listed(record: &MappingRecord) -> Self::Listed;

    /// A fresh mapping id.
    fn fresh_id() -> String;

    /// Validates `req` (a 422 names the field) and turns it into what is stored.
    /// `existing` is the family's current mappings (a replacement may build on its own).
    fn prepare(
        s: &ApiState,
        req: Self::Create,
        existing: &[MappingRecord],
    ) -> impl Future<Output = Result<Prepared, ApiError>> + Send;
}

/// A validated mapping, ready to store.
pub(super) struct Prepared {
    /// The id the request asked to replace, if any.
    pub(super) replace: Option<String>,
    /// The provider whose hosts the mapping may reach.
    pub(super) provider_id: String,
    /// The mapping's settings (never a secret).
    pub(super) config: serde_json::Value,
    /// What is sealed at rest.
    pub(super) secret: Secret,
}

/// `GET`: the family's mappings in their listed form.
async fn list<F: Family>(_: Reader, State(s): State<ApiState>) -> ApiResult {
    let records = s.store.mapping_list(F::FAMILY).await?;
    Ok(Json(records.iter().map(F::listed).collect::<Vec<_>>()).into_response())
}

/// `POST`: validates, seals, stores (201 new, 200 replaced), awaits the snapshot.
async fn create<F: Family>(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<F::Create>,
) -> ApiResult {
    let existing = s.store.mapping_list(F::FAMILY).await?;
    let p = F::prepare(&s, req, &existing).await?;
    let id = match p.replace {
        // An id that is not one of this family's mappings (or not ours at all) is 404.
        Some(id) if !existing.iter().any(|m| m.id == id) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no {} mapping `{id}`; omit `id` to create one",
                    F::FAMILY.as_str()
                ),
            ));
        }
        Some(id) => id,
        None => F::fresh_id(),
    };
    let record = MappingRecord {
        family: F::FAMILY,
        id,
        provider_id: p.provider_id,
        config: p.config,
        fingerprint: String::new(),
        created_at: String::new(),
        updated_at: String::new(),
    };
    let (record, created) = s.store.mapping_upsert(record, p.secret, c.actor()).await?;
    (s.reload)().await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(F::listed(&record))).into_response())
}

/// `DELETE`: in effect when the answer arrives.
async fn delete<F: Family>(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.mapping_delete(F::FAMILY, id, c.actor()).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
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

/// A host name as stored: lowercase, without a trailing dot.
fn host(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Each `(field, host)` must be an exact host name.
fn exact_hosts(hosts: &[(&str, &str)]) -> Result<(), ApiError> {
    for (field, h) in hosts {
        if !excalibur_core::hosts::is_host_name(h) {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be an exact host name"
            )));
        }
    }
    Ok(())
}

/// Each `(field, path)` must start with `/`, without spaces or control characters.
fn paths(paths: &[(&str, &str)]) -> Result<(), ApiError> {
    for (field, v) in paths {
        if !v.starts_with('/')
            || v.len() > 1024
            || v.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must start with `/` (no spaces)"
            )));
        }
    }
    Ok(())
}

/// Seals a family's secret document (JSON).
fn sealed_json<T: Serialize>(keys: &T) -> Result<Secret, ApiError> {
    serde_json::to_vec(keys)
        .map(Secret::new)
        .map_err(|e| ApiError::internal(&e))
}

/// Presigns a URL with a mapping's key. The URL is a bearer credential until it expires:
/// admin only, audited, never cached.
#[utoipa::path(
    post,
    path = "/api/crypto/sigv4/presign",
    tag = "crypto",
    summary = "Presign a URL with a SigV4 mapping's key (query authentication, at most 7 days); emits sigv4_presigned; the URL is a bearer credential (role: admin)",
    request_body = excalibur_core::api::PresignRequest,
    responses((status = 200, description = "presigned URL", body = excalibur_core::api::PresignedUrl), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
