//! `POST /api/import`: many objects in one transaction.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use excalibur_core::api::{CreatedServiceCredential, ServiceCredentialInfo};
use excalibur_core::ids::{CredentialId, IssuedToken};
use excalibur_core::time::Timestamp;

use crate::auth::Admin;
use crate::extract::JsonBody;
use crate::{ApiError, ApiState, validate};

use utoipa_axum::router::UtoipaMethodRouterExt as _;
use utoipa_axum::routes;

use super::{ApiResult, Routes, exposed};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default().add(routes!(import).layer(axum::extract::DefaultBodyLimit::max(
        crate::IMPORT_MAX_BODY_BYTES,
    )))
}

/// Most objects in one import.
const IMPORT_MAX_OBJECTS: usize = 50_000;

/// An import of at most this many objects patches the proxy's snapshot row by row, as
/// the single-object endpoints do; a larger one rebuilds it once (cheaper than that
/// many patches: past 256 new placeholders the name automata are rebuilt anyway).
const IMPORT_AS_DELTAS: usize = 256;

/// `POST /api/import`: validated like the single-object endpoints (an error names the
/// item), written in one transaction with one audit event per object; the snapshot is
/// patched with each row (up to [`IMPORT_AS_DELTAS`] objects) or rebuilt once.
#[utoipa::path(
    post,
    path = "/api/import",
    tag = "config",
    summary = "Import providers, placeholders, translation rules and service credentials at once: one transaction (all or nothing), one audit event per object; the proxy's snapshot is patched row by row up to 256 objects, else rebuilt once; an invalid item is named (`placeholders[3]`)",
    request_body(content = excalibur_core::api::ImportRequest, content_type = "application/json"),
    responses((status = 201, description = "what was written; the service credentials' tokens are shown once", body = excalibur_core::api::ImportResponse), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
    applied(&s, total, &out, &created).await;
    let body = excalibur_core::api::ImportResponse {
        providers: out.providers,
        placeholders: out.placeholders,
        translation_rules: out.rules,
        service_credentials: created,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Brings the proxy's snapshot up to date after an import: row by row (providers before
/// the placeholders bound to them, as one would create them) up to
/// [`IMPORT_AS_DELTAS`] objects, else one rebuild.
async fn applied(
    s: &ApiState,
    total: usize,
    out: &excalibur_store::Imported,
    created: &[CreatedServiceCredential],
) {
    if total > IMPORT_AS_DELTAS {
        return (s.reload)().await;
    }
    for p in &out.providers {
        (s.changed)(crate::Changed::Provider(p.id.clone())).await;
    }
    for p in &out.placeholders {
        (s.changed)(crate::Changed::Placeholder(p.info.placeholder.clone())).await;
    }
    for r in &out.rules {
        (s.changed)(crate::Changed::Rule(r.id.clone())).await;
    }
    for c in created {
        (s.changed)(crate::Changed::Credential(c.info.id.clone())).await;
    }
}
