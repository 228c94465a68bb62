//! `/api/service-credentials`: proxy credentials bound to a source network.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::{
    CreateServiceCredential, CreatedServiceCredential, ServiceCredentialInfo,
};
use excalibur_core::ids::{CredentialId, IssuedToken};
use excalibur_core::time::Timestamp;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, validate};

use utoipa_axum::routes;

use super::{ApiResult, Routes, exposed};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(credential_list))
        .add(routes!(credential_create))
        .add(routes!(credential_revoke))
}

#[utoipa::path(
    get,
    path = "/api/service-credentials",
    tag = "service-credentials",
    summary = "List service credentials (role: operator)",
    responses((status = 200, description = "credentials", body = Vec<excalibur_core::api::ServiceCredentialInfo>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn credential_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.credential_list().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/service-credentials",
    tag = "service-credentials",
    summary = "Mint a service credential bound to a source network; the token is shown once (role: admin)",
    request_body = excalibur_core::api::CreateServiceCredential,
    responses((status = 201, description = "created", body = excalibur_core::api::CreatedServiceCredential), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn credential_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateServiceCredential>,
) -> ApiResult {
    let created = create_credential(&s, req, c.actor()).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Shared by the API and the UI form: validates, stores the hash, reloads, returns the
/// token once.
pub(crate) async fn create_credential(
    s: &ApiState,
    req: CreateServiceCredential,
    actor: String,
) -> Result<CreatedServiceCredential, ApiError> {
    let source_network = validate::credential(&req)?;
    let issued = IssuedToken::generate("xcs");
    let info = ServiceCredentialInfo {
        id: CredentialId::generate(),
        name: req.name,
        user: req.user,
        source_network,
        allowed_domains: req
            .allowed_domains
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        prefix: issued.prefix.clone(),
        created_at: Timestamp::now().to_rfc3339(),
        revoked_at: None,
        revoked_reason: None,
        expires_at: req.expires_at,
    };
    s.store
        .credential_create(info.clone(), issued.hash.clone(), actor)
        .await?;
    (s.changed)(crate::Changed::Credential(info.id.clone())).await;
    Ok(CreatedServiceCredential {
        info,
        token: exposed(&issued),
    })
}

#[utoipa::path(
    delete,
    path = "/api/service-credentials/{id}",
    tag = "service-credentials",
    summary = "Revoke a service credential (role: admin)",
    params(("id" = String, Path, description = "credential id")),
    responses((status = 200, description = "revoked", body = excalibur_core::api::ServiceCredentialInfo), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn credential_revoke(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    let info = s
        .store
        .credential_revoke(CredentialId::new(id), "admin".to_owned(), c.actor())
        .await?;
    (s.changed)(crate::Changed::Credential(info.id.clone())).await;
    Ok(Json(info).into_response())
}
