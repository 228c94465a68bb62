//! Test helpers: start the real `excalibur` binary on ephemeral ports with a temp data
//! dir, drive it with HTTP clients and `excalibur-ctl`, and run real upstreams.
//!
//! **Owns:** [`Gateway`] (a running server process), client builders.
//!
//! **Never:** mocks what can run for real; talks to anything but 127.0.0.0/8.
//!
//! **Start at:** [`Gateway::start`].

#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing returns Null, it never panics"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub mod cluster;
pub mod hostile;
pub mod netbird;
pub mod postgres;
pub mod receiver;
pub mod s3;
pub mod upstream;

/// The admin token every test gateway starts with.
pub const ADMIN_TOKEN: &str = "xca_test_admin_token_0123456789abcdef";

/// Options for starting a gateway.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Reuse this data dir (for restart tests) instead of a fresh one.
    pub data_dir: Option<PathBuf>,
    /// Extra TOML appended to the config file.
    pub config_toml: String,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Do not set `EXCALIBUR_ADMIN_TOKEN` (exercise the generated bootstrap token).
    pub no_admin_token: bool,
    /// Listen here instead of an ephemeral port (tests that must know it in advance).
    pub api_listen: Option<std::net::SocketAddr>,
    /// Extra command-line arguments for `excalibur serve`.
    pub args: Vec<String>,
}

/// CPU seconds (user + system, all threads) process `pid` has used, from
/// `/proc/PID/stat`; 0 when it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(") ").map_or("", |r| r.1);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A free loopback port, for a listener a test must know before it starts.
pub fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// A running `excalibur serve` process. Killed on drop.
#[derive(Debug)]
pub struct Gateway {
    child: Option<Child>,
    /// Temp dir holding the data dir (kept alive for the gateway's life).
    pub dir: Arc<tempfile::TempDir>,
    /// The data dir.
    pub data_dir: PathBuf,
    /// Address of the API / TLS proxy listener.
    pub api_addr: std::net::SocketAddr,
    /// Address of the plain proxy listener, if it came up.
    pub proxy_addr: Option<std::net::SocketAddr>,
    /// Address of the SSH gateway, if it came up.
    pub ssh_addr: Option<std::net::SocketAddr>,
    /// Everything the process wrote to stdout and stderr so far.
    pub output: Arc<Mutex<String>>,
    /// The admin token.
    pub admin_token: String,
}

/// Path of a binary built next to `excalibur` (e.g. `excalibur-ctl`).
pub fn sibling_binary(server_bin: &Path, name: &str) -> PathBuf {
    server_bin.with_file_name(name)
}

impl Gateway {
    /// Starts the binary at `bin` and waits until its listeners are up (at most 30 s).
    pub async fn start(bin: &Path, opts: Options) -> anyhow::Result<Self> {
        let dir = Arc::new(tempfile::tempdir()?);
        Self::start_in(bin, dir, opts).await
    }

    /// Starts the binary using `dir` (shared with an earlier gateway for restarts).
    pub async fn start_in(
        bin: &Path,
        dir: Arc<tempfile::TempDir>,
        opts: Options,
    ) -> anyhow::Result<Self> {
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let config = dir.path().join("excalibur.toml");
        #[allow(
            clippy::disallowed_methods,
            reason = "a test config file in a temp dir"
        )]
        std::fs::write(&config, &opts.config_toml)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--api-listen")
            .arg(
                opts.api_listen
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "127.0.0.1:0".to_owned()),
            )
            .args(["--proxy-listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--ssh-listen", "127.0.0.1:0"])
            .args(&opts.args)
            .env("EXCALIBUR_LOG", "info")
            .env_remove("EXCALIBUR_ADMIN_TOKEN")
            .env_remove("EXCALIBUR_MASTER_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !opts.no_admin_token {
            cmd.env("EXCALIBUR_ADMIN_TOKEN", ADMIN_TOKEN);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let streams: Vec<std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>> = vec![
            Box::pin(child.stdout.take().context("no stdout")?),
            Box::pin(child.stderr.take().context("no stderr")?),
        ];
        for stream in streams {
            let (out, tx) = (Arc::clone(&output), tx.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut o) = out.lock() {
                        o.push_str(&line);
                        o.push('\n');
                    }
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let (mut api_addr, mut proxy_addr, mut ssh_addr) = (None, None, None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let line = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(_) => bail!(
                    "gateway did not start in 30 s; output:\n{}",
                    output.lock().map(|o| o.clone()).unwrap_or_default()
                ),
            };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let msg = v["fields"]["message"].as_str().unwrap_or_default();
            let addr = v["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
            match msg {
                "api listening" => api_addr = addr,
                "proxy listening" => proxy_addr = addr,
                "ssh listening" => ssh_addr = addr,
                "ready" => break,
                _ => {}
            }
        }
        let Some(api_addr) = api_addr else {
            let _ = child.wait().await;
            bail!(
                "gateway exited before listening; output:\n{}",
                output.lock().map(|o| o.clone()).unwrap_or_default()
            );
        };
        let admin_token = if opts.no_admin_token {
            std::fs::read_to_string(data_dir.join("admin-token"))
                .unwrap_or_default()
                .trim()
                .to_owned()
        } else {
            ADMIN_TOKEN.to_owned()
        };
        Ok(Self {
            child: Some(child),
            dir,
            data_dir,
            api_addr,
            proxy_addr,
            ssh_addr,
            output,
            admin_token,
        })
    }

    /// Address of the plain proxy listener.
    pub fn proxy(&self) -> std::net::SocketAddr {
        self.proxy_addr.unwrap_or(self.api_addr)
    }

    /// `http://127.0.0.1:<port>` of the API (plain HTTP, loopback).
    pub fn url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// A JSON client for the API with the admin token.
    pub fn api(&self) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: self.url(),
            token: Some(self.admin_token.clone()),
        }
    }

    /// A JSON client for the API with another token (or none).
    pub fn api_as(&self, token: Option<&str>) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: self.url(),
            token: token.map(str::to_owned),
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (crash tests) and waits for it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            let _ = child.wait().await?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits (at most 20 s) for a clean exit; returns the exit code.
    pub async fn stop(mut self) -> anyhow::Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(pid) = child.id() {
            Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await?;
        }
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .context("no exit after SIGTERM")??;
        Ok(status.code())
    }
}

/// A small JSON client for the API.
#[derive(Debug, Clone)]
pub struct Api {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// Base URL.
    pub base: String,
    /// Bearer token.
    pub token: Option<String>,
}

impl Api {
    /// Sends a request and returns `(status, content-type, body as JSON or string)`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, String, Value)> {
        let mut req = self
            .http
            .request(method.parse()?, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, ct, v))
    }

    /// GET, expecting 2xx.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (s, _, v) = self.send("GET", path, None).await?;
        if !(200..300).contains(&s) {
            bail!("GET {path}: {s} {v}");
        }
        Ok(v)
    }

    /// POST JSON, expecting 2xx.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (s, _, v) = self.send("POST", path, Some(body)).await?;
        if !(200..300).contains(&s) {
            bail!("POST {path}: {s} {v}");
        }
        Ok(v)
    }
}

/// A throwaway CA and a leaf for `names`: `(ca_pem, leaf_chain_pem, leaf_key_pem)`, for
/// peers the tests run (Python, nginx) that need TLS files.
pub fn tls_files(names: &[&str]) -> anyhow::Result<(String, String, String)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test Peer CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?
        .signed_by(&leaf_key, &issuer)?;
    Ok((
        ca_cert.pem(),
        format!("{}{}", leaf.pem(), ca_cert.pem()),
        leaf_key.serialize_pem(),
    ))
}
