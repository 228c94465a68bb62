//! Upstream connections: resolve (with operator overrides), check every address with
//! the guard, connect to the checked address (no second lookup, so no DNS rebinding
//! window), TLS with SNI = the target host. Pooled by hyper, one pool per protocol
//! offered ([`Clients`]): a request the workload sent over HTTP/1.1 goes upstream over
//! HTTP/1.1, one sent over HTTP/2 is offered h2 (and HTTP/1.1) by ALPN.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::guard;

/// Upstream settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `(host, port) -> address` overrides, like curl `--resolve`. Targets are trusted.
    pub resolve: Vec<(String, u16, SocketAddr)>,
    /// Extra trusted roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// TCP connect (and DNS) timeout.
    pub connect_timeout: Duration,
    /// Allow private and loopback destinations (tests, on-prem). Off by default.
    pub dangerous_allow_private_destinations: bool,
    /// Excalibur's own listener addresses: never a destination (proxy loops).
    pub own_addrs: Vec<SocketAddr>,
}

/// Why the gateway refused or failed to connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Every resolved address is forbidden.
    #[error("destination `{host}` resolves to a forbidden address ({reason})")]
    Forbidden {
        /// Host.
        host: String,
        /// Guard reason.
        reason: &'static str,
    },
    /// The destination is one of Excalibur's own listeners.
    #[error("destination `{0}` is this gateway")]
    Loop(String),
    /// Resolution failed.
    #[error("cannot resolve `{0}`")]
    Resolve(String, #[source] io::Error),
    /// Connect or resolve timed out.
    #[error("connecting to `{0}` timed out")]
    Timeout(String),
    /// TCP connect failed.
    #[error("cannot connect to `{0}`")]
    Connect(String, #[source] io::Error),
    /// TLS handshake failed.
    #[error("TLS handshake with `{0}` failed")]
    Tls(String, #[source] io::Error),
    /// The URI had no host.
    #[error("request has no destination host")]
    NoHost,
}

impl ConnectError {
    /// The proxy reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectError::Forbidden { .. } => "destination_forbidden",
            ConnectError::Loop(_) => "proxy_loop",
            ConnectError::Resolve(..) => "upstream_resolve_failed",
            ConnectError::Timeout(_) => "upstream_timeout",
            ConnectError::Connect(..) => "upstream_connect_failed",
            ConnectError::Tls(..) => "upstream_tls_failed",
            ConnectError::NoHost => "bad_request",
        }
    }
}

/// Resolves and guards `host:port`, then opens a TCP connection to a checked address.
pub async fn connect_tcp(
    cfg: &UpstreamConfig,
    host: &str,
    port: u16,
) -> Result<TcpStream, ConnectError> {
    let host_lc = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let overridden = cfg
        .resolve
        .iter()
        .find(|(h, p, _)| *h == host_lc && *p == port)
        .map(|(_, _, a)| *a);
    let candidates: Vec<SocketAddr> = match overridden {
        Some(addr) => vec![addr],
        None => {
            let lookup = tokio::net::lookup_host((host_lc.as_str(), port));
            let addrs = tokio::time::timeout(cfg.connect_timeout, lookup)
                .await
                .map_err(|_| ConnectError::Timeout(host_lc.clone()))?
                .map_err(|e| ConnectError::Resolve(host_lc.clone(), e))?
                .collect::<Vec<_>>();
            let mut allowed = Vec::new();
            let mut last_reason = "no addresses";
            for a in addrs {
                match guard::forbidden(a.ip()) {
                    Some(reason) if !cfg.dangerous_allow_private_destinations => {
                        last_reason = reason
                    }
                    _ => allowed.push(a),
                }
            }
            if allowed.is_empty() {
                return Err(ConnectError::Forbidden {
                    host: host_lc,
                    reason: last_reason,
                });
            }
            allowed
        }
    };
    let mut last_err = None;
    for addr in candidates {
        if is_own(cfg, addr) {
            return Err(ConnectError::Loop(host_lc));
        }
        match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Ok(Err(e)) => last_err = Some(ConnectError::Connect(host_lc.clone(), e)),
            Err(_) => last_err = Some(ConnectError::Timeout(host_lc.clone())),
        }
    }
    Err(last_err.unwrap_or(ConnectError::NoHost))
}

fn is_own(cfg: &UpstreamConfig, addr: SocketAddr) -> bool {
    cfg.own_addrs.iter().any(|own| {
        own.port() == addr.port()
            && (own.ip() == addr.ip().to_canonical()
                || (own.ip().is_unspecified()
                    && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
    })
}

/// Builds the upstream TLS client config: system roots plus `extra_roots`, ALPN h2 and http/1.1.
pub fn client_tls(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, rustls::Error> {
    client_tls_with(Arc::new(roots(extra_roots)?), None, Offer::Http2)
}

/// The protocols an upstream connection offers by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// `http/1.1` alone.
    Http1,
    /// `h2`, then `http/1.1`.
    Http2,
}

/// The upstream clients of one TLS identity, one per [`Offer`], each with its own pool.
///
/// A request follows the protocol the workload chose. An HTTP/1.1 request to an h2
/// pool would ride one multiplexed connection driven by a task of its own, and the
/// request path would pay a hand-off to that task and back for every frame: measured
/// with `bench/peers.sh` on loopback, that added about 40% to the proxy's CPU for a
/// keep-alive request at one client and about 10% per MB of a download. A workload
/// speaking HTTP/2 (gRPC needs it) is offered h2 upstream.
#[derive(Clone, Debug)]
pub struct Clients {
    http1: Client<Connector, crate::body::ProxyBody>,
    http2: Client<Connector, crate::body::ProxyBody>,
}

impl Clients {
    /// Both clients over `cfg`, trusting `roots`, presenting `identity` when given; each
    /// pool keeps up to `idle_per_host` idle connections for 60 s.
    pub fn new(
        cfg: &Arc<UpstreamConfig>,
        roots: &Arc<rustls::RootCertStore>,
        identity: Option<(
            Vec<CertificateDer<'static>>,
            rustls_pki_types::PrivateKeyDer<'static>,
        )>,
        idle_per_host: usize,
    ) -> Result<Self, rustls::Error> {
        let second = identity
            .as_ref()
            .map(|(certs, key)| (certs.clone(), key.clone_key()));
        let http1 = client_tls_with(Arc::clone(roots), identity, Offer::Http1)?;
        let http2 = client_tls_with(Arc::clone(roots), second, Offer::Http2)?;
        let build = |connector| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(idle_per_host)
                .build(connector)
        };
        Ok(Self {
            // An h2-only upstream refuses `http/1.1` alone: it gets h2 offered too.
            http1: build(Connector::with_fallback(
                Arc::clone(cfg),
                http1,
                Arc::clone(&http2),
            )),
            http2: build(Connector::new(Arc::clone(cfg), http2)),
        })
    }

    /// The client for a request the workload sent over HTTP/2 (`h2`) or HTTP/1.x.
    pub fn for_workload(&self, h2: bool) -> &Client<Connector, crate::body::ProxyBody> {
        if h2 { &self.http2 } else { &self.http1 }
    }

    /// The client for the gateway's own requests (token endpoints): HTTP/1.1.
    pub fn own(&self) -> &Client<Connector, crate::body::ProxyBody> {
        &self.http1
    }
}

/// The system roots plus `extra_roots`.
pub fn roots(
    extra_roots: &[CertificateDer<'static>],
) -> Result<rustls::RootCertStore, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for cert in extra_roots {
        roots.add(cert.clone())?;
    }
    Ok(roots)
}

/// Upstream TLS trusting `roots`, presenting `identity` (chain and key) when given,
/// offering `offer` by ALPN.
pub fn client_tls_with(
    roots: Arc<rustls::RootCertStore>,
    identity: Option<(
        Vec<CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    )>,
    offer: Offer,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = match offer {
        Offer::Http1 => vec![b"http/1.1".to_vec()],
        Offer::Http2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(Arc::new(cfg))
}

/// The hyper connector: `Service<Uri>` over [`connect_tcp`] and rustls.
#[derive(Clone)]
pub struct Connector {
    cfg: Arc<UpstreamConfig>,
    tls: TlsConnector,
    /// Offers h2 too, on a new connection, when an upstream refuses `tls`'s ALPN offer
    /// (an h2-only server answers `http/1.1` alone with `no_application_protocol`).
    fallback: Option<TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector with these settings and TLS config.
    pub fn new(cfg: Arc<UpstreamConfig>, tls: Arc<ClientConfig>) -> Self {
        Self {
            cfg,
            tls: TlsConnector::from(tls),
            fallback: None,
        }
    }

    /// As [`Self::new`], retrying with `fallback` (on a new connection) when the
    /// upstream refuses the protocols `tls` offers.
    fn with_fallback(
        cfg: Arc<UpstreamConfig>,
        tls: Arc<ClientConfig>,
        fallback: Arc<ClientConfig>,
    ) -> Self {
        Self {
            fallback: Some(TlsConnector::from(fallback)),
            ..Self::new(cfg, tls)
        }
    }

    /// TLS over a new checked connection to `host:port`, with `tls`.
    async fn tls(
        &self,
        tls: &TlsConnector,
        host: &str,
        port: u16,
        name: ServerName<'static>,
    ) -> Result<TlsStream<TcpStream>, ConnectError> {
        let tcp = connect_tcp(&self.cfg, host, port).await?;
        tokio::time::timeout(self.cfg.connect_timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| ConnectError::Timeout(host.to_owned()))?
            .map_err(|e| ConnectError::Tls(host.to_owned(), e))
    }
}

/// The upstream refused every protocol offered by ALPN.
fn refused_alpn(e: &ConnectError) -> bool {
    matches!(e, ConnectError::Tls(_, io) if io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
        == Some(&rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)))
}

impl tower_service::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or(ConnectError::NoHost)?.to_owned();
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            if !https {
                let tcp = connect_tcp(&this.cfg, &host, port).await?;
                return Ok(UpstreamIo::Plain(TokioIo::new(tcp)));
            }
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_owned()).map_err(|e| {
                ConnectError::Tls(host.clone(), io::Error::new(io::ErrorKind::InvalidInput, e))
            })?;
            let tls = match (
                this.tls(&this.tls, &host, port, name.clone()).await,
                &this.fallback,
            ) {
                (Err(e), Some(fallback)) if refused_alpn(&e) => {
                    this.tls(fallback, &host, port, name).await?
                }
                (first, _) => first?,
            };
            Ok(UpstreamIo::Tls(TokioIo::new(Box::new(tls))))
        })
    }
}

/// An upstream connection, plain or TLS.
#[derive(Debug)]
pub enum UpstreamIo {
    /// Plain TCP (http:// targets).
    Plain(TokioIo<TcpStream>),
    /// TLS.
    Tls(TokioIo<Box<TlsStream<TcpStream>>>),
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        match self {
            UpstreamIo::Plain(_) => Connected::new(),
            UpstreamIo::Tls(t) => {
                let h2 = t.inner().get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

impl Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
