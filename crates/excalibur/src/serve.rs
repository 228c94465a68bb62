//! Wiring and listeners. 8443 sniffs TLS vs plain HTTP (plain only from loopback) and
//! sends CONNECT and absolute-form requests to the proxy, everything else to the API;
//! 3128 is the plain proxy. Shutdown stops accepting, drains connections and flushes
//! the audit queue.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use excalibur_api::{ApiState, Reloader};
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::ids::CredentialId;
use excalibur_proxy::body::BoxError;
use excalibur_proxy::upstream::UpstreamConfig;
use excalibur_proxy::{Control, Proxy, ProxyBody, ProxyConfig};
use excalibur_store::Store;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::config::Config;
use crate::idle::IdleIo;
use crate::snapshot::Snapshots;
use crate::{init, record};

/// How long open connections get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a new connection may take to send its first byte / finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a listener does with a request, and the limits it applies.
#[derive(Clone)]
struct Dispatch {
    api: Option<Router>,
    proxy: Proxy,
    limits: crate::config::Limits,
    /// This listener's own budget of connections that have sent their first byte: an
    /// idle flood on the proxy port cannot starve the API (the kill switch) or back.
    connections: Arc<tokio::sync::Semaphore>,
    /// Connections that have not sent a byte yet, per source address and in all.
    pending: Arc<Pending>,
    /// Connections of one source address (the proxy listener's
    /// `max_connections_per_source`), held for the connection's life.
    per_source: Option<Arc<Pending>>,
}

/// Connections waiting for their first byte: at most [`PENDING_PER_SOURCE`] per source
/// address and `max_connections` in all, each for at most the header read timeout. They
/// hold no connection permit: sending nothing costs a flood its slot, not anyone else's.
#[derive(Debug)]
struct Pending {
    total: Arc<tokio::sync::Semaphore>,
    per_source: usize,
    by_source: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl Dispatch {
    /// A slot of `max_connections_per_source` for `peer` (`Ok(None)` where there is no
    /// such budget), or `Err` when the source holds them all.
    fn admit_source(&self, peer: SocketAddr) -> Result<Option<PendingSlot>, ()> {
        match &self.per_source {
            Some(p) => p.admit(peer.ip().to_canonical()).map(Some).ok_or(()),
            None => Ok(None),
        }
    }
}

/// Silent connections one source address may hold open at once.
const PENDING_PER_SOURCE: usize = 64;

/// A slot in [`Pending`], released on drop.
#[derive(Debug)]
struct PendingSlot {
    pending: Arc<Pending>,
    source: std::net::IpAddr,
    _total: tokio::sync::OwnedSemaphorePermit,
}

impl Pending {
    fn new(total: usize, per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(tokio::sync::Semaphore::new(total)),
            per_source,
            by_source: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn admit(self: &Arc<Self>, source: std::net::IpAddr) -> Option<PendingSlot> {
        let total = Arc::clone(&self.total).try_acquire_owned().ok()?;
        let mut map = self.by_source.lock().ok()?;
        let n = map.entry(source).or_insert(0);
        if *n >= self.per_source {
            return None;
        }
        *n += 1;
        Some(PendingSlot {
            pending: Arc::clone(self),
            source,
            _total: total,
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.pending.by_source.lock()
            && let Some(n) = map.get_mut(&self.source)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    // Every connection is a file descriptor: take the hard limit, and say what it is.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS crypto provider was already installed"))?;
    let data_dir = config.data_dir.clone();
    let database = init::database(&config)?;
    let store = {
        let database = database.clone();
        tokio::task::spawn_blocking(move || init::store(&data_dir, database.as_ref())).await??
    };
    let store: Arc<dyn Store> = Arc::new(store);
    if config.dangerous_accept_config_edits {
        store.config_accept("system".into()).await?;
        tracing::warn!("configuration rows accepted as they are (--dangerous-accept-config-edits)");
    }
    let chain = store.audit_verify().await?;
    if !chain.ok {
        let reason = chain.reason.clone().unwrap_or_default();
        let seq = chain.first_broken_seq.unwrap_or(0);
        if reason.starts_with("configuration rows") {
            anyhow::bail!(
                "{reason}: a provider's hosts, a rule or a credential may have been redirected; \
                 investigate, then start once with --dangerous-accept-config-edits to trust them"
            );
        }
        if !config.dangerous_allow_broken_audit_chain {
            anyhow::bail!(
                "the audit chain is broken at seq {seq} ({reason}); investigate, then start with \
                 --dangerous-allow-broken-audit-chain to serve anyway"
            );
        }
        tracing::error!(seq, reason = %reason, "the audit chain is broken; serving because --dangerous-allow-broken-audit-chain");
    }
    // First-start initialization (CA, tokens, keys) once across replicas.
    let init_lock = store.exclusive("init".into(), true).await?;
    let ca = init::ca(store.as_ref(), &config.data_dir, config.leaf_validity).await?;
    init::admin_token(store.as_ref(), &config.data_dir).await?;

    let svids = Arc::new(SvidVerifiers::load(&config)?);
    // The API listener's certificate is renewed in place after two thirds of its life.
    let api_cert = {
        let ca = Arc::clone(&ca);
        let names = config.tls_names.clone();
        let key = tokio::task::spawn_blocking(move || ca.mint(&names)).await??;
        excalibur_proxy::ca::RenewingCert::new(key)
    };
    let api_tls = excalibur_proxy::ca::server_config_renewing(
        Arc::clone(&api_cert),
        svids.handshake.clone(),
    )?;

    let mut registry = prometheus_client::registry::Registry::default();
    let proxy_metrics = excalibur_proxy::metrics::ProxyMetrics::register(&mut registry);
    let api_metrics = excalibur_api::ApiMetrics::register(&mut registry);
    let queue_depth = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    registry.register(
        "excalibur_audit_queue_depth",
        "Flows and audit events waiting for the writer",
        queue_depth.clone(),
    );
    let snapshot_version = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    registry.register(
        "excalibur_snapshot_version",
        "Version of the snapshot in force",
        snapshot_version.clone(),
    );

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let writer_cancel = CancellationToken::new();
    // This process holds its gateway lock for its whole life; sessions and flows in
    // flight of gateways whose lock is free (a previous run, a replica that died) are
    // ended, now and periodically.
    let instance = format!(
        "gw_{}",
        excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<8>())
    );
    let (recorder, writer) = record::start(
        Arc::clone(&store),
        writer_cancel.clone(),
        queue_depth,
        instance.clone(),
        config.durability,
    );

    // NetBird peers reach snapshots through a channel: the sync sends, the snapshot
    // follower rebuilds.
    let (devices_tx, devices_rx) = tokio::sync::watch::channel(Vec::new());
    let netbird_view: crate::netbird::SharedView = Arc::default();
    let snapshots = Arc::new(Snapshots::new(
        Arc::clone(&store),
        config.allowed_ports.clone(),
        snapshot_version,
        devices_rx,
    )?);
    snapshots
        .rebuild()
        .await
        .context("cannot build the first snapshot")?;
    let reload: Reloader = {
        let snapshots = Arc::clone(&snapshots);
        Arc::new(move || {
            let snapshots = Arc::clone(&snapshots);
            Box::pin(async move { snapshots.rebuild_logged().await })
        })
    };
    let changed: excalibur_api::ChangeNotifier = {
        let snapshots = Arc::clone(&snapshots);
        Arc::new(move |what| {
            let snapshots = Arc::clone(&snapshots);
            Box::pin(async move { snapshots.changed_logged(what).await })
        })
    };

    let (ssh_host_key, ssh_client_key) = init::ssh_keys(store.as_ref()).await?;
    let checkpoint_key = Arc::new(crate::checkpoint::CheckpointKey::load(store.as_ref()).await?);
    drop(init_lock);
    let user_cas = match &config.ssh_user_ca_keys {
        Some(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            excalibur_ssh::parse_user_cas(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let gateway_held = store
        .exclusive(gateway_lock(&instance), true)
        .await?
        .context("cannot hold this gateway's lock")?;
    sweep_lost_sessions(store.as_ref(), &instance).await;
    snapshots.rebuild().await?;

    let api_listener = TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.api_listen))?;
    let proxy_listener = TcpListener::bind(config.proxy_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.proxy_listen))?;
    let ssh_listener = TcpListener::bind(config.ssh_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.ssh_listen))?;
    let api_addr = api_listener.local_addr()?;
    let proxy_addr = proxy_listener.local_addr()?;
    let ssh_addr = ssh_listener.local_addr()?;

    // Excalibur's signing keys: workload tokens (the API) and the web-identity JWTs the
    // proxy presents to STS for SigV4 mappings that assume a role.
    let signing = Arc::new(tokio::sync::RwLock::new(
        init::signing_keys(store.as_ref()).await?,
    ));
    let proxy = Proxy::new(
        ProxyConfig {
            upstream: UpstreamConfig {
                resolve: config.upstream.resolve.clone(),
                extra_roots: extra_roots(&config)?,
                connect_timeout: Duration::from_millis(config.upstream.connect_timeout_ms),
                dangerous_allow_private_destinations: config
                    .upstream
                    .dangerous_allow_private_destinations,
                own_addrs: vec![api_addr, proxy_addr],
            },
            max_substitute_body: config.max_substitute_body,
            max_decoded_response: config.max_decoded_response,
            request_timeout: config.limits.request_timeout,
            http: config.limits.http(),
            metrics: proxy_metrics,
            via_name: format!(
                "excalibur-{}",
                excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<4>())
            ),
        },
        Arc::clone(&snapshots.live),
        Arc::clone(&ca),
        Arc::new(recorder.clone()),
        Arc::new(BinControl {
            store: Arc::clone(&store),
            snapshots: Arc::clone(&snapshots),
            signing: Arc::clone(&signing),
            issuer_url: config.issuer_url.clone(),
        }),
        tracker.clone(),
        cancel.clone(),
    )?;
    let ssh_info = excalibur_core::api::SshGatewayInfo {
        enabled: true,
        host_key: excalibur_ssh::public_line(&ssh_host_key),
        client_key: excalibur_ssh::public_line(&ssh_client_key),
        user_ca_fingerprints: user_cas.iter().map(ToString::to_string).collect(),
    };
    let gateway = excalibur_ssh::Gateway::new(
        excalibur_ssh::GatewayConfig {
            host_key: ssh_host_key,
            client_key: Arc::new(ssh_client_key),
            user_cas,
            proxy_url: config.ssh_proxy_url.clone(),
            proxy_port: proxy_addr.port(),
            max_connections: config.limits.max_connections,
            instance: instance.clone(),
        },
        Arc::clone(&snapshots.ssh_routes),
        Arc::new(SshSessions {
            store: Arc::clone(&store),
            snapshots: Arc::clone(&snapshots),
        }),
        Arc::new(recorder.clone()),
    );
    {
        let gateway = gateway.clone();
        let _ = snapshots
            .ssh_sessions_hook
            .set(crate::snapshot::SessionsHook(Box::new(move |active| {
                gateway.retain(active)
            })));
    }
    let policy = {
        let live = Arc::clone(&snapshots.live);
        Arc::new(move || Arc::clone(&live.load().policy))
            as Arc<dyn Fn() -> Arc<excalibur_policy::Policy> + Send + Sync>
    };
    let presign = {
        let live = Arc::clone(&snapshots.live);
        Arc::new(move |req: excalibur_core::api::PresignRequest| presign(&live.load(), &req))
            as excalibur_api::Presigner
    };
    let health = crate::health::Health {
        store: Arc::clone(&store),
        recorder: recorder.clone(),
        snapshots: Arc::clone(&snapshots),
        replicated: config.database_url.is_some(),
        ca_not_after: ca.not_after(),
        bounds: config.health.clone(),
    };
    registry.register_collector(Box::new(health.clone()));
    let api = excalibur_api::router(ApiState {
        recorder: Arc::new(recorder.clone()),
        probes: Arc::new(health),
        checkpoint_key_pem: checkpoint_key.public_pem().into(),
        check_receiver: {
            let allow = config.webhooks.dangerous_allow_private_destinations;
            Arc::new(move |url: String| {
                Box::pin(async move {
                    // A name that does not resolve yet is accepted (deliveries check
                    // again); one that resolves only to forbidden addresses is not.
                    match crate::webhooks::receiver_address(&url, allow).await {
                        Err(e) if e.starts_with("cannot resolve") => Ok(()),
                        other => other.map(|_| ()),
                    }
                }) as Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
            })
        },
        store: Arc::clone(&store),
        ca_pem: ca.cert_pem().into(),
        reload,
        changed,
        policy,
        sessions: Arc::default(),
        attestors: Arc::new(attestors(&config)?),
        exchange: excalibur_api::ExchangeConfig {
            max_workload_token_ttl: config.max_workload_token_ttl,
            issuer_url: config.issuer_url.clone(),
            trust_domain: config.trust_domain.clone(),
            signing_setting: init::SIGNING_KEYS_SETTING.to_owned(),
        },
        signing,
        registry: Arc::new(registry),
        metrics: api_metrics,
        presign,
        netbird: {
            let view = Arc::clone(&netbird_view);
            Arc::new(move || {
                let v = view
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (v.status.clone(), v.peers.clone())
            })
        },
        ssh: excalibur_api::SshHooks {
            info: ssh_info,
            revoke: {
                let gateway = gateway.clone();
                Arc::new(move |id: &str| gateway.revoke(id))
            },
            check_public: |line| {
                excalibur_ssh::parse_public_key(line).map(|k| excalibur_ssh::fingerprint(&k))
            },
            check_private: |pem| {
                excalibur_ssh::parse_private_key(pem).map(|k| excalibur_ssh::public_line(&k))
            },
        },
        key_info: Arc::new(excalibur_proxy::jwt_bearer::key_info),
        dpop_keygen: Arc::new(excalibur_proxy::dpop::generate_key),
        client_identity: Arc::new(|cert: &str, key: &excalibur_core::Secret| {
            excalibur_proxy::ca::client_identity(cert, key).map(|(certs, _)| {
                certs
                    .first()
                    .map(|c| excalibur_core::secret::fingerprint(c.as_ref()))
                    .unwrap_or_default()
            })
        }),
    });

    store
        .record(
            Vec::new(),
            vec![NewEvent::new(
                EventType::ServerStarted,
                "system",
                serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "api_listen": api_addr.to_string(),
                                   "proxy_listen": proxy_addr.to_string()}),
            )],
        )
        .await?;

    crate::webhooks::init_cursor(store.as_ref()).await?;
    if let Some(nb) = config.netbird.clone() {
        {
            let mut v = netbird_view
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            v.status.configured = true;
            v.status.sync_url = Some(nb.url.clone());
        }
        tracker.spawn(Arc::clone(&snapshots).follow_devices(cancel.clone()));
        tracker.spawn(crate::netbird::run(
            nb,
            Arc::clone(&netbird_view),
            devices_tx,
            Arc::clone(&store),
            cancel.clone(),
        ));
    }
    if let Some(connect) = database.clone() {
        tracker.spawn(follow_replicas(
            connect,
            Arc::clone(&snapshots),
            config.health.resync_interval,
            cancel.clone(),
        ));
    }
    tracker.spawn({
        let (ca, cert, names, cancel) = (
            Arc::clone(&ca),
            Arc::clone(&api_cert),
            config.tls_names.clone(),
            cancel.clone(),
        );
        async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(ca.renew_after()) => {}
                    () = cancel.cancelled() => return,
                }
                let (ca, names) = (Arc::clone(&ca), names.clone());
                match tokio::task::spawn_blocking(move || ca.mint(&names)).await {
                    Ok(Ok(key)) => {
                        cert.swap(key);
                        tracing::info!("renewed the API listener's certificate");
                    }
                    _ => tracing::error!("cannot renew the API listener's certificate; retrying"),
                }
            }
        }
    });
    tracker.spawn({
        let (store, snapshots, cancel) =
            (Arc::clone(&store), Arc::clone(&snapshots), cancel.clone());
        async move {
            // The lock lives on its own database connection: lost with it (a PostgreSQL
            // restart), it is taken again within a second. Sweeps wait until every
            // replica has had time to do the same, so an outage ends no live session.
            let mut held = Some(gateway_held);
            // At start every replica's lock is as it should be: no grace period.
            let now = Instant::now();
            let mut held_since = now.checked_sub(2 * SESSION_SWEEP_INTERVAL).unwrap_or(now);
            let mut last_sweep = now;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = cancel.cancelled() => return,
                }
                if !held.as_ref().is_some_and(excalibur_store::Exclusive::is_held) {
                    if held.take().is_some() {
                        tracing::error!("this gateway's lock was lost with its database connection; taking it again");
                    }
                    match store.exclusive(gateway_lock(&instance), false).await {
                        Ok(Some(l)) => {
                            tracing::warn!("this gateway's lock is held again");
                            held = Some(l);
                            held_since = Instant::now();
                        }
                        Ok(None) | Err(_) => continue,
                    }
                }
                if last_sweep.elapsed() < SESSION_SWEEP_INTERVAL
                    || held_since.elapsed() < 2 * SESSION_SWEEP_INTERVAL
                {
                    continue;
                }
                last_sweep = Instant::now();
                if sweep_lost_sessions(store.as_ref(), &instance).await {
                    snapshots.rebuild_logged().await;
                }
            }
        }
    });
    let background = tokio::spawn(crate::webhooks::run(
        Arc::clone(&store),
        crate::snapshot::Rebuilder::new(&snapshots),
        config.webhooks.clone(),
        crate::checkpoint::Checkpointer {
            store: Arc::clone(&store),
            key: Arc::clone(&checkpoint_key),
            every_events: config.checkpoint_every_events,
            every: config.checkpoint_every,
            latest: None,
        },
        cancel.clone(),
    ));
    let budget = || Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections));
    let api_dispatch = Dispatch {
        api: Some(api),
        proxy: proxy.clone(),
        limits: config.limits.clone(),
        connections: budget(),
        pending: Pending::new(config.limits.max_connections, PENDING_PER_SOURCE),
        per_source: None,
    };
    let proxy_dispatch = Dispatch {
        api: None,
        proxy,
        limits: config.limits.clone(),
        connections: budget(),
        pending: Pending::new(config.limits.max_connections, PENDING_PER_SOURCE),
        per_source: Some(Pending::new(
            config.limits.max_connections,
            config.limits.max_connections_per_source,
        )),
    };
    let accept_api = tokio::spawn(accept_with(
        Arc::clone(&svids),
        api_listener,
        api_dispatch,
        Some(api_tls),
        cancel.clone(),
        tracker.clone(),
    ));
    let accept_proxy = tokio::spawn(accept(
        proxy_listener,
        proxy_dispatch,
        None,
        cancel.clone(),
        tracker.clone(),
        None,
    ));
    tracing::info!(addr = %api_addr, "api listening");
    tracing::info!(addr = %proxy_addr, "proxy listening");
    let accept_ssh = tokio::spawn(gateway.serve(ssh_listener, cancel.clone()));
    tracing::info!(addr = %ssh_addr, "ssh listening");
    tracing::info!("ready");

    shutdown_signal().await;
    tracing::info!("shutting down");
    cancel.cancel();
    let _ = tokio::join!(accept_api, accept_proxy, accept_ssh, background);
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; closing them");
    }
    writer_cancel.cancel();
    let _ = writer.await;
    Ok(())
}

/// Every trusted workload issuer: the Kubernetes cluster, SPIFFE trust domains, OIDC.
fn attestors(config: &Config) -> anyhow::Result<excalibur_identity::attest::Attestors> {
    use excalibur_identity::attest::{
        Attestors, JwksSource, Kubernetes, KubernetesConfig, OidcIssuer, SpiffeTrustDomain,
    };
    let client = || -> anyhow::Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy();
        let roots: Vec<reqwest::Certificate> = extra_roots(config)?
            .iter()
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
            .collect();
        if !roots.is_empty() {
            b = b.tls_certs_merge(roots);
        }
        Ok(b.build()?)
    };
    let source = |url: &Option<String>,
                  file: &Option<std::path::PathBuf>|
     -> anyhow::Result<Box<dyn JwksSource>> {
        Ok(match (url, file) {
            (Some(url), _) => Box::new(UrlJwks {
                url: url.clone(),
                client: client()?,
                bearer_file: None,
            }),
            (None, Some(path)) => Box::new(FileJwks(path.clone())),
            (None, None) => anyhow::bail!("no JWKS location"),
        })
    };
    let mut attestors = Attestors::default();
    if let Some(k) = &config.kubernetes {
        let jwks = kubernetes_jwks(config, k)?;
        let cfg = KubernetesConfig {
            issuer: k.issuer.clone(),
            cluster: k.cluster.clone(),
            audience: k.audience.clone(),
        };
        let mut verifier = Kubernetes::new(cfg, jwks);
        verifier.tag_claims.clone_from(&k.tags);
        attestors.kubernetes = Some(verifier);
        tracing::info!(issuer = %k.issuer, cluster = %k.cluster, "kubernetes token exchange enabled");
    }
    for d in &config.spiffe {
        let bundle = source(&d.bundle_url, &d.bundle_file)?;
        let mut verifier = SpiffeTrustDomain::new(
            d.trust_domain.clone(),
            d.audience.clone(),
            d.admit_paths.clone(),
            bundle,
        );
        verifier.tag_claims = d.tags.clone().into_iter().collect();
        attestors.spiffe.push(verifier);
        tracing::info!(trust_domain = %d.trust_domain, "spiffe jwt-svid exchange enabled");
    }
    for o in &config.oidc {
        let jwks: Box<dyn JwksSource> = if o.discovery {
            Box::new(DiscoveredJwks {
                issuer: o.issuer.clone(),
                client: client()?,
            })
        } else {
            source(&o.jwks_url, &o.jwks_file)?
        };
        let mut verifier = OidcIssuer::new(
            o.name.clone(),
            o.issuer.clone(),
            o.audience.clone(),
            o.principal_claim.clone(),
            o.namespace_claim.clone(),
            jwks,
        );
        verifier.tag_claims = o.tags.clone().into_iter().collect();
        attestors.oidc.push(verifier);
        tracing::info!(issuer = %o.issuer, name = %o.name, "oidc workload exchange enabled");
    }
    cloud_attestors(config, &mut attestors, &source)?;
    Ok(attestors)
}

/// How a JWKS location becomes a source (a URL fetched, or a file).
type JwksFrom<'a> = dyn Fn(
        &Option<String>,
        &Option<std::path::PathBuf>,
    ) -> anyhow::Result<Box<dyn excalibur_identity::attest::JwksSource>>
    + 'a;

/// The cloud attestors: GCP and Azure (JWKS from `source`, their providers' keys by
/// default) and AWS (signed requests sent to STS by a client that never redirects).
fn cloud_attestors(
    config: &Config,
    attestors: &mut excalibur_identity::attest::Attestors,
    source: &JwksFrom<'_>,
) -> anyhow::Result<()> {
    for g in &config.gcp {
        use excalibur_identity::cloud::{GOOGLE_JWKS_URL, Gcp, GcpConfig};
        let url = g
            .jwks_url
            .clone()
            .or_else(|| g.jwks_file.is_none().then(|| GOOGLE_JWKS_URL.to_owned()));
        let cfg = GcpConfig {
            audience: g.audience.clone(),
            projects: g.projects.clone(),
            service_accounts: g.service_accounts.clone(),
            namespace: g.namespace.clone(),
        };
        let mut verifier = Gcp::new(cfg, source(&url, &g.jwks_file)?);
        verifier.tag_claims = g.tags.clone().into_iter().collect();
        attestors.gcp.push(verifier);
        tracing::info!(audience = %g.audience, projects = ?g.projects, "gcp workload identity exchange enabled");
    }
    for a in &config.azure {
        use excalibur_identity::cloud::{Azure, AzureConfig, azure_jwks_url};
        let url = a
            .jwks_url
            .clone()
            .or_else(|| a.jwks_file.is_none().then(|| azure_jwks_url(&a.tenant)));
        let cfg = AzureConfig {
            tenant: a.tenant.clone(),
            audience: a.audience.clone(),
            object_ids: a.object_ids.clone(),
            namespace: a.namespace.clone(),
        };
        let mut verifier = Azure::new(cfg, source(&url, &a.jwks_file)?);
        verifier.tag_claims = a.tags.clone().into_iter().collect();
        attestors.azure.push(verifier);
        tracing::info!(tenant = %a.tenant, "azure managed identity exchange enabled");
    }
    for a in &config.aws {
        use excalibur_identity::aws::{Aws, AwsConfig};
        let cfg = AwsConfig {
            sts_endpoint: a.endpoint(),
            server_id: a.server_id.clone(),
            accounts: a.accounts.clone(),
            role_patterns: a.role_patterns.clone(),
            namespace: a.namespace.clone(),
        };
        // Never redirected: the signed request goes to the configured endpoint only.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        let roots: Vec<reqwest::Certificate> = extra_roots(config)?
            .iter()
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
            .collect();
        let client = if roots.is_empty() {
            client
        } else {
            client.tls_certs_merge(roots)
        };
        attestors
            .aws
            .push(Aws::new(cfg, Box::new(HttpSts(client.build()?))));
        tracing::info!(endpoint = %a.endpoint(), accounts = ?a.accounts, "aws sts exchange enabled");
    }
    Ok(())
}

/// Sends signed `GetCallerIdentity` requests to STS.
#[derive(Debug)]
struct HttpSts(reqwest::Client);

impl excalibur_identity::aws::StsCaller for HttpSts {
    fn call(
        &self,
        req: excalibur_identity::aws::StsRequest,
    ) -> excalibur_identity::aws::StsAnswer<'_> {
        Box::pin(async move {
            let mut r = self.0.post(&req.url).body(req.body);
            for (name, value) in &req.headers {
                r = r.header(name.as_str(), value.as_str());
            }
            let mut resp = r
                .send()
                .await
                .map_err(|e| excalibur_core::ErrorChain(&e).to_string())?;
            let status = resp.status().as_u16();
            // An STS answer is a few KiB: read at most 64 KiB of it.
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                if body.len() + chunk.len() > 64 * 1024 {
                    return Err("the STS answer is larger than 64 KiB".to_owned());
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        })
    }
}

/// The cluster's JWKS: a file, or a URL fetched with the pod's token (re-read at each
/// fetch) and trusting the cluster CA besides the configured roots.
fn kubernetes_jwks(
    config: &Config,
    k: &crate::config::Kubernetes,
) -> anyhow::Result<Box<dyn excalibur_identity::attest::JwksSource>> {
    Ok(match &k.jwks {
        crate::config::JwksLocation::Url(u) => {
            let mut b = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy();
            let mut roots = extra_roots(config)?;
            if let Some(ca) = &k.ca_file {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("EXCALIBUR_K8S_CA_FILE {}", ca.display()))?;
                let found = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
                    .filter_map(Result::ok)
                    .map(rustls_pki_types::CertificateDer::into_owned);
                let before = roots.len();
                roots.extend(found);
                anyhow::ensure!(
                    roots.len() > before,
                    "EXCALIBUR_K8S_CA_FILE {} holds no PEM certificate",
                    ca.display()
                );
            }
            let roots: Vec<reqwest::Certificate> = roots
                .iter()
                .filter_map(|der| reqwest::Certificate::from_der(der).ok())
                .collect();
            if !roots.is_empty() {
                b = b.tls_certs_merge(roots);
            }
            Box::new(UrlJwks {
                url: u.clone(),
                client: b.build()?,
                bearer_file: k.token_file.clone(),
            })
        }
        crate::config::JwksLocation::File(f) => Box::new(FileJwks(f.clone())),
    })
}

#[derive(Debug)]
struct FileJwks(std::path::PathBuf);

impl excalibur_identity::attest::JwksSource for FileJwks {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            tokio::fs::read_to_string(&self.0)
                .await
                .map_err(|e| format!("{}: {e}", self.0.display()))
        })
    }
}

#[derive(Debug)]
struct UrlJwks {
    url: String,
    client: reqwest::Client,
    /// A bearer token file sent with each fetch, re-read each time (Kubernetes rotates
    /// the pod's projected token).
    bearer_file: Option<std::path::PathBuf>,
}

impl excalibur_identity::attest::JwksSource for UrlJwks {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            let bearer = match &self.bearer_file {
                Some(path) => Some(
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|e| format!("{}: {e}", path.display()))?
                        .trim()
                        .to_owned(),
                ),
                None => None,
            };
            fetch_capped(&self.client, &self.url, bearer.as_deref()).await
        })
    }
}

/// Most bytes read from a JWKS or discovery endpoint.
const MAX_KEY_DOCUMENT_BYTES: usize = 1024 * 1024;

/// GETs `url` and returns its body as text, refusing non-2xx answers and bodies over
/// [`MAX_KEY_DOCUMENT_BYTES`] (a hostile endpoint cannot exhaust memory).
async fn fetch_capped(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<String, String> {
    let mut req = client.get(url);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{url}: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let body = crate::bounded::read_capped(resp, MAX_KEY_DOCUMENT_BYTES)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    String::from_utf8(body).map_err(|_| format!("{url}: the document is not UTF-8"))
}

/// OIDC discovery: `<issuer>/.well-known/openid-configuration` names the JWKS; its
/// `issuer` must equal the configured one byte for byte.
#[derive(Debug)]
struct DiscoveredJwks {
    issuer: String,
    client: reqwest::Client,
}

impl excalibur_identity::attest::JwksSource for DiscoveredJwks {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move {
            let url = format!(
                "{}/.well-known/openid-configuration",
                self.issuer.trim_end_matches('/')
            );
            let doc: serde_json::Value =
                serde_json::from_str(&fetch_capped(&self.client, &url, None).await?)
                    .map_err(|e| format!("{url}: {e}"))?;
            if doc.get("issuer").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
                return Err(format!("{url} names another issuer"));
            }
            let jwks_uri = doc
                .get("jwks_uri")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("{url} has no jwks_uri"))?;
            fetch_capped(&self.client, jwks_uri, None).await
        })
    }
}

fn extra_roots(config: &Config) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let Some(path) = &config.upstream.ca_file else {
        return Ok(Vec::new());
    };
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read upstream.ca_file {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "upstream.ca_file {} is not PEM certificates",
                path.display()
            )
        })?;
    Ok(certs)
}

/// How often sessions held by vanished gateways are looked for.
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The cluster lock a gateway process holds while it lives.
fn gateway_lock(instance: &str) -> String {
    format!("ssh-gateway:{instance}")
}

/// Ends what gateways that no longer hold their lock (they exited or died) left open:
/// their active SSH sessions (their connections and shells are gone, so their proxy
/// tokens must go too) and their flows in flight (completed as `interrupted`, with their
/// `flow_recorded` events). True when a session was ended.
async fn sweep_lost_sessions(store: &dyn Store, instance: &str) -> bool {
    let mut gone = std::collections::HashMap::new();
    let mut ended = false;
    let active = store.ssh_session_active().await.unwrap_or_default();
    for s in active {
        if !gateway_gone(store, instance, &mut gone, &s.gateway).await {
            continue;
        }
        match store
            .ssh_session_end(
                s.id.clone(),
                "ended".into(),
                "gateway_lost".into(),
                "system".into(),
            )
            .await
        {
            Ok(Some(_)) => ended = true,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %excalibur_core::ErrorChain(&e), session = %s.id, "cannot end a lost ssh session")
            }
        }
    }
    for gateway in store.flow_gateways_in_flight().await.unwrap_or_default() {
        if !gateway_gone(store, instance, &mut gone, &gateway).await {
            continue;
        }
        match store.flows_interrupted(gateway.clone()).await {
            Ok(n) => tracing::warn!(
                flows = n,
                gateway = %gateway,
                "flows in flight when their gateway stopped are recorded as interrupted"
            ),
            Err(e) => {
                tracing::warn!(error = %excalibur_core::ErrorChain(&e), "cannot complete interrupted flows")
            }
        }
    }
    ended
}

/// Whether `gateway` (not this `instance`) has let go of its lock, asked once per sweep.
async fn gateway_gone(
    store: &dyn Store,
    instance: &str,
    known: &mut std::collections::HashMap<String, bool>,
    gateway: &str,
) -> bool {
    if gateway == instance {
        return false;
    }
    if let Some(g) = known.get(gateway) {
        return *g;
    }
    // A free lock means its holder is gone (the probe's guard drops at once).
    let probe = store.exclusive(gateway_lock(gateway), false).await;
    let g = matches!(probe, Ok(Some(_)));
    known.insert(gateway.to_owned(), g);
    g
}

/// With PostgreSQL: rebuild the snapshot whenever another replica commits a change
/// (LISTEN/NOTIFY), and every `resync` regardless (`[health] resync_interval_ms`: a
/// notification missed while the LISTEN connection was down, for instance).
async fn follow_replicas(
    connect: excalibur_store::postgres::PgConnect,
    snapshots: Arc<Snapshots>,
    resync: Duration,
    cancel: CancellationToken,
) {
    let mut changes = excalibur_store::postgres::listen(connect);
    let mut listening = true;
    let mut resync = tokio::time::interval(resync);
    resync.tick().await;
    loop {
        tokio::select! {
            change = changes.recv(), if listening => {
                if change.is_none() {
                    tracing::error!("the LISTEN thread ended; relying on periodic resync");
                    listening = false;
                    continue;
                }
                // One rebuild covers every notification already queued.
                while changes.try_recv().is_ok() {}
                snapshots.rebuild_logged().await;
            }
            _ = resync.tick() => snapshots.rebuild_logged().await,
            () = cancel.cancelled() => return,
        }
    }
}

/// The SSH gateway's handle on the control plane: a session is in the store (and its
/// proxy token in the snapshot) before its shell starts.
#[derive(Debug)]
struct SshSessions {
    store: Arc<dyn Store>,
    snapshots: Arc<Snapshots>,
}

impl excalibur_ssh::SessionControl for SshSessions {
    fn start(
        &self,
        session: excalibur_core::api::SshSession,
        token_hash: String,
    ) -> excalibur_ssh::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.store
                .ssh_session_start(session, token_hash)
                .await
                .map_err(|e| excalibur_core::ErrorChain(&e).to_string())?;
            self.snapshots.rebuild().await.map_err(|e| format!("{e:#}"))
        })
    }

    fn end(&self, id: String, reason: &'static str) -> excalibur_ssh::BoxFuture<'_, ()> {
        Box::pin(async move {
            match self
                .store
                .ssh_session_end(id.clone(), "ended".into(), reason.into(), "system".into())
                .await
            {
                Ok(Some(_)) => self.snapshots.rebuild_logged().await,
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %excalibur_core::ErrorChain(&e), session = %id, "recording the end of an ssh session failed")
                }
            }
        })
    }
}

/// The proxy's handle on the control plane.
#[derive(Debug)]
struct BinControl {
    store: Arc<dyn Store>,
    snapshots: Arc<Snapshots>,
    signing: Arc<tokio::sync::RwLock<excalibur_identity::mint::SigningKeys>>,
    issuer_url: String,
}

impl Control for BinControl {
    fn revoke_credential(
        &self,
        id: CredentialId,
        reason: &'static str,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let (store, snapshots) = (Arc::clone(&self.store), Arc::clone(&self.snapshots));
        Box::pin(async move {
            match store
                .credential_revoke(id.clone(), reason.to_owned(), "system".to_owned())
                .await
            {
                Ok(_) => {
                    snapshots
                        .changed_logged(excalibur_api::Changed::Credential(id))
                        .await;
                }
                Err(e) => {
                    tracing::error!(error = %excalibur_core::ErrorChain(&e), credential = %id, "automatic revocation failed")
                }
            }
        })
    }

    fn store_mapping_secret(
        &self,
        id: String,
        generation: u64,
        secret: excalibur_core::Secret,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let (store, snapshots) = (Arc::clone(&self.store), Arc::clone(&self.snapshots));
        Box::pin(async move {
            if let Err(e) =
                Self::store_secret(store, snapshots, id.clone(), generation, secret).await
            {
                tracing::error!(error = %excalibur_core::ErrorChain(&e), mapping = %id, "storing a rotated refresh token failed");
            }
        })
    }

    fn web_identity_token(
        &self,
        subject: String,
        audience: String,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> {
        Box::pin(Self::sign_web_identity(
            Arc::clone(&self.signing),
            self.issuer_url.clone(),
            subject,
            audience,
        ))
    }
}

impl BinControl {
    /// A five-minute ES256 JWT from Excalibur's OIDC issuer (`iss` = the issuer URL, keys
    /// at `<issuer>/.well-known/jwks.json`).
    async fn sign_web_identity(
        signing: Arc<tokio::sync::RwLock<excalibur_identity::mint::SigningKeys>>,
        issuer: String,
        subject: String,
        audience: String,
    ) -> Result<String, String> {
        let now = excalibur_core::time::Timestamp::now().millis() / 1000;
        let claims = serde_json::json!({
            "iss": issuer, "sub": subject, "aud": audience, "iat": now, "nbf": now - 5,
            "exp": now + 300,
            "jti": excalibur_core::secret::hex(&excalibur_core::ids::random_bytes::<16>()),
        });
        signing
            .read()
            .await
            .sign(&claims)
            .map_err(|e| e.to_string())
    }

    async fn store_secret(
        store: Arc<dyn Store>,
        snapshots: Arc<crate::snapshot::Snapshots>,
        id: String,
        generation: u64,
        secret: excalibur_core::Secret,
    ) -> Result<(), excalibur_store::StoreError> {
        use excalibur_core::api::CryptoFamily;
        let family = CryptoFamily::OauthRefresh;
        // Only for the generation it was refreshed under: an operator's newer refresh
        // token is never overwritten by an older rotation.
        let Some(record) = store.mapping_list(family).await?.into_iter().find(|m| {
            m.id == id
                && m.config
                    .get("generation")
                    .and_then(serde_json::Value::as_u64)
                    == Some(generation)
        }) else {
            return Ok(());
        };
        store
            .mapping_upsert(record, secret, "system".to_owned())
            .await?;
        snapshots.rebuild_logged().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

async fn accept_with(
    svids: Arc<SvidVerifiers>,
    listener: TcpListener,
    dispatch: Dispatch,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    accept(listener, dispatch, tls, cancel, tracker, Some(svids)).await;
}

async fn accept(
    listener: TcpListener,
    dispatch: Dispatch,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    svids: Option<Arc<SvidVerifiers>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let Some(slot) = dispatch.pending.admit(peer.ip().to_canonical()) else {
            tracing::warn!(peer = %peer, "too many silent connections from this source; closing");
            continue;
        };
        let mut tcp = IdleIo::new(tcp, dispatch.limits.idle_timeout);
        let (dispatch, acceptor, cancel, svids) = (
            dispatch.clone(),
            acceptor.clone(),
            cancel.clone(),
            svids.clone(),
        );
        tracker.spawn(async move {
            // Nothing is served, and no connection permit taken, before the first byte,
            // which must come within the header read timeout.
            let mut first = [0u8; 1];
            let wait = dispatch.limits.header_read_timeout.min(HANDSHAKE_TIMEOUT);
            match tokio::time::timeout(wait, tcp.get_ref().peek(&mut first)).await {
                Ok(Ok(1)) => {}
                _ => return,
            }
            drop(slot);
            let Ok(permit) = Arc::clone(&dispatch.connections).try_acquire_owned() else {
                tracing::warn!(peer = %peer, "connection limit reached; closing");
                return;
            };
            let Ok(source_slot) = dispatch.admit_source(peer) else {
                tracing::warn!(peer = %peer, "too many connections from this source; closing");
                return;
            };
            // The socket holds its slots: a CONNECT tunnel outlives this task.
            tcp.hold((permit, source_slot));
            let Some(acceptor) = acceptor else {
                serve_connection(tcp, peer, None, dispatch, cancel).await;
                return;
            };
            if first[0] == 0x16 {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                let identity = svids
                    .and_then(|v| v.identify(tls.get_ref().1, peer))
                    .map(Arc::new);
                serve_connection(tls, peer, identity, dispatch, cancel).await;
            } else if peer.ip().to_canonical().is_loopback() {
                serve_connection(tcp, peer, None, dispatch, cancel).await;
            } else {
                // Plain HTTP is for loopback only; a remote peer must use TLS.
                reject_plain(tcp).await;
            }
        });
    }
}

async fn reject_plain(mut tcp: IdleIo<TcpStream>) {
    use tokio::io::AsyncWriteExt as _;
    let body = r#"{"type":"https://excalibur.dev/problems/tls_required","title":"Bad Request","status":400,"detail":"plain HTTP is accepted from loopback only; use https://","code":"tls_required"}"#;
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.write_all(resp.as_bytes())).await;
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    identity: Option<Arc<excalibur_proxy::TlsIdentity>>,
    dispatch: Dispatch,
    cancel: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let dispatch_limits = dispatch.limits.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (dispatch, identity) = (dispatch.clone(), identity.clone());
        async move { Ok::<_, Infallible>(route(req, peer, identity.as_deref(), dispatch).await) }
    });
    let builder = dispatch_limits.http().server();
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// CONNECT and absolute-form requests are proxy requests; origin-form ones go to the API.
async fn route(
    req: Request<Incoming>,
    peer: SocketAddr,
    identity: Option<&excalibur_proxy::TlsIdentity>,
    dispatch: Dispatch,
) -> Response<ProxyBody> {
    // HTTP/2 requests always carry :scheme and :authority, so only HTTP/1 absolute-form
    // marks a proxy request there.
    let absolute_form = req.version() < hyper::Version::HTTP_2 && req.uri().scheme().is_some();
    let is_proxy = req.method() == Method::CONNECT || absolute_form;
    match dispatch.api {
        Some(api) if !is_proxy => {
            if !dispatch.limits.http().head_fits(&req) {
                use axum::response::IntoResponse as _;
                let refused = excalibur_api::ApiError::new(
                    hyper::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "header_too_large",
                    "the request head is larger than the gateway accepts",
                );
                let resp = refused.into_response();
                return resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync());
            }
            let mut req = req;
            req.extensions_mut().insert(excalibur_api::PeerAddr(peer));
            let resp = match api.oneshot(req.map(axum::body::Body::new)).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync())
        }
        _ => dispatch.proxy.handle(req, peer, identity).await,
    }
}

/// X.509-SVID verification for client certificates on the TLS listener: one verifier
/// over every trust domain for the handshake (certificates optional), and one per trust
/// domain to check that a leaf chains to its own domain's bundle.
struct SvidVerifiers {
    handshake: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    by_domain:
        std::collections::HashMap<String, Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

impl SvidVerifiers {
    fn load(config: &Config) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut all = rustls::RootCertStore::empty();
        let mut by_domain = std::collections::HashMap::new();
        for d in &config.spiffe {
            let Some(path) = &d.x509_bundle_file else {
                continue;
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                let cert =
                    cert.with_context(|| format!("{} is not PEM certificates", path.display()))?;
                roots.add(cert.clone())?;
                all.add(cert)?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()?;
            by_domain.insert(d.trust_domain.clone(), v);
            tracing::info!(trust_domain = %d.trust_domain, "x509-svid client certificates accepted on the TLS listener");
        }
        let handshake = if by_domain.is_empty() {
            None
        } else {
            Some(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(all),
                    provider,
                )
                .allow_unauthenticated()
                .build()?,
            )
        };
        Ok(Self {
            handshake,
            by_domain,
        })
    }

    /// What the client certificate presented on this connection establishes: `None`
    /// when there is none, else a verified X.509-SVID or why it is refused.
    fn identify(
        &self,
        conn: &rustls::ServerConnection,
        peer: SocketAddr,
    ) -> Option<excalibur_proxy::TlsIdentity> {
        use excalibur_proxy::TlsIdentity;
        let certs = conn.peer_certificates()?;
        let (leaf, intermediates) = certs.split_first()?;
        let refused = |reason: &'static str, detail: &str| {
            tracing::warn!(reason, detail, peer = %peer, "client certificate is not an acceptable X.509-SVID");
            Some(TlsIdentity::Refused(reason))
        };
        let id = match excalibur_identity::svid::spiffe_id(leaf) {
            Ok(id) => id,
            Err(e) => return refused(e.reason(), &e.to_string()),
        };
        let Some((td, _)) = excalibur_identity::attest::parse_spiffe_id(&id) else {
            return refused("svid_not_spiffe", &id);
        };
        let Some(verifier) = self.by_domain.get(td) else {
            return refused("svid_trust_domain_unknown", td);
        };
        let now = rustls_pki_types::UnixTime::now();
        if verifier
            .verify_client_cert(leaf, intermediates, now)
            .is_err()
        {
            return refused(
                "svid_trust_domain_mismatch",
                "the certificate does not chain to its own trust domain's bundle",
            );
        }
        Some(TlsIdentity::Svid(Box::new(
            excalibur_identity::svid::principal(&id, peer.ip().to_canonical()),
        )))
    }
}

/// Presigns with a SigV4 mapping of the current snapshot (for `POST /api/crypto/sigv4/presign`).
fn presign(
    snapshot: &excalibur_proxy::Snapshot,
    req: &excalibur_core::api::PresignRequest,
) -> Result<excalibur_api::Presigned, excalibur_api::PresignFailure> {
    use excalibur_api::PresignFailure;
    let expires = match req.expires_in {
        None => excalibur_proxy::sigv4::DEFAULT_PRESIGN,
        Some(s) if (1..=604_800).contains(&s) => std::time::Duration::from_secs(s),
        Some(_) => {
            return Err(PresignFailure::Invalid(
                "`expires_in` must be 1 to 604800 seconds".to_owned(),
            ));
        }
    };
    let method = req.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let out = excalibur_proxy::sigv4::presign(
        &snapshot.sigv4,
        &req.mapping_id,
        &method,
        req.host.as_deref(),
        &req.path,
        expires,
    )
    .map_err(|e| e.map_or(PresignFailure::UnknownMapping, PresignFailure::Invalid))?;
    let expires_at = excalibur_core::time::Timestamp::from_millis(
        excalibur_core::time::Timestamp::now().millis()
            + i64::try_from(out.expires.as_millis()).unwrap_or(i64::MAX / 2),
    )
    .to_rfc3339();
    Ok(excalibur_api::Presigned {
        url: excalibur_core::api::PresignedUrl {
            url: excalibur_core::ShownOnce::new(out.url),
            expires_at,
        },
        host: out.host,
        path: out.path,
        method: out.method,
    })
}
