//! `/api/netbird`: the NetBird sync's status and peers.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;

use crate::ApiState;
use crate::auth::Reader;

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(netbird_status))
        .add(routes!(netbird_peers))
}

#[utoipa::path(
    get,
    path = "/api/netbird/status",
    tag = "netbird",
    summary = "NetBird sync status: configured, last sync, last success, error, counts (role: operator)",
    responses((status = 200, description = "status", body = excalibur_core::api::NetbirdStatus), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn netbird_status(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json((s.netbird)().0).into_response())
}

#[utoipa::path(
    get,
    path = "/api/netbird/peers",
    tag = "netbird",
    summary = "Synced NetBird peers as developer_device principals, with derived allowed domains, networks and default-route state (role: operator)",
    responses((status = 200, description = "peers", body = Vec<excalibur_core::api::NetbirdPeer>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn netbird_peers(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json((s.netbird)().1).into_response())
}
