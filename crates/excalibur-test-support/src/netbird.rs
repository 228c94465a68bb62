//! A stand-in for the NetBird management REST API on 127.0.0.1: `GET /api/peers`,
//! `/api/groups`, `/api/routes`, `/api/policies` with bodies shaped like the OpenAPI
//! document's schemas (full peer objects, plain arrays, `{"message","code"}` errors,
//! `X-Request-Id`), `Authorization: Token <pat>` checked. Tests change what it serves.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the stand-in serves.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Peers (see [`peer`]).
    pub peers: Vec<Value>,
    /// Groups (see [`group`]).
    pub groups: Vec<Value>,
    /// Routes (see [`route`]).
    pub routes: Vec<Value>,
    /// Policies.
    pub policies: Vec<Value>,
    /// When set, every call answers this status with a NetBird error body.
    pub fail: Option<u16>,
}

/// A running stand-in.
#[derive(Debug, Clone)]
pub struct NetbirdApi {
    /// Listener.
    pub addr: SocketAddr,
    /// The personal access token it accepts.
    pub token: String,
    state: Arc<Mutex<State>>,
}

/// A peer object with every field the schema marks required.
pub fn peer(id: &str, name: &str, ip: &str, groups: &[(&str, &str)]) -> Value {
    json!({
        "id": id, "name": name, "ip": ip, "connection_ip": "198.51.100.7", "connected": true,
        "last_seen": "2026-11-23T10:00:00Z", "os": "Darwin 15.1", "kernel_version": "24.1.0",
        "geoname_id": 2_643_743, "version": "0.36.0",
        "groups": groups.iter().map(|(gid, gname)| json!({"id": gid, "name": gname, "peers_count": 1,
                   "resources_count": 0, "issued": "api"})).collect::<Vec<_>>(),
        "ssh_enabled": false, "user_id": format!("user-{id}"), "hostname": name, "ui_version": "0.36.0",
        "dns_label": format!("{name}.netbird.cloud"), "login_expiration_enabled": true,
        "login_expired": false, "last_login": "2026-11-23T09:00:00Z",
        "inactivity_expiration_enabled": false, "approval_required": false, "country_code": "GB",
        "city_name": "London", "serial_number": "C02XYZ", "extra_dns_labels": [], "ephemeral": false,
        "created_at": "2026-01-01T00:00:00Z", "accessible_peers_count": 3
    })
}

/// A group object.
pub fn group(id: &str, name: &str, peers: &[(&str, &str)]) -> Value {
    json!({"id": id, "name": name, "peers_count": peers.len(), "resources_count": 0, "issued": "api",
           "peers": peers.iter().map(|(pid, pname)| json!({"id": pid, "name": pname})).collect::<Vec<_>>(),
           "resources": []})
}

/// A route object: `target` is a CIDR (network route) or a list of domains.
pub fn route(id: &str, target: Result<&str, &[&str]>, groups: &[&str]) -> Value {
    let mut r = json!({"id": id, "description": id, "network_id": id, "enabled": true,
                       "peer_groups": ["routers"], "metric": 9999, "masquerade": true,
                       "groups": groups, "keep_route": true, "access_control_groups": []});
    match target {
        Ok(cidr) => {
            r["network"] = json!(cidr);
            r["network_type"] = json!("IPv4");
        }
        Err(domains) => {
            r["domains"] = json!(domains);
            r["network_type"] = json!("Domain");
        }
    }
    r
}

impl NetbirdApi {
    /// Starts the stand-in serving `state`, accepting `token`.
    pub async fn start(token: &str, state: State) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let api = Self {
            addr,
            token: token.to_owned(),
            state: Arc::new(Mutex::new(state)),
        };
        let serving = api.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let api = serving.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.answer(&req)) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Ok(api)
    }

    /// The base URL to configure (`http://127.0.0.1:<port>/api`).
    pub fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Changes what is served.
    pub fn set(&self, f: impl FnOnce(&mut State)) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut s);
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: u16, body: Value| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("x-request-id", format!("req-{}", req.uri().path().len()))
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap_or_default()
        };
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, t)| scheme.eq_ignore_ascii_case("token") && *t == self.token);
        if auth.is_none() {
            return reply(
                401,
                json!({"message": "no valid authentication provided", "code": 401}),
            );
        }
        let s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(code) = s.fail {
            return reply(code, json!({"message": "internal error", "code": code}));
        }
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/api/peers") => reply(200, Value::Array(s.peers)),
            ("GET", "/api/groups") => reply(200, Value::Array(s.groups)),
            ("GET", "/api/routes") => reply(200, Value::Array(s.routes)),
            ("GET", "/api/policies") => reply(200, Value::Array(s.policies)),
            _ => reply(404, json!({"message": "not found", "code": 404})),
        }
    }
}
