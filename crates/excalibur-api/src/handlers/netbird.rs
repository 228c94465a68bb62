//! `/api/netbird`: the NetBird sync's status and peers.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;

use crate::ApiState;
use crate::auth::Reader;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .get("/api/netbird/status", netbird_status)
        .get("/api/netbird/peers", netbird_peers)
}

pub(crate) async fn netbird_status(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json((s.netbird)().0).into_response())
}

pub(crate) async fn netbird_peers(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json((s.netbird)().1).into_response())
}
