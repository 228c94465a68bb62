//! `/api/webhooks`: receivers of audit events and their deliveries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::{CreateWebhook, CreatedWebhook, WebhookInfo};
use excalibur_core::ids::IssuedToken;
use excalibur_core::time::Timestamp;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, validate};

use utoipa_axum::routes;

use super::{ApiResult, Routes, exposed};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(webhook_list))
        .add(routes!(webhook_create))
        .add(routes!(webhook_delete))
        .add(routes!(webhook_deliveries))
}

#[utoipa::path(
    get,
    path = "/api/webhooks",
    tag = "webhooks",
    summary = "List webhooks (secret fingerprints only) (role: operator)",
    responses((status = 200, description = "webhooks", body = Vec<excalibur_core::api::WebhookInfo>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn webhook_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.webhook_list().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/webhooks",
    tag = "webhooks",
    summary = "Add a webhook; deliveries are signed with X-Excalibur-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t.body)>; a generated secret is shown once (role: admin)",
    request_body = excalibur_core::api::CreateWebhook,
    responses((status = 201, description = "created", body = excalibur_core::api::CreatedWebhook), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn webhook_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateWebhook>,
) -> ApiResult {
    let created = create_webhook(&s, req, c.actor()).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Shared by the API and the UI form.
pub(crate) async fn create_webhook(
    s: &ApiState,
    req: CreateWebhook,
    actor: String,
) -> Result<CreatedWebhook, ApiError> {
    validate::webhook(&req)?;
    // Refused now, naming the address, rather than accepted and failed at delivery.
    if let Err(why) = (s.check_receiver)(req.url.clone()).await {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook_destination_forbidden",
            format!(
                "`url`: {why} (set [webhooks] dangerous_allow_private_destinations to allow it)"
            ),
        ));
    }
    let (secret, shown) = match req.secret {
        Some(secret) => (secret.to_secret(), None),
        None => {
            let generated = IssuedToken::generate("whsec");
            let text = exposed(&generated);
            (generated.token, Some(text))
        }
    };
    let info = WebhookInfo {
        id: format!(
            "wh_{}",
            excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<8>())
        ),
        url: req.url,
        event_types: req.event_types,
        secret_fingerprint: secret.fingerprint(),
        created_at: Timestamp::now().to_rfc3339(),
    };
    s.store.webhook_create(info.clone(), secret, actor).await?;
    Ok(CreatedWebhook {
        info,
        secret: shown,
    })
}

#[utoipa::path(
    delete,
    path = "/api/webhooks/{id}",
    tag = "webhooks",
    summary = "Delete a webhook and its pending deliveries (role: admin)",
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 204, description = "deleted"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn webhook_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.webhook_delete(id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/api/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "A webhook's delivery log, newest first (role: operator)",
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, description = "deliveries", body = Vec<excalibur_core::api::Delivery>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn webhook_deliveries(
    _: Reader,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(s.store.delivery_list(id, 200).await?).into_response())
}
