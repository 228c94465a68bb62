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

use super::{ApiResult, Routes, exposed};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .get("/api/webhooks", webhook_list)
        .post("/api/webhooks", webhook_create)
        .delete("/api/webhooks/{id}", webhook_delete)
        .get("/api/webhooks/{id}/deliveries", webhook_deliveries)
}

pub(crate) async fn webhook_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.webhook_list().await?).into_response())
}

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

pub(crate) async fn webhook_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.webhook_delete(id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn webhook_deliveries(
    _: Reader,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(s.store.delivery_list(id, 200).await?).into_response())
}
