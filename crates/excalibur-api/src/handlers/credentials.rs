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

use super::{ApiResult, Routes, exposed};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .get("/api/service-credentials", credential_list)
        .post("/api/service-credentials", credential_create)
        .delete("/api/service-credentials/{id}", credential_revoke)
}

pub(crate) async fn credential_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.credential_list().await?).into_response())
}

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
    (s.reload)().await;
    Ok(CreatedServiceCredential {
        info,
        token: exposed(&issued),
    })
}

pub(crate) async fn credential_revoke(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    let info = s
        .store
        .credential_revoke(CredentialId::new(id), "admin".to_owned(), c.actor())
        .await?;
    (s.reload)().await;
    Ok(Json(info).into_response())
}
