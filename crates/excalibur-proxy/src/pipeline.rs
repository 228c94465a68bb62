//! The request path: listen → identify → decide → mediate → upstream → scrub → record.
//!
//! `handle` takes a proxy request (CONNECT or absolute-form) from either listener.
//! CONNECT tunnels are intercepted with a leaf for the CONNECT host (the SNI must agree)
//! unless the host is passthrough; each request inside is checked again.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use excalibur_core::api::Flow;
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::ids::FlowId;
use excalibur_core::principal::Principal;
use excalibur_core::time::Timestamp;
use excalibur_identity::Unidentified;
use excalibur_policy::{Deny, RedeemTarget, Subject};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio_rustls::LazyConfigAcceptor;
use tracing::Instrument as _;

use crate::body::{self, Direction, FlowState, Mediated, ProxyBody};
use crate::snapshot::Snapshot;
use crate::upstream::{ConnectError, connect_tcp};
use crate::{Inner, Proxy};

/// Header naming why the proxy refused a request.
const REASON_HEADER: &str = "x-excalibur-reason";
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a request is going, as established by the proxy (never by `Host` alone).
#[derive(Debug, Clone)]
struct Target {
    https: bool,
    host: String,
    port: u16,
}

impl Target {
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl Proxy {
    /// Handles one proxy request from `peer` (the TCP peer, never a forwarded header).
    /// `tls_identity` is the principal of a verified X.509-SVID client certificate on the
    /// TLS listener, used when the request carries no `Proxy-Authorization`.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls_identity: Option<&Principal>,
    ) -> Response<ProxyBody> {
        let inner = &self.inner;
        if via_loops(req.headers(), &inner.via_name) {
            inner.event(
                EventType::EgressDenied,
                "unidentified",
                json!({"reason": "proxy_loop", "uri": req.uri().to_string()}),
            );
            return refuse(
                StatusCode::LOOP_DETECTED,
                "proxy_loop",
                "the request already passed through this gateway",
            );
        }
        if req.method() == Method::CONNECT {
            return self.connect(req, peer, tls_identity).await;
        }
        if req.uri().scheme().is_some() && req.uri().authority().is_some() {
            return self.absolute_form(req, peer, tls_identity).await;
        }
        refuse(
            StatusCode::BAD_REQUEST,
            "not_a_proxy_request",
            "send CONNECT or an absolute-form request",
        )
    }

    async fn connect(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        tls_identity: Option<&Principal>,
    ) -> Response<ProxyBody> {
        let inner = &self.inner;
        let snap = inner.snapshot.load_full();
        let Some((host, port)) = req
            .uri()
            .authority()
            .and_then(|a| Some((normalize_host(a.host()), a.port_u16()?)))
        else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_connect_target",
                "CONNECT needs host:port",
            );
        };
        let target = Target {
            https: true,
            host,
            port,
        };
        let (principal, subject) = match self
            .admit(&snap, req.headers(), peer, tls_identity, "CONNECT", &target)
            .await
        {
            Ok(who) => who,
            Err(resp) => return resp,
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        if snap.policy.is_passthrough(&target.host) {
            let tcp = match connect_tcp(&inner.upstream, &target.host, target.port).await {
                Ok(t) => t,
                Err(e) => {
                    let resp = inner.connect_refusal(&principal, &target, "CONNECT", &e);
                    let status = resp.status();
                    let decision = if status == StatusCode::FORBIDDEN {
                        "deny"
                    } else {
                        "allow"
                    };
                    let flow = inner.flow_state(
                        &principal,
                        "CONNECT",
                        &target,
                        "",
                        decision,
                        Some(e.reason()),
                    );
                    flow.update(|f| f.status = status.as_u16());
                    return resp;
                }
            };
            let flow = inner.flow_state(&principal, "CONNECT", &target, "", "allow", None);
            flow.update(|f| f.status = 200);
            inner.tasks.spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let mut client = TokioIo::new(upgraded);
                    let mut upstream = tcp;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                drop(flow);
            });
            return Response::new(body::empty());
        }
        let proxy = self.clone();
        inner.tasks.spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => proxy.intercept(upgraded, principal, subject, target).await,
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        });
        Response::new(body::empty())
    }

    /// Terminates the workload's TLS with a leaf for the CONNECT host and serves the
    /// requests inside.
    async fn intercept(
        &self,
        upgraded: hyper::upgrade::Upgraded,
        principal: Principal,
        subject: Subject,
        target: Target,
    ) {
        let inner = &self.inner;
        let acceptor =
            LazyConfigAcceptor::new(rustls::server::Acceptor::default(), TokioIo::new(upgraded));
        let Ok(Ok(start)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor).await else {
            return;
        };
        // The SNI, when sent, must name the CONNECT host: no fronting one name behind another.
        if let Some(sni) = start.client_hello().server_name()
            && normalize_host(sni) != target.host
        {
            let deny = Deny {
                reason: "sni_mismatch",
                detail: format!("SNI `{sni}` does not match CONNECT host `{}`", target.host),
                policies: vec!["builtin:sni_matches_connect".to_owned()],
            };
            let _ = inner.egress_denied(&principal, &target, "CONNECT", &deny);
            return;
        }
        let config = match inner.ca.server_config(&target.host).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %excalibur_core::ErrorChain(&e), "cannot mint a leaf certificate");
                return;
            }
        };
        let Ok(Ok(tls)) =
            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, start.into_stream(config)).await
        else {
            return;
        };
        let proxy = self.clone();
        let who = Arc::new((principal, subject));
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let (proxy, who, target) = (proxy.clone(), Arc::clone(&who), target.clone());
            async move {
                Ok::<_, std::convert::Infallible>(
                    proxy.tunnelled(req, &who.0, &who.1, target).await,
                )
            }
        });
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection(TokioIo::new(tls), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            () = inner.cancel.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
            }
        }
    }

    /// A request inside an intercepted tunnel.
    async fn tunnelled(
        &self,
        req: Request<Incoming>,
        principal: &Principal,
        subject: &Subject,
        target: Target,
    ) -> Response<ProxyBody> {
        let inner = &self.inner;
        let snap = inner.snapshot.load_full();
        // A credential revoked while the tunnel is open stops working at once.
        if let Some(id) = &principal.credential_id
            && !snap.credentials.is_live(id, Timestamp::now().millis())
        {
            inner.event(
                EventType::ProxyAuthDenied,
                &principal.id,
                json!({"reason": "credential_revoked", "host": target.host, "method": req.method().as_str()}),
            );
            return proxy_auth_required("credential_revoked");
        }
        // The request's authority must be the tunnel's: Host / :authority agree with CONNECT and SNI.
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let agrees = authority.as_deref().is_some_and(|a| {
            let (h, p) = split_authority(a);
            normalize_host(h) == target.host && p.is_none_or(|p| p == target.port)
        });
        if !agrees {
            let deny = Deny {
                reason: "host_mismatch",
                detail: format!(
                    "request authority `{}` does not match the tunnel's `{}`",
                    authority.unwrap_or_default(),
                    target.host
                ),
                policies: vec!["builtin:host_matches_connect".to_owned()],
            };
            let mut resp = inner.egress_denied(principal, &target, req.method().as_str(), &deny);
            *resp.status_mut() = StatusCode::MISDIRECTED_REQUEST;
            return resp;
        }
        let span = request_span(&target, &req);
        inner
            .forward(&snap, principal, subject, &target, req)
            .instrument(span)
            .await
    }

    async fn absolute_form(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        tls_identity: Option<&Principal>,
    ) -> Response<ProxyBody> {
        let inner = &self.inner;
        let snap = inner.snapshot.load_full();
        let https = req.uri().scheme_str() == Some("https");
        if !https && req.uri().scheme_str() != Some("http") {
            return refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_scheme",
                "only http:// and https:// targets are proxied",
            );
        }
        let Some(authority) = req.uri().authority() else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request_target",
                "absolute-form request without authority",
            );
        };
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = Target {
            https,
            host: normalize_host(authority.host()),
            port,
        };
        let method = req.method().as_str().to_owned();
        let (principal, subject) = match self
            .admit(&snap, req.headers(), peer, tls_identity, &method, &target)
            .await
        {
            Ok(who) => who,
            Err(resp) => return resp,
        };
        let span = request_span(&target, &req);
        inner
            .forward(&snap, &principal, &subject, &target, req)
            .instrument(span)
            .await
    }

    /// Identifies the caller and decides egress to `target`: the two checks every
    /// CONNECT and absolute-form request passes before anything else.
    async fn admit(
        &self,
        snap: &Snapshot,
        headers: &HeaderMap,
        peer: SocketAddr,
        tls_identity: Option<&Principal>,
        method: &str,
        target: &Target,
    ) -> Result<(Principal, Subject), Response<ProxyBody>> {
        let principal = match tls_identity
            .filter(|_| !headers.contains_key(header::PROXY_AUTHORIZATION))
        {
            Some(p) => {
                self.inner.event(
                    EventType::ProxyAuthOk,
                    &p.id,
                    json!({"method": method, "host": target.host, "port": target.port, "via": "x509-svid",
                           "source": peer.ip().to_canonical().to_string()}),
                );
                p.clone()
            }
            None => self.identify(snap, headers, peer, method, target).await?,
        };
        let subject = Subject::new(&principal);
        match snap
            .policy
            .decide_egress(&subject, &target.host, target.port)
        {
            Ok(_) => Ok((principal, subject)),
            Err(deny) => Err(self.inner.egress_denied(&principal, target, method, &deny)),
        }
    }

    /// Identifies the caller; on failure writes `proxy_auth_denied`, revokes a credential
    /// used from outside its network, and returns the 407.
    async fn identify(
        &self,
        snap: &Snapshot,
        headers: &HeaderMap,
        peer: SocketAddr,
        method: &str,
        target: &Target,
    ) -> Result<Principal, Response<ProxyBody>> {
        let inner = &self.inner;
        let auth = headers
            .get(header::PROXY_AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        match excalibur_identity::identify(
            &snap.credentials,
            peer.ip(),
            auth,
            Timestamp::now().millis(),
        ) {
            Ok(principal) => {
                inner.event(
                    EventType::ProxyAuthOk,
                    &principal.id,
                    json!({"method": method, "host": target.host, "port": target.port, "source": peer.ip().to_canonical().to_string()}),
                );
                Ok(principal)
            }
            Err(why) => {
                let (principal, credential_id) = match &why {
                    Unidentified::SourceMismatch {
                        credential, name, ..
                    } => (format!("service:{name}"), Some(credential)),
                    _ => ("unidentified".to_owned(), None),
                };
                let details = json!({
                    "reason": why.reason(), "method": method, "host": target.host, "port": target.port,
                    "source": peer.ip().to_canonical().to_string(), "credential_id": credential_id,
                });
                inner.event(EventType::ProxyAuthDenied, &principal, details);
                if let Unidentified::SourceMismatch { credential, .. } = why.clone() {
                    inner
                        .control
                        .revoke_credential(credential, "source_network_mismatch")
                        .await;
                }
                let flow = inner.flow_state_for(
                    &principal,
                    method,
                    target,
                    "",
                    "deny",
                    Some(why.reason()),
                );
                flow.update(|f| f.status = 407);
                Err(proxy_auth_required(why.reason()))
            }
        }
    }
}

impl Inner {
    pub(crate) fn event(&self, event_type: EventType, principal: &str, details: serde_json::Value) {
        if self
            .recorder
            .event(NewEvent::new(event_type, principal, details))
            .is_err()
        {
            tracing::error!(
                event = event_type.as_str(),
                "audit event dropped: the audit queue is full"
            );
        }
    }

    fn flow_state(
        &self,
        p: &Principal,
        method: &str,
        t: &Target,
        path: &str,
        decision: &str,
        reason: Option<&str>,
    ) -> Arc<FlowState> {
        self.flow_state_kind(&p.id, p.kind.as_str(), method, t, path, decision, reason)
    }

    fn flow_state_for(
        &self,
        principal: &str,
        method: &str,
        t: &Target,
        path: &str,
        decision: &str,
        reason: Option<&str>,
    ) -> Arc<FlowState> {
        self.flow_state_kind(principal, "unidentified", method, t, path, decision, reason)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the flow record's fields, named at each call site"
    )]
    fn flow_state_kind(
        &self,
        principal: &str,
        kind: &'static str,
        method: &str,
        t: &Target,
        path: &str,
        decision: &str,
        reason: Option<&str>,
    ) -> Arc<FlowState> {
        let id = FlowId::generate().to_string();
        // Log lines of this request carry the flow's id (JSON logs: `span.request_id`).
        tracing::Span::current().record("request_id", id.as_str());
        FlowState::with_metrics(
            Flow {
                id,
                ts: Timestamp::now().to_rfc3339(),
                principal: principal.to_owned(),
                method: method.to_owned(),
                host: t.host.clone(),
                path: path.to_owned(),
                status: 0,
                bytes_up: 0,
                bytes_down: 0,
                latency_ms: 0,
                placeholders: Vec::new(),
                decision: decision.to_owned(),
                reason: reason.map(str::to_owned),
            },
            Arc::clone(&self.recorder),
            Some((self.metrics.clone(), kind)),
        )
    }

    fn egress_denied(
        &self,
        p: &Principal,
        t: &Target,
        method: &str,
        deny: &Deny,
    ) -> Response<ProxyBody> {
        self.event(
            EventType::EgressDenied,
            &p.id,
            json!({"reason": deny.reason, "detail": deny.detail, "host": t.host, "port": t.port, "method": method, "policies": deny.policies}),
        );
        let flow = self.flow_state(p, method, t, "", "deny", Some(deny.reason));
        flow.update(|f| f.status = 403);
        refuse(StatusCode::FORBIDDEN, deny.reason, &deny.detail)
    }

    /// The refusal (and, for guard denials, the audit event) for a failed upstream
    /// connect. The caller records the flow: exactly one per request.
    fn connect_refusal(
        &self,
        p: &Principal,
        t: &Target,
        method: &str,
        e: &ConnectError,
    ) -> Response<ProxyBody> {
        let status = match e {
            ConnectError::Forbidden { .. } | ConnectError::Loop(_) => StatusCode::FORBIDDEN,
            ConnectError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ConnectError::NoHost => StatusCode::BAD_REQUEST,
            ConnectError::Resolve(..) | ConnectError::Connect(..) | ConnectError::Tls(..) => {
                StatusCode::BAD_GATEWAY
            }
        };
        if status == StatusCode::FORBIDDEN {
            self.event(
                EventType::EgressDenied,
                &p.id,
                json!({"reason": e.reason(), "detail": e.to_string(), "host": t.host, "port": t.port, "method": method}),
            );
        } else {
            tracing::warn!(error = %excalibur_core::ErrorChain(e), host = %t.host, "upstream failed");
        }
        refuse(status, e.reason(), &e.to_string())
    }

    /// Mediates one request and sends it upstream.
    async fn forward(
        &self,
        snap: &Snapshot,
        principal: &Principal,
        subject: &Subject,
        target: &Target,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        if !self.recorder.has_capacity() {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_backpressure",
                "the audit queue is full; retry shortly",
            );
        }
        let (mut parts, incoming) = req.into_parts();
        let method = parts.method.as_str().to_owned();
        let path = parts.uri.path().to_owned();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());

        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::PROXY_AUTHORIZATION);
        parts.headers.remove(header::HOST);
        // Ask for identity encoding so echoed values can be scrubbed from the response.
        parts.headers.remove(header::ACCEPT_ENCODING);

        // Find every placeholder in the URI and headers, literal and encoded.
        let mediator = &snap.mediator;
        let (mut found, mut encoded) = (BTreeSet::new(), BTreeSet::new());
        mediator.find(path_and_query.as_bytes(), &mut found);
        mediator.find_encoded(path_and_query.as_bytes(), &mut encoded);
        for value in parts.headers.values() {
            mediator.find(value.as_bytes(), &mut found);
            mediator.find_encoded(value.as_bytes(), &mut encoded);
        }
        let redeem_target = RedeemTarget {
            host: &target.host,
            path: &path,
            method: &method,
        };
        let mut asked: Vec<String> = found.iter().cloned().collect();
        asked.extend(encoded.iter().filter(|n| !found.contains(*n)).cloned());
        // A body is streamed, so placeholders in it cannot be found before deciding:
        // those this principal may redeem into bodies toward this host join the permit.
        if !http_body::Body::is_end_stream(&incoming) {
            for name in snap.body_candidates(&target.host) {
                if !asked.iter().any(|a| a == name)
                    && snap
                        .policy
                        .decide_redeem(subject, redeem_target, std::slice::from_ref(name))
                        .is_ok_and(|p| p.substitute_body())
                {
                    asked.push(name.clone());
                }
            }
        }
        let permit = if asked.is_empty() {
            None
        } else {
            match snap.policy.decide_redeem(subject, redeem_target, &asked) {
                Ok(p) => Some(p),
                Err(deny) => {
                    let resp =
                        self.placeholder_denied(principal, target, &method, &path, &asked, &deny);
                    return drained(incoming, resp).await;
                }
            }
        };

        // Substitute into the URI and headers. Substituted header values are marked
        // sensitive: HTTP/2 sends them never-indexed, keeping them out of HPACK tables.
        let mut upstream_pq = path_and_query.clone();
        if let Some(permit) = &permit {
            if let Some(new) = mediator.substitute(permit, path_and_query.as_bytes()) {
                upstream_pq = String::from_utf8_lossy(&new).into_owned();
            }
            for value in parts.headers.values_mut() {
                if let Some(new) = mediator.substitute(permit, value.as_bytes()) {
                    let Ok(mut v) = HeaderValue::from_bytes(&new) else {
                        return refuse(
                            StatusCode::BAD_GATEWAY,
                            "substitution_failed",
                            "substituted header value is invalid",
                        );
                    };
                    v.set_sensitive(true);
                    *value = v;
                }
            }
        }
        // Crypto mappings for this host and path (SigV4 signing, mTLS client certificate,
        // DPoP proofs, OAuth2 refresh and JWT-bearer tokens) are redeemed like
        // placeholders: policy must permit this principal to use each of them here.
        let sigv4 = snap.sigv4.find(&target.host, &path);
        let mtls = target
            .https
            .then(|| snap.mtls.find(&target.host, target.port))
            .flatten();
        let dpop = snap.dpop.find(&target.host, &path);
        let oauth = snap.oauth_refresh.find(&target.host, &path);
        let jwt_bearer = snap.jwt_bearer.find(&target.host, &path);
        let mappings: Vec<String> = [
            sigv4.map(|r| &r.id),
            mtls.map(|r| &r.id),
            dpop.map(|l| &l.route().id),
            oauth.map(|r| &r.id),
            jwt_bearer.map(|r| &r.id),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        if !mappings.is_empty()
            && let Err(deny) = snap.policy.decide_redeem(subject, redeem_target, &mappings)
        {
            let resp = self.placeholder_denied(principal, target, &method, &path, &mappings, &deny);
            return drained(incoming, resp).await;
        }
        let identity_body = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
        // A signed body is covered by its signature: no substitution into it.
        let body_rewriter = permit
            .as_ref()
            .filter(|p| p.substitute_body() && identity_body && sigv4.is_none())
            .map(|p| mediator.body_substituter(p.clone()));
        let limit = body_rewriter.as_ref().map(|_| self.max_substitute_body);
        if body_rewriter.is_some() {
            parts.headers.remove(header::CONTENT_LENGTH);
        }

        let flow = self.flow_state(principal, &method, target, &path, "allow", None);
        let mut redeemed: Vec<String> = permit
            .as_ref()
            .map(|p| p.placeholders().to_vec())
            .unwrap_or_default();
        redeemed.extend(mappings);
        flow.update(|f| f.placeholders.clone_from(&redeemed));
        let scheme = if target.https { "https" } else { "http" };
        let Ok(uri) = format!("{scheme}://{}{upstream_pq}", target.authority()).parse::<Uri>()
        else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request_target",
                "the request target is invalid",
            );
        };
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        parts.headers.append(header::VIA, self.via.clone());
        // A JWT-bearer or OAuth2 access token replaces whatever the workload sent; it is
        // scrubbed from the response like the SigV4 values below.
        let token = match (jwt_bearer, oauth) {
            (_, Some(route)) => Some(self.oauth_access_token(route, &principal.id, None).await),
            (Some(route), None) => Some(self.jwt_bearer_token(route, &principal.id).await),
            (None, None) => None,
        };
        let mut injected = match token.transpose() {
            Ok(t) => t,
            Err(r) => return failed(&flow, refuse(r.status, r.reason, &r.detail)),
        };
        if let Some(t) = &injected {
            parts
                .headers
                .insert(header::AUTHORIZATION, t.header.clone());
        }
        let body_empty = http_body::Body::is_end_stream(&incoming);
        // Signing is the last change to the request.
        let (parts, incoming): (_, ProxyBody) = match sigv4 {
            Some(route) => {
                let authority = target.authority();
                match crate::sigv4::sign(
                    route,
                    parts,
                    incoming,
                    target.https,
                    &authority,
                    self.max_substitute_body,
                )
                .await
                {
                    Ok(signed) => {
                        self.event(EventType::Sigv4Signed, &principal.id, signed.details);
                        (signed.parts, signed.body)
                    }
                    Err(r) => return failed(&flow, refuse(r.status, r.reason, &r.detail)),
                }
            }
            None => (parts, incoming.map_err(Into::into).boxed_unsync()),
        };
        let body = Mediated::new(
            incoming,
            body_rewriter,
            Some(Arc::clone(&flow)),
            Direction::Up,
            limit,
        )
        .boxed_unsync();
        // One pooled client per client identity: mapped authorities get their own.
        let own_client;
        let client = match mtls {
            Some(route) => match self.mtls_clients.get(route, &self.upstream, &self.roots) {
                Ok(c) => {
                    own_client = c;
                    &own_client
                }
                Err(e) => {
                    tracing::error!(error = %e, mapping = %route.id, "mTLS client configuration failed");
                    return failed(
                        &flow,
                        refuse(
                            StatusCode::BAD_GATEWAY,
                            "mtls_failed",
                            "the client certificate could not be used",
                        ),
                    );
                }
            },
            None => &self.client,
        };
        let sent = match dpop {
            // A DPoP request may be retried once with a server nonce: its body is read
            // (bounded) so it can be replayed.
            Some(leg) => {
                let limit = usize::try_from(self.max_substitute_body).unwrap_or(usize::MAX);
                let Some(bytes) = body::collect_limited(body, limit).await else {
                    return failed(
                        &flow,
                        refuse(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body_too_large",
                            "the body is too large to replay",
                        ),
                    );
                };
                tokio::time::timeout(self.request_timeout, async {
                    let sent = crate::dpop::send(
                        client,
                        &self.dpop_nonces,
                        leg,
                        &parts,
                        bytes,
                        target.https,
                        &target.host,
                        target.port,
                    )
                    .await?;
                    self.event(EventType::DpopSigned, &principal.id, sent.details);
                    Ok(sent.response)
                })
                .await
            }
            None => {
                // A bodiless request with a refreshed token can be replayed once on 401.
                let replay = oauth.filter(|_| body_empty).map(|route| {
                    (
                        route,
                        parts.method.clone(),
                        parts.uri.clone(),
                        parts.version,
                        parts.headers.clone(),
                    )
                });
                let first = tokio::time::timeout(
                    self.request_timeout,
                    client.request(Request::from_parts(parts, body)),
                )
                .await;
                match (first, replay, injected.as_mut()) {
                    (Ok(Ok(resp)), Some((route, m, u, v, mut h)), Some(inj))
                        if resp.status() == StatusCode::UNAUTHORIZED =>
                    {
                        match self
                            .oauth_access_token(route, &principal.id, Some(&inj.token))
                            .await
                        {
                            Ok(fresh) => {
                                h.insert(header::AUTHORIZATION, fresh.header.clone());
                                *inj = fresh;
                                let mut req = Request::new(body::empty());
                                *req.method_mut() = m;
                                *req.uri_mut() = u;
                                *req.version_mut() = v;
                                *req.headers_mut() = h;
                                tokio::time::timeout(self.request_timeout, client.request(req))
                                    .await
                            }
                            Err(_) => Ok(Ok(resp)),
                        }
                    }
                    (first, _, _) => first,
                }
                .map(|r| r.map(|resp| resp.map(body::incoming)).map_err(Some))
            }
        };
        let Ok(sent) = sent else {
            return failed(
                &flow,
                refuse(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "the upstream did not answer in time",
                ),
            );
        };
        let resp: Response<ProxyBody> = match sent {
            Ok(r) => r,
            Err(None) => {
                return failed(
                    &flow,
                    refuse(
                        StatusCode::BAD_GATEWAY,
                        "dpop_failed",
                        "the DPoP proof could not be made",
                    ),
                );
            }
            Err(Some(e)) => {
                let connect = find_source::<ConnectError>(&e);
                let resp = match connect {
                    Some(ce) => {
                        let resp = self.connect_refusal(principal, target, &method, ce);
                        if resp.status() == StatusCode::FORBIDDEN {
                            flow.update(|f| f.decision = "deny".to_owned());
                        }
                        resp
                    }
                    None => {
                        let too_large = find_source::<body::BodyTooLarge>(&e).is_some();
                        tracing::warn!(error = %excalibur_core::ErrorChain(&e), host = %target.host, "upstream request failed");
                        if too_large {
                            refuse(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "body_too_large",
                                "the body is too large to substitute",
                            )
                        } else {
                            refuse(
                                StatusCode::BAD_GATEWAY,
                                "upstream_failed",
                                "the upstream request failed",
                            )
                        }
                    }
                };
                return failed(&flow, resp);
            }
        };
        let (mut rparts, rbody) = resp.into_parts();
        strip_hop_by_hop(&mut rparts.headers);
        // A compressed echo cannot be scrubbed: refuse it when a secret was sent.
        let compressed = rparts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if compressed && permit.is_some() {
            return failed(
                &flow,
                refuse(
                    StatusCode::BAD_GATEWAY,
                    "unscrubbable_response",
                    "the upstream sent a compressed response that cannot be scrubbed",
                ),
            );
        }
        scrub_headers(mediator, &mut rparts.headers);
        let scrubber = (!mediator.is_empty() && !compressed).then(|| mediator.body_scrubber());
        // A rewritten body changes length; a HEAD answer (no body) keeps its length.
        if scrubber.is_some() && method != "HEAD" {
            rparts.headers.remove(header::CONTENT_LENGTH);
        }
        self.metrics.upstream(started.elapsed().as_secs_f64());
        self.metrics.substituted(redeemed.len());
        let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        flow.update(|f| {
            f.status = rparts.status.as_u16();
            f.latency_ms = latency;
        });
        let body = Mediated::new(rbody, scrubber, Some(flow), Direction::Down, None).boxed_unsync();
        // An injected access token echoed back is scrubbed too (replaced by the mapping id).
        // Credentials sent upstream on the workload's behalf come back replaced by the
        // mapping id: SigV4 key ids and session tokens from headers, and from bodies
        // except S3's (object data whose length clients rely on); injected tokens from
        // both. A HEAD answer keeps its Content-Length.
        let mut body = body;
        let rescrub = |m: &Arc<excalibur_mediation::Mediator>,
                       body: ProxyBody,
                       rparts: &mut http::response::Parts|
         -> ProxyBody {
            if method != "HEAD" {
                rparts.headers.remove(header::CONTENT_LENGTH);
            }
            Mediated::new(body, Some(m.body_scrubber()), None, Direction::Down, None).boxed_unsync()
        };
        if let Some(route) = sigv4 {
            scrub_headers(route.scrub(), &mut rparts.headers);
            if !route.is_s3() {
                body = rescrub(route.scrub(), body, &mut rparts);
            }
        }
        if let Some(inj) = injected {
            scrub_headers(&inj.scrub, &mut rparts.headers);
            body = rescrub(&inj.scrub, body, &mut rparts);
        }
        if method == "HEAD" {
            // A HEAD answer has no body, whatever its Content-Length says: send an ended
            // body (HTTP/2 resets a stream whose DATA disagrees with Content-Length).
            drop(body);
            return Response::from_parts(rparts, body::empty());
        }
        Response::from_parts(rparts, body)
    }

    fn placeholder_denied(
        &self,
        p: &Principal,
        t: &Target,
        method: &str,
        path: &str,
        names: &[String],
        deny: &Deny,
    ) -> Response<ProxyBody> {
        self.event(
            EventType::PlaceholderDenied,
            &p.id,
            json!({"reason": deny.reason, "detail": deny.detail, "placeholders": names, "host": t.host,
                   "path": path, "method": method, "policies": deny.policies}),
        );
        let flow = self.flow_state(p, method, t, path, "deny", Some(deny.reason));
        flow.update(|f| {
            f.status = 403;
            f.placeholders = names.to_vec();
        });
        refuse(StatusCode::FORBIDDEN, "placeholder_denied", &deny.detail)
    }
}

/// Reads (and discards) a small request body before a refusal is sent, so HTTP/2 clients
/// see the stream end normally instead of a reset while still sending. Bounded in bytes
/// and time; a larger or slower body is simply dropped.
async fn drained(mut body: Incoming, resp: Response<ProxyBody>) -> Response<ProxyBody> {
    const LIMIT: usize = 64 * 1024;
    let mut seen = 0;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > LIMIT {
                break;
            }
        }
    })
    .await;
    resp
}

/// The span every log line of one proxied request is recorded in; `request_id` is the
/// flow id, filled in once the flow exists.
fn request_span<B>(target: &Target, req: &Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = tracing::field::Empty,
        method = %req.method(),
        host = %target.host,
    )
}

/// Replaces real values in response headers by their names.
fn scrub_headers(m: &excalibur_mediation::Mediator, headers: &mut HeaderMap) {
    for value in headers.values_mut() {
        if let Some(clean) = m.scrub(value.as_bytes())
            && let Ok(v) = HeaderValue::from_bytes(&clean)
        {
            *value = v;
        }
    }
}

/// Records a refusal's status and reason code on the flow, and returns the refusal.
fn failed(flow: &FlowState, resp: Response<ProxyBody>) -> Response<ProxyBody> {
    flow.update(|f| {
        f.status = resp.status().as_u16();
        f.reason = resp
            .headers()
            .get(REASON_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    });
    resp
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

fn normalize_host(h: &str) -> String {
    h.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn split_authority(a: &str) -> (&str, Option<u16>) {
    if let Some(rest) = a.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').unwrap_or((rest, ""));
        return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (a, None),
    }
}

fn via_loops(headers: &HeaderMap, name: &str) -> bool {
    headers.get_all(header::VIA).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|hop| hop.split_whitespace().nth(1) == Some(name))
        })
    })
}

/// RFC 9110 §7.6.1: drop the headers named by `Connection`, then the hop-by-hop set.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "trailer",
    ] {
        headers.remove(n);
    }
    if headers
        .get(header::TE)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
}

fn refuse(status: StatusCode, reason: &str, detail: &str) -> Response<ProxyBody> {
    let body = json!({"error": reason, "detail": detail}).to_string();
    let mut resp = Response::new(body::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(reason) {
        resp.headers_mut().insert(REASON_HEADER, v);
    }
    resp
}

fn proxy_auth_required(reason: &str) -> Response<ProxyBody> {
    let mut resp = refuse(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        reason,
        "present `Proxy-Authorization: Bearer <service credential>`",
    );
    resp.headers_mut().insert(
        header::PROXY_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"excalibur\", Basic realm=\"excalibur\", charset=\"UTF-8\"",
        ),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_and_hop_by_hop() {
        assert_eq!(
            split_authority("api.github.com:443"),
            ("api.github.com", Some(443))
        );
        assert_eq!(split_authority("api.github.com"), ("api.github.com", None));
        assert_eq!(split_authority("[::1]:8443"), ("::1", Some(8443)));
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("x-secret-hop, keep-alive"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("gzip"));
        h.insert("authorization", HeaderValue::from_static("Bearer X"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        let mut v = HeaderMap::new();
        v.insert(
            "via",
            HeaderValue::from_static("1.1 other, 1.1 excalibur-abc"),
        );
        assert!(via_loops(&v, "excalibur-abc"));
        assert!(!via_loops(&v, "excalibur-xyz"));
    }
}
