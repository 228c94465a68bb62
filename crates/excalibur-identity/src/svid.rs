//! X.509-SVIDs presented as client certificates (X509-SVID spec §4-5): after rustls
//! validated the chain against the trust domains' roots, the leaf must carry exactly
//! one URI SAN holding a SPIFFE ID with a path, must not be a CA, must allow
//! `digitalSignature` and must not allow certificate signing. Its trust domain must be
//! one whose bundle signed it.

use excalibur_core::principal::{Principal, PrincipalKind};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::attest::parse_spiffe_id;

/// Why a presented certificate is not an acceptable X.509-SVID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SvidError {
    /// The certificate does not parse.
    #[error("the client certificate does not parse")]
    Parse,
    /// Zero or several URI SANs.
    #[error("an X.509-SVID has exactly one URI SAN, this one has {0}")]
    UriSans(usize),
    /// The URI SAN is not a SPIFFE ID with a path.
    #[error("the URI SAN is not a SPIFFE ID of a workload")]
    NotSpiffe,
    /// A CA certificate, or one allowed to sign certificates.
    #[error("a signing certificate cannot authenticate")]
    Signing,
    /// `digitalSignature` missing.
    #[error("the leaf lacks digitalSignature")]
    KeyUsage,
}

impl SvidError {
    /// The audit and `x-excalibur-reason` code.
    pub fn reason(&self) -> &'static str {
        match self {
            SvidError::Parse => "svid_unparseable",
            SvidError::UriSans(_) => "svid_uri_san_count",
            SvidError::NotSpiffe => "svid_not_spiffe",
            SvidError::Signing => "svid_not_leaf",
            SvidError::KeyUsage => "svid_key_usage",
        }
    }
}

/// The SPIFFE ID of an X.509-SVID leaf (DER), after the leaf checks.
pub fn spiffe_id(leaf_der: &[u8]) -> Result<String, SvidError> {
    let (_, cert) = X509Certificate::from_der(leaf_der).map_err(|_| SvidError::Parse)?;
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name {
                uris.push((*uri).to_owned());
            }
        }
    }
    let [uri] = uris.as_slice() else {
        return Err(SvidError::UriSans(uris.len()));
    };
    if parse_spiffe_id(uri).is_none() {
        return Err(SvidError::NotSpiffe);
    }
    if cert.is_ca() {
        return Err(SvidError::Signing);
    }
    match cert.key_usage() {
        Ok(Some(ku)) => {
            if ku.value.key_cert_sign() || ku.value.crl_sign() {
                return Err(SvidError::Signing);
            }
            if !ku.value.digital_signature() {
                return Err(SvidError::KeyUsage);
            }
        }
        _ => return Err(SvidError::KeyUsage),
    }
    Ok(uri.clone())
}

/// The principal of a verified X.509-SVID.
pub fn principal(spiffe_id: &str, source: std::net::IpAddr) -> Principal {
    let td = parse_spiffe_id(spiffe_id)
        .map(|(td, _)| td.to_owned())
        .unwrap_or_default();
    Principal {
        id: spiffe_id.to_owned(),
        kind: PrincipalKind::AttestedWorkload,
        user: String::new(),
        namespace: td,
        groups: Vec::new(),
        attestation: "spiffe-x509".to_owned(),
        factors: Vec::new(),
        credential_id: None,
        source,
        tags: Default::default(),
        actor: None,
        scopes: Default::default(),
    }
}
