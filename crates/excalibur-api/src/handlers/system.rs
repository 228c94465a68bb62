//! Probes, the CA certificate, the OpenAPI document, metrics, and the fallbacks.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Reader;
use crate::{ApiError, ApiState, OPENAPI};

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/api/ca.pem", ca_pem)
        .get("/api/openapi.json", openapi)
        .get("/metrics", metrics)
}

/// Liveness (restart me): 200 `ok` while the process can recover by itself; 503 naming
/// what cannot (the recorder stopped, a snapshot that stays stale while the database
/// answers).
pub(crate) async fn healthz(State(s): State<ApiState>) -> Response {
    let report = s.probes.liveness();
    if report.problems.is_empty() {
        return "ok".into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"alive": false, "problems": report.problems, "details": report.details})),
    )
        .into_response()
}

/// How long `/readyz` waits for the store: probes time out after ~1 s by default.
const READY_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// Prometheus text exposition; needs an operator or admin token.
pub(crate) async fn metrics(_: Reader, State(s): State<ApiState>) -> ApiResult {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &s.registry)
        .map_err(|e| ApiError::internal(&std::io::Error::other(e.to_string())))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// Readiness (send me traffic): 200 with `"ready": true` (and any `degraded` states),
/// or 503 naming the `problems`; see docs/deploy.md for each state.
pub(crate) async fn readyz(State(s): State<ApiState>) -> Response {
    let answers = matches!(
        tokio::time::timeout(READY_DB_TIMEOUT, s.store.provider_list()).await,
        Ok(Ok(_))
    );
    let report = s.probes.readiness(answers);
    let ready = report.problems.is_empty();
    let mut body = serde_json::Map::new();
    body.insert("ready".into(), ready.into());
    body.insert("problems".into(), serde_json::json!(report.problems));
    body.insert("degraded".into(), serde_json::json!(report.degraded));
    body.extend(report.details);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::Value::Object(body))).into_response()
}

pub(crate) async fn ca_pem(State(s): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        s.ca_pem.to_string(),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /api/openapi.json",
    )
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
