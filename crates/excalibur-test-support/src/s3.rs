//! A real S3 server that verifies SigV4 (`s3s-fs`, installed by `./test.sh`), behind a TLS
//! front on 127.0.0.1 with a certificate for the AWS host names the tests use. A second
//! front can tamper with the bytes it forwards, to show that the upstream checks them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Where `s3s-fs` is: on `PATH`, or in cargo's bin directory.
pub fn s3s_fs_binary() -> anyhow::Result<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin")))
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")));
    for dir in candidates {
        let p = dir.join("s3s-fs");
        if p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "s3s-fs not found: run ./test.sh (it runs `cargo install s3s-fs@0.14.1 --features binary --locked`)"
    )
}

/// A running `s3s-fs` with its TLS front.
#[derive(Debug)]
pub struct S3Server {
    /// The TLS front (forwards untouched).
    pub tls_addr: SocketAddr,
    /// The plain listener of `s3s-fs` itself.
    pub plain_addr: SocketAddr,
    /// PEM of the test CA that signed the front's certificate.
    pub ca_pem: String,
    /// The server's storage directory (one directory per bucket).
    pub root: tempfile::TempDir,
    tls: Arc<rustls::ServerConfig>,
    child: tokio::process::Child,
}

impl S3Server {
    /// Starts `s3s-fs` requiring `access_key`/`secret_key`, with a TLS front whose
    /// certificate names `names`.
    pub async fn start(access_key: &str, secret_key: &str, names: &[&str]) -> anyhow::Result<Self> {
        Self::spawn(Some((access_key, secret_key)), names).await
    }

    /// Starts `s3s-fs` without credentials: it accepts unsigned requests (the direct
    /// baseline of benchmarks only).
    pub async fn start_open(names: &[&str]) -> anyhow::Result<Self> {
        Self::spawn(None, names).await
    }

    async fn spawn(keys: Option<(&str, &str)>, names: &[&str]) -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let plain_addr = crate::free_port()?;
        let mut cmd = tokio::process::Command::new(s3s_fs_binary()?);
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            &plain_addr.port().to_string(),
        ]);
        if let Some((access_key, secret_key)) = keys {
            cmd.args(["--access-key", access_key, "--secret-key", secret_key]);
        }
        let child = cmd
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        // Bounded wait for the listener.
        let mut up = false;
        for _ in 0..200 {
            if TcpStream::connect(plain_addr).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::ensure!(up, "s3s-fs did not start on {plain_addr}");

        let (tls, ca_pem) = crate::upstream::test_tls(names, &[b"http/1.1"])?;
        let tls = Arc::new(tls);
        let mut server = Self {
            tls_addr: plain_addr,
            plain_addr,
            ca_pem,
            root,
            tls,
            child,
        };
        server.tls_addr = server.front(None).await?;
        Ok(server)
    }

    /// Starts another TLS front. With `tamper = Some((from, to))` (same length), every
    /// occurrence of `from` in the client-to-server bytes becomes `to`.
    pub async fn front(&self, tamper: Option<(Vec<u8>, Vec<u8>)>) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.tls));
        let backend = self.plain_addr;
        let tamper = Arc::new(tamper);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let tamper = Arc::clone(&tamper);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(up) = TcpStream::connect(backend).await else {
                        return;
                    };
                    relay(tls, up, tamper).await;
                });
            }
        });
        Ok(addr)
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn relay<C>(client: C, server: TcpStream, tamper: Arc<Option<(Vec<u8>, Vec<u8>)>>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        // A tail that could start the pattern waits for the next read, so a pattern split
        // across reads is still found; anything else is forwarded at once.
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(buf.get(..n).unwrap_or_default());
            if let Some((from, to)) = tamper.as_ref() {
                let mut i = 0;
                while i + from.len() <= pending.len() {
                    if pending.get(i..i + from.len()) == Some(from.as_slice()) {
                        pending.splice(i..i + from.len(), to.iter().copied());
                        i += to.len();
                    } else {
                        i += 1;
                    }
                }
            }
            let keep = tamper.as_ref().as_ref().map_or(0, |(from, _)| {
                (1..from.len())
                    .rev()
                    .find(|&l| pending.ends_with(from.get(..l).unwrap_or_default()))
                    .unwrap_or(0)
            });
            let flush = pending.len().saturating_sub(keep);
            if sw
                .write_all(pending.get(..flush).unwrap_or_default())
                .await
                .is_err()
            {
                break;
            }
            pending.drain(..flush);
        }
        let _ = sw.write_all(&pending).await;
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}
