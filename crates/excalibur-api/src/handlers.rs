//! Route handlers: validate, call the store, reload the snapshot, answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use excalibur_core::Secret;
use excalibur_core::api::{
    CreateDpopMapping, CreateJwtBearerMapping, CreateMtlsMapping, CreateOauthRefreshMapping,
    CreateSigv4Mapping, CryptoFamily, DpopMapping, JwtBearerMapping, JwtBearerPreset,
    MappingRecord, MtlsMapping, Namespace, OauthRefreshKeys, OauthRefreshMapping, PresignRequest,
    Revocation, Sigv4Keys, Sigv4Mapping,
};
use excalibur_core::api::{
    CreatePolicy, CreateServiceCredential, CreateToken, CreateTranslationRule, CreateWebhook,
    CreatedServiceCredential, CreatedToken, CreatedWebhook, EvaluateRequest, EvaluateResponse,
    Provider, ServiceCredentialInfo, TokenInfo, UpsertPlaceholder, WebhookInfo,
};
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::hosts::HostPattern;
use excalibur_core::ids::{
    CredentialId, DpopMappingId, IssuedToken, JwtBearerMappingId, MtlsMappingId,
    OauthRefreshMappingId, RuleId, Sigv4MappingId, TokenId,
};
use excalibur_core::principal::{Principal, PrincipalKind};
use excalibur_core::time::Timestamp;
use excalibur_policy::{RedeemTarget, Subject};
use excalibur_store::{AuditQuery, FlowQuery};
use serde::Deserialize;

use crate::auth::{Admin, Reader};
use crate::extract::{JsonBody, Query};
use crate::{ApiError, ApiState, OPENAPI, validate};

type ApiResult = Result<Response, ApiError>;

fn exposed(token: &IssuedToken) -> String {
    // Shown once, in the creation response only.
    String::from_utf8_lossy(token.token.expose()).into_owned()
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

pub(crate) async fn token_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.token_list().await?).into_response())
}

pub(crate) async fn token_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateToken>,
) -> ApiResult {
    validate::token_name(&req.name)?;
    let issued = IssuedToken::generate("xca");
    let info = TokenInfo {
        id: TokenId::generate(),
        name: req.name,
        role: req.role,
        prefix: issued.prefix.clone(),
        created_at: Timestamp::now().to_rfc3339(),
        revoked_at: None,
    };
    s.store
        .token_create(info.clone(), issued.hash.clone(), c.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info,
            token: exposed(&issued),
        }),
    )
        .into_response())
}

pub(crate) async fn token_revoke(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    if id == c.id.as_str() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a token cannot revoke itself; use another admin token",
        ));
    }
    Ok(Json(s.store.token_revoke(TokenId::new(id), c.actor()).await?).into_response())
}

pub(crate) async fn provider_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.provider_list().await?).into_response())
}

pub(crate) async fn provider_upsert(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(mut p): JsonBody<Provider>,
) -> ApiResult {
    validate::provider(&p)?;
    p.hosts = p
        .hosts
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let p = s.store.provider_upsert(p, c.actor()).await?;
    (s.reload)().await;
    Ok(Json(p).into_response())
}

/// Most objects in one import.
const IMPORT_MAX_OBJECTS: usize = 50_000;

/// `POST /api/import`: validated like the single-object endpoints (an error names the
/// item), written in one transaction with one audit event per object, one snapshot
/// rebuild for all of them.
pub(crate) async fn import(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<excalibur_core::api::ImportRequest>,
) -> ApiResult {
    let total = req.providers.len()
        + req.placeholders.len()
        + req.translation_rules.len()
        + req.service_credentials.len();
    if total == 0 {
        return Err(ApiError::unprocessable("nothing to import"));
    }
    if total > IMPORT_MAX_OBJECTS {
        return Err(ApiError::unprocessable(format!(
            "{total} objects: at most {IMPORT_MAX_OBJECTS} per import"
        )));
    }
    let at = |what: &str, i: usize, e: ApiError| {
        ApiError::unprocessable(format!("`{what}[{i}]`: {}", e.detail()))
    };
    let lower = |hosts: &[String]| -> Vec<String> {
        hosts
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    };
    let mut batch = excalibur_store::ImportBatch::default();
    for (i, mut p) in req.providers.into_iter().enumerate() {
        validate::provider(&p).map_err(|e| at("providers", i, e))?;
        p.hosts = lower(&p.hosts);
        batch.providers.push(p);
    }
    for (i, p) in req.placeholders.into_iter().enumerate() {
        validate::placeholder(&p).map_err(|e| at("placeholders", i, e))?;
        batch.placeholders.push(p);
    }
    for (i, mut r) in req.translation_rules.into_iter().enumerate() {
        validate::rule(&r).map_err(|e| at("translation_rules", i, e))?;
        r.hosts = lower(&r.hosts);
        batch.rules.push(r);
    }
    let mut created = Vec::with_capacity(req.service_credentials.len());
    for (i, r) in req.service_credentials.into_iter().enumerate() {
        let source_network =
            validate::credential(&r).map_err(|e| at("service_credentials", i, e))?;
        let issued = IssuedToken::generate("xcs");
        let info = ServiceCredentialInfo {
            id: CredentialId::generate(),
            name: r.name,
            user: r.user,
            source_network,
            allowed_domains: lower(&r.allowed_domains),
            prefix: issued.prefix.clone(),
            created_at: Timestamp::now().to_rfc3339(),
            revoked_at: None,
            revoked_reason: None,
            expires_at: r.expires_at,
        };
        created.push(CreatedServiceCredential {
            info: info.clone(),
            token: exposed(&issued),
        });
        batch.credentials.push((info, issued.hash.clone()));
    }
    let out = s.store.import(batch, c.actor()).await?;
    (s.reload)().await;
    let body = excalibur_core::api::ImportResponse {
        providers: out.providers,
        placeholders: out.placeholders,
        translation_rules: out.rules,
        service_credentials: created,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(crate) async fn provider_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.provider_delete(id, c.actor()).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn placeholder_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.placeholder_list().await?).into_response())
}

pub(crate) async fn placeholder_upsert(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<UpsertPlaceholder>,
) -> ApiResult {
    validate::placeholder(&req)?;
    let out = s.store.placeholder_upsert(req, c.actor()).await?;
    (s.reload)().await;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}

pub(crate) async fn placeholder_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult {
    s.store.placeholder_delete(name, c.actor()).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
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

pub(crate) async fn rule_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.rule_list().await?).into_response())
}

pub(crate) async fn rule_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(mut req): JsonBody<CreateTranslationRule>,
) -> ApiResult {
    validate::rule(&req)?;
    req.hosts = req
        .hosts
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let rule = s.store.rule_create(req, c.actor()).await?;
    (s.reload)().await;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

pub(crate) async fn rule_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.rule_delete(RuleId::new(id), c.actor()).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn policy_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.policy_list().await?).into_response())
}

pub(crate) async fn policy_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreatePolicy>,
) -> ApiResult {
    excalibur_policy::validate_operator_policy(&req.id, &req.policy)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let record = s.store.policy_create(req, c.actor()).await?;
    (s.reload)().await;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

pub(crate) async fn policy_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.policy_delete(id, c.actor()).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A dry run against the policy in force: the same decision functions the proxy calls.
pub(crate) async fn policy_evaluate(
    _: Reader,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<EvaluateRequest>,
) -> ApiResult {
    let kind = match req.principal.kind.as_str() {
        "Workload" => PrincipalKind::ServiceCredential,
        "Human" => PrincipalKind::Human,
        other => {
            return Err(ApiError::unprocessable(format!(
                "`principal.type`: `{other}` is not `Workload` or `Human`"
            )));
        }
    };
    let source = req.principal.source.as_deref().unwrap_or("127.0.0.1");
    let source = source.parse().map_err(|_| {
        ApiError::unprocessable(format!(
            "`principal.source`: `{source}` is not an IP address"
        ))
    })?;
    let principal = Principal {
        id: req.principal.id,
        kind,
        user: req.principal.user,
        namespace: req.principal.namespace,
        groups: req.principal.groups,
        attestation: req.principal.attestation,
        factors: req.principal.factors_completed,
        credential_id: None,
        source,
        tags: req.principal.tags.into_iter().collect(),
        actor: req.principal.actor,
        scopes: req
            .principal
            .scopes
            .iter()
            .filter_map(|s| s.strip_prefix("provider:"))
            .map(str::to_owned)
            .collect(),
    };
    let policy = (s.policy)();
    let principal = Subject::new(&principal);
    let outcome = match (req.action.as_str(), req.resource.kind.as_str()) {
        ("connect", "Host") => {
            let port = req.context.port.unwrap_or(443);
            policy.decide_egress(&principal, &req.resource.id.to_ascii_lowercase(), port)
        }
        ("redeem", "Placeholder") => {
            let Some(host) = req.context.host.as_deref() else {
                return Err(ApiError::unprocessable(
                    "`context.host` is required for `redeem`",
                ));
            };
            let scheme = req.context.scheme.as_deref().unwrap_or("https");
            let target = RedeemTarget {
                host: &host.to_ascii_lowercase(),
                path: req.context.path.as_deref().unwrap_or("/"),
                method: req.context.method.as_deref().unwrap_or("GET"),
                scheme,
                port: req
                    .context
                    .port
                    .unwrap_or(if scheme == "http" { 80 } else { 443 }),
            };
            policy
                .decide_redeem(&principal, target, std::slice::from_ref(&req.resource.id))
                .map(|p| p.rules().to_vec())
        }
        (action, kind) => {
            return Err(ApiError::unprocessable(format!(
                "`{action}` on `{kind}` is not a decision; use `connect` on `Host` or `redeem` on `Placeholder`"
            )));
        }
    };
    let response = match outcome {
        Ok(policies) => EvaluateResponse {
            decision: "allow".into(),
            policies,
            reason: None,
        },
        Err(deny) => EvaluateResponse {
            decision: "deny".into(),
            policies: deny.policies,
            reason: Some(deny.reason.to_owned()),
        },
    };
    Ok(Json(response).into_response())
}

pub(crate) async fn webhook_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.webhook_list().await?).into_response())
}

pub(crate) async fn webhook_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateWebhook>,
) -> ApiResult {
    let created = create_webhook(&s, req, c.actor()).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Shared by the API and the UI form.
pub(crate) async fn create_webhook(
    s: &ApiState,
    req: CreateWebhook,
    actor: String,
) -> Result<CreatedWebhook, ApiError> {
    validate::webhook(&req)?;
    // Refused now, naming the address, rather than accepted and failed at delivery.
    if let Err(why) = (s.check_receiver)(req.url.clone()).await {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook_destination_forbidden",
            format!(
                "`url`: {why} (set [webhooks] dangerous_allow_private_destinations to allow it)"
            ),
        ));
    }
    let (secret, shown) = match req.secret {
        Some(secret) => (Secret::new(secret.into_bytes()), None),
        None => {
            let generated = IssuedToken::generate("whsec");
            let text = exposed(&generated);
            (generated.token, Some(text))
        }
    };
    let info = WebhookInfo {
        id: format!(
            "wh_{}",
            excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<8>())
        ),
        url: req.url,
        event_types: req.event_types,
        secret_fingerprint: secret.fingerprint(),
        created_at: Timestamp::now().to_rfc3339(),
    };
    s.store.webhook_create(info.clone(), secret, actor).await?;
    Ok(CreatedWebhook {
        info,
        secret: shown,
    })
}

pub(crate) async fn webhook_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.webhook_delete(id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn webhook_deliveries(
    _: Reader,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(s.store.delivery_list(id, 200).await?).into_response())
}

pub(crate) async fn namespace_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.namespace_list().await?).into_response())
}

pub(crate) async fn namespace_upsert(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(mut ns): JsonBody<Namespace>,
) -> ApiResult {
    validate::namespace(&ns)?;
    ns.allowed_domains = ns
        .allowed_domains
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let ns = s.store.namespace_upsert(ns, c.actor()).await?;
    (s.reload)().await;
    Ok(Json(ns).into_response())
}

pub(crate) async fn revoke(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(r): JsonBody<Revocation>,
) -> ApiResult {
    let given = [
        r.workload_id.is_some(),
        r.principal.is_some(),
        r.jti.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::unprocessable(
            "give exactly one of `workload_id`, `jti` or `principal`",
        ));
    }
    if [&r.workload_id, &r.principal, &r.jti]
        .into_iter()
        .flatten()
        .any(|v| v.is_empty() || v.len() > 512)
    {
        return Err(ApiError::unprocessable(
            "`workload_id`, `jti` and `principal` must be 1 to 512 characters",
        ));
    }
    let revoked = s.store.workload_revoke(r, c.actor()).await?;
    (s.reload)().await;
    Ok(Json(serde_json::json!({"revoked": revoked})).into_response())
}

/// `GET /api/revocations`: the standing revocations of principals (the kill switch).
pub(crate) async fn revocation_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.principal_revocation_list().await?).into_response())
}

/// `DELETE /api/revocations/{id}`: lifts a principal's standing revocation.
pub(crate) async fn revocation_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    s.store.principal_revocation_delete(id, c.actor()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn workload_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.workload_list().await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowParams {
    principal: Option<String>,
    host: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

fn since(s: Option<&str>) -> Result<Option<i64>, ApiError> {
    s.map(|s| {
        Timestamp::parse(s)
            .map(Timestamp::millis)
            .map_err(|e| ApiError::invalid(format!("`since`: {e}")))
    })
    .transpose()
}

fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    match l {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(_) => Err(ApiError::invalid("`limit` must be between 1 and 1000")),
    }
}

pub(crate) async fn flow_list(
    _: Reader,
    State(s): State<ApiState>,
    Query(p): Query<FlowParams>,
) -> ApiResult {
    let q = FlowQuery {
        since_ms: since(p.since.as_deref())?,
        limit: limit(p.limit)?,
        principal: p.principal,
        host: p.host,
        decision: p.decision,
    };
    s.settled().await;
    Ok(Json(s.store.flow_list(q).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    #[serde(rename = "type")]
    event_type: Option<String>,
    principal: Option<String>,
    since: Option<String>,
    after_seq: Option<i64>,
    limit: Option<usize>,
    /// `desc` (newest first, the default) or `asc` (to page forward with `after_seq`).
    order: Option<String>,
}

pub(crate) async fn audit_list(
    _: Reader,
    State(s): State<ApiState>,
    Query(p): Query<AuditParams>,
) -> ApiResult {
    let q = AuditQuery {
        since_ms: since(p.since.as_deref())?,
        limit: limit(p.limit)?,
        event_type: p.event_type,
        principal: p.principal,
        after_seq: p.after_seq,
        oldest_first: match p.order.as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(_) => return Err(ApiError::invalid("`order` must be `asc` or `desc`")),
        },
    };
    s.settled().await;
    Ok(Json(s.store.audit_list(q).await?).into_response())
}

pub(crate) async fn audit_verify(_: Reader, State(s): State<ApiState>) -> ApiResult {
    s.settled().await;
    Ok(Json(s.store.audit_verify().await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckpointParams {
    after: Option<u64>,
    limit: Option<usize>,
}

/// Checkpoints with `tree_size > after`, oldest first.
pub(crate) async fn checkpoint_list(
    _: Reader,
    State(s): State<ApiState>,
    Query(p): Query<CheckpointParams>,
) -> ApiResult {
    let list = s
        .store
        .checkpoint_list(p.after.unwrap_or(0), limit(p.limit)?)
        .await?;
    Ok(Json(list).into_response())
}

pub(crate) async fn checkpoint_latest(_: Reader, State(s): State<ApiState>) -> ApiResult {
    match s.store.checkpoint_latest().await? {
        Some((cp, _)) => Ok(Json(cp).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no checkpoint yet: the first is made within a minute of the first event",
        )),
    }
}

/// The checkpoint key (public; no token): what a witness or an offline verifier pins.
pub(crate) async fn checkpoint_key(State(s): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        s.checkpoint_key_pem.to_string(),
    )
        .into_response()
}

/// The tree over the first `tree_size` events, or an error naming why not.
async fn leaves(
    s: &ApiState,
    tree_size: u64,
) -> Result<Vec<excalibur_core::merkle::Hash>, ApiError> {
    if tree_size == 0 {
        return Err(ApiError::invalid("`tree_size` must be at least 1"));
    }
    let leaves = s.store.audit_leaves(0, tree_size).await?;
    if (leaves.len() as u64) < tree_size {
        let have = leaves.len();
        return Err(ApiError::invalid(format!(
            "the log has {have} events, fewer than tree size {tree_size}"
        )));
    }
    Ok(leaves)
}

fn hexes(hashes: &[excalibur_core::merkle::Hash]) -> Vec<String> {
    hashes
        .iter()
        .map(|h| excalibur_core::secret::hex(h))
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InclusionParams {
    seq: u64,
    tree_size: u64,
}

/// RFC 9162 inclusion proof of event `seq` (leaf `seq - 1`) in the tree of `tree_size`.
pub(crate) async fn inclusion_proof(
    _: Reader,
    State(s): State<ApiState>,
    Query(p): Query<InclusionParams>,
) -> ApiResult {
    if p.seq == 0 || p.seq > p.tree_size {
        return Err(ApiError::invalid("`seq` must be between 1 and `tree_size`"));
    }
    let leaves = leaves(&s, p.tree_size).await?;
    let index = usize::try_from(p.seq - 1).map_err(|_| ApiError::invalid("`seq` is too large"))?;
    let path = excalibur_core::merkle::inclusion_proof(&leaves, index);
    Ok(Json(serde_json::json!({
        "seq": p.seq,
        "tree_size": p.tree_size,
        "leaf_hash": leaves.get(index).map(|l| excalibur_core::secret::hex(l)),
        "root_hash": excalibur_core::secret::hex(&excalibur_core::merkle::root(&leaves)),
        "audit_path": hexes(&path),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyParams {
    from: u64,
    to: u64,
}

/// RFC 9162 consistency proof between the trees of sizes `from` and `to`.
pub(crate) async fn consistency_proof(
    _: Reader,
    State(s): State<ApiState>,
    Query(p): Query<ConsistencyParams>,
) -> ApiResult {
    if p.from == 0 || p.from > p.to {
        return Err(ApiError::invalid("give 1 <= `from` <= `to`"));
    }
    let leaves = leaves(&s, p.to).await?;
    let m = usize::try_from(p.from).map_err(|_| ApiError::invalid("`from` is too large"))?;
    Ok(Json(serde_json::json!({
        "from": p.from,
        "to": p.to,
        "from_root": excalibur_core::secret::hex(&excalibur_core::merkle::root(leaves.get(..m).unwrap_or_default())),
        "to_root": excalibur_core::secret::hex(&excalibur_core::merkle::root(&leaves)),
        "proof": hexes(&excalibur_core::merkle::consistency_proof(&leaves, m)),
    }))
    .into_response())
}

pub(crate) async fn sigv4_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(&s, CryptoFamily::Sigv4, Sigv4Mapping::from_record).await
}

pub(crate) async fn sigv4_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateSigv4Mapping>,
) -> ApiResult {
    validate::sigv4(&req)?;
    let target = HostPattern::parse(&req.target_host)
        .map_err(|e| ApiError::unprocessable(format!("`target_host`: {e}")))?;
    mapping_provider(&s, &req.provider_id, &[("target_host", target.as_str())]).await?;
    let id = mapping_id(&s, CryptoFamily::Sigv4, req.id.as_ref(), || {
        Sigv4MappingId::generate().as_str().to_owned()
    })
    .await?;
    let prefix: String = req.real_access_key_id.chars().take(8).collect();
    let config = serde_json::json!({
        "target_host": target.as_str(),
        "path_prefix": req.path_prefix,
        "region": req.region,
        "service": req.service,
        "access_key_id_prefix": format!("{prefix}…"),
        "session_token": req.real_session_token.is_some(),
    });
    let keys = Sigv4Keys {
        access_key_id: req.real_access_key_id,
        secret_access_key: req.real_secret_access_key,
        session_token: req.real_session_token,
    };
    let sealed = Secret::new(serde_json::to_vec(&keys).map_err(|e| ApiError::internal(&e))?);
    drop(keys);
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::Sigv4,
        id,
        req.provider_id,
        config,
        sealed,
    )
    .await?;
    Ok((status, Json(Sigv4Mapping::from_record(&record))).into_response())
}

pub(crate) async fn sigv4_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::Sigv4, id).await
}

/// Presigns a URL with a mapping's key. The URL is a bearer credential until it expires:
/// admin only, audited, never cached.
pub(crate) async fn sigv4_presign(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<PresignRequest>,
) -> ApiResult {
    let mapping = req.mapping_id.clone();
    let presigned = (s.presign)(req).map_err(|e| match e {
        crate::PresignFailure::UnknownMapping => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no SigV4 mapping `{mapping}`"),
        ),
        crate::PresignFailure::Invalid(detail) => ApiError::unprocessable(detail),
    })?;
    let event = NewEvent::new(
        EventType::Sigv4Presigned,
        c.actor(),
        serde_json::json!({
            "mapping": mapping,
            "host": presigned.host,
            "path": presigned.path,
            "method": presigned.method,
            "expires_at": presigned.url.expires_at,
        }),
    );
    s.store.record(Vec::new(), vec![event]).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(presigned.url)).into_response())
}

/// The provider named by a mapping, which must exist, not be passthrough, and list
/// every host in `hosts`.
async fn mapping_provider(
    s: &ApiState,
    provider_id: &str,
    hosts: &[(&str, &str)],
) -> Result<(), ApiError> {
    let providers = s.store.provider_list().await?;
    let Some(provider) = providers.iter().find(|p| p.id == provider_id) else {
        return Err(ApiError::unprocessable(format!(
            "provider `{provider_id}` does not exist; create it first with POST /api/providers"
        )));
    };
    if provider.passthrough {
        return Err(ApiError::unprocessable(format!(
            "provider `{provider_id}` is passthrough: its traffic is tunnelled and cannot be mediated"
        )));
    }
    for (field, host) in hosts {
        let target = HostPattern::parse(host)
            .map_err(|e| ApiError::unprocessable(format!("`{field}`: {e}")))?;
        let covered = provider
            .hosts
            .iter()
            .filter_map(|h| HostPattern::parse(h).ok())
            .any(|h| target.within(&h));
        if !covered {
            return Err(ApiError::unprocessable(format!(
                "`{field}` `{host}` is not one of provider `{provider_id}`'s hosts {:?}",
                provider.hosts
            )));
        }
    }
    Ok(())
}

/// Stores a mapping (sealing `secret`), reloads the snapshot, and answers 201 for a new
/// mapping, 200 for a replaced one.
async fn save_mapping(
    s: &ApiState,
    actor: String,
    family: CryptoFamily,
    id: String,
    provider_id: String,
    config: serde_json::Value,
    secret: Secret,
) -> Result<(MappingRecord, StatusCode), ApiError> {
    let record = MappingRecord {
        family,
        id,
        provider_id,
        config,
        fingerprint: String::new(),
        created_at: String::new(),
        updated_at: String::new(),
    };
    let (record, created) = s.store.mapping_upsert(record, secret, actor).await?;
    (s.reload)().await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((record, status))
}

/// The id to write: a new one, or an existing mapping of this family (404 otherwise,
/// which also answers any id that is not one of ours).
async fn mapping_id(
    s: &ApiState,
    family: CryptoFamily,
    id: Option<&String>,
    fresh: impl FnOnce() -> String,
) -> Result<String, ApiError> {
    match id {
        Some(id) => {
            let existing = s.store.mapping_list(family).await?;
            if !existing.iter().any(|m| &m.id == id) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!(
                        "no {} mapping `{id}`; omit `id` to create one",
                        family.as_str()
                    ),
                ));
            }
            Ok(id.clone())
        }
        None => Ok(fresh()),
    }
}

pub(crate) async fn jwt_bearer_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(&s, CryptoFamily::JwtBearer, JwtBearerMapping::from_record).await
}

pub(crate) async fn jwt_bearer_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateJwtBearerMapping>,
) -> ApiResult {
    validate::jwt_bearer(&req)?;
    let token_host = req.token_host.trim_end_matches('.').to_ascii_lowercase();
    let resource_host = req.resource_host.as_deref().map_or_else(
        || token_host.clone(),
        |h| h.trim_end_matches('.').to_ascii_lowercase(),
    );
    mapping_provider(
        &s,
        &req.provider_id,
        &[
            ("token_host", &token_host),
            ("resource_host", &resource_host),
        ],
    )
    .await?;
    let pem = Secret::new(req.real_private_pem.clone().into_bytes());
    let (alg, kid) = (s.key_info)(&pem).ok_or_else(|| {
        ApiError::unprocessable(
            "`real_private_pem` is not an RSA, EC (P-256/P-384) or Ed25519 private key",
        )
    })?;
    let id = mapping_id(&s, CryptoFamily::JwtBearer, req.id.as_ref(), || {
        JwtBearerMappingId::generate().as_str().to_owned()
    })
    .await?;
    let token_path = match (&req.token_path, req.preset) {
        (Some(p), _) => p.clone(),
        (None, JwtBearerPreset::GithubApp) => {
            return Err(ApiError::unprocessable(
                "`token_path` is required for github_app: /app/installations/{installation_id}/access_tokens",
            ));
        }
        (None, _) => "/token".to_owned(),
    };
    let config = serde_json::json!({
        "token_host": token_host,
        "token_path": token_path,
        "resource_host": resource_host,
        "path_prefix": req.path_prefix,
        "client_id": req.client_id,
        "issuer": req.issuer,
        "subject": req.subject,
        "audience": req.audience,
        "scope": req.scope,
        "preset": req.preset,
        "alg": alg,
        "kid": kid,
    });
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::JwtBearer,
        id,
        req.provider_id.clone(),
        config,
        pem,
    )
    .await?;
    Ok((status, Json(JwtBearerMapping::from_record(&record))).into_response())
}

pub(crate) async fn jwt_bearer_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::JwtBearer, id).await
}

pub(crate) async fn mtls_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(&s, CryptoFamily::Mtls, MtlsMapping::from_record).await
}

pub(crate) async fn mtls_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateMtlsMapping>,
) -> ApiResult {
    let authority = req.target_authority.trim().to_ascii_lowercase();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse::<u16>().ok().filter(|p| *p > 0)),
        None => (authority.clone(), Some(443)),
    };
    let Some(port) = port.filter(|_| excalibur_core::hosts::is_host_name(&host)) else {
        return Err(ApiError::unprocessable(
            "`target_authority` must be `host` or `host:port`",
        ));
    };
    mapping_provider(&s, &req.provider_id, &[("target_authority", &host)]).await?;
    if req.real_client_cert_pem.len() > 64 * 1024 || req.real_client_key_pem.len() > 16 * 1024 {
        return Err(ApiError::unprocessable(
            "the certificate or key PEM is too large",
        ));
    }
    let key = Secret::new(req.real_client_key_pem.clone().into_bytes());
    let cert_fp =
        (s.client_identity)(&req.real_client_cert_pem, &key).map_err(ApiError::unprocessable)?;
    let id = mapping_id(&s, CryptoFamily::Mtls, req.id.as_ref(), || {
        MtlsMappingId::generate().as_str().to_owned()
    })
    .await?;
    let config = serde_json::json!({
        "target_authority": format!("{host}:{port}"),
        "host": host,
        "cert_pem": req.real_client_cert_pem,
        "certificate_fingerprint": cert_fp,
    });
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::Mtls,
        id,
        req.provider_id.clone(),
        config,
        key,
    )
    .await?;
    Ok((status, Json(MtlsMapping::from_record(&record))).into_response())
}

pub(crate) async fn mtls_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::Mtls, id).await
}

pub(crate) async fn dpop_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(&s, CryptoFamily::Dpop, DpopMapping::from_record).await
}

pub(crate) async fn dpop_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateDpopMapping>,
) -> ApiResult {
    validate::ident_pub("provider_id", &req.provider_id)?;
    let token_host = req.token_host.trim_end_matches('.').to_ascii_lowercase();
    let resource_host = req.resource_host.trim_end_matches('.').to_ascii_lowercase();
    for (field, h) in [
        ("token_host", &token_host),
        ("resource_host", &resource_host),
    ] {
        if !excalibur_core::hosts::is_host_name(h) {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be an exact host name"
            )));
        }
    }
    let token_prefix = req
        .token_path_prefix
        .clone()
        .unwrap_or_else(|| "/token".to_owned());
    let resource_prefix = req
        .resource_path_prefix
        .clone()
        .unwrap_or_else(|| "/".to_owned());
    for (field, v) in [
        ("token_path_prefix", &token_prefix),
        ("resource_path_prefix", &resource_prefix),
    ] {
        if !v.starts_with('/')
            || v.len() > 1024
            || v.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must start with `/` (no spaces)"
            )));
        }
    }
    mapping_provider(
        &s,
        &req.provider_id,
        &[
            ("token_host", &token_host),
            ("resource_host", &resource_host),
        ],
    )
    .await?;
    let (key, jkt) = (s.dpop_keygen)()
        .ok_or_else(|| ApiError::internal(&std::io::Error::other("key generation failed")))?;
    let id = mapping_id(&s, CryptoFamily::Dpop, req.id.as_ref(), || {
        DpopMappingId::generate().as_str().to_owned()
    })
    .await?;
    let config = serde_json::json!({
        "token_host": token_host,
        "token_path_prefix": token_prefix,
        "resource_host": resource_host,
        "resource_path_prefix": resource_prefix,
        "client_id": req.client_id,
        "jkt": jkt,
    });
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::Dpop,
        id,
        req.provider_id.clone(),
        config,
        key,
    )
    .await?;
    Ok((status, Json(DpopMapping::from_record(&record))).into_response())
}

pub(crate) async fn dpop_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::Dpop, id).await
}

pub(crate) async fn oauth_refresh_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    list_mappings(
        &s,
        CryptoFamily::OauthRefresh,
        OauthRefreshMapping::from_record,
    )
    .await
}

pub(crate) async fn oauth_refresh_create(
    Admin(c): Admin,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CreateOauthRefreshMapping>,
) -> ApiResult {
    validate::ident_pub("provider_id", &req.provider_id)?;
    let token_host = req.token_host.trim_end_matches('.').to_ascii_lowercase();
    let resource_host = req.resource_host.as_deref().map_or_else(
        || token_host.clone(),
        |h| h.trim_end_matches('.').to_ascii_lowercase(),
    );
    for (field, h) in [
        ("token_host", &token_host),
        ("resource_host", &resource_host),
    ] {
        if !excalibur_core::hosts::is_host_name(h) {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be an exact host name"
            )));
        }
    }
    let token_path = req
        .token_path
        .clone()
        .unwrap_or_else(|| "/token".to_owned());
    for (field, v) in [
        ("token_path", &token_path),
        ("path_prefix", &req.path_prefix),
    ] {
        if !v.starts_with('/')
            || v.len() > 1024
            || v.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must start with `/` (no spaces)"
            )));
        }
    }
    for (field, v) in [
        ("client_id", Some(&req.client_id)),
        ("real_client_secret", req.real_client_secret.as_ref()),
        ("real_refresh_token", Some(&req.real_refresh_token)),
    ] {
        if let Some(v) = v
            && (v.is_empty() || v.len() > 8192 || !v.bytes().all(|b| (0x21..0x7f).contains(&b)))
        {
            return Err(ApiError::unprocessable(format!(
                "`{field}` must be 1 to 8192 printable characters without spaces"
            )));
        }
    }
    mapping_provider(
        &s,
        &req.provider_id,
        &[
            ("token_host", &token_host),
            ("resource_host", &resource_host),
        ],
    )
    .await?;
    let existing = s.store.mapping_list(CryptoFamily::OauthRefresh).await?;
    let generation = req
        .id
        .as_ref()
        .and_then(|id| existing.iter().find(|m| &m.id == id))
        .and_then(|m| {
            m.config
                .get("generation")
                .and_then(serde_json::Value::as_u64)
        })
        .unwrap_or(0)
        + 1;
    let id = mapping_id(&s, CryptoFamily::OauthRefresh, req.id.as_ref(), || {
        OauthRefreshMappingId::generate().as_str().to_owned()
    })
    .await?;
    let config = serde_json::json!({
        "token_host": token_host,
        "token_path": token_path,
        "resource_host": resource_host,
        "path_prefix": req.path_prefix,
        "client_id": req.client_id,
        "scope": req.scope,
        "generation": generation,
    });
    let keys = OauthRefreshKeys {
        client_secret: req.real_client_secret,
        refresh_token: req.real_refresh_token,
    };
    let sealed = Secret::new(serde_json::to_vec(&keys).map_err(|e| ApiError::internal(&e))?);
    drop(keys);
    let (record, status) = save_mapping(
        &s,
        c.actor(),
        CryptoFamily::OauthRefresh,
        id,
        req.provider_id.clone(),
        config,
        sealed,
    )
    .await?;
    Ok((status, Json(OauthRefreshMapping::from_record(&record))).into_response())
}

pub(crate) async fn oauth_refresh_delete(
    Admin(c): Admin,
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult {
    delete_mapping(&s, c.actor(), CryptoFamily::OauthRefresh, id).await
}

pub(crate) async fn netbird_status(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json((s.netbird)().0).into_response())
}

pub(crate) async fn netbird_peers(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json((s.netbird)().1).into_response())
}

pub(crate) async fn ssh_route_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.ssh_route_list().await?).into_response())
}

/// `POST /api/ssh/routes`: creates a route, or replaces the one named by `id`.
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
        .map(|pem| Secret::new(pem.as_bytes().to_vec()));
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

pub(crate) async fn ssh_gateway(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.ssh.info).into_response())
}

/// Most sessions `GET /api/sessions` returns.
const SESSION_LIST_LIMIT: usize = 500;

pub(crate) async fn session_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.ssh_session_list(SESSION_LIST_LIMIT).await?).into_response())
}

/// `POST /api/sessions/{id}/revoke`: ends the session in the store (its proxy token
/// stops working), then closes it on the gateway at once.
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

/// `GET /api/crypto/<family>/mappings`: the family's mappings in their listed form.
async fn list_mappings<T: serde::Serialize>(
    s: &ApiState,
    family: CryptoFamily,
    listed: fn(&MappingRecord) -> T,
) -> ApiResult {
    let records = s.store.mapping_list(family).await?;
    Ok(Json(records.iter().map(listed).collect::<Vec<_>>()).into_response())
}

/// `DELETE /api/crypto/<family>/mappings/{id}`: in effect when the answer arrives.
async fn delete_mapping(
    s: &ApiState,
    actor: String,
    family: CryptoFamily,
    id: String,
) -> ApiResult {
    s.store.mapping_delete(family, id, actor).await?;
    (s.reload)().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
