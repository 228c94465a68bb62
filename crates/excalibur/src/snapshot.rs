//! Snapshot rebuilds: after every store commit, read the store once, build a new
//! [`Snapshot`] off the async threads and swap it in. Rebuilds are serialized so an
//! older read never replaces a newer one.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use excalibur_api::Changed;
use excalibur_proxy::{Delta, Snapshot, SnapshotInput};
use excalibur_store::{PlaceholderSecret, SnapshotKey, SnapshotRow, Store};

/// The row [`Store::snapshot_row`] reads back after `what` (a placeholder has its own read).
fn snapshot_key(what: &Changed) -> Option<SnapshotKey> {
    match what {
        Changed::Placeholder(_) => None,
        Changed::Rule(id) => Some(SnapshotKey::Rule(id.clone())),
        Changed::Provider(id) => Some(SnapshotKey::Provider(id.clone())),
        Changed::Credential(id) => Some(SnapshotKey::Credential(id.clone())),
        Changed::Workload(id) => Some(SnapshotKey::Workload(id.clone())),
    }
}

/// A row read back after a write ([`Snapshots::changed`]).
enum Row {
    Placeholder(PlaceholderSecret),
    Other(SnapshotRow),
}

/// Owns the live snapshot and rebuilds it.
#[derive(Debug)]
pub(crate) struct Snapshots {
    pub(crate) live: Arc<ArcSwap<Snapshot>>,
    store: Arc<dyn Store>,
    lock: tokio::sync::Mutex<()>,
    version: AtomicU64,
    /// When the last rebuild succeeded (Unix ms; 0 before the first).
    refreshed_ms: AtomicI64,
    allowed_ports: Vec<u16>,
    version_gauge: prometheus_client::metrics::gauge::Gauge<i64>,
    /// NetBird devices, as the sync last sent them (empty unless one is configured).
    devices: tokio::sync::watch::Receiver<Vec<excalibur_core::api::NetbirdPeer>>,
    /// The SSH gateway's routes, swapped with every snapshot.
    pub(crate) ssh_routes: Arc<ArcSwap<excalibur_ssh::RouteTable>>,
    /// Told the active SSH session ids after every rebuild (the gateway closes the rest).
    pub(crate) ssh_sessions_hook: std::sync::OnceLock<SessionsHook>,
}

/// The active SSH session ids.
pub(crate) type SessionIds = std::collections::HashSet<String>;

/// Receives the active SSH session ids.
pub(crate) struct SessionsHook(pub(crate) Box<dyn Fn(&SessionIds) + Send + Sync>);

impl std::fmt::Debug for SessionsHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionsHook")
    }
}

impl Snapshots {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        allowed_ports: Vec<u16>,
        version_gauge: prometheus_client::metrics::gauge::Gauge<i64>,
        devices: tokio::sync::watch::Receiver<Vec<excalibur_core::api::NetbirdPeer>>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            live: Arc::new(ArcSwap::from_pointee(Snapshot::empty()?)),
            store,
            lock: tokio::sync::Mutex::new(()),
            version: AtomicU64::new(0),
            refreshed_ms: AtomicI64::new(0),
            allowed_ports,
            version_gauge,
            devices,
            ssh_routes: Arc::default(),
            ssh_sessions_hook: std::sync::OnceLock::new(),
        })
    }

    /// How long ago the snapshot in force was read from the store (`None` before the
    /// first rebuild).
    pub(crate) fn age(&self) -> Option<std::time::Duration> {
        let at = self.refreshed_ms.load(Ordering::Relaxed);
        let now = excalibur_core::time::Timestamp::now().millis();
        (at > 0).then(|| std::time::Duration::from_millis(u64::try_from(now - at).unwrap_or(0)))
    }

    /// Reads the store and swaps in a new snapshot.
    pub(crate) async fn rebuild(&self) -> anyhow::Result<()> {
        let _serial = self.lock.lock().await;
        let read_at = excalibur_core::time::Timestamp::now().millis();
        let data = self.store.snapshot_data().await?;
        let route_infos = data.ssh_routes.iter().map(|(r, _)| r.clone()).collect();
        let (routes, problems) = excalibur_ssh::RouteTable::build(data.ssh_routes);
        for problem in problems {
            tracing::warn!(problem = %problem, "ssh route left out");
        }
        let placeholder_expiry = data
            .placeholders
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.expires_ms?)))
            .collect();
        let input = SnapshotInput {
            placeholder_expiry,
            placeholders: data
                .placeholders
                .into_iter()
                .map(|p| (p.name, p.provider_id, p.value))
                .collect(),
            providers: data.providers,
            credentials: data
                .credentials
                .into_iter()
                .map(|c| (c.info, c.hash))
                .collect(),
            revoked_credentials: data
                .revoked_credentials
                .into_iter()
                .map(|c| (c.info, c.hash))
                .collect(),
            rules: data.rules,
            policies: data.policies,
            namespaces: data.namespaces,
            workloads: data.workloads,
            mappings: data.mappings,
            devices: self.devices.borrow().clone(),
            ssh_routes: route_infos,
            ssh_sessions: data.ssh_sessions,
        };
        let active: std::collections::HashSet<String> = input
            .ssh_sessions
            .iter()
            .map(|(s, _)| s.id.clone())
            .collect();
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let ports = self.allowed_ports.clone();
        let previous = self.live.load_full();
        let snapshot = tokio::task::spawn_blocking(move || {
            Snapshot::build(version, input, &ports, Some(&previous))
        })
        .await??;
        for problem in snapshot.policy.problems() {
            tracing::warn!(problem = %problem, "policy compilation");
        }
        self.live.store(Arc::new(snapshot));
        self.refreshed_ms.store(read_at, Ordering::Relaxed);
        self.ssh_routes.store(Arc::new(routes));
        if let Some(hook) = self.ssh_sessions_hook.get() {
            (hook.0)(&active);
        }
        self.version_gauge
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        tracing::debug!(version, "snapshot swapped");
        Ok(())
    }

    /// After a committed write to one row: reads the row back and patches the live
    /// snapshot with it ([`Snapshot::changed`]: only what the row touches changes, the
    /// rest is shared); a row that cannot be applied alone rebuilds it whole. A deleted
    /// placeholder or provider is taken out of the policy by a patch first, so it is
    /// in force at once, then rebuilt (the name automata have no deletion).
    pub(crate) async fn changed(&self, what: Changed) -> anyhow::Result<()> {
        let serial = self.lock.lock().await;
        let row = match (&what, snapshot_key(&what)) {
            (Changed::Placeholder(name), _) => self
                .store
                .snapshot_placeholder(name.clone())
                .await?
                .map(Row::Placeholder),
            (_, Some(key)) => self.store.snapshot_row(key).await?.map(Row::Other),
            (_, None) => None,
        };
        let previous = self.live.load_full();
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let next = tokio::task::spawn_blocking(move || {
            let delta = match (&what, &row) {
                (_, Some(Row::Placeholder(p))) => Delta::Placeholder {
                    name: &p.name,
                    provider: &p.provider_id,
                    value: &p.value,
                    expires_ms: p.expires_ms,
                },
                (_, Some(Row::Other(SnapshotRow::Rule(r)))) => Delta::Rule {
                    id: r.id.as_str(),
                    rule: Some(r),
                },
                (Changed::Rule(id), None) => Delta::Rule {
                    id: id.as_str(),
                    rule: None,
                },
                (_, Some(Row::Other(SnapshotRow::Provider(p)))) => Delta::Provider(p),
                (_, Some(Row::Other(SnapshotRow::Credential(c)))) => Delta::Credential {
                    info: &c.info,
                    hash: &c.hash,
                },
                (_, Some(Row::Other(SnapshotRow::Workload(info, hash)))) => {
                    Delta::Workload { info, hash }
                }
                (Changed::Placeholder(name), None) => Delta::PlaceholderRemoved(name),
                (Changed::Provider(id), None) => Delta::ProviderRemoved(id),
                (_, None) => return None,
            };
            let removed = matches!(
                delta,
                Delta::PlaceholderRemoved(_) | Delta::ProviderRemoved(_)
            );
            previous.changed(version, delta).map(|s| (s, removed))
        })
        .await?;
        let Some((next, removed)) = next else {
            drop(serial);
            return self.rebuild().await;
        };
        self.live.store(Arc::new(next));
        self.version_gauge
            .set(i64::try_from(version).unwrap_or(i64::MAX));
        tracing::debug!(version, "snapshot patched");
        if removed {
            drop(serial);
            return self.rebuild().await;
        }
        Ok(())
    }

    /// [`Self::changed`], logging (not propagating) a failure: the old snapshot stays
    /// in force.
    pub(crate) async fn changed_logged(&self, what: Changed) {
        if let Err(e) = self.changed(what).await {
            tracing::error!(error = %format!("{e:#}"), "snapshot update failed; the previous snapshot stays in force");
        }
    }

    /// Rebuilds, logging (not propagating) a failure: the old snapshot stays in force.
    pub(crate) async fn rebuild_logged(&self) {
        if let Err(e) = self.rebuild().await {
            tracing::error!(error = %format!("{e:#}"), "snapshot rebuild failed; the previous snapshot stays in force");
        }
    }

    /// Rebuilds whenever new devices arrive on the channel, until `cancel` fires.
    pub(crate) async fn follow_devices(
        self: Arc<Self>,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let mut devices = self.devices.clone();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = devices.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.rebuild_logged().await;
                }
            }
        }
    }
}

/// What a background task may do with snapshots: ask for a rebuild (after a write of
/// its own, such as the expiry sweep), and see whether the configuration changed.
#[derive(Debug, Clone)]
pub(crate) struct Rebuilder(Arc<Snapshots>);

impl Rebuilder {
    pub(crate) fn new(snapshots: &Arc<Snapshots>) -> Self {
        Self(Arc::clone(snapshots))
    }

    /// [`Snapshots::rebuild_logged`].
    pub(crate) async fn rebuild(&self) {
        self.0.rebuild_logged().await;
    }

    /// Moves with every rebuild or patch: after any configuration change, here or on
    /// another replica (and at each periodic resync).
    pub(crate) fn version(&self) -> u64 {
        self.0.version.load(Ordering::SeqCst)
    }
}
