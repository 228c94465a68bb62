//! `/api/ssh` and `/api/sessions`: SSH gateway routes and live sessions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, validate};

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(ssh_route_list))
        .add(routes!(ssh_route_create))
        .add(routes!(ssh_route_delete))
        .add(routes!(ssh_gateway))
        .add(routes!(session_list))
        .add(routes!(session_revoke))
}

#[utoipa::path(
    get,
    path = "/api/ssh/routes",
    tag = "ssh",
    summary = "SSH routes: which target a user reaches from which network (role: operator)",
    responses((status = 200, description = "routes", body = Vec<excalibur_core::api::SshRoute>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn ssh_route_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.ssh_route_list().await?).into_response())
}

/// `POST /api/ssh/routes`: creates a route, or replaces the one named by `id`.
#[utoipa::path(
    post,
    path = "/api/ssh/routes",
    tag = "ssh",
    summary = "Create an SSH route, or replace the one named by `id` (a target-key rotation); the target key is sealed and never returned; emits ssh_route_created or ssh_route_updated (role: admin)",
    request_body = excalibur_core::api::CreateSshRoute,
    responses((status = 201, description = "created", body = excalibur_core::api::SshRoute), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 200, description = "replaced", body = excalibur_core::api::SshRoute), (status = 404, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 422, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn ssh_route_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<excalibur_core::api::CreateSshRoute>,
) -> ApiResult {
    let source_network = validate::ssh_route(&req)?;
    (s.ssh.check_public)(&req.target_host_key)
        .map_err(|e| ApiError::unprocessable(format!("`target_host_key`: {e}")))?;
    for (i, k) in req.authorized_keys.iter().enumerate() {
        (s.ssh.check_public)(k)
            .map_err(|e| ApiError::unprocessable(format!("`authorized_keys[{i}]`: {e}")))?;
    }
    let key = req
        .target_private_key
        .as_ref()
        .map(excalibur_core::SecretString::to_secret);
    if let Some(k) = &key {
        (s.ssh.check_private)(k)
            .map_err(|e| ApiError::unprocessable(format!("`target_private_key`: {e}")))?;
    }
    let id = match &req.id {
        Some(id) => {
            if !s.store.ssh_route_list().await?.iter().any(|r| &r.id == id) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("ssh route `{id}` does not exist"),
                ));
            }
            id.clone()
        }
        None => format!(
            "sshr_{}",
            excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<6>())
        ),
    };
    let route = excalibur_core::api::SshRoute {
        id,
        user: req.user,
        source_network,
        target_host: req.target_host.to_ascii_lowercase(),
        target_port: req.target_port,
        target_user: req.target_user,
        target_host_key: req.target_host_key.trim().to_owned(),
        target_key: String::new(),
        target_key_fingerprint: None,
        authorized_keys: req
            .authorized_keys
            .iter()
            .map(|k| k.trim().to_owned())
            .collect(),
        allowed_domains: req
            .allowed_domains
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        inject_proxy: req.inject_proxy,
        port_forwarding: req.port_forwarding,
        created_at: String::new(),
        updated_at: String::new(),
    };
    let (route, created) = s.store.ssh_route_upsert(route, key, c.actor()).await?;
    (s.reload)().await;
    if !created {
        end_route_sessions(&s, &route.id, "route_changed", &c.actor()).await?;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(route)).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/ssh/routes/{id}",
    tag = "ssh",
    summary = "Delete an SSH route; emits ssh_route_deleted (role: admin)",
    params(("id" = String, Path, description = "route id")),
    responses((status = 204, description = "deleted"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 404, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn ssh_route_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.ssh_route_delete(id.clone(), c.actor()).await?;
    (s.reload)().await;
    end_route_sessions(&s, &id, "route_deleted", &c.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Ends the live sessions opened through a route that changed or went away: they were
/// admitted (and reach their target) under settings no longer in force.
async fn end_route_sessions(
    s: &ApiState,
    route_id: &str,
    reason: &str,
    actor: &str,
) -> Result<(), ApiError> {
    let mut ended = Vec::new();
    for session in s.store.ssh_session_active().await? {
        if session.route_id == route_id {
            let id = session.id;
            if s.store
                .ssh_session_end(
                    id.clone(),
                    "revoked".to_owned(),
                    reason.to_owned(),
                    actor.to_owned(),
                )
                .await?
                .is_some()
            {
                ended.push(id);
            }
        }
    }
    if !ended.is_empty() {
        (s.reload)().await;
        for id in &ended {
            (s.ssh.revoke)(id);
        }
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/ssh/gateway",
    tag = "ssh",
    summary = "The SSH gateway's host key (for known_hosts), client key (for targets' authorized_keys) and trusted user CAs (role: operator)",
    responses((status = 200, description = "gateway", body = excalibur_core::api::SshGatewayInfo), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn ssh_gateway(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.ssh.info).into_response())
}

/// Most sessions `GET /api/sessions` returns.
const SESSION_LIST_LIMIT: usize = 500;

#[utoipa::path(
    get,
    path = "/api/sessions",
    tag = "ssh",
    summary = "SSH-gateway sessions, newest first (at most 500) (role: operator)",
    responses((status = 200, description = "sessions", body = Vec<excalibur_core::api::SshSession>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn session_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.ssh_session_list(SESSION_LIST_LIMIT).await?).into_response())
}

/// `POST /api/sessions/{id}/revoke`: ends the session in the store (its proxy token
/// stops working), then closes it on the gateway at once.
#[utoipa::path(
    post,
    path = "/api/sessions/{id}/revoke",
    tag = "ssh",
    summary = "Revoke a live session: its proxy token stops working and the SSH connection is closed at once; emits ssh_session_ended with reason revoked (role: admin)",
    params(("id" = String, Path, description = "session id")),
    responses((status = 200, description = "revoked", body = excalibur_core::api::SshSession), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 404, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 409, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn session_revoke(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    let ended = revoke_session(&s, &id, c.actor()).await?;
    let Some(session) = ended else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("session `{id}` is not active"),
        ));
    };
    Ok(Json(session).into_response())
}

/// Ends a live session as revoked (its token dies with the awaited snapshot) and closes
/// it on this process's gateway; `None` when it was not active. The API and the UI share it.
pub(crate) async fn revoke_session(
    s: &ApiState,
    id: &str,
    actor: String,
) -> Result<Option<excalibur_core::api::SshSession>, ApiError> {
    let ended = s
        .store
        .ssh_session_end(
            id.to_owned(),
            "revoked".to_owned(),
            "revoked".to_owned(),
            actor,
        )
        .await?;
    if ended.is_some() {
        (s.reload)().await;
        (s.ssh.revoke)(id);
    }
    Ok(ended)
}
