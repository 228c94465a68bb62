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

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(rule_list))
        .add(routes!(rule_create))
        .add(routes!(rule_delete))
}

#[utoipa::path(
    get,
    path = "/api/translation-rules",
    tag = "translation-rules",
    summary = "List translation rules (role: operator)",
    responses((status = 200, description = "rules", body = Vec<excalibur_core::api::TranslationRule>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn rule_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.rule_list().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/translation-rules",
    tag = "translation-rules",
    summary = "Add a translation rule (role: admin)",
    request_body = excalibur_core::api::CreateTranslationRule,
    responses((status = 201, description = "created", body = excalibur_core::api::TranslationRule), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
    (s.changed)(crate::Changed::Rule(rule.id.clone())).await;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/translation-rules/{id}",
    tag = "translation-rules",
    summary = "Delete a translation rule (role: admin)",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 204, description = "deleted"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn rule_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = RuleId::new(id);
    s.store.rule_delete(id.clone(), c.actor()).await?;
    (s.changed)(crate::Changed::Rule(id)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
