//! `/api/ssh` and `/api/sessions`: SSH gateway routes, sessions and keys.

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

/// `POST /api/ssh/routes`: which target a user reaches from which network (seed 000 §2).
/// With an existing `id` it replaces that route (a rotation of its target key).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSshRoute {
    /// Replace this route (absent: a new route).
    #[serde(default)]
    pub id: Option<String>,
    /// The SSH user name the client logs in as.
    pub user: String,
    /// The network the client must connect from (CIDR).
    pub source_network: String,
    /// Target host (name or address).
    pub target_host: String,
    /// Target port.
    #[serde(default = "default_ssh_port")]
    pub target_port: u16,
    /// The account the gateway logs in as on the target.
    pub target_user: String,
    /// The target's host key (OpenSSH public-key line); a target presenting another key
    /// is refused.
    pub target_host_key: String,
    /// The gateway's private key for the target (OpenSSH PEM; sealed, never returned).
    /// Absent: the gateway's own client key (`GET /api/ssh/gateway`).
    #[serde(default)]
    #[serde(serialize_with = "SecretString::serialize_option_exposed")]
    pub target_private_key: Option<SecretString>,
    /// Public keys (OpenSSH lines) the user may log in with; users with a certificate
    /// from a trusted user CA need none.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// Where HTTP requests from the session's shell may go (exact or `*.suffix`).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Set `HTTP_PROXY`/`HTTPS_PROXY` with a session-bound proxy token in the shell.
    #[serde(default = "default_true")]
    pub inject_proxy: bool,
    /// Allow `ssh -L` (direct-tcpip) through this route.
    #[serde(default)]
    pub port_forwarding: bool,
}

fn default_ssh_port() -> u16 {
    22
}

fn default_true() -> bool {
    true
}

/// An SSH route as listed (the target key only as a fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SshRoute {
    /// Id (`sshr_…`).
    pub id: String,
    /// SSH user name.
    pub user: String,
    /// Source CIDR.
    pub source_network: String,
    /// Target host.
    pub target_host: String,
    /// Target port.
    pub target_port: u16,
    /// Target account.
    pub target_user: String,
    /// Pinned target host key (public).
    pub target_host_key: String,
    /// `gateway` (the gateway's client key) or `route` (a sealed per-route key).
    pub target_key: String,
    /// SHA-256 fingerprint of the route's own key, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_key_fingerprint: Option<String>,
    /// Authorized user keys (public).
    pub authorized_keys: Vec<String>,
    /// Allowed HTTP destinations for the session's shell.
    pub allowed_domains: Vec<String>,
    /// Proxy variables injected into the shell.
    pub inject_proxy: bool,
    /// `ssh -L` allowed.
    pub port_forwarding: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// An SSH-gateway session (`GET /api/sessions`; the seed's Session, User, Source,
/// Started, State).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SshSession {
    /// Session id (`sess_…`).
    pub id: String,
    /// The SSH user.
    pub user: String,
    /// The principal its HTTP requests are attributed to: `user_session:<user>@<id>`.
    pub principal: String,
    /// The route that chose the target.
    pub route_id: String,
    /// The client's address.
    pub source: String,
    /// `host:port` of the target.
    pub target: String,
    /// How the user authenticated: `publickey` or `certificate`.
    pub auth: String,
    /// RFC 3339 start time.
    pub started_at: String,
    /// `active`, `ended` or `revoked`.
    pub state: String,
    /// RFC 3339 end time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Why it ended (`closed`, `revoked`, `gateway_lost`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// The address proxy requests from this session must come from (the target's).
    #[serde(default)]
    pub proxy_source: String,
    /// The gateway process holding the connection (a replica instance id).
    #[serde(default)]
    pub gateway: String,
    /// Factors the user CA asserted in the certificate (`factors@excalibur.dev`, e.g.
    /// `Fido2`), beyond the login method in `auth`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<String>,
    /// Tags the user CA asserted (`<tag>@excalibur.dev` extensions), for Cedar.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// `GET /api/ssh/gateway`: what operators put on targets and in `known_hosts`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SshGatewayInfo {
    /// Whether the gateway listens.
    pub enabled: bool,
    /// The gateway's host key (OpenSSH public-key line), for clients' `known_hosts`.
    pub host_key: String,
    /// The gateway's client key (OpenSSH public-key line), for targets' `authorized_keys`.
    pub client_key: String,
    /// Fingerprints of trusted user-certificate CAs.
    pub user_ca_fingerprints: Vec<String>,
}
