//! `POST /api/oauth/token`: RFC 8693 token exchange of a Kubernetes projected
//! service-account token for a short-lived proxy bearer (seed 000 §3). Errors are RFC
//! 6749 §5.2 JSON bodies, as RFC 8693 §2.2.2 requires.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use excalibur_core::api::WorkloadInfo;
use excalibur_core::ids::IssuedToken;
use excalibur_core::time::Timestamp;
use excalibur_store::WorkloadIssue;
use serde::Deserialize;
use serde_json::json;

use crate::{ApiState, PeerAddr};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Token exchange settings.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// Upper bound on an issued bearer's life.
    pub max_workload_token_ttl: Duration,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExchangeForm {
    grant_type: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    audience: Option<String>,
    scope: Option<String>,
    actor_token: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

pub(crate) async fn token(
    State(s): State<ApiState>,
    peer: Option<axum::Extension<PeerAddr>>,
    form: Result<Form<ExchangeForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return invalid_request(
            "the body must be application/x-www-form-urlencoded token exchange parameters",
        );
    };
    match f.grant_type.as_deref() {
        Some(TOKEN_EXCHANGE) => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only token exchange is supported",
            );
        }
        None => return invalid_request("`grant_type` is required"),
    }
    let Some(subject) = f.subject_token.as_deref().filter(|t| !t.is_empty()) else {
        return invalid_request("`subject_token` is required");
    };
    match f.subject_token_type.as_deref() {
        Some(JWT_TYPE) => {}
        Some(_) => {
            return invalid_request(
                "`subject_token_type` must be urn:ietf:params:oauth:token-type:jwt",
            );
        }
        None => return invalid_request("`subject_token_type` is required"),
    }
    if f.actor_token.is_some() {
        return invalid_request("delegation with `actor_token` is not supported");
    }
    if s.attestors.is_empty() {
        return invalid_request(
            "no workload issuer is configured (EXCALIBUR_K8S_ISSUER, [[spiffe]], [[oidc]])",
        );
    }
    let now = Timestamp::now();
    let attested = match s.attestors.verify(subject).await {
        Ok(a) => a,
        Err(e) => return invalid_request(&e.to_string()),
    };
    let Some(peer) = peer.map(|p| p.0.0.ip().to_canonical()) else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "peer address unavailable",
        );
    };
    // The bearer never outlives the subject token, and never the configured cap.
    let remaining_ms = attested.exp * 1000 - now.millis();
    let cap_ms = i64::try_from(s.exchange.max_workload_token_ttl.as_millis()).unwrap_or(i64::MAX);
    let ttl_ms = remaining_ms.min(cap_ms);
    if ttl_ms <= 1000 {
        return invalid_request("the subject token expires too soon");
    }
    let issued = IssuedToken::generate("xcw");
    let scopes: Vec<&str> = f
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let mut details = attested.details.clone();
    if let Some(obj) = details.as_object_mut() {
        obj.insert("audience".to_owned(), json!(f.audience));
        obj.insert("scopes".to_owned(), json!(scopes));
    }
    let info = WorkloadInfo {
        id: format!(
            "wl_{}",
            excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<8>())
        ),
        namespace: attested.namespace.clone(),
        principal: attested.principal.clone(),
        attestation: attested.attestation.to_owned(),
        source: peer.to_string(),
        token_prefix: issued.prefix.clone(),
        created_at: now.to_rfc3339(),
        expires_at: Timestamp::from_millis(now.millis() + ttl_ms).to_rfc3339(),
        details,
    };
    let issue = WorkloadIssue {
        info,
        hash: issued.hash.clone(),
        jti: attested.jti,
        jti_expires_ms: attested.exp * 1000 + 60_000,
    };
    match s.store.workload_exchange(issue).await {
        Ok(true) => {}
        Ok(false) => return invalid_request("the subject token was already exchanged (replay)"),
        Err(e) => return crate::ApiError::from(e).into_response(),
    }
    (s.reload)().await;
    let mut body = json!({
        "access_token": String::from_utf8_lossy(issued.token.expose()),
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": ttl_ms / 1000,
    });
    if let (Some(scope), Some(obj)) = (f.scope, body.as_object_mut()) {
        obj.insert("scope".to_owned(), json!(scope));
    }
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
