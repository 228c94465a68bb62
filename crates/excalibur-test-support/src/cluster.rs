//! A fake Kubernetes cluster for token-exchange tests: ES256 signing keys, a JWKS served
//! over HTTP on 127.0.0.1 (swappable, for key rotation), and projected SA tokens.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::KeyPair;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One signing key.
#[derive(Debug)]
pub struct ClusterKey {
    /// Key id.
    pub kid: String,
    key: KeyPair,
}

impl ClusterKey {
    /// A fresh P-256 key.
    pub fn generate(kid: &str) -> anyhow::Result<Self> {
        Ok(Self {
            kid: kid.to_owned(),
            key: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        })
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        let raw = self.key.public_key_raw();
        let (x, y) = (
            raw.get(1..33).unwrap_or_default(),
            raw.get(33..65).unwrap_or_default(),
        );
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
    }

    /// The public JWK with another `use` (SPIFFE bundles use `jwt-svid`).
    pub fn jwk_with_use(&self, key_use: &str) -> Value {
        let mut jwk = self.jwk();
        jwk["use"] = json!(key_use);
        jwk
    }

    /// Signs `claims` as an ES256 JWT with this key's `kid` (or `kid_override`).
    pub fn sign(&self, claims: &Value, kid_override: Option<&str>) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid_override.unwrap_or(&self.kid).to_owned());
        let key = EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes())?;
        Ok(jsonwebtoken::encode(&header, claims, &key)?)
    }
}

/// Projected SA token claims, as the kube-apiserver writes them.
pub fn sa_claims(
    issuer: &str,
    audience: &str,
    namespace: &str,
    sa: &str,
    exp_in_secs: i64,
    jti: &str,
) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let now = i64::try_from(now).unwrap_or(0);
    json!({
        "aud": [audience], "exp": now + exp_in_secs, "iat": now - 5, "nbf": now - 5, "iss": issuer, "jti": jti,
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "n-1"},
            "pod": {"name": format!("{sa}-7d9f"), "uid": "p-1"},
            "serviceaccount": {"name": sa, "uid": "s-1"}
        },
        "sub": format!("system:serviceaccount:{namespace}:{sa}"),
    })
}

/// A JWKS endpoint whose document can be replaced.
#[derive(Debug, Clone)]
pub struct JwksServer {
    /// Its address; the JWKS is at `/openid/v1/jwks`.
    pub addr: SocketAddr,
    doc: Arc<Mutex<String>>,
    tls: bool,
    seen: Arc<Mutex<Vec<String>>>,
}

impl JwksServer {
    /// Serves `keys` as a JWKS.
    pub async fn start(keys: &[&ClusterKey]) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = Self {
            addr: listener.local_addr()?,
            doc: Arc::new(Mutex::new(String::new())),
            tls: false,
            seen: Arc::default(),
        };
        server.publish(keys);
        let doc = Arc::clone(&server.doc);
        let base = format!("http://{}", server.addr);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (doc, base) = (Arc::clone(&doc), base.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            // OIDC discovery names this server as the issuer and its JWKS.
                            let body = if req.uri().path() == "/.well-known/openid-configuration" {
                                json!({"issuer": base, "jwks_uri": format!("{base}/openid/v1/jwks")}).to_string()
                            } else {
                                doc.lock().map(|d| d.clone()).unwrap_or_default()
                            };
                            async move {
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                            }
                        },
                    );
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(server)
    }

    /// Serves `keys` over HTTPS (a certificate for 127.0.0.1 from a fresh test CA,
    /// returned as PEM), like an in-cluster API server: 401 unless the request carries
    /// `Authorization: Bearer <bearer>`. The answered requests' authorization headers
    /// are kept ([`JwksServer::authorizations`]).
    pub async fn start_tls(keys: &[&ClusterKey], bearer: &str) -> anyhow::Result<(Self, String)> {
        let (tls, ca_pem) = crate::upstream::test_tls(&["127.0.0.1"], &[b"http/1.1"])?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = Self {
            addr: listener.local_addr()?,
            doc: Arc::new(Mutex::new(String::new())),
            tls: true,
            seen: Arc::default(),
        };
        server.publish(keys);
        let (doc, seen) = (Arc::clone(&server.doc), Arc::clone(&server.seen));
        let want = format!("Bearer {bearer}");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, doc, seen, want) = (
                    acceptor.clone(),
                    Arc::clone(&doc),
                    Arc::clone(&seen),
                    want.clone(),
                );
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let auth = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            if let Ok(mut s) = seen.lock() {
                                s.push(auth.clone());
                            }
                            let resp = if auth == want {
                                Response::new(Full::new(Bytes::from(
                                    doc.lock().map(|d| d.clone()).unwrap_or_default(),
                                )))
                            } else {
                                let mut r = Response::new(Full::new(Bytes::from("Unauthorized")));
                                *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                                r
                            };
                            async move { Ok::<_, Infallible>(resp) }
                        },
                    );
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok((server, ca_pem))
    }

    /// The `Authorization` values of the requests this server answered (TLS servers).
    pub fn authorizations(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Replaces the published keys.
    pub fn publish(&self, keys: &[&ClusterKey]) {
        let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string();
        if let Ok(mut d) = self.doc.lock() {
            *d = doc;
        }
    }

    /// Replaces the published document with arbitrary JSON (e.g. a SPIFFE bundle).
    pub fn publish_raw(&self, doc: &Value) {
        if let Ok(mut d) = self.doc.lock() {
            *d = doc.to_string();
        }
    }

    /// Its base URL (the issuer, for OIDC discovery).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JWKS URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/openid/v1/jwks", self.addr)
    }
}

/// A SPIFFE trust domain's X.509 CA for tests, issuing SVID leaves.
#[derive(Debug)]
pub struct SvidAuthority {
    issuer: rcgen::Issuer<'static, KeyPair>,
    /// The CA certificate (the trust domain's X.509 bundle), PEM.
    pub ca_pem: String,
}

impl SvidAuthority {
    /// A new CA for `trust_domain`.
    pub fn new(trust_domain: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, trust_domain);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params.subject_alt_names = vec![rcgen::SanType::URI(
            format!("spiffe://{trust_domain}").try_into()?,
        )];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// An X.509-SVID leaf with these URI SANs: `(certificate PEM, private key PEM)`.
    pub fn leaf(&self, uris: &[&str]) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = uris
            .iter()
            .map(|u| Ok(rcgen::SanType::URI((*u).to_owned().try_into()?)))
            .collect::<anyhow::Result<_>>()?;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}
