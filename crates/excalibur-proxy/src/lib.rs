//! Excalibur's data plane: the forward-proxy request path. CONNECT and absolute-form
//! requests are identified, decided, mediated, forwarded, scrubbed and recorded.
//!
//! **Owns:** the CA and its leaf cache, TLS interception, [`Snapshot`], the upstream
//! connector and destination guard, the request pipeline ([`Proxy::handle`]).
//!
//! **Never:** touches the store on the request path (it reads one [`Snapshot`] per
//! request); substitutes a secret without a [`Permit`](excalibur_policy::Permit);
//! forwards `Proxy-Authorization`; checks a destination by `Host` alone (the CONNECT
//! authority, SNI and `Host` must agree, and the resolved address is guarded).
//!
//! **Start at:** [`Proxy::handle`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use excalibur_core::ids::CredentialId;
use excalibur_core::record::Recorder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod assume;
pub mod body;
pub mod ca;
mod decide;
pub mod dpop;
mod encoding;
mod error;
pub mod guard;
pub mod jwt_bearer;
mod mediate;
pub mod metrics;
pub mod mtls;
pub mod oauth_refresh;
mod pipeline;
pub mod scrub;
mod send;
pub mod sigv4;
pub mod snapshot;
mod token;
mod tunnel;
pub mod upstream;

pub use body::ProxyBody;

/// What a client certificate on the TLS listener established.
#[derive(Debug, Clone)]
pub enum TlsIdentity {
    /// A verified X.509-SVID.
    Svid(Box<excalibur_core::principal::Principal>),
    /// A certificate was presented but is not an acceptable X.509-SVID: why
    /// (`svid_uri_san_count`, `svid_trust_domain_unknown`, ...).
    Refused(&'static str),
}
pub use snapshot::{Delta, Snapshot, SnapshotInput};

/// Actions the proxy needs from the control plane (implemented by the binary).
pub trait Control: Send + Sync + std::fmt::Debug {
    /// Revokes a credential (e.g. presented from outside its source network) and
    /// returns once the new snapshot is in place.
    fn revoke_credential(
        &self,
        id: CredentialId,
        reason: &'static str,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Stores new sealed secret material for a crypto mapping the proxy itself changed
    /// (a rotated OAuth2 refresh token), keeping its settings.
    /// `generation` is the operator generation the secret belongs to: if an operator has
    /// replaced the mapping since, the proxy's value is stale and is not written.
    fn store_mapping_secret(
        &self,
        id: String,
        generation: u64,
        secret: excalibur_core::Secret,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Signs a short-lived JWT as Excalibur's OIDC issuer (its published keys) for
    /// `AssumeRoleWithWebIdentity`: `sub` and `aud` as given.
    fn web_identity_token(
        &self,
        subject: String,
        audience: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;
}

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Upstream connection settings.
    pub upstream: upstream::UpstreamConfig,
    /// Largest request body rewritten for substitution (bytes).
    pub max_substitute_body: u64,
    /// Largest response body decoded (gzip, deflate) so it can be scrubbed (bytes).
    pub max_decoded_response: u64,
    /// This instance's pseudonym in `Via`, used to detect loops.
    pub via_name: String,
    /// Time the upstream has to answer with a response head.
    pub request_timeout: std::time::Duration,
    /// The limits of every HTTP connection a workload opens, the tunnels' inner ones
    /// too.
    pub http: HttpLimits,
    /// Metric handles.
    pub metrics: metrics::ProxyMetrics,
}

/// Limits on a workload's HTTP connection (`[limits]`): the same on the proxy port and
/// inside every intercepted tunnel.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time a request head has to arrive.
    pub header_read_timeout: std::time::Duration,
    /// Largest request head (bytes): HTTP/1 buffer, HTTP/2 header list.
    pub max_header_bytes: usize,
    /// Most header fields in an HTTP/1 request.
    pub max_headers: usize,
}

impl HttpLimits {
    /// A server connection builder (HTTP/1 and HTTP/2) that enforces these limits.
    pub fn server(&self) -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
        use hyper_util::rt::{TokioExecutor, TokioTimer};
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes)
            .max_headers(self.max_headers);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256)
            .max_pending_accept_reset_streams(64);
        builder
    }

    /// Whether a parsed request head fits `max_header_bytes`, counted as HTTP/1 carries
    /// it (request line, and `name: value\r\n` per field). hyper-util's auto builder
    /// (the proxy and API port) caps only its read buffer, and one read may carry a
    /// whole head larger than that, so every server checks the parsed head too.
    pub fn head_fits<B>(&self, req: &hyper::Request<B>) -> bool {
        let uri = req.uri();
        let mut size = req.method().as_str().len()
            + uri.scheme_str().map_or(0, str::len)
            + uri.authority().map_or(0, |a| a.as_str().len())
            + uri.path_and_query().map_or(0, |p| p.as_str().len())
            + 16;
        for (name, value) in req.headers() {
            size += name.as_str().len() + value.len() + 4;
            if size > self.max_header_bytes {
                return false;
            }
        }
        size <= self.max_header_bytes
    }

    /// An HTTP/1 server connection builder that enforces these limits (the tunnels'
    /// own, which can be parked).
    pub(crate) fn http1(&self) -> hyper::server::conn::http1::Builder {
        let mut builder = hyper::server::conn::http1::Builder::new();
        // `max_buf_size` alone is not a cap: one read may fill more than it, and a whole
        // head that arrives in such a read is parsed. `max_header_size` checks the head.
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes)
            .max_header_size(self.max_header_bytes)
            .max_headers(self.max_headers);
        builder
    }
}

/// The proxy: cheap to clone, shared by every listener.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: Arc<ArcSwap<Snapshot>>,
    ca: Arc<ca::CertAuthority>,
    client: upstream::Clients,
    upstream: Arc<upstream::UpstreamConfig>,
    recorder: Arc<dyn Recorder>,
    control: Arc<dyn Control>,
    max_substitute_body: u64,
    max_decoded_response: u64,
    request_timeout: std::time::Duration,
    http: HttpLimits,
    metrics: metrics::ProxyMetrics,
    via: http::HeaderValue,
    via_name: String,
    tasks: TaskTracker,
    cancel: CancellationToken,
    tokens: jwt_bearer::TokenCache,
    mtls_clients: mtls::MtlsClients,
    dpop_nonces: dpop::Nonces,
    refresh_cache: oauth_refresh::RefreshCache,
    role_cache: assume::RoleCache,
    roots: Arc<rustls::RootCertStore>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("via", &self.via_name)
            .finish_non_exhaustive()
    }
}

/// The proxy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProxyBuildError {
    /// The upstream TLS configuration was rejected.
    #[error("invalid upstream TLS configuration")]
    Tls(#[source] rustls::Error),
    /// The `Via` name is not a valid header value.
    #[error("invalid via name")]
    Via,
}

impl Proxy {
    /// Builds the proxy. Tunnels run as tasks on `tasks` and end when `cancel` fires.
    pub fn new(
        config: ProxyConfig,
        snapshot: Arc<ArcSwap<Snapshot>>,
        ca: Arc<ca::CertAuthority>,
        recorder: Arc<dyn Recorder>,
        control: Arc<dyn Control>,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Self, ProxyBuildError> {
        let roots =
            Arc::new(upstream::roots(&config.upstream.extra_roots).map_err(ProxyBuildError::Tls)?);
        let upstream = Arc::new(config.upstream);
        let client =
            upstream::Clients::new(&upstream, &roots, None, 64).map_err(ProxyBuildError::Tls)?;
        let via = http::HeaderValue::from_str(&format!("1.1 {}", config.via_name))
            .map_err(|_| ProxyBuildError::Via)?;
        Ok(Self {
            inner: Arc::new(Inner {
                snapshot,
                ca,
                client,
                upstream,
                recorder,
                control,
                max_substitute_body: config.max_substitute_body,
                max_decoded_response: config.max_decoded_response,
                request_timeout: config.request_timeout,
                http: config.http,
                metrics: config.metrics,
                via,
                via_name: config.via_name,
                tasks,
                cancel,
                tokens: jwt_bearer::TokenCache::default(),
                mtls_clients: mtls::MtlsClients::default(),
                dpop_nonces: dpop::Nonces::default(),
                refresh_cache: oauth_refresh::RefreshCache::default(),
                role_cache: assume::RoleCache::default(),
                roots,
            }),
        })
    }
}
