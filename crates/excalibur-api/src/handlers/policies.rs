//! `/api/policies`: operator Cedar policies and the dry run.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::{CreatePolicy, EvaluateRequest, EvaluateResponse};
use excalibur_core::principal::{Principal, PrincipalKind};
use excalibur_policy::{RedeemTarget, Subject};

use crate::auth::{Admin, Reader};
use crate::extract::JsonBody;
use crate::{ApiError, ApiState};

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(policy_list))
        .add(routes!(policy_create))
        .add(routes!(policy_delete))
        .add(routes!(policy_evaluate))
}

#[utoipa::path(
    get,
    path = "/api/policies",
    tag = "policies",
    summary = "List operator Cedar policies (role: operator)",
    responses((status = 200, description = "policies", body = Vec<excalibur_core::api::PolicyRecord>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn policy_list(_: Reader, State(s): State<ApiState>) -> ApiResult {
    Ok(Json(s.store.policy_list().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/policies",
    tag = "policies",
    summary = "Add an operator Cedar policy; rejected with the validator's message if it does not type-check against the schema (role: admin)",
    request_body = excalibur_core::api::CreatePolicy,
    responses((status = 201, description = "created", body = excalibur_core::api::PolicyRecord), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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

#[utoipa::path(
    delete,
    path = "/api/policies/{id}",
    tag = "policies",
    summary = "Delete an operator policy (role: admin)",
    params(("id" = String, Path, description = "policy id")),
    responses((status = 204, description = "deleted"), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
#[utoipa::path(
    post,
    path = "/api/policies/evaluate",
    tag = "policies",
    summary = "Dry-run a decision (connect on Host, redeem on Placeholder) against the policy in force (role: operator)",
    request_body = excalibur_core::api::EvaluateRequest,
    responses((status = 200, description = "decision", body = excalibur_core::api::EvaluateResponse), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn policy_evaluate(
    _: Reader,
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<EvaluateRequest>,
) -> ApiResult {
    let principal = eval_principal(req.principal)?;
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

/// The principal a dry run decides for, as the proxy would have identified it.
fn eval_principal(p: excalibur_core::api::EvalPrincipal) -> Result<Principal, ApiError> {
    let kind = match p.kind.as_str() {
        "Workload" => PrincipalKind::ServiceCredential,
        "Human" => PrincipalKind::Human,
        other => {
            return Err(ApiError::unprocessable(format!(
                "`principal.type`: `{other}` is not `Workload` or `Human`"
            )));
        }
    };
    let source = p.source.as_deref().unwrap_or("127.0.0.1");
    let source = source.parse().map_err(|_| {
        ApiError::unprocessable(format!(
            "`principal.source`: `{source}` is not an IP address"
        ))
    })?;
    Ok(Principal {
        id: p.id,
        kind,
        user: p.user,
        namespace: p.namespace,
        groups: p.groups,
        attestation: p.attestation,
        factors: p.factors_completed,
        credential_id: None,
        source,
        tags: p.tags.into_iter().collect(),
        actor: p.actor,
        scopes: p
            .scopes
            .iter()
            .filter_map(|s| s.strip_prefix("provider:"))
            .map(str::to_owned)
            .collect(),
    })
}
