//! The Excalibur CA: an ECDSA P-256 root that signs the API listener's certificate and
//! the leaves used to terminate intercepted TLS. Leaves are minted off the async
//! threads and cached as ready `ServerConfig`s, and re-minted once they have lived two
//! thirds of their validity: a gateway up for months never presents an expired leaf.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use excalibur_core::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs as provider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Most leaves kept in the cache before it is cleared.
const LEAF_CACHE_CAPACITY: usize = 4096;

/// How long minted leaves are valid by default.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(30 * 86400);

/// Errors creating or using the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Certificate generation or signing failed.
    #[error("certificate generation failed")]
    Generate(#[source] rcgen::Error),
    /// The stored CA material did not parse.
    #[error("the stored CA certificate or key is invalid")]
    Load,
    /// rustls rejected the generated material.
    #[error("TLS configuration failed")]
    Tls(#[source] rustls::Error),
    /// The minting task failed.
    #[error("leaf minting task failed")]
    Task,
}

/// The CA and its leaf cache.
pub struct CertAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    /// Cached leaves and when they were minted.
    leaves: Mutex<HashMap<String, (Arc<ServerConfig>, Instant)>>,
    leaf_validity: Duration,
    /// The CA certificate's own `notAfter`, Unix seconds.
    not_after: i64,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Excalibur CA");
    dn.push(DnType::OrganizationName, "Excalibur");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = false;
    params
}

impl CertAuthority {
    /// Generates a new CA (10-year validity). Returns the CA and its private key PEM,
    /// which the caller seals into the store.
    pub fn generate() -> Result<(Self, Secret), CaError> {
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let mut params = ca_params();
        let now = time_now();
        params.not_before = now - std::time::Duration::from_secs(3600);
        params.not_after = now + std::time::Duration::from_secs(10 * 365 * 86400);
        let cert = params.self_signed(&key).map_err(CaError::Generate)?;
        let key_pem = Secret::new(key.serialize_pem().into_bytes());
        let ca = Self::from_parts(cert.pem(), key)?;
        Ok((ca, key_pem))
    }

    /// Loads a CA from its certificate PEM and private key PEM.
    pub fn load(cert_pem: &str, key_pem: &Secret) -> Result<Self, CaError> {
        let key_str = std::str::from_utf8(key_pem.expose()).map_err(|_| CaError::Load)?;
        let key = KeyPair::from_pem(key_str).map_err(|_| CaError::Load)?;
        Self::from_parts(cert_pem.to_owned(), key)
    }

    fn from_parts(cert_pem: String, key: KeyPair) -> Result<Self, CaError> {
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| CaError::Load)?;
        // The issuer is the certificate's own subject (an operator's CA has its own name).
        let not_after = {
            use x509_parser::prelude::FromDer as _;
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&cert_der)
                .map_err(|_| CaError::Load)?;
            cert.validity().not_after.timestamp()
        };
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|_| CaError::Load)?;
        Ok(Self {
            not_after,
            issuer,
            cert_pem,
            cert_der,
            leaves: Mutex::new(HashMap::new()),
            leaf_validity: DEFAULT_LEAF_VALIDITY,
        })
    }

    /// Leaves minted from now on are valid for `validity` (at least 3 s) and renewed
    /// after two thirds of it.
    #[must_use]
    pub fn with_leaf_validity(mut self, validity: Duration) -> Self {
        self.leaf_validity = validity.max(Duration::from_secs(3));
        self
    }

    /// When the CA certificate itself expires (Unix seconds): leaves cannot outlive it,
    /// and workloads stop trusting everything it signed.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// How long leaves are valid.
    pub fn leaf_validity(&self) -> Duration {
        self.leaf_validity
    }

    /// When a leaf minted now should be replaced: after two thirds of its validity.
    pub fn renew_after(&self) -> Duration {
        self.leaf_validity * 2 / 3
    }

    /// The CA certificate, PEM: what workloads add to their trust store.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Mints a leaf for `names` (DNS names or IP literals) and returns the certified key
    /// with the chain `[leaf, CA]`. CPU-bound: call off the async threads.
    pub fn mint(&self, names: &[String]) -> Result<CertifiedKey, CaError> {
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or("excalibur"),
        );
        params.distinguished_name = dn;
        params.subject_alt_names = names
            .iter()
            .filter_map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Some(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().ok().map(SanType::DnsName),
            })
            .collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = time_now();
        params.not_before = now - std::time::Duration::from_secs(3600);
        params.not_after = now + self.leaf_validity;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(CaError::Generate)?;
        let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|_| CaError::Load)?;
        let signer = provider::sign::any_supported_type(&key_der).map_err(CaError::Tls)?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), self.cert_der.clone()],
            signer,
        ))
    }

    /// A TLS server config presenting a leaf for `name`, minted on first use (on a
    /// blocking thread) and cached. ALPN offers `h2` and `http/1.1`.
    pub async fn server_config(self: &Arc<Self>, name: &str) -> Result<Arc<ServerConfig>, CaError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let renew_after = self.renew_after();
        let cached = self.leaves.lock().ok().and_then(|m| {
            m.get(&name)
                .filter(|(_, minted)| minted.elapsed() < renew_after)
                .map(|(cfg, _)| Arc::clone(cfg))
        });
        if let Some(cfg) = cached {
            return Ok(cfg);
        }
        let ca = Arc::clone(self);
        let n = name.clone();
        let key = tokio::task::spawn_blocking(move || ca.mint(&[n]))
            .await
            .map_err(|_| CaError::Task)??;
        let cfg = server_config_for(key)?;
        if let Ok(mut m) = self.leaves.lock() {
            if m.len() >= LEAF_CACHE_CAPACITY {
                m.clear();
            }
            m.insert(name, (Arc::clone(&cfg), Instant::now()));
        }
        Ok(cfg)
    }
}

/// A server config presenting `key`, with ALPN `h2` and `http/1.1`.
pub fn server_config_for(key: CertifiedKey) -> Result<Arc<ServerConfig>, CaError> {
    server_config_with_clients(key, None)
}

/// Like [`server_config_for`], optionally asking for (not requiring) a client
/// certificate that `clients` verifies (X.509-SVIDs on the 8443 listener).
pub fn server_config_with_clients(
    key: CertifiedKey,
    clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, CaError> {
    server_config_resolving(Arc::new(FixedCert(Arc::new(key))), clients)
}

/// The crypto toward workloads: aws-lc-rs's defaults (post-quantum hybrid key exchange
/// first), with the AES-128-GCM suites first. A TLS 1.3 handshake runs HKDF over the
/// suite's hash a dozen times; SHA-256 has CPU instructions (x86 SHA-NI, ARMv8), SHA-384
/// mostly not: a third of the handshake's symmetric CPU. The server's order is the one
/// used, so a client that lists AES-256 first still gets AES-128 (both are TLS 1.3's
/// AEADs at 128 bits of security or more).
fn workload_provider() -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite as S;
    let mut provider = provider::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            S::TLS13_AES_128_GCM_SHA256
                | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// A server config with ALPN `h2` and `http/1.1`, presenting what `cert` resolves.
fn server_config_resolving(
    cert: Arc<dyn rustls::server::ResolvesServerCert>,
    clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, CaError> {
    let builder = ServerConfig::builder_with_provider(Arc::new(workload_provider()))
        .with_safe_default_protocol_versions()
        .map_err(CaError::Tls)?;
    let builder = match clients {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The API listener's certificate, replaced in place when it is renewed: handshakes
/// after [`RenewingCert::swap`] present the new one, connections open keep theirs.
#[derive(Debug)]
pub struct RenewingCert(arc_swap::ArcSwap<CertifiedKey>);

impl RenewingCert {
    /// Starts with `key`.
    pub fn new(key: CertifiedKey) -> Arc<Self> {
        Arc::new(Self(arc_swap::ArcSwap::from_pointee(key)))
    }

    /// Presents `key` from now on.
    pub fn swap(&self, key: CertifiedKey) {
        self.0.store(Arc::new(key));
    }
}

impl rustls::server::ResolvesServerCert for RenewingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Like [`server_config_with_clients`], presenting whatever `cert` holds.
pub fn server_config_renewing(
    cert: Arc<RenewingCert>,
    clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, CaError> {
    server_config_resolving(cert, clients)
}

/// Always presents one certified key.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// A client identity for upstream mTLS: the certificate chain and its key, checked to
/// match. Errors are one-line reasons for the API.
pub fn client_identity(
    cert_pem: &str,
    key_pem: &Secret,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| "`real_client_cert_pem` is not a PEM certificate chain".to_owned())?;
    if certs.is_empty() {
        return Err("`real_client_cert_pem` holds no certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.expose())
        .map_err(|_| "`real_client_key_pem` is not a PEM private key".to_owned())?;
    let signing = provider::default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|_| "`real_client_key_pem` is not a supported key".to_owned())?;
    CertifiedKey::new(certs.clone(), signing)
        .keys_match()
        .map_err(|_| "the key does not belong to the certificate".to_owned())?;
    Ok((certs, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that lists AES-256-GCM first (rustls's own default order) gets
    /// AES-128-GCM with SHA-256.
    #[tokio::test]
    async fn a_workload_handshake_gets_aes_128_gcm_sha256() {
        let (ca, _) = CertAuthority::generate().unwrap();
        let ca = Arc::new(ca);
        let server = ca.server_config("api.example").await.unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let client =
            rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        assert_eq!(
            client.crypto_provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
            "the client prefers AES-256"
        );
        let mut c = rustls::ClientConnection::new(
            Arc::new(client),
            rustls::pki_types::ServerName::try_from("api.example").unwrap(),
        )
        .unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            s.read_tls(&mut wire.as_slice()).unwrap();
            s.process_new_packets().unwrap();
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            c.read_tls(&mut wire.as_slice()).unwrap();
            c.process_new_packets().unwrap();
        }
        assert!(!c.is_handshaking() && !s.is_handshaking());
        assert_eq!(
            c.negotiated_cipher_suite().unwrap().suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
    }
}
