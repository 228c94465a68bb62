//! DPoP mediation on the request path. Token requests to the mapping's authorization
//! server and calls to its resource server each get a fresh proof signed with the
//! mapping's key (calls also `ath` and `Authorization: DPoP`), so the tokens the workload
//! obtains are bound to a key it never holds. Server nonces are cached per server and a
//! `use_dpop_nonce` answer is retried once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use excalibur_core::Secret;
use excalibur_core::api::{CryptoFamily, MappingRecord};
use excalibur_mediation::dpop::{self, ProofKey};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;

use crate::ProxyBody;
use crate::body;
use crate::upstream::Connector;

/// Largest error body read to look for `use_dpop_nonce`.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A new proof key, sealed form and thumbprint.
pub fn generate_key() -> Option<(Secret, String)> {
    let der = ProofKey::generate().ok()?;
    let jkt = ProofKey::from_pkcs8(&der).ok()?.jkt();
    Some((der, jkt))
}

/// One DPoP mapping.
#[derive(Debug)]
pub struct DpopRoute {
    /// Mapping id (the name policy decides redemption on).
    pub id: String,
    /// Provider.
    pub provider_id: String,
    token_host: String,
    token_path_prefix: String,
    resource_host: String,
    resource_path_prefix: String,
    key: ProofKey,
}

/// Which side of the exchange a request is.
#[derive(Debug, Clone, Copy)]
pub enum Leg<'a> {
    /// A token request to the authorization server.
    Token(&'a DpopRoute),
    /// A call to the resource server.
    Resource(&'a DpopRoute),
}

impl<'a> Leg<'a> {
    /// The mapping.
    pub fn route(self) -> &'a DpopRoute {
        match self {
            Leg::Token(r) | Leg::Resource(r) => r,
        }
    }
}

/// All DPoP routes of a snapshot.
#[derive(Debug, Default)]
pub struct DpopRoutes(Vec<DpopRoute>);

impl DpopRoutes {
    /// Routes from stored mappings (unreadable ones are left out and logged).
    pub fn build(mappings: &[(MappingRecord, Secret)]) -> Self {
        let mut routes = Vec::new();
        for (r, key) in mappings
            .iter()
            .filter(|(r, _)| r.family == CryptoFamily::Dpop)
        {
            let text = |k: &str| r.setting(k);
            let route = (|| {
                Some(DpopRoute {
                    id: r.id.clone(),
                    provider_id: r.provider_id.clone(),
                    token_host: text("token_host")?,
                    token_path_prefix: text("token_path_prefix")?,
                    resource_host: text("resource_host")?,
                    resource_path_prefix: text("resource_path_prefix")?,
                    key: ProofKey::from_pkcs8(key).ok()?,
                })
            })();
            match route {
                Some(route) => routes.push(route),
                None => tracing::error!(mapping = %r.id, "DPoP mapping is unreadable; left out"),
            }
        }
        Self(routes)
    }

    /// Every mapping id with its provider (for policy bindings).
    pub fn bindings(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0.iter().map(|r| (r.id.clone(), r.provider_id.clone()))
    }

    /// The leg a request to `host` and `path` is, if any.
    pub fn find(&self, host: &str, path: &str) -> Option<Leg<'_>> {
        self.0.iter().find_map(|r| {
            if r.token_host == host && path.starts_with(&r.token_path_prefix) {
                Some(Leg::Token(r))
            } else if r.resource_host == host && path.starts_with(&r.resource_path_prefix) {
                Some(Leg::Resource(r))
            } else {
                None
            }
        })
    }
}

/// Server nonces by mapping and host.
#[derive(Debug, Default)]
pub(crate) struct Nonces(Mutex<HashMap<String, String>>);

impl Nonces {
    fn get(&self, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn set(&self, key: &str, nonce: &HeaderValue) {
        // 1*NQCHAR (RFC 9449 §8): printable ASCII without `"` and `\`.
        let Ok(n) = nonce.to_str() else {
            return;
        };
        if n.is_empty()
            || n.len() > 1024
            || n.bytes()
                .any(|b| !(0x21..0x7f).contains(&b) || b == b'"' || b == b'\\')
        {
            return;
        }
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), n.to_owned());
    }
}

/// What was done, for the audit event.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) response: Response<ProxyBody>,
    pub(crate) details: serde_json::Value,
}

/// Why the request failed: the hyper client error, if any.
pub(crate) type SendError = Option<hyper_util::client::legacy::Error>;

/// Sends a request on a DPoP leg: proof (and token binding on the resource leg), one
/// retry on `use_dpop_nonce`. `body` is the whole request body (replayable).
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the request's parts"
)]
pub(crate) async fn send(
    client: &Client<Connector, ProxyBody>,
    nonces: &Nonces,
    leg: Leg<'_>,
    parts: &http::request::Parts,
    body: Bytes,
    https: bool,
    host: &str,
    port: u16,
) -> Result<Sent, SendError> {
    let route = leg.route();
    let mut headers = parts.headers.clone();
    headers.remove("dpop");
    let token = match leg {
        Leg::Token(_) => None,
        Leg::Resource(_) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| {
                    scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop")
                })
                .map(|(_, t)| Secret::new(t.trim().as_bytes().to_vec()));
            if let Some(t) = &presented {
                // The token is bound to our key: present it with the DPoP scheme.
                let mut v = HeaderValue::from_bytes(&dpop::authorization(t)).map_err(|_| None)?;
                v.set_sensitive(true);
                headers.insert(header::AUTHORIZATION, v);
            }
            presented
        }
    };
    let htu = dpop::htu(https, host, port, parts.uri.path());
    let nonce_key = format!("{}|{host}", route.id);
    let mut retried = false;
    loop {
        let nonce = nonces.get(&nonce_key);
        let proof = route
            .key
            .proof(
                parts.method.as_str(),
                &htu,
                token.as_ref(),
                nonce.as_deref(),
                SystemTime::now(),
            )
            .map_err(|_| None)?;
        let mut h = headers.clone();
        h.insert("dpop", HeaderValue::from_str(&proof).map_err(|_| None)?);
        let mut req = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone())
            .version(parts.version)
            .body(body::full(body.clone()))
            .map_err(|_| None)?;
        *req.headers_mut() = h;
        let resp = client.request(req).await.map_err(Some)?;
        if let Some(n) = resp.headers().get("dpop-nonce") {
            nonces.set(&nonce_key, n);
        }
        let (rparts, rbody) = resp.into_parts();
        let status = rparts.status;
        let challenge = |v: &str| v.contains("use_dpop_nonce");
        let (wants_nonce, rbody): (bool, ProxyBody) = match leg {
            Leg::Resource(_) => (
                status == StatusCode::UNAUTHORIZED
                    && rparts
                        .headers
                        .get_all(header::WWW_AUTHENTICATE)
                        .iter()
                        .any(|v| v.to_str().is_ok_and(challenge)),
                body::incoming(rbody),
            ),
            Leg::Token(_) if status == StatusCode::BAD_REQUEST => {
                let bytes = read_small(rbody).await;
                let hit = std::str::from_utf8(&bytes).is_ok_and(challenge);
                (hit, body::full(bytes))
            }
            Leg::Token(_) => (false, body::incoming(rbody)),
        };
        let have_nonce = rparts.headers.contains_key("dpop-nonce");
        if wants_nonce && have_nonce && !retried {
            retried = true;
            continue;
        }
        let details = serde_json::json!({
            "mapping": route.id,
            "leg": match leg { Leg::Token(_) => "token", Leg::Resource(_) => "resource" },
            "htm": parts.method.as_str(),
            "htu": htu,
            "jkt": route.key.jkt(),
            "nonce": nonce.is_some(),
            "retried": retried,
            "status": status.as_u16(),
        });
        return Ok(Sent {
            response: Response::from_parts(rparts, rbody),
            details,
        });
    }
}

async fn read_small(b: Incoming) -> Bytes {
    Limited::new(b, MAX_ERROR_BODY)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default()
}
