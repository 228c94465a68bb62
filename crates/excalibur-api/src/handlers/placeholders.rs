//! `/api/placeholders`: the vault of placeholders and their real values.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::UpsertPlaceholder;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiState, validate};

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(placeholder_list))
        .add(routes!(placeholder_upsert))
        .add(routes!(placeholder_delete))
}

#[utoipa::path(
    get,
    path = "/api/placeholders",
    tag = "placeholders",
    summary = "List placeholders (fingerprints, never values) (role: operator)",
    responses((status = 200, description = "placeholders", body = Vec<excalibur_core::api::PlaceholderInfo>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn placeholder_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.placeholder_list().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/placeholders",
    tag = "placeholders",
    summary = "Upsert a placeholder atomically; emits placeholder_updated and, on a value change, placeholder_rotated (role: admin)",
    request_body = excalibur_core::api::UpsertPlaceholder,
    responses((status = 200, description = "updated", body = excalibur_core::api::UpsertedPlaceholder), (status = 201, description = "created", body = excalibur_core::api::UpsertedPlaceholder), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn placeholder_upsert(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<UpsertPlaceholder>,
) -> ApiResult {
    validate::placeholder(&req)?;
    let name = req.placeholder.clone();
    let out = s.store.placeholder_upsert(req, c.actor()).await?;
    (s.changed)(crate::Changed::Placeholder(name)).await;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/placeholders/{name}",
    tag = "placeholders",
    summary = "Delete a placeholder (role: admin)",
    params(("name" = String, Path, description = "placeholder name")),
    responses((status = 204, description = "deleted"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn placeholder_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    s.store.placeholder_delete(name.clone(), c.actor()).await?;
    (s.changed)(crate::Changed::Placeholder(name)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
