//! A real upstream for tests: HTTPS (h2 and http/1.1, cert from a test CA for the names
//! it serves) and plain HTTP on 127.0.0.1. It records every request and echoes it back,
//! headers and body, the way a careless API would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Headers (lowercase names; repeated names joined by `, `).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// `true` when it came over TLS.
    pub tls: bool,
}

impl Seen {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Everything the upstream received, as text, for leak checks.
    pub fn text(&self) -> String {
        let mut s = format!("{} {} {}\n", self.method, self.path, self.version);
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\n"));
        }
        s.push_str(&String::from_utf8_lossy(&self.body));
        s
    }
}

/// A running echo upstream.
#[derive(Debug, Clone)]
pub struct Echo {
    /// TLS listener.
    pub tls_addr: SocketAddr,
    /// Plain HTTP listener.
    pub plain_addr: SocketAddr,
    /// The test CA (PEM) that signed its certificate.
    pub ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Echo {
    /// Starts the echo server with a certificate for `names`.
    pub async fn start(names: &[&str]) -> anyhow::Result<Self> {
        let (tls, ca_pem) = test_tls(names, &[b"h2", b"http/1.1"])?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let seen = Arc::new(Mutex::new(Vec::new()));

        let tls_listener = TcpListener::bind("127.0.0.1:0").await?;
        let plain_listener = TcpListener::bind("127.0.0.1:0").await?;
        let echo = Self {
            tls_addr: tls_listener.local_addr()?,
            plain_addr: plain_listener.local_addr()?,
            ca_pem,
            seen: Arc::clone(&seen),
        };
        let seen_tls = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = tls_listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen_tls));
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        serve(TokioIo::new(stream), seen, true).await;
                    }
                });
            }
        });
        tokio::spawn(async move {
            while let Ok((tcp, _)) = plain_listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move { serve(TokioIo::new(tcp), seen, false).await });
            }
        });
        Ok(echo)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The test CA as DER, for clients that trust it directly.
    pub fn ca_der(&self) -> anyhow::Result<CertificateDer<'static>> {
        use rustls_pki_types::pem::PemObject as _;
        Ok(CertificateDer::from_pem_slice(self.ca_pem.as_bytes())?)
    }
}

/// A server TLS config with a leaf for `names` signed by a fresh test CA, offering
/// `alpn`; and that CA as PEM.
pub fn test_tls(names: &[&str], alpn: &[&[u8]]) -> anyhow::Result<(rustls::ServerConfig, String)> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test Upstream CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?
        .signed_by(&leaf_key, &issuer)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone(), ca_cert.der().clone()],
        PrivateKeyDer::try_from(leaf_key.serialize_der()).map_err(anyhow::Error::msg)?,
    )?;
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok((tls, ca_cert.pem()))
}

async fn serve<I>(io: TokioIo<I>, seen: Arc<Mutex<Vec<Seen>>>, tls: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let seen = Arc::clone(&seen);
        async move { Ok::<_, Infallible>(echo(req, seen, tls).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

async fn echo(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    tls: bool,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let mut headers: Vec<(String, String)> = Vec::new();
    for name in parts.headers.keys() {
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>();
        headers.push((name.as_str().to_owned(), joined.join(", ")));
    }
    let record = Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        version: format!("{:?}", parts.version),
        headers,
        body,
        tls,
    };
    let reply: Value = json!({
        "method": record.method,
        "path": record.path,
        "version": record.version,
        "headers": record.headers.iter().map(|(n, v)| (n.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "body": String::from_utf8_lossy(&record.body),
    });
    let authorization = record
        .header("authorization")
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut s) = seen.lock() {
        s.push(record);
    }
    let mut resp = Response::new(Full::new(Bytes::from(reply.to_string())));
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&authorization) {
        // A careless API echoing the credential in a header.
        resp.headers_mut().insert("x-echo-authorization", v);
    }
    resp
}
