//! `/api/providers`: upstream providers and the hosts they own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::Provider;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiState, validate};

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(provider_list))
        .add(routes!(provider_upsert))
        .add(routes!(provider_delete))
}

#[utoipa::path(
    get,
    path = "/api/providers",
    tag = "providers",
    summary = "List providers (role: operator)",
    responses((status = 200, description = "providers", body = Vec<excalibur_core::api::Provider>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn provider_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.provider_list().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/providers",
    tag = "providers",
    summary = "Create or replace a provider and the hosts its secrets may be sent to (role: admin)",
    request_body = excalibur_core::api::Provider,
    responses((status = 200, description = "stored", body = excalibur_core::api::Provider), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn provider_upsert(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(mut p): JsonBody<Provider>,
) -> ApiResult {
    validate::provider(&p)?;
    p.hosts = p
        .hosts
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let p = s.store.provider_upsert(p, c.actor()).await?;
    (s.changed)(crate::Changed::Provider(p.id.clone())).await;
    Ok(Json(p).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/providers/{id}",
    tag = "providers",
    summary = "Delete a provider no placeholder uses (role: admin)",
    params(("id" = String, Path, description = "provider id")),
    responses((status = 204, description = "deleted"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn provider_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.provider_delete(id.clone(), c.actor()).await?;
    (s.changed)(crate::Changed::Provider(id)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
