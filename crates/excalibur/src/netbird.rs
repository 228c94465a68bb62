//! NetBird sync: read peers, groups, routes and policies from the NetBird management
//! REST API, derive each peer's allowed domains (domain routes distributed to its groups),
//! networks and default-route state, and hand the peers to the snapshot as
//! `developer_device:<peer-id>` principals (sent on a channel the snapshot follows). A
//! failed sync keeps the last good state.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use excalibur_core::api::{NetbirdPeer, NetbirdStatus};
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::time::Timestamp;
use excalibur_store::Store;
use serde::Deserialize;
use serde_json::json;

use crate::config::Netbird;

/// Largest NetBird API response read (a big account's peer list is a few MB).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// What the API and UI show, and what snapshots are built from.
#[derive(Debug, Default, Clone)]
pub(crate) struct NetbirdView {
    pub(crate) status: NetbirdStatus,
    pub(crate) peers: Vec<NetbirdPeer>,
}

pub(crate) type SharedView = Arc<RwLock<NetbirdView>>;

#[derive(Debug, Deserialize)]
struct GroupMinimum {
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct Peer {
    id: String,
    #[serde(default)]
    name: String,
    ip: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    connected: bool,
    #[serde(default)]
    groups: Vec<GroupMinimum>,
}

#[derive(Debug, Deserialize)]
struct Group {
    #[allow(dead_code, reason = "part of the contract; counted for the status")]
    id: String,
}

#[derive(Debug, Deserialize)]
struct Route {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    domains: Option<Vec<String>>,
    /// Distribution groups (IDs).
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    access_control_groups: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Policy {
    #[allow(dead_code, reason = "part of the contract; counted for the status")]
    id: Option<String>,
}

/// NetBird's error body: `{"message": ..., "code": ...}`.
#[derive(Debug, Deserialize)]
struct ApiError {
    message: String,
}

async fn fetch<T: for<'de> Deserialize<'de>>(
    client: &reqwest::Client,
    cfg: &Netbird,
    path: &str,
) -> Result<T, String> {
    let url = format!("{}/{path}", cfg.url);
    let resp = client
        .get(&url)
        .header("Authorization", format!("Token {}", cfg.token))
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("{path}: {}", e.without_url()))?;
    let status = resp.status();
    let bytes = crate::bounded::read_capped(resp, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ApiError>(&bytes)
            .map(|e| e.message)
            .unwrap_or_else(|_| "no error body".to_owned());
        return Err(format!("{path}: {} {message}", status.as_u16()));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{path}: not the NetBird schema: {e}"))
}

/// Derives Excalibur's view of each peer in the overlay network.
fn derive(cfg: &Netbird, peers: Vec<Peer>, routes: &[Route]) -> Vec<NetbirdPeer> {
    let mut out = Vec::new();
    for p in peers {
        let Ok(ip) = p.ip.parse::<std::net::IpAddr>() else {
            continue;
        };
        if !cfg.overlay.contains(&ip.to_canonical()) {
            tracing::warn!(peer = %p.id, ip = %p.ip, "NetBird peer outside the overlay network; ignored");
            continue;
        }
        let groups: BTreeSet<&str> = p.groups.iter().map(|g| g.id.as_str()).collect();
        let (mut domains, mut networks, mut default_route) =
            (BTreeSet::new(), BTreeSet::new(), false);
        for r in routes.iter().filter(|r| r.enabled) {
            let distributed = r.groups.iter().any(|g| groups.contains(g.as_str()));
            let allowed = r.access_control_groups.as_ref().is_none_or(|acl| {
                acl.is_empty() || acl.iter().any(|g| groups.contains(g.as_str()))
            });
            if !(distributed && allowed) {
                continue;
            }
            for d in r.domains.iter().flatten() {
                domains.insert(d.trim_end_matches('.').to_ascii_lowercase());
            }
            if let Some(n) = &r.network {
                default_route |= n == "0.0.0.0/0" || n == "::/0";
                networks.insert(n.clone());
            }
        }
        out.push(NetbirdPeer {
            principal: format!("developer_device:{}", p.id),
            id: p.id,
            name: p.name,
            ip: ip.to_canonical().to_string(),
            user: p.user_id,
            groups: p
                .groups
                .into_iter()
                .map(|g| if g.name.is_empty() { g.id } else { g.name })
                .collect(),
            connected: p.connected,
            allowed_domains: domains.into_iter().collect(),
            networks: networks.into_iter().collect(),
            default_route,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Runs the sync loop until `cancel` fires.
pub(crate) async fn run(
    cfg: Netbird,
    view: SharedView,
    devices: tokio::sync::watch::Sender<Vec<NetbirdPeer>>,
    store: Arc<dyn Store>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "NetBird client");
            return;
        }
    };
    let mut failing = false;
    loop {
        let now = Timestamp::now().to_rfc3339();
        let result = async {
            let peers: Vec<Peer> = fetch(&client, &cfg, "peers").await?;
            let groups: Vec<Group> = fetch(&client, &cfg, "groups").await?;
            let routes: Vec<Route> = fetch(&client, &cfg, "routes").await?;
            let policies: Vec<Policy> = fetch(&client, &cfg, "policies").await?;
            Ok::<_, String>((peers, groups.len(), routes, policies.len()))
        }
        .await;
        let mut event = None;
        let changed = {
            let mut v = view
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            v.status.last_sync_at = Some(now.clone());
            match result {
                Ok((peers, groups, routes, policies)) => {
                    let derived = derive(&cfg, peers, &routes);
                    let changed = derived != v.peers;
                    if changed {
                        let before: BTreeSet<&String> = v.peers.iter().map(|p| &p.id).collect();
                        let after: BTreeSet<&String> = derived.iter().map(|p| &p.id).collect();
                        event = Some((
                            EventType::NetbirdSynced,
                            json!({"peers": derived.len(),
                                   "added": after.difference(&before).collect::<Vec<_>>(),
                                   "removed": before.difference(&after).collect::<Vec<_>>()}),
                        ));
                    }
                    v.peers = derived;
                    v.status.error = None;
                    v.status.last_success_at = Some(now);
                    v.status.peers = v.peers.len();
                    v.status.groups = groups;
                    v.status.routes = routes.len();
                    v.status.policies = policies;
                    failing = false;
                    changed
                }
                Err(e) => {
                    if !failing {
                        event = Some((EventType::NetbirdSyncFailed, json!({"error": e})));
                    }
                    tracing::warn!(error = %e, "NetBird sync failed; keeping the last good state");
                    v.status.error = Some(e);
                    failing = true;
                    false
                }
            }
        };
        if let Some((ty, details)) = event
            && let Err(e) = store
                .record(Vec::new(), vec![NewEvent::new(ty, "system", details)])
                .await
        {
            tracing::error!(error = %excalibur_core::ErrorChain(&e), "NetBird event not recorded");
        }
        if changed {
            // The snapshot follower rebuilds with them.
            let peers = view
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .peers
                .clone();
            devices.send_replace(peers);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(cfg.interval) => {}
        }
    }
}
