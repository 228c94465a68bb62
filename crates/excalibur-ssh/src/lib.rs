//! Excalibur's SSH gateway: users log in with a public key or an OpenSSH user
//! certificate, a route picks the target by user and source network, and the gateway
//! logs in to the target with its own (sealed) key and relays shell, exec, SFTP and
//! `ssh -L`. The session's shell gets a session-bound proxy token, so its HTTP requests
//! are attributed to `user_session:<user>@<session>`.
//!
//! **Owns:** user authentication, route choice, the target's pinned host key, channel
//! relays, the SFTP observer, the live-session registry (revoke closes a session at once).
//!
//! **Never:** lets a user reach a target no route names for them and their network;
//! trusts a target host key it was not given; logs a key or a proxy token.
//!
//! **Start at:** [`Gateway::serve`], [`RouteTable::build`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use excalibur_core::Secret;
use excalibur_core::api::{SshRoute, SshSession};
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::record::Recorder;
use ipnet::IpNet;
use russh::keys::ssh_key::Fingerprint;
use russh::keys::{Certificate, HashAlg};
pub use russh::keys::{PrivateKey, PublicKey};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod relay;
pub mod sftp;

/// A boxed future, for the [`SessionControl`] seam.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long a connection may take to authenticate and reach its target.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The control plane as the gateway sees it (the binary implements it over the store).
pub trait SessionControl: Send + Sync + std::fmt::Debug + 'static {
    /// Records a new session (its proxy token by hash) and makes the token live; the
    /// session starts only when this succeeds.
    fn start(&self, session: SshSession, token_hash: String) -> BoxFuture<'_, Result<(), String>>;
    /// Records the end of a session (a no-op when it was already revoked).
    fn end(&self, id: String, reason: &'static str) -> BoxFuture<'_, ()>;
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway's host key.
    pub host_key: PrivateKey,
    /// The key the gateway logs in to targets with when a route has none of its own.
    pub client_key: Arc<PrivateKey>,
    /// Trusted user-certificate CAs.
    pub user_cas: Vec<Fingerprint>,
    /// Proxy URL put in sessions' shells (`http://host:port`); `None`: the gateway's
    /// own address on the connection to the target, with `proxy_port`.
    pub proxy_url: Option<String>,
    /// The proxy's port (for the derived URL).
    pub proxy_port: u16,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// This process's instance id, recorded on its sessions (see `SshSession::gateway`).
    pub instance: String,
}

/// One usable route.
#[derive(Debug)]
pub struct Route {
    /// The listed form.
    pub info: SshRoute,
    network: IpNet,
    authorized: Vec<PublicKey>,
    host_key: PublicKey,
    key: Option<Arc<PrivateKey>>,
}

/// The routes in force, swapped in after every store change.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Builds the table from stored routes; a route that does not parse is left out with
    /// a problem naming it.
    pub fn build(routes: Vec<(SshRoute, Option<Secret>)>) -> (Self, Vec<String>) {
        let mut table = Vec::new();
        let mut problems = Vec::new();
        for (info, key) in routes {
            match Route::parse(info, key.as_ref()) {
                Ok(r) => table.push(Arc::new(r)),
                Err(e) => problems.push(e),
            }
        }
        // Most specific source network first.
        table.sort_by_key(|r| std::cmp::Reverse(r.network.prefix_len()));
        (Self { routes: table }, problems)
    }

    /// The routes for `user` connecting from `peer`, most specific first.
    fn candidates<'a>(
        &'a self,
        user: &'a str,
        peer: IpAddr,
    ) -> impl Iterator<Item = &'a Arc<Route>> {
        let peer = peer.to_canonical();
        self.routes
            .iter()
            .filter(move |r| r.info.user == user && r.network.contains(&peer))
    }
}

impl Route {
    fn parse(info: SshRoute, key: Option<&Secret>) -> Result<Self, String> {
        let id = info.id.clone();
        let network: IpNet = info
            .source_network
            .parse()
            .map_err(|_| format!("ssh route `{id}`: bad source network"))?;
        let host_key = parse_public_key(&info.target_host_key)
            .map_err(|e| format!("ssh route `{id}`: target host key: {e}"))?;
        let authorized = info
            .authorized_keys
            .iter()
            .map(|k| parse_public_key(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ssh route `{id}`: authorized key: {e}"))?;
        let key = key
            .map(|k| parse_private_key(k).map(Arc::new))
            .transpose()
            .map_err(|e| format!("ssh route `{id}`: target key: {e}"))?;
        Ok(Self {
            info,
            network,
            authorized,
            host_key,
            key,
        })
    }
}

/// Parses an OpenSSH public-key line (`ssh-ed25519 AAAA… comment`).
pub fn parse_public_key(line: &str) -> Result<PublicKey, String> {
    PublicKey::from_openssh(line.trim()).map_err(|e| e.to_string())
}

/// Parses an OpenSSH private key (unencrypted PEM).
pub fn parse_private_key(pem: &Secret) -> Result<PrivateKey, String> {
    let text = std::str::from_utf8(pem.expose()).map_err(|_| "not UTF-8".to_owned())?;
    let key = PrivateKey::from_openssh(text.trim()).map_err(|e| e.to_string())?;
    if key.is_encrypted() {
        return Err("the key is encrypted; give an unencrypted key (it is sealed at rest)".into());
    }
    Ok(key)
}

/// Reads trusted user-CA public keys (one OpenSSH line each; `#` comments and blank
/// lines skipped) into their fingerprints.
pub fn parse_user_cas(text: &str) -> Result<Vec<Fingerprint>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_public_key(l).map(|k| k.fingerprint(HashAlg::Sha256)))
        .collect()
}

/// A new Ed25519 key in OpenSSH PEM (for the gateway's host and client keys).
pub fn generate_key() -> Result<Secret, String> {
    let seed = excalibur_core::ids::random_bytes::<32>();
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let key = PrivateKey::from(pair);
    let pem = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok(Secret::new(pem.as_bytes().to_vec()))
}

/// The OpenSSH public-key line of a private key.
pub fn public_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap_or_default()
}

/// SHA-256 fingerprint (`SHA256:…`) of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A live session, as the registry keeps it.
#[derive(Debug)]
struct Live {
    cancel: CancellationToken,
}

/// The SSH gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: GatewayConfig,
    server: Arc<russh::server::Config>,
    routes: Arc<ArcSwap<RouteTable>>,
    control: Arc<dyn SessionControl>,
    recorder: Arc<dyn Recorder>,
    live: Mutex<HashMap<String, Live>>,
}

impl Gateway {
    /// A gateway over `routes` (swapped by the binary after every store change).
    pub fn new(
        config: GatewayConfig,
        routes: Arc<ArcSwap<RouteTable>>,
        control: Arc<dyn SessionControl>,
        recorder: Arc<dyn Recorder>,
    ) -> Self {
        let server = russh::server::Config {
            keys: vec![config.host_key.clone()],
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            max_auth_attempts: 6,
            inactivity_timeout: Some(Duration::from_secs(3600)),
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 4,
            nodelay: true,
            methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
            ..Default::default()
        };
        Self {
            inner: Arc::new(Inner {
                config,
                server: Arc::new(server),
                routes,
                control,
                recorder,
                live: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Closes a live session at once (both legs); false when it is not live here.
    pub fn revoke(&self, id: &str) -> bool {
        let live = self
            .inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match live.get(id) {
            Some(l) => {
                l.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Closes every live session the store no longer lists as active (revoked or ended
    /// through another replica); called with each new snapshot.
    pub fn retain(&self, active: &std::collections::HashSet<String>) {
        let live = self
            .inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, l) in live.iter() {
            if !active.contains(id) {
                l.cancel.cancel();
            }
        }
    }

    /// Accepts connections until `cancel`; each connection runs on its own task.
    pub async fn serve(self, listener: TcpListener, cancel: CancellationToken) {
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.inner.config.max_connections,
        ));
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => break,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "ssh accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(%peer, "ssh connection limit reached; closing");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let gw = self.clone();
            let shutdown = cancel.clone();
            tokio::spawn(async move {
                gw.connection(stream, peer, shutdown).await;
                drop(permit);
            });
        }
    }

    async fn connection(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let state = Arc::new(Mutex::new(ConnState::default()));
        // Revocation of this session only (the shutdown token is shared).
        let cancel = CancellationToken::new();
        let handler = relay::UserHandler::new(
            Arc::clone(&self.inner),
            peer,
            Arc::clone(&state),
            cancel.clone(),
        );
        let started = tokio::time::timeout(
            LOGIN_TIMEOUT,
            russh::server::run_stream(Arc::clone(&self.inner.server), stream, handler),
        )
        .await;
        let session = match started {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "ssh handshake failed");
                return;
            }
            Err(_) => return,
        };
        let handle = session.handle();
        // A connection that has not logged in and reached its target by then is dropped.
        let login_deadline = {
            let state = Arc::clone(&state);
            async move {
                tokio::time::sleep(LOGIN_TIMEOUT).await;
                loop {
                    let established = state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .session_id
                        .is_some();
                    if !established {
                        return;
                    }
                    std::future::pending::<()>().await;
                }
            }
        };
        let reason = tokio::select! {
            () = login_deadline => {
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "login timed out".into(), String::new())
                    .await;
                "login_timeout"
            }
            r = session => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "ssh session ended with an error");
                }
                "closed"
            }
            () = cancel.cancelled() => {
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "session revoked".into(), String::new())
                    .await;
                "revoked"
            }
            () = shutdown.cancelled() => {
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "gateway shutting down".into(), String::new())
                    .await;
                "gateway_shutdown"
            }
        };
        let (id, target) = {
            let mut s = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (s.session_id.take(), s.target.take())
        };
        if let Some(target) = target {
            let _ = target
                .disconnect(russh::Disconnect::ByApplication, "session ended", "")
                .await;
        }
        if let Some(id) = id {
            self.inner
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
            self.inner.control.end(id, reason).await;
        }
    }
}

/// What one connection has established so far (shared between its handler and the task
/// that waits for it to end).
#[derive(Default)]
struct ConnState {
    session_id: Option<String>,
    target: Option<Arc<russh::client::Handle<relay::TargetHandler>>>,
}

impl Inner {
    fn deny(&self, user: &str, peer: SocketAddr, reason: &str) {
        let _ = self.recorder.event(NewEvent::new(
            EventType::SshAccessDenied,
            format!("ssh:{user}"),
            serde_json::json!({"user": user, "source": peer.ip().to_canonical().to_string(), "reason": reason}),
        ));
    }

    /// Checks an OpenSSH user certificate: signed by a trusted CA, valid now, a user
    /// certificate naming `user`, and no critical option it cannot honour.
    fn check_certificate(
        &self,
        user: &str,
        peer: IpAddr,
        cert: &Certificate,
    ) -> Result<(), &'static str> {
        if self.config.user_cas.is_empty() {
            return Err("no_trusted_user_ca");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        cert.validate_at(now, &self.config.user_cas)
            .map_err(|_| "certificate_invalid")?;
        if cert.cert_type() != russh::keys::ssh_key::certificate::CertType::User {
            return Err("not_a_user_certificate");
        }
        if !cert.valid_principals().iter().any(|p| p == user) {
            return Err("certificate_principal_mismatch");
        }
        for (name, value) in cert.critical_options().iter() {
            if name != "source-address" {
                return Err("unsupported_critical_option");
            }
            let allowed = value
                .split(',')
                .filter_map(|n| {
                    n.trim()
                        .parse::<IpNet>()
                        .ok()
                        .or_else(|| n.trim().parse::<IpAddr>().ok().map(IpNet::from))
                })
                .any(|n| n.contains(&peer.to_canonical()));
            if !allowed {
                return Err("certificate_source_address");
            }
        }
        Ok(())
    }
}
