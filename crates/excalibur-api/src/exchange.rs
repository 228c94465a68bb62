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

use excalibur_identity::attest::SubjectKind;

use crate::{ApiState, PeerAddr};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Token exchange settings.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// Upper bound on an issued bearer's life.
    pub max_workload_token_ttl: Duration,
    /// `iss` of the audience-scoped tokens Excalibur signs.
    pub issuer_url: String,
    /// Trust domain of their `sub` and `td` (principals that are not SPIFFE IDs).
    pub trust_domain: String,
    /// Settings key under which the store seals the signing keys.
    pub signing_setting: String,
}

// No Debug: the subject token is a credential.
#[derive(Deserialize)]
pub(crate) struct ExchangeForm {
    grant_type: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    audience: Option<String>,
    scope: Option<String>,
    actor_token: Option<String>,
    actor_token_type: Option<String>,
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

/// A refusal on its way out of a helper (boxed: a `Response` is large).
type Refused = Box<Response>;

fn refuse(resp: Response) -> Refused {
    Box::new(resp)
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Counts the outcome of an exchange by the `error` code of its response.
fn counted(s: &ApiState, resp: Response) -> Response {
    let result = if resp.status().is_success() {
        "issued"
    } else {
        "refused"
    };
    s.metrics.exchange(result);
    resp
}

#[utoipa::path(
    post,
    path = "/api/oauth/token",
    tag = "workloads",
    summary = "RFC 8693 token exchange: a Kubernetes projected service-account token for a short-lived proxy bearer",
    request_body(content = crate::docs::TokenExchangeRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "issued", body = crate::docs::TokenExchangeResponse), (status = 400, description = "RFC 6749 error", body = crate::docs::OAuthError)),
    security(())
)]
pub(crate) async fn token(
    State(s): State<ApiState>,
    peer: Option<axum::Extension<PeerAddr>>,
    form: Result<Form<ExchangeForm>, FormRejection>,
) -> Response {
    let resp = token_inner(&s, peer, form).await;
    counted(&s, resp)
}

async fn token_inner(
    s: &ApiState,
    peer: Option<axum::Extension<PeerAddr>>,
    form: Result<Form<ExchangeForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return invalid_request(
            "the body must be application/x-www-form-urlencoded token exchange parameters",
        );
    };
    let (subject, kind) = match form_subject(&f) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    if s.attestors.is_empty() {
        return invalid_request(
            "no workload issuer is configured (EXCALIBUR_K8S_ISSUER, [[spiffe]], [[oidc]], [[aws]], [[gcp]], [[azure]])",
        );
    }
    let now = Timestamp::now();
    let attested = match s.attestors.verify_as(kind, subject).await {
        Ok(a) => a,
        Err(e) => return invalid_request(&e.to_string()),
    };
    let act = match actor(s, f.actor_token.as_deref(), f.actor_token_type.as_deref()).await {
        Ok(a) => a,
        Err(refused) => return refused,
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
    let scopes = match bearer_scopes(f.scope.as_deref()) {
        Ok(scopes) => scopes,
        Err(refused) => return *refused,
    };
    let mut details = attested.details.clone();
    if let Some(obj) = details.as_object_mut() {
        obj.insert("audience".to_owned(), json!(f.audience));
        obj.insert("jti".to_owned(), json!(attested.jti));
        obj.insert("scopes".to_owned(), json!(scopes));
        insert_identity(obj, &attested, act.as_ref());
    }
    let issue = workload_issue(Issue {
        attested: &attested,
        source: peer.to_string(),
        token_prefix: issued.prefix.clone(),
        hash: issued.hash.clone(),
        created: now,
        expires_ms: now.millis() + ttl_ms,
        details,
    });
    if let Some(refused) = store_bearer(s, issue).await {
        return refused;
    }
    let mut body = json!({
        "access_token": String::from_utf8_lossy(issued.token.expose()),
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": ttl_ms / 1000,
    });
    if let (Some(scope), Some(obj)) = (f.scope, body.as_object_mut()) {
        obj.insert("scope".to_owned(), json!(scope));
    }
    no_store(Json(body))
}

/// The subject token of a form exchange, once its grant and token types are ours.
fn form_subject(f: &ExchangeForm) -> Result<(&str, SubjectKind), Refused> {
    match f.grant_type.as_deref() {
        Some(TOKEN_EXCHANGE) => {}
        Some(_) => {
            return Err(refuse(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only token exchange is supported",
            )));
        }
        None => return Err(refuse(invalid_request("`grant_type` is required"))),
    }
    let Some(subject) = f.subject_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(refuse(invalid_request("`subject_token` is required")));
    };
    match f.subject_token_type.as_deref() {
        Some(t) => subject_kind(t)
            .map(|kind| (subject, kind))
            .ok_or_else(|| refuse(invalid_request(SUBJECT_TYPES))),
        None => Err(refuse(invalid_request("`subject_token_type` is required"))),
    }
}

/// The requested scopes; RFC 6749 §5.2: a scope we do not know is refused, not ignored.
fn bearer_scopes(scope: Option<&str>) -> Result<Vec<&str>, Refused> {
    let scopes: Vec<&str> = scope.unwrap_or_default().split_whitespace().collect();
    if let Some(bad) = scopes.iter().find(|s| {
        s.strip_prefix("provider:").is_none_or(|id| {
            id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        })
    }) {
        return Err(refuse(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("unknown scope `{bad}`: scopes are `provider:<id>`"),
        )));
    }
    Ok(scopes)
}

/// A 200 that no cache keeps (it carries a token).
fn no_store(body: impl IntoResponse) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Seed 004's JSON body for `POST /v1/exchange/token`.
// No Debug: the subject token is a credential.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonExchange {
    grant_type: String,
    subject_token: String,
    subject_token_type: String,
    audience: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    actor_token: Option<String>,
    #[serde(default)]
    actor_token_type: Option<String>,
}

const SPIFFE_SVID_TYPE: &str = "urn:starfly:token-type:spiffe-svid";
/// A GCP service account's Google-signed ID token (seed 004).
const GCP_WIF_TYPE: &str = "urn:starfly:token-type:gcp-wif";
/// An Azure managed identity's Entra ID token (seed 004).
const AZURE_MI_TYPE: &str = "urn:starfly:token-type:azure-mi";
/// A signed AWS `sts:GetCallerIdentity` request (seed 004).
const AWS_STS_TYPE: &str = "urn:starfly:token-type:aws-sts";

/// The subject token types an exchange accepts, and which verifier each goes to.
fn subject_kind(token_type: &str) -> Option<SubjectKind> {
    match token_type {
        JWT_TYPE | SPIFFE_SVID_TYPE => Some(SubjectKind::Jwt),
        GCP_WIF_TYPE => Some(SubjectKind::GcpWif),
        AZURE_MI_TYPE => Some(SubjectKind::AzureMi),
        AWS_STS_TYPE => Some(SubjectKind::AwsSts),
        _ => None,
    }
}

/// What a refused `subject_token_type` is told.
const SUBJECT_TYPES: &str = "`subject_token_type` must be urn:ietf:params:oauth:token-type:jwt, \
     urn:starfly:token-type:spiffe-svid, urn:starfly:token-type:aws-sts, urn:starfly:token-type:gcp-wif \
     or urn:starfly:token-type:azure-mi";

/// `POST /v1/exchange/token`: any accepted subject token for an audience-scoped JWT
/// signed by Excalibur (ES256); keys at `/.well-known/jwks.json`.
#[utoipa::path(
    post,
    path = "/v1/exchange/token",
    tag = "workloads",
    summary = "Exchange an accepted subject token (K8s SA JWT, JWT-SVID, OIDC) for an audience-scoped ES256 JWT signed by Excalibur",
    request_body(content = crate::docs::TokenExchangeRequest, content_type = "application/json"),
    responses((status = 200, description = "issued", body = crate::docs::TokenExchangeResponse), (status = 400, description = "RFC 6749 error", body = crate::docs::OAuthError)),
    security(())
)]
pub(crate) async fn workload_token(
    State(s): State<ApiState>,
    peer: Option<axum::Extension<PeerAddr>>,
    body: Result<Json<JsonExchange>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return invalid_request("the body must be a JSON token exchange request");
    };
    let audience = match json_audience(&req) {
        Ok(audience) => audience,
        Err(refused) => return *refused,
    };
    let kind = subject_kind(&req.subject_token_type).unwrap_or(SubjectKind::Jwt);
    let attested = match s.attestors.verify_as(kind, &req.subject_token).await {
        Ok(a) => a,
        Err(e) => return invalid_request(&e.to_string()),
    };
    let act = match actor(
        &s,
        req.actor_token.as_deref(),
        req.actor_token_type.as_deref(),
    )
    .await
    {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let source = peer.map_or_else(String::new, |p| p.0.0.ip().to_canonical().to_string());
    if req.subject_token_type == SPIFFE_SVID_TYPE && attested.attestation != "spiffe-jwt" {
        return invalid_request(&format!(
            "`subject_token_type` is a SPIFFE SVID but the token is a `{}` token",
            attested.attestation
        ));
    }
    let now = Timestamp::now();
    let Some((exp, ttl)) = audience_lifetime(&s, &attested, now) else {
        return invalid_request("the subject token expires too soon");
    };
    let jti = excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<16>());
    let claims = audience_claims(
        &s,
        &attested,
        act.as_ref(),
        &audience,
        req.scope.as_deref(),
        (now, exp, &jti),
    );
    let token = match s.signing.read().await.sign(&claims) {
        Ok(t) => t,
        Err(e) => return crate::ApiError::internal(&e).into_response(),
    };
    // Recorded like a bearer (prefix `jwt`, never accepted by the proxy): listed on the
    // Workloads page, revocable by id, principal or jti, checked by `/v1/introspect`, and
    // under the same kill switch and replay rules as `/api/oauth/token`.
    let details = audience_details(
        &attested,
        act.as_ref(),
        &audience,
        &jti,
        &claims,
        req.scope.as_deref(),
    );
    let issue = workload_issue(Issue {
        attested: &attested,
        source,
        token_prefix: "jwt".to_owned(),
        hash: excalibur_core::ids::token_hash(&token),
        created: now,
        expires_ms: exp * 1000,
        details,
    });
    if let Some(refused) = refused(s.store.workload_exchange(issue).await) {
        return refused;
    }
    no_store(Json(
        json!({"access_token": token, "issued_token_type": JWT_TYPE, "token_type": "Bearer", "expires_in": ttl}),
    ))
}

/// The Workloads row details of an audience JWT: the attested identity plus the
/// token's audience, ids, subject and scopes.
fn audience_details(
    attested: &excalibur_identity::attest::Attested,
    act: Option<&serde_json::Value>,
    audience: &str,
    jti: &str,
    claims: &serde_json::Value,
    scope: Option<&str>,
) -> serde_json::Value {
    let mut details = attested.details.clone();
    if let Some(obj) = details.as_object_mut() {
        let scopes: Vec<&str> = scope.unwrap_or_default().split_whitespace().collect();
        obj.insert("kind".to_owned(), json!("audience_jwt"));
        obj.insert("aud".to_owned(), json!(audience));
        obj.insert("token_jti".to_owned(), json!(jti));
        obj.insert("jti".to_owned(), json!(attested.jti));
        obj.insert("sub".to_owned(), json!(claims.get("sub")));
        obj.insert("scopes".to_owned(), json!(scopes));
        insert_identity(obj, attested, act);
    }
    details
}

/// What an exchange issued, for its Workloads row.
struct Issue<'a> {
    attested: &'a excalibur_identity::attest::Attested,
    source: String,
    token_prefix: String,
    hash: String,
    created: Timestamp,
    expires_ms: i64,
    details: serde_json::Value,
}

/// The record of an issued token: a Workloads row, and the subject token's `jti` kept
/// (a minute past its expiry) so it cannot be exchanged twice.
fn workload_issue(i: Issue<'_>) -> WorkloadIssue {
    WorkloadIssue {
        info: WorkloadInfo {
            id: format!(
                "wl_{}",
                excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<8>())
            ),
            namespace: i.attested.namespace.clone(),
            principal: i.attested.principal.clone(),
            attestation: i.attested.attestation.to_owned(),
            source: i.source,
            token_prefix: i.token_prefix,
            created_at: i.created.to_rfc3339(),
            expires_at: Timestamp::from_millis(i.expires_ms).to_rfc3339(),
            details: i.details,
        },
        hash: i.hash,
        jti: i.attested.jti.clone(),
        jti_expires_ms: i.attested.exp * 1000 + 60_000,
    }
}

/// `(exp, ttl)` in seconds of an audience JWT: never past the subject token nor the
/// cap; `None` when less than two seconds would be left.
fn audience_lifetime(
    s: &ApiState,
    attested: &excalibur_identity::attest::Attested,
    now: Timestamp,
) -> Option<(i64, i64)> {
    let cap = i64::try_from(s.exchange.max_workload_token_ttl.as_secs()).unwrap_or(i64::MAX);
    let exp = attested.exp.min(now.millis() / 1000 + cap);
    let ttl = exp - now.millis() / 1000;
    (ttl > 1).then_some((exp, ttl))
}

/// The audience of a JSON exchange, once its grant and token types are ours.
fn json_audience(req: &JsonExchange) -> Result<String, Refused> {
    if req.grant_type != TOKEN_EXCHANGE {
        return Err(refuse(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only token exchange is supported",
        )));
    }
    if subject_kind(&req.subject_token_type).is_none() {
        return Err(refuse(invalid_request(SUBJECT_TYPES)));
    }
    req.audience
        .clone()
        .filter(|a| !a.is_empty() && a.len() <= 2048)
        .ok_or_else(|| {
            refuse(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "`audience` is required",
            ))
        })
}

/// The claims of an audience-scoped JWT: `when` is (now, exp in s, jti).
fn audience_claims(
    s: &ApiState,
    attested: &excalibur_identity::attest::Attested,
    act: Option<&serde_json::Value>,
    audience: &str,
    scope: Option<&str>,
    when: (Timestamp, i64, &str),
) -> serde_json::Value {
    let (now, exp, jti) = when;
    let td = s.exchange.trust_domain.as_str();
    let sub = excalibur_identity::mint::spiffe_subject_in(td, &attested.principal);
    let td = excalibur_identity::attest::parse_spiffe_id(&sub).map_or(td, |(td, _)| td);
    let mut claims = json!({
        "iss": s.exchange.issuer_url, "sub": sub, "aud": audience,
        "iat": now.millis() / 1000, "exp": exp, "jti": jti, "td": td,
        "principal": attested.principal, "attestation": attested.attestation,
    });
    if let Some(obj) = claims.as_object_mut() {
        if let Some(scope) = scope {
            obj.insert("scope".to_owned(), json!(scope));
        }
        if let Some(act) = act {
            obj.insert("act".to_owned(), act.clone());
        }
    }
    claims
}

/// Records the principal's tags and, for a delegated exchange, its actor.
fn insert_identity(
    obj: &mut serde_json::Map<String, serde_json::Value>,
    attested: &excalibur_identity::attest::Attested,
    act: Option<&serde_json::Value>,
) {
    if !attested.tags.is_empty() {
        let tags: serde_json::Map<String, serde_json::Value> = attested
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        obj.insert("tags".to_owned(), serde_json::Value::Object(tags));
    }
    if let Some(act) = act {
        obj.insert("act".to_owned(), act.clone());
    }
}

/// RFC 8693 delegation: the actor token (any kind a subject token may be) verified, as
/// the `act` claim (`sub`, and `principal` for Cedar's `principal.actor`). `Ok(None)`
/// without one.
async fn actor(
    s: &ApiState,
    token: Option<&str>,
    token_type: Option<&str>,
) -> Result<Option<serde_json::Value>, Response> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match token_type {
        Some(JWT_TYPE | SPIFFE_SVID_TYPE) => {}
        Some(_) => {
            return Err(invalid_request(
                "`actor_token_type` must be a JWT or a SPIFFE SVID token type",
            ));
        }
        None => return Err(invalid_request("`actor_token` needs `actor_token_type`")),
    }
    let actor = s
        .attestors
        .verify(token)
        .await
        .map_err(|e| invalid_request(&format!("actor_token: {e}")))?;
    if token_type == Some(SPIFFE_SVID_TYPE) && actor.attestation != "spiffe-jwt" {
        return Err(invalid_request(
            "`actor_token_type` is a SPIFFE SVID but the actor token is not",
        ));
    }
    Ok(Some(json!({
        "sub": excalibur_identity::mint::spiffe_subject_in(&s.exchange.trust_domain, &actor.principal),
        "principal": actor.principal,
        "attestation": actor.attestation,
    })))
}

/// RFC 7662 request.
#[derive(Deserialize)]
pub(crate) struct IntrospectForm {
    token: Option<String>,
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "the hint is optional and the lookup covers both kinds"
    )]
    token_type_hint: Option<String>,
}

/// `POST /v1/introspect` (RFC 7662): is this audience token (or workload bearer) live?
/// `{"active": false}` once it is revoked or expired, or when Excalibur never issued it.
/// Authenticated by an API token; give downstreams one with the `introspection` role,
/// which can do nothing else.
#[utoipa::path(
    post,
    path = "/v1/introspect",
    tag = "workloads",
    summary = "RFC 7662 introspection of an audience token from /v1/exchange/token (or a workload bearer): active until revoked or expired",
    request_body(content = crate::docs::IntrospectRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`{\"active\": false}`, or the token's claims with `active: true`", body = crate::docs::Introspection), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn introspect(
    _: crate::auth::Introspector,
    State(s): State<ApiState>,
    form: Result<Form<IntrospectForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return invalid_request("the body must be application/x-www-form-urlencoded with `token`");
    };
    let Some(token) = f.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return invalid_request("`token` is required");
    };
    let found = match s
        .store
        .workload_by_hash(excalibur_core::ids::token_hash(token))
        .await
    {
        Ok(f) => f,
        Err(e) => return crate::ApiError::from(e).into_response(),
    };
    let body = match found {
        Some((info, true)) if info.token_prefix == "jwt" => {
            // Issued here (its hash is on record), so its claims are ours to repeat.
            let mut claims =
                excalibur_identity::attest::unverified_claims(token).unwrap_or_else(|| json!({}));
            if let Some(obj) = claims.as_object_mut() {
                obj.insert("active".to_owned(), json!(true));
                obj.insert("token_type".to_owned(), json!("Bearer"));
            }
            claims
        }
        Some((info, true)) => {
            let secs = |t: &str| Timestamp::parse(t).map(|t| t.millis() / 1000).ok();
            let scopes = info
                .details
                .get("scopes")
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(serde_json::Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" ")
                });
            json!({"active": true, "token_type": "Bearer", "sub": info.principal,
                   "principal": info.principal, "exp": secs(&info.expires_at),
                   "iat": secs(&info.created_at), "scope": scopes, "workload_id": info.id,
                   "iss": s.exchange.issuer_url})
        }
        _ => json!({"active": false}),
    };
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Stores the bearer and brings the proxy's snapshot up to date; the answer for an
/// exchange the store did not admit (`None`: admitted).
async fn store_bearer(s: &ApiState, issue: excalibur_store::WorkloadIssue) -> Option<Response> {
    let workload = issue.info.id.clone();
    let admitted = s.store.workload_exchange(issue).await;
    let reissued = matches!(admitted, Ok(excalibur_store::Exchanged::Reissued));
    if let Some(refused) = refused(admitted) {
        return Some(refused);
    }
    // A reissue also revoked the bearer issued before: rebuild.
    if reissued {
        (s.reload)().await;
    } else {
        (s.changed)(crate::Changed::Workload(workload)).await;
    }
    None
}

/// The answer for an exchange the store did not admit (`None`: admitted).
fn refused(
    admitted: Result<excalibur_store::Exchanged, excalibur_store::StoreError>,
) -> Option<Response> {
    match admitted {
        Ok(excalibur_store::Exchanged::Issued | excalibur_store::Exchanged::Reissued) => None,
        Ok(excalibur_store::Exchanged::Replay) => Some(invalid_request(
            "the subject token was already exchanged (replay)",
        )),
        Ok(excalibur_store::Exchanged::PrincipalRevoked) => Some(invalid_request(
            "the principal is revoked (kill switch) until an admin lifts it",
        )),
        Err(e) => Some(crate::ApiError::from(e).into_response()),
    }
}
