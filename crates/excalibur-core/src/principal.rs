//! [`Principal`]: who is calling, whatever the credential kind. Humans and workloads
//! are one type; policy tells them apart by [`PrincipalKind`].

use std::net::IpAddr;

use crate::ids::CredentialId;

/// The kind of credential that identified a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An operator-minted service credential bound to a source network (a workload).
    ServiceCredential,
    /// A workload attested by a platform token (e.g. a Kubernetes service account).
    AttestedWorkload,
    /// A person (e.g. an SSH-gateway session user).
    Human,
}

impl PrincipalKind {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::ServiceCredential => "service_credential",
            PrincipalKind::AttestedWorkload => "attested_workload",
            PrincipalKind::Human => "human",
        }
    }

    /// True for people, false for workloads.
    pub fn is_human(self) -> bool {
        matches!(self, PrincipalKind::Human)
    }
}

/// An identified caller. Every flow and audit event quotes [`Principal::id`].
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable id, e.g. `service:ci-runner`.
    pub id: String,
    /// Credential kind.
    pub kind: PrincipalKind,
    /// The user the caller acts for.
    pub user: String,
    /// Namespace or tenant (empty when none).
    pub namespace: String,
    /// Groups.
    pub groups: Vec<String>,
    /// How the identity was established, e.g. `service_credential`, `kubernetes`.
    pub attestation: String,
    /// Authentication factors a human completed (e.g. `Fido2`); empty for workloads.
    pub factors: Vec<String>,
    /// The credential that identified it.
    pub credential_id: Option<CredentialId>,
    /// The address the connection came from.
    pub source: IpAddr,
    /// Attributes mapped from the claims of the token it was attested with (Cedar entity
    /// tags: `principal.getTag("tenant_id")`), sorted by name.
    pub tags: std::sync::Arc<[(String, String)]>,
    /// The principal acting for it, when it was exchanged with an RFC 8693 `actor_token`.
    pub actor: Option<String>,
    /// Providers a scoped workload bearer may redeem (`scope=provider:<id>`); empty: not
    /// restricted by scope. Cedar: `principal.scoped`, `principal.scopes`.
    pub scopes: std::sync::Arc<[String]>,
}
