//! SigV4 mediation on the request path: pick the mapping for a host and path, strip the
//! workload's (dummy) authentication, decide how the body is covered, sign with the real
//! key as the last change to the request, and re-frame signed bodies as they stream.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use excalibur_core::Secret;
use excalibur_core::api::MappingRecord;
use excalibur_core::hosts::HostPattern;
use excalibur_mediation::Mediator;
use excalibur_mediation::sigv4::{
    self, ChunkEncoder, ChunkResigner, Credentials, EventResigner, Reframe, Scope, SignInput,
    SignatureChain,
};
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http_body::Body as _;
use http_body_util::BodyExt as _;
use serde_json::json;

use crate::body::{self, Parked, ProxyBody, Reframed};
use crate::error::{ProxyError, refuse};

/// Bodies up to this size are hashed whole for S3 when the client did not say how its
/// body is covered; larger ones are chunk-signed as they stream.
const HASH_WHOLE_MAX: u64 = 1024 * 1024;
/// Largest client chunk re-signed (a chunk is held whole: its signature precedes it).
const MAX_CHUNK: usize = 16 * 1024 * 1024;
/// Default lifetime of a presigned URL.
pub const DEFAULT_PRESIGN: Duration = Duration::from_secs(900);

/// One SigV4 mapping, ready to sign.
#[derive(Debug)]
pub struct Sigv4Route {
    /// Mapping id (the name policy decides redemption on).
    pub id: String,
    /// Provider.
    pub provider_id: String,
    host: HostPattern,
    path_prefix: String,
    region: String,
    service: String,
    /// A static key (`None` when the credentials come from `role`).
    creds: Option<Arc<Credentials>>,
    /// The role whose temporary credentials sign, when the mapping holds no key.
    pub(crate) role: Option<RoleSpec>,
    /// The access key id and session token, sent upstream in the clear: scrubbed from
    /// responses (built once per snapshot, not per request).
    scrub: Arc<Mediator>,
}

/// A role assumed with `AssumeRoleWithWebIdentity` for a mapping's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleSpec {
    pub(crate) arn: String,
    pub(crate) session_name: String,
    pub(crate) duration_seconds: u64,
    pub(crate) sts_endpoint: String,
}

impl RoleSpec {
    /// The cache version: a changed setting starts afresh.
    pub(crate) fn version(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.arn, self.session_name, self.duration_seconds, self.sts_endpoint
        )
    }
}

impl Sigv4Route {
    /// Builds a route from a stored mapping and its opened keys.
    pub fn from_record(r: &MappingRecord, keys: &Secret) -> Option<Self> {
        let text = |k: &str| r.setting(k);
        let role = text("role_arn").map(|arn| RoleSpec {
            session_name: text("session_name").unwrap_or_else(|| r.id.clone()),
            duration_seconds: r
                .config
                .get("duration_seconds")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(3600),
            sts_endpoint: text("sts_endpoint").unwrap_or_default(),
            arn,
        });
        let creds = match &role {
            Some(_) => None,
            None => Some(Arc::new(Credentials::from_sealed(keys).ok()?)),
        };
        let mut sent = Vec::new();
        if let Some(c) = &creds {
            sent.push((format!("{}.access_key_id", r.id), c.access_key_id()));
            if let Some(t) = c.session_token() {
                sent.push((r.id.clone(), t.clone()));
            }
        }
        Some(Self {
            id: r.id.clone(),
            provider_id: r.provider_id.clone(),
            host: HostPattern::parse(&text("target_host")?).ok()?,
            path_prefix: text("path_prefix")?,
            region: text("region")?,
            service: text("service")?,
            creds,
            role,
            scrub: Arc::new(Mediator::new(sent)),
        })
    }

    /// The static key, if the mapping holds one.
    pub(crate) fn static_credentials(&self) -> Option<&Arc<Credentials>> {
        self.creds.as_ref()
    }

    /// Whether response bodies are object data (S3): those are never rewritten.
    pub fn is_s3(&self) -> bool {
        self.scope().is_s3()
    }

    /// Scrubs the values a signed request carries upstream in the clear.
    pub fn scrub(&self) -> &Arc<Mediator> {
        &self.scrub
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            region: &self.region,
            service: &self.service,
        }
    }
}

/// All SigV4 routes of a snapshot.
#[derive(Debug, Default)]
pub struct Sigv4Routes(Vec<Sigv4Route>);

impl Sigv4Routes {
    /// Routes from stored mappings (unreadable ones are left out and logged).
    pub fn build(mappings: &[(MappingRecord, Secret)]) -> Self {
        let mut routes = Vec::new();
        for (record, keys) in mappings
            .iter()
            .filter(|(r, _)| r.family == excalibur_core::api::CryptoFamily::Sigv4)
        {
            match Sigv4Route::from_record(record, keys) {
                Some(r) => routes.push(r),
                None => {
                    tracing::error!(mapping = %record.id, "SigV4 mapping is unreadable; left out")
                }
            }
        }
        Self(routes)
    }

    /// Every mapping id with its provider (for policy bindings).
    pub fn bindings(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0.iter().map(|r| (r.id.clone(), r.provider_id.clone()))
    }

    /// The mapping for `host` and `path`: an exact host beats a wildcard, then the
    /// longest path prefix wins.
    pub fn find(&self, host: &str, path: &str) -> Option<&Sigv4Route> {
        self.0
            .iter()
            .filter(|r| r.host.matches(host) && path.starts_with(&r.path_prefix))
            .max_by_key(|r| (!r.host.as_str().starts_with("*."), r.path_prefix.len()))
    }

    /// A mapping by id.
    pub fn get(&self, id: &str) -> Option<&Sigv4Route> {
        self.0.iter().find(|r| r.id == id)
    }
}

/// How the body is covered by the signature.
#[derive(Debug)]
enum Plan {
    /// Body untouched; this literal (or hash) is the payload line.
    Pass(String),
    /// The client's signed aws-chunked body: re-sign every chunk (and the trailer).
    Resign { payload: String, trailer: bool },
    /// The client's event stream: re-sign every message.
    Events,
    /// Unsigned body of known length: encode as signed chunks.
    Encode { decoded: u64 },
    /// Read the body (bounded) and sign its hash.
    Hash,
}

/// The result of signing: the request to send and what the audit event records.
pub(crate) struct Signed {
    pub(crate) parts: Parts,
    pub(crate) body: ProxyBody,
    pub(crate) details: serde_json::Value,
}

/// Why a body was not read whole.
enum Read {
    TooLarge,
    Failed,
}

/// Reads a whole body of at most `cap` bytes. A larger one is read on (and discarded),
/// bounded, so that the refusal reaches a client still sending instead of a reset.
async fn read_capped(mut body: Parked, cap: u64) -> Result<Bytes, Read> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| Read::Failed)?.into_data() else {
            continue;
        };
        if out.len() + data.len() > cap {
            body::drain(body).await;
            return Err(Read::TooLarge);
        }
        out.extend_from_slice(&data);
    }
    Ok(out.freeze())
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Headers the client's own signature covered (`SignedHeaders=` of its Authorization).
fn client_signed(parts: &Parts) -> Vec<String> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("AWS4-"))
        .and_then(|v| v.split("SignedHeaders=").nth(1))
        .map(|v| {
            v.split([',', ' '])
                .next()
                .unwrap_or_default()
                .split(';')
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn plan(route: &Sigv4Route, parts: &Parts, body: &Parked, https: bool) -> Result<Plan, ProxyError> {
    let s3 = route.scope().is_s3();
    let h = &parts.headers;
    let declared = h
        .get("x-amz-content-sha256")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let aws_chunked = h
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|e| e.trim().eq_ignore_ascii_case("aws-chunked"))
        });
    let empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
    let length = body.size_hint().exact();
    Ok(match declared.as_deref() {
        Some(sigv4::STREAMING_PAYLOAD) => Plan::Resign {
            payload: sigv4::STREAMING_PAYLOAD.to_owned(),
            trailer: false,
        },
        Some(sigv4::STREAMING_PAYLOAD_TRAILER) => Plan::Resign {
            payload: sigv4::STREAMING_PAYLOAD_TRAILER.to_owned(),
            trailer: true,
        },
        Some(sigv4::STREAMING_UNSIGNED_TRAILER) => {
            Plan::Pass(sigv4::STREAMING_UNSIGNED_TRAILER.to_owned())
        }
        Some(sigv4::STREAMING_EVENTS) => Plan::Events,
        Some(sigv4::UNSIGNED_PAYLOAD) if https => Plan::Pass(sigv4::UNSIGNED_PAYLOAD.to_owned()),
        Some(sigv4::UNSIGNED_PAYLOAD) => Plan::Hash,
        Some(hash) if is_hex64(hash) => Plan::Pass(hash.to_ascii_lowercase()),
        Some(other) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "sigv4_unsupported_payload",
                &format!(
                    "x-amz-content-sha256 `{other}` is not supported (SigV4a streaming is not)"
                ),
            ));
        }
        None if aws_chunked => {
            if h.contains_key("x-amz-trailer") {
                Plan::Pass(sigv4::STREAMING_UNSIGNED_TRAILER.to_owned())
            } else {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "sigv4_ambiguous_body",
                    "an aws-chunked body needs x-amz-content-sha256 or x-amz-trailer",
                ));
            }
        }
        None if empty => Plan::Pass(sigv4::EMPTY_SHA256.to_owned()),
        None if !s3 => Plan::Hash,
        None => match length {
            Some(n) if n <= HASH_WHOLE_MAX => Plan::Hash,
            Some(n) => Plan::Encode { decoded: n },
            // S3 needs a length (411 otherwise): an upload of unknown length is read,
            // up to the cap, and signed with the length it turned out to have.
            None => Plan::Hash,
        },
    })
}

fn set(parts: &mut Parts, name: &'static str, value: &str) -> Result<(), ProxyError> {
    let v = HeaderValue::from_str(value).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "sigv4_bad_header",
            "a header value is invalid",
        )
    })?;
    parts.headers.insert(HeaderName::from_static(name), v);
    Ok(())
}

/// Signs `parts` for `route` and prepares the body. `authority` is what the upstream
/// request's Host / :authority will be. Nothing is changed on the request after this.
pub(crate) async fn sign(
    route: &Sigv4Route,
    creds: &Credentials,
    mut parts: Parts,
    body: Parked,
    https: bool,
    authority: &str,
    cap: u64,
) -> Result<Signed, ProxyError> {
    let scope = route.scope();
    let s3 = scope.is_s3();
    let client_signed = client_signed(&parts);
    let declared_sha = parts.headers.contains_key("x-amz-content-sha256");
    // The workload's authentication is never forwarded.
    for name in [
        "authorization",
        "x-amz-date",
        "date",
        "x-amz-security-token",
    ] {
        parts.headers.remove(name);
    }
    let scheme = if https { "https" } else { "http" };
    let query = parts.uri.query().unwrap_or_default();
    let (kept, expires, presigned) = match sigv4::strip_sigv2_query_auth(query) {
        // A SigV2 presigned URL is re-presigned as SigV4 with the real key, keeping
        // the object, the method and the expiry; never forwarded with its dummy auth.
        Some((kept, expires_at)) => {
            let now_s = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let Some(left) = expires_at.map(|at| at.saturating_sub(now_s)) else {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "sigv2_presign_unsupported",
                    "a SigV2 presigned URL without `Expires`; make a SigV4 one (`excalibur-ctl crypto sigv4 presign`, or `aws configure set default.s3.signature_version s3v4`)",
                ));
            };
            if left == 0 {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "presigned_url_expired",
                    "the presigned URL has expired",
                ));
            }
            (sigv4::strip_query_auth(&kept).0, Some(left), true)
        }
        None => sigv4::strip_query_auth(query),
    };
    let path = sigv4::canonical_path(parts.uri.path(), s3);
    let url = match sigv4::canonical_query(&kept) {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    };
    let now = SystemTime::now();
    let mut details = serde_json::Map::new();
    details.insert("mapping".into(), json!(route.id));
    details.insert("host".into(), json!(authority));
    details.insert("service".into(), json!(route.service));
    details.insert("region".into(), json!(route.region));
    details.insert("key_id_prefix".into(), json!(creds.key_id_prefix()));

    if presigned {
        let expires = Duration::from_secs(expires.unwrap_or(900).clamp(1, 604_800));
        let payload = if s3 {
            sigv4::UNSIGNED_PAYLOAD
        } else {
            sigv4::EMPTY_SHA256
        };
        let input = SignInput {
            method: parts.method.as_str(),
            url: &url,
            headers: vec![("host", authority)],
            payload,
            time: now,
            s3_uri: s3,
            content_sha256: false,
        };
        let query = sigv4::presign(creds, scope, &input, expires)
            .map_err(|e| refuse(StatusCode::BAD_GATEWAY, "sigv4_failed", &e.to_string()))?;
        let sep = if url.contains('?') { '&' } else { '?' };
        parts.uri = format!("{url}{sep}{query}").parse().map_err(|_| {
            refuse(
                StatusCode::BAD_REQUEST,
                "bad_request_target",
                "the request target is invalid",
            )
        })?;
        details.insert("auth".into(), json!("query"));
        details.insert("expires_in".into(), json!(expires.as_secs()));
        return Ok(Signed {
            parts,
            body: body.map_err(Into::into).boxed_unsync(),
            details: details.into(),
        });
    }

    let plan = plan(route, &parts, &body, https)?;
    let mut buffered = None;
    let mut body = Some(body);
    let payload = match &plan {
        Plan::Pass(p) | Plan::Resign { payload: p, .. } => p.clone(),
        Plan::Events => sigv4::STREAMING_EVENTS.to_owned(),
        Plan::Encode { decoded } => {
            let encoding = match parts
                .headers
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
            {
                Some(e) if !e.is_empty() => format!("aws-chunked,{e}"),
                _ => "aws-chunked".to_owned(),
            };
            set(&mut parts, "content-encoding", &encoding)?;
            set(
                &mut parts,
                "x-amz-decoded-content-length",
                &decoded.to_string(),
            )?;
            set(
                &mut parts,
                "content-length",
                &ChunkEncoder::encoded_len(*decoded).to_string(),
            )?;
            sigv4::STREAMING_PAYLOAD.to_owned()
        }
        Plan::Hash => {
            let Some(incoming) = body.take() else {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "body_read_failed",
                    "the request body could not be read",
                ));
            };
            let unknown_length = incoming.size_hint().exact().is_none();
            let bytes = read_capped(incoming, cap).await.map_err(|read| match read {
                Read::TooLarge if unknown_length => refuse(
                    StatusCode::LENGTH_REQUIRED,
                    "length_required",
                    &format!("an upload of unknown length over {cap} bytes cannot be signed: send Content-Length (or aws-chunked)"),
                ),
                Read::TooLarge => refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the body is too large to hash for signing",
                ),
                Read::Failed => refuse(
                    StatusCode::BAD_REQUEST,
                    "body_read_failed",
                    "the request body could not be read",
                ),
            })?;
            set(&mut parts, "content-length", &bytes.len().to_string())?;
            let hash = sigv4::sha256_hex(&bytes);
            buffered = Some(bytes);
            hash
        }
    };
    let content_sha256 = s3 || declared_sha;
    parts.headers.remove("x-amz-content-sha256");

    // Sign: host, every x-amz-* header, the content headers, and whatever else the
    // client itself had signed that is still going out; never what proxies change.
    let mut names: Vec<String> = Vec::new();
    for name in parts.headers.keys() {
        let n = name.as_str();
        let wanted = n.starts_with("x-amz-")
            || matches!(n, "content-type" | "content-md5" | "content-encoding")
            || client_signed.iter().any(|c| c == n);
        if wanted && !sigv4::UNSIGNABLE.contains(&n) && !names.iter().any(|x| x == n) {
            names.push(n.to_owned());
        }
    }
    let mut headers: Vec<(&str, &str)> = vec![("host", authority)];
    for n in &names {
        for v in parts.headers.get_all(n.as_str()) {
            let v = v.to_str().map_err(|_| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "sigv4_bad_header",
                    "a signed header value is not text",
                )
            })?;
            headers.push((n.as_str(), v));
        }
    }
    let input = SignInput {
        method: parts.method.as_str(),
        url: &url,
        headers,
        payload: &payload,
        time: now,
        s3_uri: s3,
        content_sha256,
    };
    let signed = sigv4::sign(creds, scope, &input)
        .map_err(|e| refuse(StatusCode::BAD_GATEWAY, "sigv4_failed", &e.to_string()))?;
    drop(input);
    for (name, value, sensitive) in signed.headers {
        let mut v = HeaderValue::from_str(&value).map_err(|_| {
            refuse(
                StatusCode::BAD_GATEWAY,
                "sigv4_failed",
                "the signature header is invalid",
            )
        })?;
        v.set_sensitive(sensitive);
        parts.headers.insert(HeaderName::from_static(name), v);
    }
    parts.uri = url.parse().map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "bad_request_target",
            "the request target is invalid",
        )
    })?;
    let chain = || {
        SignatureChain::new(creds, scope, now, signed.signature.clone())
            .map_err(|e| refuse(StatusCode::BAD_GATEWAY, "sigv4_failed", &e.to_string()))
    };
    let upstream_body = |b: Option<Parked>| -> ProxyBody {
        match b {
            Some(b) => b.map_err(Into::into).boxed_unsync(),
            None => body::empty(),
        }
    };
    let (body, mode): (ProxyBody, &str) = match plan {
        Plan::Pass(_) => (upstream_body(body), "pass"),
        Plan::Hash => (body::full(buffered.unwrap_or_else(Bytes::new)), "sha256"),
        Plan::Resign { trailer, .. } => {
            let r: Box<dyn Reframe> = Box::new(ChunkResigner::new(chain()?, trailer, MAX_CHUNK));
            (
                Reframed::new(upstream_body(body.take()), r).boxed_unsync(),
                "chunks_resigned",
            )
        }
        Plan::Encode { .. } => {
            let r: Box<dyn Reframe> = Box::new(ChunkEncoder::new(chain()?));
            (
                Reframed::new(upstream_body(body.take()), r).boxed_unsync(),
                "chunks_signed",
            )
        }
        Plan::Events => {
            let r: Box<dyn Reframe> =
                Box::new(EventResigner::new(chain()?, Box::new(SystemTime::now)));
            (
                Reframed::new(upstream_body(body.take()), r).boxed_unsync(),
                "events_resigned",
            )
        }
    };
    details.insert("auth".into(), json!("header"));
    let payload = if is_hex64(&payload) {
        "sha256"
    } else {
        payload.as_str()
    };
    details.insert("payload".into(), json!(payload));
    details.insert("body".into(), json!(mode));
    Ok(Signed {
        parts,
        body,
        details: details.into(),
    })
}

/// A presigned URL made for an operator.
#[derive(Debug)]
pub struct PresignedUrl {
    /// The URL.
    pub url: String,
    /// Host signed for.
    pub host: String,
    /// Path signed.
    pub path: String,
    /// Method.
    pub method: String,
    /// Lifetime.
    pub expires: Duration,
}

/// Presigns `method path` on `host` (the mapping's host unless it is a wildcard) with a
/// mapping's key. Errors: `None` for an unknown mapping, `Some(reason)` otherwise.
pub fn presign(
    routes: &Sigv4Routes,
    mapping_id: &str,
    method: &str,
    host: Option<&str>,
    path_and_query: &str,
    expires: Duration,
) -> Result<PresignedUrl, Option<String>> {
    let route = routes.get(mapping_id).ok_or(None)?;
    let host = match host {
        Some(h) => h.trim_end_matches('.').to_ascii_lowercase(),
        None if route.host.as_str().starts_with("*.") => {
            return Err(Some(
                "`host` is required: the mapping's target_host is a wildcard".to_owned(),
            ));
        }
        None => route.host.as_str().to_owned(),
    };
    if !route.host.matches(&host) {
        return Err(Some(format!(
            "`host` must match the mapping's target_host `{}`",
            route.host.as_str()
        )));
    }
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    if !path.starts_with('/') || !path.starts_with(&route.path_prefix) {
        return Err(Some(format!(
            "`path` must start with the mapping's path_prefix `{}`",
            route.path_prefix
        )));
    }
    if !matches!(method, "GET" | "HEAD" | "PUT" | "POST" | "DELETE") {
        return Err(Some(
            "`method` must be GET, HEAD, PUT, POST or DELETE".to_owned(),
        ));
    }
    let scope = route.scope();
    let s3 = scope.is_s3();
    let (kept, _, _) = sigv4::strip_query_auth(query);
    let wire_path = sigv4::canonical_path(path, s3);
    let url = match sigv4::canonical_query(&kept) {
        Some(q) => format!("https://{host}{wire_path}?{q}"),
        None => format!("https://{host}{wire_path}"),
    };
    let input = SignInput {
        method,
        url: &url,
        headers: vec![("host", &host)],
        payload: if s3 {
            sigv4::UNSIGNED_PAYLOAD
        } else {
            sigv4::EMPTY_SHA256
        },
        time: SystemTime::now(),
        s3_uri: s3,
        content_sha256: false,
    };
    let creds = route.creds.as_ref().ok_or_else(|| {
        Some(
            "this mapping assumes a role: presigned URLs need a mapping with a static key"
                .to_owned(),
        )
    })?;
    let q = sigv4::presign(creds, scope, &input, expires).map_err(|e| Some(e.to_string()))?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(PresignedUrl {
        url: format!("{url}{sep}{q}"),
        host,
        path: path.to_owned(),
        method: method.to_owned(),
        expires,
    })
}
