//! Probes, the CA certificate, the OpenAPI document, metrics, and the fallbacks.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Reader;
use crate::{ApiError, ApiState};

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(healthz))
        .add(routes!(readyz))
        .add(routes!(ca_pem))
        .add(routes!(openapi))
        .add(routes!(metrics))
}

/// Liveness (restart me): 200 `ok` while the process can recover by itself; 503 naming
/// what cannot (the recorder stopped, a snapshot that stays stale while the database
/// answers).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "Liveness (restart me): 503 only when the process cannot recover by itself",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain"), (status = 503, description = "a restart is needed", body = crate::docs::Liveness)),
    security(())
)]
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
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    summary = "Prometheus metrics (OpenMetrics text): requests by decision and principal kind, upstream latency, substitutions, exchange results, audit queue depth, snapshot version (role: operator)",
    responses((status = 200, description = "metrics", body = String, content_type = "application/openmetrics-text"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Readiness (send me traffic): 503 names the problems; states shared by every replica (the database away) only degrade it",
    responses((status = 200, description = "ready (possibly degraded)", body = crate::docs::Readiness), (status = 503, description = "not ready", body = crate::docs::Readiness)),
    security(())
)]
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

#[utoipa::path(
    get,
    path = "/api/ca.pem",
    tag = "ca",
    summary = "The Excalibur CA certificate (PEM) for workloads to trust",
    responses((status = 200, description = "PEM", body = String, content_type = "application/x-pem-file"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json")),
    security(())
)]
pub(crate) async fn ca_pem(State(s): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        s.ca_pem.to_string(),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", body = serde_json::Value), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json")),
    security(())
)]
pub(crate) async fn openapi() -> Response {
    /// Generated once per process (it never changes while it runs).
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| crate::openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
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
