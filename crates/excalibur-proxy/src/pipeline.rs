//! The request path: listen → identify → decide → mediate → upstream → scrub → record.
//!
//! `handle` takes a proxy request (CONNECT or absolute-form) from either listener.
//! CONNECT tunnels are intercepted with a leaf for the CONNECT host (the SNI must agree)
//! unless the host is passthrough; each request inside is checked again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use excalibur_core::api::Flow;
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::ids::FlowId;
use excalibur_core::principal::Principal;
use excalibur_core::time::Timestamp;
use excalibur_identity::Unidentified;
use excalibur_policy::{Deny, Subject};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_rustls::LazyConfigAcceptor;
use tracing::Instrument as _;

use crate::body::{self, FlowState, ProxyBody};
use crate::decide;
use crate::scrub::Scrubber;
use crate::snapshot::Snapshot;
use crate::tunnel::{Activity, Http1Tunnel, ReadAhead, Responding, Rewound};
use crate::upstream::{ConnectError, connect_tcp};
use crate::{Inner, Proxy};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a request is going, as established by the proxy (never by `Host` alone): the
/// scheme of the upstream leg, the host and the upstream port.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The upstream leg is TLS.
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Target {
    /// `https` or `http`: the upstream leg's scheme.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    pub(crate) fn authority(&self) -> String {
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
        tls_identity: Option<&crate::TlsIdentity>,
    ) -> Response<ProxyBody> {
        let inner = &self.inner;
        if let Some(refused) = self.oversized(&req, "unidentified") {
            return refused;
        }
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

    /// The refusal of a request head larger than `max_header_bytes` (431), recorded.
    fn oversized<B>(&self, req: &Request<B>, principal: &str) -> Option<Response<ProxyBody>> {
        if self.inner.http.head_fits(req) {
            return None;
        }
        self.inner.event(
            EventType::EgressDenied,
            principal,
            json!({"reason": "header_too_large", "method": req.method().as_str(), "host": req.uri().host()}),
        );
        Some(refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header_too_large",
            "the request head is larger than the gateway accepts",
        ))
    }

    async fn connect(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        tls_identity: Option<&crate::TlsIdentity>,
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
                    let r = inner.connect_refusal(&principal, &target, "CONNECT", &e);
                    let resp = refuse(r.status, r.reason, &r.detail);
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
                Ok(upgraded) => proxy.intercept(upgraded, subject, target).await,
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
        subject: Subject,
        target: Target,
    ) {
        let inner = &self.inner;
        let acceptor = LazyConfigAcceptor::new(
            rustls::server::Acceptor::default(),
            ReadAhead::new(TokioIo::new(upgraded)),
        );
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
            let _ = inner.egress_denied(subject.principal(), &target, "CONNECT", &deny);
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
        // The tunnel is served by a task of its own: the handshake's state is not kept
        // for the tunnel's life.
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let activity = Arc::new(Activity::default());
        let service = self.tunnel_service(subject, target, &activity);
        if h2 {
            let (builder, cancel) = (inner.http.server(), inner.cancel.clone());
            inner.tasks.spawn(async move {
                let conn = builder.serve_connection(TokioIo::new(tls), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = cancel.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                    }
                }
            });
            return;
        }
        let io = Rewound::new(tls, Arc::clone(&activity));
        let tunnel = Http1Tunnel {
            builder: inner.http.http1(),
            activity,
            cancel: inner.cancel.clone(),
            parked_limit: inner.http.header_read_timeout,
            parked: inner.metrics.parked().clone(),
        };
        inner.tasks.spawn(tunnel.serve(io, service));
    }

    /// The service of an intercepted tunnel's requests, counted in `activity`.
    fn tunnel_service(
        &self,
        subject: Subject,
        target: Target,
        activity: &Arc<Activity>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<ProxyBody>,
        Error = std::convert::Infallible,
        Future = Responding<Response<ProxyBody>>,
    > + Clone
    + Unpin
    + Send
    + 'static {
        let proxy = self.clone();
        let subject = Arc::new(subject);
        let counts = Arc::clone(activity);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (proxy, subject, target) = (proxy.clone(), Arc::clone(&subject), target.clone());
            let serving = counts.start();
            let responding: Responding<Response<ProxyBody>> = Box::pin(async move {
                let resp = proxy
                    .tunnelled(req, subject.principal(), &subject, target)
                    .await;
                drop(serving);
                Ok(resp)
            });
            responding
        })
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
        if let Some(refused) = self.oversized(&req, &principal.id) {
            return refused;
        }
        let snap = inner.snapshot.load_full();
        // A credential revoked or expired while the tunnel is open stops working at once.
        if let Some(id) = &principal.credential_id
            && let Some(reason) = snap.credentials.not_live(id, Timestamp::now().millis())
        {
            inner.event(
                EventType::ProxyAuthDenied,
                &principal.id,
                json!({"reason": reason, "host": target.host, "method": req.method().as_str(), "credential_id": id}),
            );
            return proxy_auth_required(reason, Presented::of_principal(principal));
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
        tls_identity: Option<&crate::TlsIdentity>,
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
        tls_identity: Option<&crate::TlsIdentity>,
        method: &str,
        target: &Target,
    ) -> Result<(Principal, Subject), Response<ProxyBody>> {
        let principal = match tls_identity
            .filter(|_| !headers.contains_key(header::PROXY_AUTHORIZATION))
        {
            Some(crate::TlsIdentity::Refused(reason)) => {
                let source = peer.ip().to_canonical().to_string();
                self.inner.event(
                    EventType::ProxyAuthDenied,
                    "unidentified",
                    json!({"reason": reason, "method": method, "host": target.host, "port": target.port,
                           "via": "x509-svid", "source": source}),
                );
                let flow = self.inner.flow_state_for(
                    "unidentified",
                    method,
                    target,
                    "",
                    "deny",
                    Some(reason),
                );
                flow.update(|f| f.status = 407);
                return Err(proxy_auth_required(reason, Presented::Svid));
            }
            Some(crate::TlsIdentity::Svid(p)) => {
                self.inner.event(
                    EventType::ProxyAuthOk,
                    &p.id,
                    json!({"method": method, "host": target.host, "port": target.port, "via": "x509-svid",
                           "source": peer.ip().to_canonical().to_string()}),
                );
                (**p).clone()
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
                    }
                    | Unidentified::Revoked { credential, name }
                    | Unidentified::CredentialExpired { credential, name } => {
                        (format!("service:{name}"), Some(credential))
                    }
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
                Err(proxy_auth_required(
                    why.reason(),
                    Presented::of_header(auth),
                ))
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
        let id = FlowId::generate_ordered().to_string();
        // Log lines of this request carry the flow's id (JSON logs: `span.request_id`).
        tracing::Span::current().record("request_id", id.as_str());
        FlowState::with_metrics(
            Flow {
                id,
                seq: None,
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
    pub(crate) fn connect_refusal(
        &self,
        p: &Principal,
        t: &Target,
        method: &str,
        e: &ConnectError,
    ) -> crate::error::ProxyError {
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
        crate::error::refuse(status, e.reason(), &e.to_string())
    }

    /// One request, stage by stage: decide every redemption, mediate, send, scrub.
    /// The flow is recorded once, whatever happens (its drop guard).
    async fn forward(
        &self,
        snap: &Snapshot,
        principal: &Principal,
        subject: &Subject,
        target: &Target,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let (mut parts, incoming) = req.into_parts();
        let early = Early::of(&parts);
        if let Err(r) = self.admissible(&mut parts) {
            return early.refuse(&self.tasks, incoming, r.into_response());
        }
        let (method, path) = (parts.method.to_string(), parts.uri.path().to_owned());
        let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let pq = pq.to_owned();
        let body = !http_body::Body::is_end_stream(&incoming);
        let scoped = principal
            .credential_id
            .as_ref()
            .and_then(|id| snap.credentials.scoped_providers(id));
        let head = decide::Head::new(&method, &path, &pq, &parts.headers, body, scoped);
        let now = Timestamp::now().millis();
        let red = match decide::redemption(snap, subject, target, &head, now) {
            Ok(r) => r,
            Err(d) => {
                let resp =
                    self.placeholder_denied(principal, target, &method, &path, &d.names, &d.deny);
                return early.refuse(&self.tasks, incoming, resp);
            }
        };
        // The request body goes upstream parked: an early upstream answer leaves it
        // waiting until the workload has that answer, then it is drained.
        let parking = body::Parking::new(self.tasks.clone());
        let incoming = body::Parked::new(incoming, &parking);
        let hop = Hop {
            snap,
            principal,
            target,
            red: &red,
            method: &method,
            path: &path,
            pq: &pq,
        };
        let resp = self.relay(hop, parts, incoming, started).await;
        resp.map(|b| body::Held::new(b, parking).boxed_unsync())
    }

    /// Mediate, send and scrub one allowed request; the flow is recorded once.
    async fn relay(
        &self,
        hop: Hop<'_>,
        parts: http::request::Parts,
        incoming: body::Parked,
        started: Instant,
    ) -> Response<ProxyBody> {
        let Hop {
            snap,
            principal,
            target,
            red,
            method,
            path,
            pq,
        } = hop;
        let flow = self.flow_state(principal, method, target, path, "allow", None);
        flow.update(|f| f.placeholders.clone_from(&red.redeemed));
        let out = crate::mediate::request(
            self, snap, principal, target, red, pq, parts, incoming, &flow,
        );
        let out = match out.await {
            Ok(o) => o,
            Err(r) => return failed(&flow, r),
        };
        // No secret leaves without its record: the write-ahead flow is committed first.
        if !red.redeemed.is_empty()
            && let Some(intent) = flow.current()
            && self.recorder.intent(intent).await.is_err()
        {
            return failed(
                &flow,
                crate::error::refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    "the record of this request could not be written, so nothing is redeemed; retry shortly",
                ),
            );
        }
        let (resp, injected, sigv4_scrub) =
            match crate::send::upstream(self, out, red, principal, target, &flow).await {
                Ok(sent) => sent,
                Err(f) => {
                    if f.denied {
                        flow.update(|fl| fl.decision = "deny".to_owned());
                    }
                    return failed(&flow, f.refusal);
                }
            };
        self.answered(&flow, &resp, started, red.redeemed.len());
        let scrubber = Scrubber::for_response(snap, red, injected.as_ref(), sigv4_scrub.as_ref());
        let head_only = method == "HEAD";
        match crate::scrub::response(
            &scrubber,
            resp,
            head_only,
            self.max_decoded_response,
            Arc::clone(&flow),
        ) {
            Ok((resp, 0)) => resp,
            Ok((resp, _)) => {
                flow.update(|f| f.reason = Some("response_header_name_dropped".to_owned()));
                resp
            }
            Err(r) => failed(&flow, r),
        }
    }

    /// Records what the upstream answered (status, latency, metrics).
    fn answered(&self, flow: &FlowState, resp: &Response<ProxyBody>, started: Instant, n: usize) {
        self.metrics.upstream(started.elapsed().as_secs_f64());
        self.metrics.substituted(n);
        let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        flow.update(|f| {
            f.status = resp.status().as_u16();
            f.latency_ms = latency;
        });
    }

    /// Checks that a request can be proxied at all and strips what never goes on:
    /// hop-by-hop fields, `Proxy-Authorization`, `Host`, `Accept-Encoding` (identity is
    /// asked for; what comes back encoded anyway is decoded to scrub).
    fn admissible(&self, parts: &mut http::request::Parts) -> Result<(), crate::error::ProxyError> {
        if self.recorder.failing() {
            return Err(crate::error::refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "records cannot be written now, so nothing is redeemed; retry shortly",
            ));
        }
        if !self.recorder.has_capacity() {
            return Err(crate::error::refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_backpressure",
                "the audit queue is full; retry shortly",
            ));
        }
        if let Some(coding) = crate::encoding::transfer_codings(&parts.headers).first() {
            return Err(crate::error::refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_transfer_coding",
                &format!("transfer coding `{coding:?}` is not supported; send chunked or a length"),
            ));
        }
        strip_hop_by_hop(&mut parts.headers);
        for name in [
            header::PROXY_AUTHORIZATION,
            header::HOST,
            header::ACCEPT_ENCODING,
        ] {
            parts.headers.remove(name);
        }
        Ok(())
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
        // Expiry and cleartext are their own answers; every other refusal of a
        // redemption is `placeholder_denied` (the event names the rule).
        let reason = match deny.reason {
            r @ ("placeholder_expired" | "plaintext_upstream" | "scope_not_granted") => r,
            _ => "placeholder_denied",
        };
        refuse(StatusCode::FORBIDDEN, reason, &deny.detail)
    }
}

/// What one allowed request is: the snapshot it runs on, who, where, the decision, and
/// its method, path and target as the workload sent them.
#[derive(Debug, Clone, Copy)]
struct Hop<'a> {
    snap: &'a Snapshot,
    principal: &'a Principal,
    target: &'a Target,
    red: &'a decide::Redemption<'a>,
    method: &'a str,
    path: &'a str,
    pq: &'a str,
}

/// How to refuse a request whose body has not been read: answer first, never read it
/// to decide. HTTP/2: the response goes out whole, then the body is drained (bounded)
/// so the stream ends cleanly; past the bound h2 resets it with NO_ERROR (RFC 9113
/// §8.1), never before the response. HTTP/1.1: `Connection: close`; a client waiting on
/// `Expect: 100-continue` never sends the body, one already sending has it drained
/// (bounded) so that closing does not reset the connection before the refusal is read.
#[derive(Debug, Clone, Copy)]
struct Early {
    h2: bool,
    expects_continue: bool,
}

impl Early {
    fn of(parts: &http::request::Parts) -> Self {
        Self {
            h2: parts.version == Version::HTTP_2,
            expects_continue: parts
                .headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
        }
    }

    fn refuse(
        self,
        tasks: &tokio_util::task::TaskTracker,
        body: Incoming,
        resp: Response<ProxyBody>,
    ) -> Response<ProxyBody> {
        if http_body::Body::is_end_stream(&body) {
            return resp;
        }
        if self.h2 {
            let parking = body::Parking::with(body, tasks.clone());
            return resp.map(|b| body::Held::new(b, parking).boxed_unsync());
        }
        let (mut parts, b) = resp.into_parts();
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        if !self.expects_continue {
            tasks.spawn(body::drain(body));
        }
        Response::from_parts(parts, b)
    }
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

/// The one place a request-path error becomes the workload's answer: the flow records
/// its status and reason, the log its side.
fn failed(flow: &FlowState, err: crate::error::ProxyError) -> Response<ProxyBody> {
    use crate::error::Side;
    match err.side() {
        Side::Client => tracing::debug!(reason = err.reason, "request refused"),
        Side::Upstream => tracing::warn!(reason = err.reason, "upstream failed"),
        Side::Internal => tracing::error!(reason = err.reason, "request failed"),
    }
    flow.update(|f| {
        f.status = err.status.as_u16();
        f.reason = Some(err.reason.to_owned());
    });
    err.into_response()
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
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// A refusal answered at once (status, wire reason, detail).
fn refuse(status: StatusCode, reason: &str, detail: &str) -> Response<ProxyBody> {
    crate::error::respond(status, reason, detail)
}

/// The kind of credential a refused caller presented, for a 407 that says what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presented {
    Nothing,
    ServiceCredential,
    WorkloadBearer,
    ApiToken,
    Svid,
    Other,
}

impl Presented {
    fn of_header(header: Option<&[u8]>) -> Self {
        let Some(h) = header else {
            return Presented::Nothing;
        };
        let text = String::from_utf8_lossy(h);
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .unwrap_or_default();
        match token.split_once('_').map(|(kind, _)| kind) {
            Some("xcw") => Presented::WorkloadBearer,
            Some("xcs") => Presented::ServiceCredential,
            Some("xca") => Presented::ApiToken,
            _ => Presented::Other,
        }
    }

    fn of_principal(p: &Principal) -> Self {
        match p.kind {
            excalibur_core::principal::PrincipalKind::AttestedWorkload => Presented::WorkloadBearer,
            _ => Presented::ServiceCredential,
        }
    }

    fn advice(self) -> &'static str {
        match self {
            Presented::Nothing => {
                "no credential was presented: send `Proxy-Authorization: Bearer <service credential or workload bearer>`, or an X.509-SVID client certificate on the TLS listener"
            }
            Presented::ServiceCredential => {
                "the service credential presented was refused: ask an admin for a live one (`excalibur-ctl credential create`)"
            }
            Presented::WorkloadBearer => {
                "the workload bearer presented was refused: exchange the workload's token for a fresh one at /api/oauth/token"
            }
            Presented::ApiToken => {
                "an API token was presented: the proxy takes a service credential or a workload bearer, not an API token"
            }
            Presented::Svid => {
                "the client certificate presented is not an acceptable X.509-SVID of a configured trust domain"
            }
            Presented::Other => {
                "the credential presented is not one this gateway issued: send `Proxy-Authorization: Bearer <service credential or workload bearer>`"
            }
        }
    }
}

fn proxy_auth_required(reason: &'static str, presented: Presented) -> Response<ProxyBody> {
    let mut resp = refuse(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        reason,
        presented.advice(),
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
