//! [`Principal`]: who is calling, whatever the credential kind.

use std::net::IpAddr;

use crate::hosts::HostPattern;
use crate::ids::CredentialId;

/// The kind of credential that identified a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An operator-minted service credential bound to a source network.
    ServiceCredential,
}

impl PrincipalKind {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::ServiceCredential => "service_credential",
        }
    }
}

/// An identified caller. Every flow and audit event quotes [`Principal::id`].
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable id, e.g. `service:ci-runner`.
    pub id: String,
    /// Credential kind.
    pub kind: PrincipalKind,
    /// The user the workload acts for.
    pub user: String,
    /// The credential that identified it.
    pub credential_id: Option<CredentialId>,
    /// Destinations this principal may reach.
    pub allowed_domains: Vec<HostPattern>,
    /// The address the connection came from.
    pub source: IpAddr,
}
