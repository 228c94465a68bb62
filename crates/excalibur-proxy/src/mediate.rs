//! The mediate stage: turns an allowed request into what goes upstream. Placeholders the
//! permit allows are substituted into the target, the header values and (when a rule
//! says so) the body; a JWT-bearer or OAuth2 token replaces `Authorization`; SigV4
//! signing is the last change. Request trailers never carry a placeholder on.

use std::sync::Arc;

use excalibur_core::audit::EventType;
use excalibur_core::principal::Principal;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{StatusCode, Uri};
use http_body_util::BodyExt as _;

use crate::Inner;
use crate::body::{Direction, FlowState, Mediated, ProxyBody, Trailers};
use crate::decide::Redemption;
use crate::encoding;
use crate::error::{ProxyError, refuse};
use crate::jwt_bearer::Injected;
use crate::pipeline::Target;
use crate::snapshot::Snapshot;

/// A request ready for the upstream.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) parts: Parts,
    pub(crate) body: ProxyBody,
    /// The token put in `Authorization` on the workload's behalf (scrubbed from the
    /// response; refreshed and replayed once on a 401 for OAuth2).
    pub(crate) injected: Option<Injected>,
    /// The workload sent no body.
    pub(crate) body_empty: bool,
    /// The temporary SigV4 credentials' key id and session token (an assumed role),
    /// scrubbed from the response like the mapping's static ones.
    pub(crate) sigv4_scrub: Option<Arc<excalibur_mediation::Mediator>>,
}

/// Mediates `parts` and `incoming` under `red`. `path_and_query` is the target as the
/// workload sent it. Errors are refusals for the workload.
#[expect(
    clippy::too_many_arguments,
    reason = "the stage's inputs, each a distinct value of the request"
)]
pub(crate) async fn request(
    inner: &Inner,
    snap: &Snapshot,
    principal: &Principal,
    target: &Target,
    red: &Redemption<'_>,
    path_and_query: &str,
    mut parts: Parts,
    incoming: crate::body::Parked,
    flow: &Arc<FlowState>,
) -> Result<Outbound, ProxyError> {
    let mediator = &snap.mediator;
    let upstream_pq = match &red.permit {
        Some(permit) => substitute_head(mediator, permit, path_and_query, &mut parts.headers)?,
        None => path_and_query.to_owned(),
    };
    let families = red.families;
    // A body is substituted only when every coding it carries is identity, and never
    // into a signed body (its signature covers it).
    let identity_body = encoding::applied(&parts.headers).is_empty();
    let body_rewriter = red
        .permit
        .as_ref()
        .filter(|p| p.substitute_body() && identity_body && families.sigv4.is_none())
        .map(|p| mediator.body_substituter(p.clone()));
    let limit = body_rewriter.as_ref().map(|_| inner.max_substitute_body);
    if body_rewriter.is_some() {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    parts.uri = format!("{}://{}{upstream_pq}", target.scheme(), target.authority())
        .parse::<Uri>()
        .map_err(|_| {
            refuse(
                StatusCode::BAD_REQUEST,
                "bad_request_target",
                "the request target is invalid",
            )
        })?;
    parts.headers.append(header::VIA, inner.via.clone());
    let injected = inject(inner, &families, principal, &mut parts).await?;
    let body_empty = http_body::Body::is_end_stream(&incoming);
    // Signing is the last change to the request.
    let mut sigv4_scrub = None;
    let (parts, signed): (_, ProxyBody) = match families.sigv4 {
        Some(route) => {
            let (creds, scrub) = inner.sigv4_credentials(route, &principal.id).await?;
            sigv4_scrub = scrub;
            let signed = crate::sigv4::sign(
                route,
                &creds,
                parts,
                incoming,
                target.https,
                &target.authority(),
                inner.max_substitute_body,
            )
            .await?;
            inner.event(EventType::Sigv4Signed, &principal.id, signed.details);
            (signed.parts, signed.body)
        }
        None => (parts, incoming.map_err(Into::into).boxed_unsync()),
    };
    let body = Mediated::chain(
        signed,
        body_rewriter.into_iter().collect(),
        Trailers::Refuse(Arc::clone(mediator)),
        Some(Arc::clone(flow)),
        Direction::Up,
        limit,
    )
    .boxed_unsync();
    Ok(Outbound {
        parts,
        body,
        injected,
        body_empty,
        sigv4_scrub,
    })
}

/// Substitutes what `permit` allows into the target (returned) and the header values.
/// Substituted values are marked sensitive: HTTP/2 sends them never-indexed, keeping
/// them out of HPACK tables.
fn substitute_head(
    mediator: &excalibur_mediation::Mediator,
    permit: &excalibur_policy::Permit,
    path_and_query: &str,
    headers: &mut http::HeaderMap,
) -> Result<String, ProxyError> {
    let pq = mediator
        .substitute(permit, path_and_query.as_bytes())
        .map_or_else(
            || path_and_query.to_owned(),
            |new| String::from_utf8_lossy(&new).into_owned(),
        );
    for value in headers.values_mut() {
        if let Some(new) = mediator.substitute(permit, value.as_bytes()) {
            let mut v = HeaderValue::from_bytes(&new).map_err(|_| {
                refuse(
                    StatusCode::BAD_GATEWAY,
                    "substitution_failed",
                    "substituted header value is invalid",
                )
            })?;
            v.set_sensitive(true);
            *value = v;
        }
    }
    Ok(pq)
}

/// A JWT-bearer or OAuth2 access token replaces whatever `Authorization` the workload
/// sent; returned so that the response is scrubbed of it.
async fn inject(
    inner: &Inner,
    families: &crate::decide::Families<'_>,
    principal: &Principal,
    parts: &mut Parts,
) -> Result<Option<Injected>, ProxyError> {
    let injected = match (families.jwt_bearer, families.oauth) {
        (_, Some(route)) => Some(inner.oauth_access_token(route, &principal.id, None).await?),
        (Some(route), None) => Some(inner.jwt_bearer_token(route, &principal.id).await?),
        (None, None) => None,
    };
    if let Some(t) = &injected {
        parts
            .headers
            .insert(header::AUTHORIZATION, t.header.clone());
    }
    Ok(injected)
}
