//! `/api/translation-rules`: where a placeholder may be redeemed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::CreateTranslationRule;
use excalibur_core::ids::RuleId;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiState, validate};

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .get("/api/translation-rules", rule_list)
        .post("/api/translation-rules", rule_create)
        .delete("/api/translation-rules/{id}", rule_delete)
}

pub(crate) async fn rule_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.rule_list().await?).into_response())
}

pub(crate) async fn rule_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(mut req): JsonBody<CreateTranslationRule>,
) -> ApiResult {
    validate::rule(&req)?;
    req.hosts = req
        .hosts
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let rule = s.store.rule_create(req, c.actor()).await?;
    (s.reload)().await;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

pub(crate) async fn rule_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.rule_delete(RuleId::new(id), c.actor()).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
