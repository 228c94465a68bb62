//! Upstream mTLS mediation: requests to a mapped authority go through a client of their
//! own that presents the mapping's certificate. One pooled client per client identity,
//! so a connection opened for one mapping is never reused for another authority or
//! another identity, and no other request ever carries the certificate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use excalibur_core::Secret;
use excalibur_core::api::{CryptoFamily, MappingRecord};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::upstream;

/// One mTLS mapping.
#[derive(Debug)]
pub struct MtlsRoute {
    /// Mapping id (the name policy decides redemption on).
    pub id: String,
    /// Provider.
    pub provider_id: String,
    host: String,
    port: u16,
    version: String,
    certs: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

/// All mTLS routes of a snapshot.
#[derive(Debug, Default)]
pub struct MtlsRoutes(Vec<MtlsRoute>);

/// Splits `host[:port]` (default 443).
pub fn parse_authority(a: &str) -> Option<(String, u16)> {
    let a = a.trim().to_ascii_lowercase();
    match a.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(':') => {
            Some((h.trim_end_matches('.').to_owned(), p.parse().ok()?))
        }
        Some(_) => None,
        None if !a.is_empty() => Some((a.trim_end_matches('.').to_owned(), 443)),
        None => None,
    }
}

impl MtlsRoutes {
    /// Routes from stored mappings (unreadable ones are left out and logged).
    pub fn build(mappings: &[(MappingRecord, Secret)]) -> Self {
        let mut routes = Vec::new();
        for (r, key) in mappings
            .iter()
            .filter(|(r, _)| r.family == CryptoFamily::Mtls)
        {
            let text = |k: &str| r.setting(k);
            let route = (|| {
                let (host, port) = parse_authority(&text("target_authority")?)?;
                let (certs, key) = crate::ca::client_identity(&text("cert_pem")?, key).ok()?;
                Some(MtlsRoute {
                    id: r.id.clone(),
                    provider_id: r.provider_id.clone(),
                    host,
                    port,
                    version: format!("{}:{}:{}", r.id, r.fingerprint, r.updated_at),
                    certs,
                    key: Arc::new(key),
                })
            })();
            match route {
                Some(route) => routes.push(route),
                None => tracing::error!(mapping = %r.id, "mTLS mapping is unreadable; left out"),
            }
        }
        Self(routes)
    }

    /// Every mapping id with its provider (for policy bindings).
    pub fn bindings(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0.iter().map(|r| (r.id.clone(), r.provider_id.clone()))
    }

    /// The mapping for an upstream authority.
    pub fn find(&self, host: &str, port: u16) -> Option<&MtlsRoute> {
        self.0.iter().find(|r| r.host == host && r.port == port)
    }
}

/// Pooled clients by mapping version (id, key fingerprint, update time).
#[derive(Debug, Default)]
pub(crate) struct MtlsClients {
    clients: Mutex<HashMap<String, upstream::Clients>>,
}

impl MtlsClients {
    /// The client for `route`, built on first use.
    pub(crate) fn get(
        &self,
        route: &MtlsRoute,
        cfg: &Arc<upstream::UpstreamConfig>,
        roots: &Arc<rustls::RootCertStore>,
    ) -> Result<upstream::Clients, rustls::Error> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(&route.version) {
            return Ok(c.clone());
        }
        let client = upstream::Clients::new(
            cfg,
            roots,
            Some((route.certs.clone(), route.key.clone_key())),
            16,
        )?;
        // Clients of replaced versions of this mapping are dropped with their pools.
        let prefix = format!("{}:", route.id);
        clients.retain(|k, _| !k.starts_with(&prefix));
        clients.insert(route.version.clone(), client.clone());
        Ok(client)
    }
}
