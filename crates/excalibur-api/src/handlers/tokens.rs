//! `/api/tokens`: API tokens (admin, operator, introspection).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::{CreateToken, CreatedToken, TokenInfo};
use excalibur_core::ids::{IssuedToken, TokenId};
use excalibur_core::time::Timestamp;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, validate};

use utoipa_axum::routes;

use super::{ApiResult, Routes, exposed};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(token_list))
        .add(routes!(token_create))
        .add(routes!(token_revoke))
}

#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "tokens",
    summary = "List API tokens (prefixes only) (role: operator)",
    responses((status = 200, description = "tokens", body = Vec<excalibur_core::api::TokenInfo>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn token_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.token_list().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "tokens",
    summary = "Mint an API token; the token is shown once (role: admin)",
    request_body = excalibur_core::api::CreateToken,
    responses((status = 201, description = "created", body = excalibur_core::api::CreatedToken), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn token_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateToken>,
) -> ApiResult {
    validate::token_name(&req.name)?;
    let issued = IssuedToken::generate("xca");
    let info = TokenInfo {
        id: TokenId::generate(),
        name: req.name,
        role: req.role,
        prefix: issued.prefix.clone(),
        created_at: Timestamp::now().to_rfc3339(),
        revoked_at: None,
    };
    s.store
        .token_create(info.clone(), issued.hash.clone(), c.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info,
            token: exposed(&issued),
        }),
    )
        .into_response())
}

#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    tag = "tokens",
    summary = "Revoke an API token (role: admin)",
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, description = "revoked", body = excalibur_core::api::TokenInfo), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn token_revoke(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    if id == c.id.as_str() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a token cannot revoke itself; use another admin token",
        ));
    }
    Ok(Json(s.store.token_revoke(TokenId::new(id), c.actor()).await?).into_response())
}
