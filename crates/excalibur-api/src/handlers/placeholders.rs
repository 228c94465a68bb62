//! `/api/placeholders`: the vault of placeholders and their real values.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::UpsertPlaceholder;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiState, validate};

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .get("/api/placeholders", placeholder_list)
        .post("/api/placeholders", placeholder_upsert)
        .delete("/api/placeholders/{name}", placeholder_delete)
}

pub(crate) async fn placeholder_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.placeholder_list().await?).into_response())
}

pub(crate) async fn placeholder_upsert(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<UpsertPlaceholder>,
) -> ApiResult {
    validate::placeholder(&req)?;
    let out = s.store.placeholder_upsert(req, c.actor()).await?;
    (s.reload)().await;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}

pub(crate) async fn placeholder_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    s.store.placeholder_delete(name, c.actor()).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
