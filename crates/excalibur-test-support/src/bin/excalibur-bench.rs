//! Proxy benchmark: requests/s, p50/p99 latency and the proxy's CPU per request through
//! Excalibur with placeholder substitution, side by side with the same client going
//! direct to the same upstream, in one run: keep-alive at concurrency 1 and C, with the
//! default durable recording and with `[audit] durability = "batched"`, and new
//! connections.
//!
//! Usage: `excalibur-bench --gateway target/release/excalibur [--requests N] [--concurrency C]`
//! (see `bench/run.sh`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "benchmark driver, not library code"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use excalibur_test_support::upstream::Echo;
use excalibur_test_support::{Gateway, Options};
use serde_json::json;

const SECRET: &str = "ghp_BENCHMARK_real_value_0123456789";

#[derive(Debug)]
struct Args {
    gateway: PathBuf,
    requests: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut a = Args {
        gateway: PathBuf::from("target/release/excalibur"),
        requests: 4000,
        concurrency: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--gateway" => a.gateway = PathBuf::from(value),
            "--requests" => a.requests = value.parse().expect("--requests N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency C"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let echo = Echo::start(&["api.github.com"]).await?;
    // The default (`durable`: the record of a redemption committed before the request
    // leaves) and the opt-in `batched` recording, side by side.
    let durable = gateway(&args, &echo, "").await?;
    let batched = gateway(&args, &echo, "[audit]\ndurability = \"batched\"\n").await?;

    println!(
        "excalibur-bench: {} requests per case, HTTP/1.1 GET with a placeholder header, echo upstream on 127.0.0.1",
        args.requests
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>12} {:>8}",
        "case", "req/s", "p50 ms", "p99 ms", "CPU us/req", "errors"
    );
    let mut cases: Vec<(usize, bool)> = vec![(1, true), (args.concurrency, true)];
    cases.push((args.concurrency, false));
    for (concurrency, keep_alive) in cases {
        let mode = if keep_alive {
            format!("keep-alive c{concurrency}")
        } else {
            format!("new connection c{concurrency}")
        };
        let direct = client(None, &echo.ca_pem, keep_alive, Some(echo.tls_addr))?;
        let r = run(direct, args.requests, concurrency).await;
        row(&format!("direct ({mode})"), &r, None);
        for (name, gw) in [("durable", &durable), ("batched", &batched)] {
            if !keep_alive && name == "batched" {
                continue;
            }
            let c = client(
                Some((gw.gw.proxy(), gw.token.as_str())),
                &gw.ca,
                keep_alive,
                None,
            )?;
            let pid = gw.gw.pid().unwrap_or(0);
            let cpu = excalibur_test_support::cpu_seconds(pid);
            let r = run(c, args.requests, concurrency).await;
            let used = excalibur_test_support::cpu_seconds(pid) - cpu;
            row(
                &format!("via excalibur, {name} ({mode})"),
                &r,
                Some(used * 1e6 / (r.ok.max(1) as f64)),
            );
        }
    }
    let seen = echo.seen();
    let substituted = seen
        .iter()
        .filter(|s| s.header("authorization") == Some(format!("Bearer {SECRET}").as_str()))
        .count();
    println!(
        "upstream saw {} requests; {substituted} carried the substituted real value",
        seen.len()
    );
    durable.gw.stop().await?;
    batched.gw.stop().await?;
    Ok(())
}

fn row(name: &str, r: &Report, cpu_us: Option<f64>) {
    println!(
        "{:<44} {:>10.0} {:>10.2} {:>10.2} {:>12} {:>8}",
        name,
        r.rps,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        cpu_us.map_or_else(|| "-".to_owned(), |c| format!("{c:.0}")),
        r.errors
    );
}

struct Bench {
    gw: Gateway,
    token: String,
    ca: String,
}

/// A gateway configured for the benchmark: provider, placeholder, rule, credential.
async fn gateway(args: &Args, echo: &Echo, extra: &str) -> anyhow::Result<Bench> {
    let dir = Arc::new(tempfile::tempdir()?);
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &echo.ca_pem)?;
    let config = format!(
        "{extra}[upstream]\nca_file = {upstream_ca:?}\nresolve = [\"api.github.com:443={}\"]\n",
        echo.tls_addr
    );
    let gw = Gateway::start_in(
        &args.gateway,
        dir,
        Options {
            config_toml: config,
            ..Default::default()
        },
    )
    .await?;
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com"]}),
    )
    .await?;
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": SECRET, "provider_id": "github"}),
    )
    .await?;
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"]}),
    )
    .await?;
    let cred = api
        .post(
            "/api/service-credentials",
            json!({"name": "bench", "user": "bench", "source_network": "127.0.0.0/8", "allowed_domains": ["api.github.com"]}),
        )
        .await?;
    let token = cred["token"].as_str().unwrap().to_owned();
    let ca = String::from_utf8(std::fs::read(gw.data_dir.join("ca.pem"))?)?;
    Ok(Bench { gw, token, ca })
}

fn client(
    proxy: Option<(std::net::SocketAddr, &str)>,
    ca_pem: &str,
    keep_alive: bool,
    resolve: Option<std::net::SocketAddr>,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .http1_only()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
        .timeout(Duration::from_secs(10))
        .no_proxy();
    if let Some((addr, token)) = proxy {
        b = b.proxy(
            reqwest::Proxy::https(format!("http://{addr}"))?
                .custom_http_auth(format!("Bearer {token}").parse()?),
        );
    }
    if let Some(addr) = resolve {
        b = b.resolve("api.github.com", addr);
    }
    if !keep_alive {
        b = b.pool_max_idle_per_host(0);
    }
    Ok(b.build()?)
}

struct Report {
    ok: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn run(client: reqwest::Client, total: usize, concurrency: usize) -> Report {
    // Warm up (connections, leaf certificate cache).
    for _ in 0..concurrency.min(8) {
        let _ = send(&client).await;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let client = client.clone();
        let n = total / concurrency + usize::from(w < total % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let mut errors = 0;
            for _ in 0..n {
                let t = Instant::now();
                match send(&client).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Report {
        ok: all.len(),
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        errors,
    }
}

async fn send(client: &reqwest::Client) -> anyhow::Result<()> {
    let resp = client
        .get("https://api.github.com/user")
        .header("authorization", "Bearer XCALIBUR_GITHUB_TOKEN")
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
    resp.bytes().await?;
    Ok(())
}
