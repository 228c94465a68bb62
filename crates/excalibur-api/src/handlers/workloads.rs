//! Workload identity: namespaces, workloads, revocations, and the token exchange routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::{Namespace, Revocation};

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, validate};

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    use crate::exchange;
    Routes::default()
        .get("/api/namespaces", namespace_list)
        .post("/api/namespaces", namespace_upsert)
        .get("/api/workloads", workload_list)
        .post("/api/revocations", revoke)
        .get("/api/revocations", revocation_list)
        .delete("/api/revocations/{id}", revocation_delete)
        .post("/api/oauth/token", exchange::token)
        .post("/v1/exchange/token", exchange::workload_token)
        .post("/v1/introspect", exchange::introspect)
        .get("/.well-known/jwks.json", exchange::jwks)
        .post("/api/signing-keys/rotate", exchange::rotate)
}

pub(crate) async fn namespace_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.namespace_list().await?).into_response())
}

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
pub(crate) async fn revocation_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.principal_revocation_list().await?).into_response())
}

/// `DELETE /api/revocations/{id}`: lifts a principal's standing revocation.
pub(crate) async fn revocation_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.principal_revocation_delete(id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn workload_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.workload_list().await?).into_response())
}
