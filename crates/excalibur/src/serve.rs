//! Wiring and listeners: 8443 sniffs TLS vs plain HTTP (plain only from loopback) and
//! routes origin-form requests to the API; shutdown drains connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use bytes::Bytes;
use excalibur_api::{ApiState, Reloader};
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_store::Store;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::config::Config;
use crate::init;

/// How long open connections get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a new connection may take to send its first byte / finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RespBody = UnsyncBoxBody<Bytes, BoxError>;

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS crypto provider was already installed"))?;
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || init::store(&data_dir)).await??;
    let store: Arc<dyn Store> = Arc::new(store);
    let ca = init::ca(store.as_ref(), &config.data_dir).await?;
    init::admin_token(store.as_ref(), &config.data_dir).await?;

    let api_tls = {
        let ca = Arc::clone(&ca);
        let names = config.tls_names.clone();
        let key = tokio::task::spawn_blocking(move || ca.mint(&names)).await??;
        excalibur_proxy::ca::server_config_for(key)?
    };

    let reload: Reloader = Arc::new(|| Box::pin(async {}));
    let api = excalibur_api::router(ApiState {
        store: Arc::clone(&store),
        ca_pem: ca.cert_pem().into(),
        reload,
    });

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let api_listener = TcpListener::bind(config.api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.api_listen))?;
    tracing::info!(addr = %api_listener.local_addr()?, "api listening");

    store
        .record(
            Vec::new(),
            vec![NewEvent::new(
                EventType::ServerStarted,
                "system",
                serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "api_listen": config.api_listen.to_string()}),
            )],
        )
        .await?;

    let accept = {
        let (cancel, tracker) = (cancel.clone(), tracker.clone());
        tokio::spawn(accept_api(api_listener, api, api_tls, cancel, tracker))
    };

    tracing::info!("ready");
    shutdown_signal().await;
    tracing::info!("shutting down");
    cancel.cancel();
    let _ = accept.await;
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        tracing::warn!("connections still open after the grace period; closing them");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn accept_api(
    listener: TcpListener,
    api: Router,
    tls: Arc<rustls::ServerConfig>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
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
        let (api, acceptor, cancel) = (api.clone(), acceptor.clone(), cancel.clone());
        tracker.spawn(async move {
            let mut first = [0u8; 1];
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
                Ok(Ok(1)) => {}
                _ => return,
            }
            if first[0] == 0x16 {
                let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else {
                    return;
                };
                serve_connection(tls, peer, api, cancel).await;
            } else if peer.ip().is_loopback() {
                serve_connection(tcp, peer, api, cancel).await;
            } else {
                // Plain HTTP is for loopback only; a remote peer must use TLS.
                reject_plain(tcp).await;
            }
        });
    }
}

async fn reject_plain(mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    let body = r#"{"type":"https://excalibur.dev/problems/tls_required","title":"Bad Request","status":400,"detail":"plain HTTP is accepted from loopback only; use https://","code":"tls_required"}"#;
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.write_all(resp.as_bytes())).await;
}

async fn serve_connection<I>(io: I, _peer: SocketAddr, api: Router, cancel: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(dispatch(req, api).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
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

async fn dispatch(req: Request<Incoming>, api: Router) -> Response<RespBody> {
    let resp = match api.oneshot(req.map(axum::body::Body::new)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync())
}
