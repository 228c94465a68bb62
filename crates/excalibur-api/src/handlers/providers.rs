//! `/api/providers`: upstream providers and the hosts they own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::Provider;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiState, validate};

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .get("/api/providers", provider_list)
        .post("/api/providers", provider_upsert)
        .delete("/api/providers/{id}", provider_delete)
}

pub(crate) async fn provider_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.provider_list().await?).into_response())
}

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
    (s.reload)().await;
    Ok(Json(p).into_response())
}

pub(crate) async fn provider_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.provider_delete(id, c.actor()).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
