//! What happened: flows, the audit log, its checkpoints and proofs, the live event stream.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use excalibur_core::time::Timestamp;
use excalibur_store::{AuditQuery, FlowQuery};
use serde::Deserialize;

use crate::auth::Reader;
use crate::extract::Query;
use crate::{ApiError, ApiState};

use utoipa_axum::routes;

use super::{ApiResult, Routes};

/// This resource's routes.
pub(super) fn routes() -> Routes {
    Routes::default()
        .add(routes!(flow_list))
        .add(routes!(audit_list))
        .add(routes!(audit_verify))
        .add(routes!(checkpoint_list))
        .add(routes!(checkpoint_latest))
        .add(routes!(checkpoint_key))
        .add(routes!(inclusion_proof))
        .add(routes!(consistency_proof))
        .add(routes!(crate::events::stream))
}

/// The window fields of a params struct, moved into a [`WindowParams`].
macro_rules! window_of {
    ($p:expr) => {
        WindowParams {
            since: $p.since,
            until: $p.until,
            before: $p.before,
            after: $p.after,
            limit: $p.limit,
            order: $p.order,
        }
    };
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowParams {
    principal: Option<String>,
    host: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
    order: Option<String>,
}

/// The page a list read asks for; shared by flows and the audit log.
#[derive(Debug, Default)]
pub(crate) struct WindowParams {
    /// Only records at or after this RFC 3339 time.
    pub(crate) since: Option<String>,
    /// Only records before this RFC 3339 time.
    pub(crate) until: Option<String>,
    /// Only records older than this: a record's `seq` (the cursor of the next page) or
    /// an RFC 3339 time.
    pub(crate) before: Option<String>,
    /// Only records newer than this: a `seq` or an RFC 3339 time.
    pub(crate) after: Option<String>,
    /// 1 to 1000; 100 when absent.
    pub(crate) limit: Option<usize>,
    /// `desc` (newest first, the default) or `asc` (oldest first: to page toward newer
    /// records with `after`).
    pub(crate) order: Option<String>,
}

/// [`WindowParams`] checked: seq bounds and time bounds (ms), both exclusive except
/// `since_ms`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) since_ms: Option<i64>,
    pub(crate) until_ms: Option<i64>,
    pub(crate) after_seq: Option<i64>,
    pub(crate) before_seq: Option<i64>,
    pub(crate) limit: usize,
    pub(crate) oldest_first: bool,
}

/// A `before`/`after` value: a `seq` (digits) or a time.
enum Bound {
    Seq(i64),
    Time(i64),
}

fn bound(name: &str, v: Option<&str>) -> Result<Option<Bound>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse()
            .map(|n| Some(Bound::Seq(n)))
            .map_err(|_| ApiError::invalid(format!("`{name}`: seq out of range")));
    }
    Timestamp::parse(v)
        .map(|t| Some(Bound::Time(t.millis())))
        .map_err(|e| ApiError::invalid(format!("`{name}`: a seq or an RFC 3339 time: {e}")))
}

fn time(name: &str, s: Option<&str>) -> Result<Option<i64>, ApiError> {
    s.filter(|s| !s.is_empty())
        .map(|s| {
            Timestamp::parse(s)
                .map(Timestamp::millis)
                .map_err(|e| ApiError::invalid(format!("`{name}`: {e}")))
        })
        .transpose()
}

impl WindowParams {
    pub(crate) fn check(&self) -> Result<Window, ApiError> {
        let mut w = Window {
            since_ms: time("since", self.since.as_deref())?,
            until_ms: time("until", self.until.as_deref())?,
            limit: limit(self.limit)?,
            oldest_first: match self.order.as_deref() {
                None | Some("" | "desc") => false,
                Some("asc") => true,
                Some(_) => return Err(ApiError::invalid("`order` must be `asc` or `desc`")),
            },
            ..Window::default()
        };
        match bound("after", self.after.as_deref())? {
            Some(Bound::Seq(n)) => w.after_seq = Some(n),
            Some(Bound::Time(ms)) => {
                w.since_ms = Some(w.since_ms.map_or(ms + 1, |s| s.max(ms + 1)));
            }
            None => {}
        }
        match bound("before", self.before.as_deref())? {
            Some(Bound::Seq(n)) => w.before_seq = Some(n),
            Some(Bound::Time(ms)) => w.until_ms = Some(w.until_ms.map_or(ms, |u| u.min(ms))),
            None => {}
        }
        Ok(w)
    }
}

fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    match l {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(_) => Err(ApiError::invalid("`limit` must be between 1 and 1000")),
    }
}

impl Window {
    pub(crate) fn flows(
        self,
        principal: Option<String>,
        host: Option<String>,
        decision: Option<String>,
    ) -> FlowQuery {
        FlowQuery {
            principal,
            host,
            decision,
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            after_seq: self.after_seq,
            before_seq: self.before_seq,
            limit: self.limit,
            oldest_first: self.oldest_first,
        }
    }

    pub(crate) fn audit(self, event_type: Option<String>, principal: Option<String>) -> AuditQuery {
        AuditQuery {
            event_type,
            principal,
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            after_seq: self.after_seq,
            before_seq: self.before_seq,
            limit: self.limit,
            oldest_first: self.oldest_first,
        }
    }
}

/// `GET /api/flows`: newest recorded first; the next page is `before=<last seq>`.
#[utoipa::path(
    get,
    path = "/api/flows",
    tag = "flows",
    summary = "List recorded flows, newest recorded first; page with before=<last seq> (role: operator)",
    params(("principal" = Option<String>, Query, description = "Exact principal id"), ("host" = Option<String>, Query, description = "Exact host"), ("decision" = Option<String>, Query, description = "allow or deny"), ("since" = Option<String>, Query, description = "Only results at or after this RFC 3339 time"), ("until" = Option<String>, Query, description = "Only results before this RFC 3339 time"), ("before" = Option<String>, Query, description = "Only records older than this: a record's seq (the cursor of the next page: the last seq of this page) or an RFC 3339 time"), ("after" = Option<String>, Query, description = "Only records newer than this: a seq or an RFC 3339 time (with order=asc, the page just newer than a seq)"), ("limit" = Option<i64>, Query, description = "Maximum results (1-1000, default 100)"), ("order" = Option<String>, Query, description = "desc (newest first, default) or asc (oldest first: page toward newer flows with after)")),
    responses((status = 200, description = "flows", body = Vec<excalibur_core::api::Flow>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn flow_list(
    _: Reader,
    State(s): State<ApiState>,
    Query(p): Query<FlowParams>,
) -> ApiResult {
    let w = window_of!(p).check()?;
    let q = w.flows(p.principal, p.host, p.decision);
    s.settled().await;
    Ok(Json(s.store.flow_list(q).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    #[serde(rename = "type")]
    event_type: Option<String>,
    principal: Option<String>,
    /// The older spelling of `after=<seq>`.
    after_seq: Option<i64>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
    order: Option<String>,
}

/// `GET /api/audit`: newest first; the next page is `before=<last seq>`.
#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "audit",
    summary = "List audit events, newest first (role: operator)",
    params(("type" = Option<String>, Query, description = "Event type or glob with *, e.g. placeholder_*"), ("principal" = Option<String>, Query, description = "Exact principal"), ("since" = Option<String>, Query, description = "Only results at or after this RFC 3339 time"), ("after_seq" = Option<i64>, Query, description = "Only events with a greater seq (the older spelling of after=<seq>)"), ("until" = Option<String>, Query, description = "Only results before this RFC 3339 time"), ("before" = Option<String>, Query, description = "Only records older than this: a record's seq (the cursor of the next page: the last seq of this page) or an RFC 3339 time"), ("after" = Option<String>, Query, description = "Only records newer than this: a seq or an RFC 3339 time (with order=asc, the page just newer than a seq)"), ("limit" = Option<i64>, Query, description = "Maximum results (1-1000, default 100)"), ("order" = Option<String>, Query, description = "desc (newest first, default) or asc (oldest first: page forward with after_seq)")),
    responses((status = 200, description = "events", body = Vec<excalibur_core::audit::AuditEvent>), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
pub(crate) async fn audit_list(
    _: Reader,
    State(s): State<ApiState>,
    Query(p): Query<AuditParams>,
) -> ApiResult {
    let mut w = window_of!(p).check()?;
    if let Some(n) = p.after_seq {
        w.after_seq = Some(w.after_seq.map_or(n, |a| a.max(n)));
    }
    let q = w.audit(p.event_type, p.principal);
    s.settled().await;
    Ok(Json(s.store.audit_list(q).await?).into_response())
}

#[utoipa::path(
    get,
    path = "/api/audit/verify",
    tag = "audit",
    summary = "Verify the hash chain and its authenticated head (role: operator)",
    responses((status = 200, description = "report", body = excalibur_core::audit::VerifyReport), (status = 401, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = 403, description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
#[utoipa::path(
    get,
    path = "/api/audit/checkpoints",
    tag = "audit",
    summary = "Signed checkpoints with tree_size > after, oldest first",
    params(("after" = Option<i64>, Query, description = "tree size to list after (default 0)"), ("limit" = Option<i64>, Query, description = "1..1000 (default 100)")),
    responses((status = 200, description = "ok", body = Vec<excalibur_core::merkle::Checkpoint>), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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

#[utoipa::path(
    get,
    path = "/api/audit/checkpoints/latest",
    tag = "audit",
    summary = "The newest signed checkpoint (404 before the first)",
    responses((status = 200, description = "ok", body = excalibur_core::merkle::Checkpoint), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
#[utoipa::path(
    get,
    path = "/api/audit/checkpoint-key",
    tag = "audit",
    summary = "The checkpoint signing key, PEM PUBLIC KEY (Ed25519); no token",
    responses((status = 200, description = "ok", body = String, content_type = "application/x-pem-file"), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json")),
    security(())
)]
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
#[utoipa::path(
    get,
    path = "/api/audit/proof/inclusion",
    tag = "audit",
    summary = "RFC 9162 inclusion proof of event seq in the tree of tree_size",
    params(("seq" = i64, Query, description = "event seq (leaf seq-1)"), ("tree_size" = i64, Query, description = "tree size")),
    responses((status = 200, description = "ok", body = crate::docs::InclusionProof), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
#[utoipa::path(
    get,
    path = "/api/audit/proof/consistency",
    tag = "audit",
    summary = "RFC 9162 consistency proof between two tree sizes",
    params(("from" = i64, Query, description = "older tree size (>= 1)"), ("to" = i64, Query, description = "newer tree size")),
    responses((status = 200, description = "ok", body = crate::docs::ConsistencyProof), (status = "default", description = "Problem details (RFC 9457)", body = excalibur_core::api::Problem, content_type = "application/problem+json"))
)]
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
