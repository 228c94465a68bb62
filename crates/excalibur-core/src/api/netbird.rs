//! `/api/netbird`: the NetBird sync's status and peers.

use serde::{Deserialize, Serialize};

/// `GET /api/netbird/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetbirdStatus {
    /// Whether `EXCALIBUR_NETBIRD_SYNC_URL` is set.
    pub configured: bool,
    /// The management API base URL.
    pub sync_url: Option<String>,
    /// RFC 3339 time of the last attempt.
    pub last_sync_at: Option<String>,
    /// RFC 3339 time of the last successful sync.
    pub last_success_at: Option<String>,
    /// The last attempt's error (the last good state stays in force).
    pub error: Option<String>,
    /// Peers synced.
    pub peers: usize,
    /// Groups synced.
    pub groups: usize,
    /// Routes synced.
    pub routes: usize,
    /// Policies synced.
    pub policies: usize,
}

/// A NetBird peer as Excalibur uses it (`GET /api/netbird/peers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetbirdPeer {
    /// NetBird peer id.
    pub id: String,
    /// The principal it becomes: `developer_device:<id>`.
    pub principal: String,
    /// Peer name.
    pub name: String,
    /// Overlay address (what identifies it to the proxy).
    pub ip: String,
    /// The NetBird user the device belongs to.
    pub user: String,
    /// Group names.
    pub groups: Vec<String>,
    /// Connected to the overlay at the last sync.
    pub connected: bool,
    /// Domains from the route ACLs distributed to its groups.
    pub allowed_domains: Vec<String>,
    /// Networks (CIDRs) from the network routes distributed to its groups.
    pub networks: Vec<String>,
    /// Whether an exit-node (default) route applies to it.
    pub default_route: bool,
}
