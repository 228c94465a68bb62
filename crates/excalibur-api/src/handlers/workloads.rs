//! Workload identity: namespaces, workloads, revocations, and the token exchange routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::{Namespace, Revocation};

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, validate};

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    use crate::exchange;
    Routes::default()
        .add(routes!(namespace_list))
        .add(routes!(namespace_upsert))
        .add(routes!(workload_list))
        .add(routes!(revoke))
        .add(routes!(revocation_list))
        .add(routes!(revocation_delete))
        .add(routes!(exchange::token))
        .add(routes!(exchange::workload_token))
        .add(routes!(exchange::introspect))
        .add(routes!(crate::issuer::jwks))
        .add(routes!(crate::issuer::openid_configuration))
        .add(routes!(crate::issuer::rotate))
}

#[utoipa::path(
    get,
    path = "/api/namespaces",
    tag = "workloads",
    summary = "List namespaces (role: operator)",
    responses((status = 200, description = "namespaces", body = Vec<excalibur_core::api::Namespace>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn namespace_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.namespace_list().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/namespaces",
    tag = "workloads",
    summary = "Create or replace a namespace and the domains its workloads may reach (role: admin)",
    request_body = excalibur_core::api::Namespace,
    responses((status = 200, description = "stored", body = excalibur_core::api::Namespace), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn namespace_upsert(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(mut ns): JsonBody<Namespace>,
) -> ApiResult {
    validate::namespace(&ns)?;
    ns.allowed_domains = ns
        .allowed_domains
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let ns = s.store.namespace_upsert(ns, c.actor()).await?;
    (s.reload)().await;
    Ok(Json(ns).into_response())
}

#[utoipa::path(
    post,
    path = "/api/revocations",
    tag = "workloads",
    summary = "Revoke one workload bearer (by workload_id or its subject token's jti), or every bearer of a principal (kill switch: also refuses the principal's exchanges until lifted); effective at once, open tunnels included (role: admin)",
    request_body = excalibur_core::api::Revocation,
    responses((status = 200, description = "revoked", body = crate::docs::Revoked), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn revoke(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<Revocation>,
) -> ApiResult {
    let given = [
        r.workload_id.is_some(),
        r.principal.is_some(),
        r.jti.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::unprocessable(
            "give exactly one of `workload_id`, `jti` or `principal`",
        ));
    }
    if [&r.workload_id, &r.principal, &r.jti]
        .into_iter()
        .flatten()
        .any(|v| v.is_empty() || v.len() > 512)
    {
        return Err(ApiError::unprocessable(
            "`workload_id`, `jti` and `principal` must be 1 to 512 characters",
        ));
    }
    let revoked = s.store.workload_revoke(r, c.actor()).await?;
    (s.reload)().await;
    Ok(Json(serde_json::json!({"revoked": revoked})).into_response())
}

/// `GET /api/revocations`: the standing revocations of principals (the kill switch).
#[utoipa::path(
    get,
    path = "/api/revocations",
    tag = "workloads",
    summary = "The standing revocations of principals (kill switch), newest first (role: operator)",
    responses((status = 200, description = "revocations", body = Vec<excalibur_core::api::PrincipalRevocation>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn revocation_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.principal_revocation_list().await?).into_response())
}

/// `DELETE /api/revocations/{id}`: lifts a principal's standing revocation.
#[utoipa::path(
    delete,
    path = "/api/revocations/{id}",
    tag = "workloads",
    summary = "Lift a principal's standing revocation: it may exchange again (role: admin)",
    params(("id" = String, Path)),
    responses((status = 204, description = "lifted"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 404, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn revocation_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.principal_revocation_delete(id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/api/workloads",
    tag = "workloads",
    summary = "Workloads that exchanged a platform token (role: operator)",
    responses((status = 200, description = "workloads", body = Vec<excalibur_core::api::WorkloadInfo>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn workload_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.workload_list().await?).into_response())
}
