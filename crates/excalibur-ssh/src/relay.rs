//! The two legs of a gateway session: [`UserHandler`] (russh server, the user's side)
//! and [`TargetHandler`] (russh client, the target's side), and the per-channel relays
//! between them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use excalibur_core::api::SshSession;
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::ids::{random_bytes, token_hash};
use excalibur_core::secret::hex;
use russh::keys::{Certificate, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::server::{Auth, ChannelOpenHandle, Msg as ServerMsg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelMsg, ChannelOpenFailure};
use tokio_util::sync::CancellationToken;

use crate::sftp::SftpObserver;
use crate::{ConnState, Inner, Live, Route};

/// The target must answer within this.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The gateway's client side: accepts only the route's pinned host key.
#[derive(Debug)]
pub(crate) struct TargetHandler {
    host_key: PublicKey,
}

impl russh::client::Handler for TargetHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.key_data() == self.host_key.key_data()
            }
            PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

/// What a logged-in user was routed to.
struct Routed {
    route: Arc<Route>,
    auth: &'static str,
    /// From the certificate's `@excalibur.dev` extensions.
    factors: Vec<String>,
    tags: std::collections::BTreeMap<String, String>,
}

/// What a user certificate's CA asserts beyond the login: `factors@excalibur.dev`
/// (comma-separated, e.g. `Fido2` after a WebAuthn login at the CA) and any other
/// `<tag>@excalibur.dev` extension as a tag. Only a trusted user CA's certificates get
/// here, and the extensions are covered by its signature.
fn asserted(cert: &Certificate) -> (Vec<String>, std::collections::BTreeMap<String, String>) {
    let mut factors = Vec::new();
    let mut tags = std::collections::BTreeMap::new();
    for (name, value) in cert.extensions().iter() {
        let Some(key) = name.strip_suffix("@excalibur.dev") else {
            continue;
        };
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        if value.len() > 256 {
            continue;
        }
        if key == "factors" {
            factors.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned),
            );
        } else if !key.is_empty() {
            tags.insert(key.to_owned(), value);
        }
    }
    (factors, tags)
}

/// The established session, shared by the user's channels.
#[derive(Clone)]
struct Established {
    target: Arc<russh::client::Handle<TargetHandler>>,
    session: Arc<SshSession>,
    /// `(name, value)` pairs set in shells and commands (value holds the proxy token).
    env: Arc<Vec<(String, excalibur_core::Secret)>>,
    route: Arc<Route>,
}

/// One user connection.
pub(crate) struct UserHandler {
    inner: Arc<Inner>,
    peer: SocketAddr,
    user: String,
    routed: Option<Routed>,
    established: Option<Established>,
    state: Arc<Mutex<ConnState>>,
    cancel: CancellationToken,
}

impl UserHandler {
    pub(crate) fn new(
        inner: Arc<Inner>,
        peer: SocketAddr,
        state: Arc<Mutex<ConnState>>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            inner,
            peer,
            user: String::new(),
            routed: None,
            established: None,
            state,
            cancel,
        }
    }

    /// Connects to the route's target, records the session and registers it as live.
    async fn establish(&mut self) -> Result<(), russh::Error> {
        let Some(Routed {
            route,
            auth,
            factors,
            tags,
        }) = self.routed.take()
        else {
            return Err(russh::Error::NotAuthenticated);
        };
        let (target, local, remote) = match self.connect_target(&route).await {
            Ok(t) => t,
            Err(reason) => {
                self.inner.deny(&self.user, self.peer, reason);
                return Err(russh::Error::Disconnect);
            }
        };
        let id = format!("sess_{}", hex(&random_bytes::<8>()));
        let token = format!("xss_{}", hex(&random_bytes::<24>()));
        let principal = format!("user_session:{}@{}", self.user, id);
        let record = SshSession {
            id: id.clone(),
            user: self.user.clone(),
            principal,
            route_id: route.info.id.clone(),
            source: self.peer.ip().to_canonical().to_string(),
            target: format!("{}:{}", route.info.target_host, route.info.target_port),
            auth: auth.to_owned(),
            started_at: excalibur_core::time::Timestamp::now().to_rfc3339(),
            state: "active".to_owned(),
            ended_at: None,
            end_reason: None,
            proxy_source: remote.ip().to_canonical().to_string(),
            gateway: self.inner.config.instance.clone(),
            factors,
            tags,
        };
        if let Err(e) = self
            .inner
            .control
            .start(record.clone(), token_hash(&token))
            .await
        {
            tracing::error!(error = %e, "recording an ssh session failed; refusing it");
            let _ = target
                .disconnect(russh::Disconnect::ByApplication, "", "")
                .await;
            return Err(russh::Error::Disconnect);
        }
        let env = if route.info.inject_proxy {
            let base = match &self.inner.config.proxy_url {
                Some(u) => u.clone(),
                None => format!(
                    "http://{}",
                    SocketAddr::new(local.ip(), self.inner.config.proxy_port)
                ),
            };
            let url = match base.split_once("://") {
                Some((scheme, rest)) => format!("{scheme}://user_session:{token}@{rest}"),
                None => format!("http://user_session:{token}@{base}"),
            };
            ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
                .iter()
                .map(|n| {
                    (
                        (*n).to_owned(),
                        excalibur_core::Secret::new(url.as_bytes().to_vec()),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let target = Arc::new(target);
        {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.session_id = Some(id.clone());
            s.target = Some(Arc::clone(&target));
        }
        self.inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Live {
                    cancel: self.cancel.clone(),
                },
            );
        self.established = Some(Established {
            target,
            session: Arc::new(record),
            env: Arc::new(env),
            route,
        });
        Ok(())
    }

    /// Opens the SSH connection to the target: pinned host key, the route's or the
    /// gateway's key. Returns the handle and the local and remote addresses.
    async fn connect_target(
        &self,
        route: &Route,
    ) -> Result<(russh::client::Handle<TargetHandler>, SocketAddr, SocketAddr), &'static str> {
        let addr = (route.info.target_host.as_str(), route.info.target_port);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "target_unreachable")?
            .map_err(|_| "target_unreachable")?;
        let _ = stream.set_nodelay(true);
        let (local, remote) = (
            stream.local_addr().map_err(|_| "target_unreachable")?,
            stream.peer_addr().map_err(|_| "target_unreachable")?,
        );
        let config = Arc::new(russh::client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(std::time::Duration::from_secs(30)),
            nodelay: true,
            ..Default::default()
        });
        let handler = TargetHandler {
            host_key: route.host_key.clone(),
        };
        let mut handle = tokio::time::timeout(
            CONNECT_TIMEOUT,
            russh::client::connect_stream(config, stream, handler),
        )
        .await
        .map_err(|_| "target_unreachable")?
        .map_err(|e| match e {
            russh::Error::UnknownKey => "target_host_key_mismatch",
            _ => "target_handshake_failed",
        })?;
        let key = route
            .key
            .clone()
            .unwrap_or_else(|| Arc::clone(&self.inner.config.client_key));
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let auth = handle
            .authenticate_publickey(
                route.info.target_user.clone(),
                PrivateKeyWithHashAlg::new(key, hash),
            )
            .await
            .map_err(|_| "target_auth_failed")?;
        if !auth.success() {
            return Err("target_auth_failed");
        }
        Ok((handle, local, remote))
    }

    fn route_for_key(&self, user: &str, key: &PublicKey) -> Option<Arc<Route>> {
        let routes = self.inner.routes.load();
        routes
            .candidates(user, self.peer.ip())
            .find(|r| r.authorized.iter().any(|k| k.key_data() == key.key_data()))
            .cloned()
    }

    fn deny_auth(&mut self, user: &str, reason: &str) -> Auth {
        self.inner.deny(user, self.peer, reason);
        Auth::reject()
    }
}

impl russh::server::Handler for UserHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // An offered certificate looks like its bare key here, so every offer proceeds to
        // the signed attempt, where the decision (and its audit event) is made.
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.user = user.to_owned();
        match self.route_for_key(user, key.public_key) {
            Some(route) => {
                self.routed = Some(Routed {
                    route,
                    auth: "publickey",
                    factors: Vec::new(),
                    tags: std::collections::BTreeMap::new(),
                });
                Ok(Auth::Accept)
            }
            None => {
                let routes = self.inner.routes.load();
                let reason = if routes.candidates(user, self.peer.ip()).next().is_some() {
                    "unknown_key"
                } else {
                    "no_route"
                };
                Ok(self.deny_auth(user, reason))
            }
        }
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        self.user = user.to_owned();
        if let Err(reason) = self.inner.check_certificate(user, self.peer.ip(), cert) {
            return Ok(self.deny_auth(user, reason));
        }
        let route = self
            .inner
            .routes
            .load()
            .candidates(user, self.peer.ip())
            .next()
            .cloned();
        match route {
            Some(route) => {
                let (factors, tags) = asserted(cert);
                self.routed = Some(Routed {
                    route,
                    auth: "certificate",
                    factors,
                    tags,
                });
                Ok(Auth::Accept)
            }
            None => Ok(self.deny_auth(user, "no_route")),
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        self.establish().await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<ServerMsg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(est) = self.established.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let handle = session.handle();
        let recorder = Arc::clone(&self.inner.recorder);
        tokio::spawn(async move {
            match est.target.channel_open_session().await {
                Ok(target) => {
                    reply.accept().await;
                    relay_session(channel, target, handle, est, recorder).await;
                }
                Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
            }
        });
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<ServerMsg>,
        host: &str,
        port: u32,
        originator: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(est) = self.established.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if !est.route.info.port_forwarding {
            self.inner
                .deny(&self.user, self.peer, "port_forwarding_disabled");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let (host, originator) = (host.to_owned(), originator.to_owned());
        tokio::spawn(async move {
            match est
                .target
                .channel_open_direct_tcpip(host, port, originator, originator_port)
                .await
            {
                Ok(target) => {
                    reply.accept().await;
                    relay_raw(channel, target).await;
                }
                Err(_) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
            }
        });
        Ok(())
    }
}

/// Relays a session channel (shell, exec, subsystem), forwarding requests and their
/// replies in order, injecting the proxy variables before a shell or command starts.
async fn relay_session(
    mut user: Channel<ServerMsg>,
    mut target: Channel<russh::client::Msg>,
    handle: russh::server::Handle,
    est: Established,
    recorder: Arc<dyn excalibur_core::record::Recorder>,
) {
    let uid = user.id();
    // Requests forwarded with want_reply = true, in order: does the user want the reply?
    let mut pending: VecDeque<bool> = VecDeque::new();
    let mut sftp: Option<SftpObserver> = None;
    let report = |transfers: Vec<crate::sftp::Transfer>| {
        for t in transfers {
            let _ = recorder.event(NewEvent::new(
                EventType::SftpTransfer,
                est.session.principal.clone(),
                serde_json::json!({"session": est.session.id, "user": est.session.user, "target": est.session.target,
                                   "path": t.path, "bytes": t.bytes_read + t.bytes_written,
                                   "bytes_read": t.bytes_read, "bytes_written": t.bytes_written,
                                   "direction": if t.bytes_written > 0 { "upload" } else { "download" }}),
            ));
        }
    };
    loop {
        tokio::select! {
            msg = user.wait() => {
                let Some(msg) = msg else { let _ = target.close().await; break };
                let ok = match msg {
                    ChannelMsg::Data { data } => {
                        if let Some(o) = sftp.as_mut() {
                            report(o.client_data(&data));
                        }
                        target.data_bytes(data).await.is_ok()
                    }
                    ChannelMsg::ExtendedData { data, ext } => target.extended_data_bytes(ext, data).await.is_ok(),
                    ChannelMsg::Eof => target.eof().await.is_ok(),
                    ChannelMsg::Close => {
                        let _ = target.close().await;
                        break;
                    }
                    ChannelMsg::RequestPty { want_reply, term, col_width, row_height, pix_width, pix_height, terminal_modes } => {
                        pending.push_back(want_reply);
                        target.request_pty(true, &term, col_width, row_height, pix_width, pix_height, &terminal_modes).await.is_ok()
                    }
                    ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                        target.window_change(col_width, row_height, pix_width, pix_height).await.is_ok()
                    }
                    ChannelMsg::RequestShell { want_reply } => {
                        inject(&target, &est).await;
                        pending.push_back(want_reply);
                        target.request_shell(true).await.is_ok()
                    }
                    ChannelMsg::Exec { want_reply, command } => {
                        inject(&target, &est).await;
                        pending.push_back(want_reply);
                        target.exec(true, command).await.is_ok()
                    }
                    ChannelMsg::RequestSubsystem { want_reply, name } => {
                        if name == "sftp" {
                            sftp = Some(SftpObserver::default());
                        }
                        pending.push_back(want_reply);
                        target.request_subsystem(true, name).await.is_ok()
                    }
                    ChannelMsg::Signal { signal } => target.signal(signal).await.is_ok(),
                    // Environment from the user and agent forwarding are not relayed, and
                    // not answered here: russh reports every request as `want_reply` (so
                    // the flag cannot be trusted), OpenSSH sends `env` without wanting a
                    // reply, and russh answers agent requests itself.
                    ChannelMsg::SetEnv { .. } | ChannelMsg::AgentForward { .. } => true,
                    // X11 forwarding is refused (OpenSSH asks with want_reply).
                    ChannelMsg::RequestX11 { .. } => {
                        let _ = handle.channel_failure(uid).await;
                        true
                    }
                    _ => true,
                };
                if !ok {
                    let _ = user.close().await;
                    break;
                }
            }
            msg = target.wait() => {
                let Some(msg) = msg else { let _ = user.close().await; break };
                let ok = match msg {
                    ChannelMsg::Data { data } => {
                        if let Some(o) = sftp.as_mut() {
                            o.server_data(&data);
                        }
                        user.data_bytes(data).await.is_ok()
                    }
                    ChannelMsg::ExtendedData { data, ext } => user.extended_data_bytes(ext, data).await.is_ok(),
                    ChannelMsg::Eof => user.eof().await.is_ok(),
                    ChannelMsg::Close => {
                        let _ = user.close().await;
                        break;
                    }
                    ChannelMsg::ExitStatus { exit_status } => user.exit_status(exit_status).await.is_ok(),
                    ChannelMsg::ExitSignal { signal_name, core_dumped, error_message, lang_tag } => handle
                        .exit_signal_request(uid, signal_name, core_dumped, error_message, lang_tag)
                        .await
                        .is_ok(),
                    ChannelMsg::Success => {
                        if pending.pop_front() == Some(true) {
                            let _ = handle.channel_success(uid).await;
                        }
                        true
                    }
                    ChannelMsg::Failure => {
                        if pending.pop_front() == Some(true) {
                            let _ = handle.channel_failure(uid).await;
                        }
                        true
                    }
                    _ => true,
                };
                if !ok {
                    let _ = target.close().await;
                    break;
                }
            }
        }
    }
    if let Some(mut o) = sftp {
        report(o.finish());
    }
}

/// Sets the proxy variables on the target channel (the target's sshd must accept them:
/// `AcceptEnv HTTP_PROXY HTTPS_PROXY http_proxy https_proxy`).
async fn inject(target: &Channel<russh::client::Msg>, est: &Established) {
    for (name, value) in est.env.iter() {
        let value = String::from_utf8_lossy(value.expose()).into_owned();
        let _ = target.set_env(false, name.clone(), value).await;
    }
}

/// Relays a direct-tcpip channel byte for byte.
async fn relay_raw(mut user: Channel<ServerMsg>, mut target: Channel<russh::client::Msg>) {
    loop {
        tokio::select! {
            msg = user.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if target.data_bytes(data).await.is_err() { break }
                }
                Some(ChannelMsg::Eof) => { let _ = target.eof().await; }
                Some(ChannelMsg::Close) | None => { let _ = target.close().await; break }
                Some(_) => {}
            },
            msg = target.wait() => match msg {
                Some(ChannelMsg::Data { data }) => {
                    if user.data_bytes(data).await.is_err() { break }
                }
                Some(ChannelMsg::Eof) => { let _ = user.eof().await; }
                Some(ChannelMsg::Close) | None => { let _ = user.close().await; break }
                Some(_) => {}
            },
        }
    }
}
