//! The send stage: picks the client (one pool per client identity: mTLS mappings get
//! their own), sends, retries a DPoP request once with the server's nonce, replays a
//! bodiless request once on 401 with a refreshed OAuth2 token, and classifies failures.

use excalibur_core::audit::EventType;
use excalibur_core::principal::Principal;
use http::header;
use http::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use serde_json::json;

use crate::Inner;
use crate::body::{self, ProxyBody};
use crate::decide::Redemption;
use crate::error::{ProxyError, refuse};
use crate::jwt_bearer::Injected;
use crate::mediate::Outbound;
use crate::pipeline::Target;
use crate::upstream::{ConnectError, Connector};

/// Why nothing usable came back.
#[derive(Debug)]
pub(crate) struct SendFailure {
    pub(crate) refusal: ProxyError,
    /// A destination the guard refused: the flow's decision becomes `deny`.
    pub(crate) denied: bool,
}

impl From<ProxyError> for SendFailure {
    fn from(refusal: ProxyError) -> Self {
        Self {
            refusal,
            denied: false,
        }
    }
}

/// What came back, and what went with the request that the response must not echo.
pub(crate) type Sent = (
    Response<ProxyBody>,
    Option<Injected>,
    Option<std::sync::Arc<excalibur_mediation::Mediator>>,
);

/// Sends `out` to `target` and returns the response head and body, the injected token
/// that went with it (possibly refreshed) and the assumed SigV4 credentials' values.
pub(crate) async fn upstream(
    inner: &Inner,
    out: Outbound,
    red: &Redemption<'_>,
    principal: &Principal,
    target: &Target,
    flow: &body::FlowState,
) -> Result<Sent, SendFailure> {
    let own_clients;
    let clients = match red.families.mtls {
        Some(route) => match inner.mtls_clients.get(route, &inner.upstream, &inner.roots) {
            Ok(c) => {
                own_clients = c;
                &own_clients
            }
            Err(e) => {
                tracing::error!(error = %e, mapping = %route.id, "mTLS client configuration failed");
                return Err(refuse(
                    StatusCode::BAD_GATEWAY,
                    "mtls_failed",
                    "the client certificate could not be used",
                )
                .into());
            }
        },
        None => &inner.client,
    };
    let Outbound {
        mut parts,
        body,
        mut injected,
        body_empty,
        sigv4_scrub,
    } = out;
    // The pool follows the workload's protocol; the client frames the request for the
    // connection it gets, from an HTTP/1.1 head.
    let client = clients.for_workload(parts.version == http::Version::HTTP_2);
    parts.version = http::Version::HTTP_11;
    let leg = Leg {
        inner,
        client,
        principal,
        target,
        flow,
    };
    let sent = match red.families.dpop {
        Some(dpop) => leg.dpop(dpop, parts, body).await?,
        None => {
            // A bodiless request with a refreshed token can be replayed once on 401.
            let oauth = red.families.oauth.filter(|_| body_empty);
            leg.plain(parts, body, oauth, injected.as_mut()).await?
        }
    };
    Ok((sent, injected, sigv4_scrub))
}

/// One upstream leg: the client chosen for it, and whom and where it is for.
struct Leg<'a> {
    inner: &'a Inner,
    client: &'a Client<Connector, ProxyBody>,
    principal: &'a Principal,
    target: &'a Target,
    /// The request's flow: it keeps why the request body failed, if it did.
    flow: &'a body::FlowState,
}

impl Leg<'_> {
    /// A DPoP request may be retried once with a server nonce: its body is read
    /// (bounded) so it can be replayed.
    async fn dpop(
        &self,
        dpop: crate::dpop::Leg<'_>,
        parts: http::request::Parts,
        body: ProxyBody,
    ) -> Result<Response<ProxyBody>, SendFailure> {
        let Self {
            inner,
            client,
            principal,
            target,
            flow,
        } = *self;
        let limit = usize::try_from(inner.max_substitute_body).unwrap_or(usize::MAX);
        let Some(bytes) = body::collect_limited(body, limit).await else {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is too large to replay",
            )
            .into());
        };
        let sent = tokio::time::timeout(
            inner.request_timeout,
            crate::dpop::send(
                client,
                &inner.dpop_nonces,
                dpop,
                &parts,
                bytes,
                target.https,
                &target.host,
                target.port,
            ),
        )
        .await
        .map_err(|_| timeout())?;
        let sent = sent.map_err(|e| match e {
            Some(e) => classify(inner, principal, target, parts.method.as_str(), &e, flow),
            None => refuse(
                StatusCode::BAD_GATEWAY,
                "dpop_failed",
                "the DPoP proof could not be made",
            )
            .into(),
        })?;
        inner.event(EventType::DpopSigned, &principal.id, sent.details);
        Ok(sent.response)
    }

    /// Sends once; with `oauth`, a 401 is answered by refreshing the token `injected`
    /// and replaying the (bodiless) request once.
    async fn plain(
        &self,
        parts: http::request::Parts,
        body: ProxyBody,
        oauth: Option<&crate::oauth_refresh::OauthRefreshRoute>,
        injected: Option<&mut Injected>,
    ) -> Result<Response<ProxyBody>, SendFailure> {
        let Self {
            inner,
            client,
            principal,
            target,
            flow,
        } = *self;
        let replay = oauth.map(|route| (route, parts.clone()));
        let method = parts.method.clone();
        let failed = |e| failure(inner, principal, target, method.as_str(), e, flow);
        let first = request(inner, client, Request::from_parts(parts, body))
            .await
            .map_err(failed)?;
        let (Some((route, mut parts)), Some(inj)) = (replay, injected) else {
            return Ok(first);
        };
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let Ok(fresh) = inner
            .oauth_access_token(route, &principal.id, Some(&inj.token))
            .await
        else {
            return Ok(first);
        };
        parts
            .headers
            .insert(header::AUTHORIZATION, fresh.header.clone());
        *inj = fresh;
        let req = Request::from_parts(parts, body::empty());
        request(inner, client, req).await.map_err(failed)
    }
}

enum Failed {
    Timeout,
    Request(hyper_util::client::legacy::Error),
}

async fn request(
    inner: &Inner,
    client: &Client<Connector, ProxyBody>,
    req: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, Failed> {
    match tokio::time::timeout(inner.request_timeout, client.request(req)).await {
        Ok(Ok(resp)) => Ok(resp.map(body::incoming)),
        Ok(Err(e)) => Err(Failed::Request(e)),
        Err(_) => Err(Failed::Timeout),
    }
}

fn timeout() -> SendFailure {
    refuse(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        "the upstream did not answer in time",
    )
    .into()
}

fn failure(
    inner: &Inner,
    principal: &Principal,
    target: &Target,
    method: &str,
    e: Failed,
    flow: &body::FlowState,
) -> SendFailure {
    match e {
        Failed::Timeout => timeout(),
        Failed::Request(e) => classify(inner, principal, target, method, &e, flow),
    }
}

/// What a failed upstream request means for the workload: a guard refusal (audited as
/// `egress_denied`), a body over its cap, or a plain upstream failure.
fn classify(
    inner: &Inner,
    principal: &Principal,
    target: &Target,
    method: &str,
    e: &(dyn std::error::Error + 'static),
    flow: &body::FlowState,
) -> SendFailure {
    if let Some(ce) = find_source::<ConnectError>(e) {
        let refusal = inner.connect_refusal(principal, target, method, ce);
        let denied = refusal.status == StatusCode::FORBIDDEN;
        return SendFailure { refusal, denied };
    }
    tracing::warn!(error = %excalibur_core::ErrorChain(e), host = %target.host, "upstream request failed");
    // The body's own error, or (when the transport's error does not carry it, as an
    // HTTP/2 stream reset does not) the cause the body left on the flow.
    let fault = flow.body_fault();
    if fault == Some(body::BodyFault::TooLarge) || find_source::<body::BodyTooLarge>(e).is_some() {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is too large to substitute",
        )
        .into();
    }
    if fault == Some(body::BodyFault::PlaceholderInTrailers)
        || find_source::<body::PlaceholderInTrailers>(e).is_some()
    {
        inner.event(
            EventType::PlaceholderDenied,
            &principal.id,
            json!({"reason": "placeholder_in_trailers", "host": target.host, "method": method}),
        );
        return SendFailure {
            refusal: refuse(
                StatusCode::FORBIDDEN,
                "placeholder_in_trailers",
                "placeholders are never sent in request trailers",
            ),
            denied: true,
        };
    }
    refuse(
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
        "the upstream request failed",
    )
    .into()
}

fn find_source<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        cur = err.source();
    }
    None
}
