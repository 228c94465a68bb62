//! Excalibur as a token issuer: OIDC discovery, the JWKS of its signing keys, and key
//! rotation. The same keys sign audience-scoped workload tokens (`/v1/exchange/token`)
//! and the web-identity assertions the proxy presents to cloud STS endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use excalibur_core::time::Timestamp;
use serde_json::json;

use crate::ApiState;

/// `GET /.well-known/openid-configuration`: Excalibur as an OIDC issuer, so an operator
/// can register it once (e.g. as an AWS IAM OIDC identity provider) for the
/// web-identity tokens it presents when a SigV4 mapping assumes a role.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "workloads",
    summary = "OIDC discovery: the issuer (EXCALIBUR_ISSUER_URL) and its JWKS, for cloud providers that trust Excalibur's tokens",
    responses((status = 200, description = "OIDC provider metadata", body = serde_json::Value)),
    security(())
)]
pub(crate) async fn openid_configuration(State(s): State<ApiState>) -> Response {
    let issuer = s.exchange.issuer_url.trim_end_matches('/');
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
    }))
    .into_response()
}

/// `GET /.well-known/jwks.json`: the public keys of audience-scoped tokens.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "workloads",
    summary = "Public keys of Excalibur-signed workload tokens (retired keys stay until their tokens expire)",
    responses((status = 200, description = "JWKS", body = serde_json::Value), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json")),
    security(())
)]
pub(crate) async fn jwks(State(s): State<ApiState>) -> Response {
    let doc = s.signing.read().await.jwks();
    let mut resp = Json(doc).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    resp
}

/// `POST /api/signing-keys/rotate` (admin): a new signing key; the old one stays
/// published until every token it signed has expired.
#[utoipa::path(
    post,
    path = "/api/signing-keys/rotate",
    tag = "workloads",
    summary = "Rotate the workload-token signing key (role: admin)",
    responses((status = 200, description = "new key id", body = crate::docs::KeyId), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn rotate(
    crate::auth::Admin(c): crate::auth::Admin,
    State(s): State<ApiState>,
) -> Result<Response, crate::ApiError> {
    let mut keys = s.signing.write().await;
    let mut next = keys.clone();
    let now = Timestamp::now().millis();
    let kid = next
        .rotate(now)
        .map_err(|e| crate::ApiError::internal(&e))?;
    let keep = i64::try_from(s.exchange.max_workload_token_ttl.as_millis())
        .unwrap_or(i64::MAX)
        .saturating_mul(2);
    next.prune(now, keep);
    s.store
        .setting_put(s.exchange.signing_setting.clone(), next.to_secret())
        .await?;
    let event = excalibur_core::audit::NewEvent::new(
        excalibur_core::audit::EventType::SigningKeyRotated,
        format!("{}:{}", c.role.as_str(), c.id),
        json!({"kid": kid}),
    );
    s.store.record(Vec::new(), vec![event]).await?;
    *keys = next;
    Ok(Json(json!({"kid": kid})).into_response())
}
