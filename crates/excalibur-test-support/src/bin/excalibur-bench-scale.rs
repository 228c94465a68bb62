//! Control-plane scale benchmark: how the gateway copes with many sets (provider,
//! placeholder, translation rule, service credential). Prints, at each size: the rate
//! of creating sets one API call at a time (the last 100 of the size) and by
//! `POST /api/import` (the rest), the latency of one rotation (an upsert answered only
//! after the snapshot that carries it is in force), the gateway's CPU per proxied
//! request (which should not grow with the sets), and its RSS per set.
//!
//! Usage: `excalibur-bench-scale --gateway target/release/excalibur [--sizes 1000,10000]`
//! (see `bench/scale.sh`).

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
use std::time::{Duration, Instant};

use excalibur_test_support::upstream::Echo;
use excalibur_test_support::{Api, Gateway, Options, cpu_seconds};
use serde_json::{Value, json};

fn args() -> (PathBuf, Vec<usize>) {
    let mut gateway = PathBuf::from("target/release/excalibur");
    let mut sizes = vec![10, 1000, 10_000];
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--gateway" => gateway = PathBuf::from(value),
            "--sizes" => {
                sizes = value
                    .split(',')
                    .map(|s| s.trim().parse().expect("--sizes 1000,10000"))
                    .collect();
            }
            other => panic!("unknown flag {other}"),
        }
    }
    (gateway, sizes)
}

fn sets(from: usize, n: usize) -> Value {
    let r = from..from + n;
    json!({
        "providers": r.clone().map(|i| json!({"id": format!("p{i}"), "hosts": [format!("h{i}.example")]})).collect::<Vec<_>>(),
        "placeholders": r.clone().map(|i| json!({"placeholder": format!("XCALIBUR_S_{i}"), "real_value": format!("v{i}"), "provider_id": format!("p{i}")})).collect::<Vec<_>>(),
        "translation_rules": r.clone().map(|i| json!({"placeholder": format!("XCALIBUR_S_{i}"), "hosts": [format!("h{i}.example")]})).collect::<Vec<_>>(),
        "service_credentials": r.map(|i| json!({"name": format!("c{i}"), "user": "ci", "source_network": "127.0.0.0/8", "allowed_domains": [format!("h{i}.example")]})).collect::<Vec<_>>(),
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The gateway under test, a TLS upstream it reaches as `bench.example`, and a client
/// that proxies through it with a credential of its own.
struct Rig {
    gw: Gateway,
    client: reqwest::Client,
    _echo: Echo,
}

async fn rig(bin: &std::path::Path) -> anyhow::Result<Rig> {
    let echo = Echo::start(&["bench.example"]).await?;
    let ca_dir = tempfile::tempdir()?;
    let ca = ca_dir.path().join("upstream-ca.pem");
    std::fs::write(&ca, &echo.ca_pem)?;
    let config = format!(
        "[upstream]\nca_file = {ca:?}\nresolve = [\"bench.example:443={}\"]\n",
        echo.tls_addr
    );
    let gw = Gateway::start(
        bin,
        Options {
            config_toml: config,
            ..Options::default()
        },
    )
    .await?;
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "bench", "hosts": ["bench.example"]}),
    )
    .await?;
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_BENCH", "real_value": "bench-real-value-0123456789", "provider_id": "bench"}),
    )
    .await?;
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_BENCH", "hosts": ["bench.example"]}),
    )
    .await?;
    let cred = api
        .post(
            "/api/service-credentials",
            json!({"name": "bench", "user": "bench", "source_network": "127.0.0.0/8", "allowed_domains": ["bench.example"]}),
        )
        .await?;
    let token = cred["token"].as_str().unwrap_or_default();
    let gateway_ca = reqwest::Certificate::from_pem(&std::fs::read(gw.data_dir.join("ca.pem"))?)?;
    let proxy = reqwest::Proxy::https(format!("http://{}", gw.proxy()))?
        .custom_http_auth(format!("Bearer {token}").parse()?);
    let client = reqwest::Client::builder()
        .proxy(proxy)
        .add_root_certificate(gateway_ca)
        .http1_only()
        .build()?;
    drop(ca_dir);
    Ok(Rig {
        gw,
        client,
        _echo: echo,
    })
}

/// Sets created one API call at a time: sets per second.
async fn one_by_one(api: &Api, from: usize, n: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    for i in from..from + n {
        let doc = sets(i, 1);
        for (path, key) in [
            ("/api/providers", "providers"),
            ("/api/placeholders", "placeholders"),
            ("/api/translation-rules", "translation_rules"),
            ("/api/service-credentials", "service_credentials"),
        ] {
            api.post(path, doc[key][0].clone()).await?;
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Sets imported from `from` up to `to`, 5,000 per document: sets per second.
async fn import(api: &Api, mut from: usize, to: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let imported = to.saturating_sub(from);
    while from < to {
        let n = (to - from).min(5000);
        let (status, _, body) = api.send("POST", "/api/import", Some(sets(from, n))).await?;
        anyhow::ensure!(status == 201, "import: {status} {body}");
        from += n;
    }
    Ok(imported as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Rotation latency, p50 and p99 in ms: the API answers once the new snapshot is in
/// force.
async fn rotations(api: &Api) -> anyhow::Result<(f64, f64)> {
    let mut lat = Vec::new();
    for round in 0..100 {
        let t = Instant::now();
        api.post(
            "/api/placeholders",
            json!({"placeholder": "XCALIBUR_S_0", "real_value": format!("rotated-{round}"), "provider_id": "p0"}),
        )
        .await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)].as_secs_f64() * 1e3;
    Ok((pct(50), pct(99)))
}

/// The gateway's CPU per proxied request (µs), keep-alive, one at a time, the
/// placeholder substituted: it should not grow with the number of sets.
async fn per_request(rig: &Rig, n: usize) -> anyhow::Result<f64> {
    let pid = rig.gw.pid().unwrap_or(0);
    let send = async || -> anyhow::Result<()> {
        let r = rig
            .client
            .get("https://bench.example/")
            .header("authorization", "Bearer XCALIBUR_BENCH")
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "proxied request: {}", r.status());
        r.bytes().await?;
        Ok(())
    };
    for _ in 0..50 {
        send().await?;
    }
    let before = cpu_seconds(pid);
    for _ in 0..n {
        send().await?;
    }
    Ok((cpu_seconds(pid) - before) * 1e6 / n as f64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (bin, sizes) = args();
    let rig = rig(&bin).await?;
    let api = rig.gw.api();
    let pid = rig.gw.pid().unwrap_or(0);
    let base_rss = rss_kib(pid);
    println!(
        "excalibur-bench-scale: sets of provider + placeholder + rule + service credential, SQLite, one gateway"
    );
    println!(
        "{:>9} {:>14} {:>14} {:>16} {:>16} {:>14} {:>12}",
        "sets",
        "one by one /s",
        "import sets/s",
        "rotation p50 ms",
        "rotation p99 ms",
        "request CPU us",
        "RSS KiB/set"
    );
    let mut have = 0usize;
    for size in sizes {
        // Imported up to 100 short of the size, the last 100 one by one.
        let import_rate = import(&api, have, size.saturating_sub(100).max(have)).await?;
        have = have.max(size.saturating_sub(100));
        let n = size.saturating_sub(have).max(1);
        let single_rate = one_by_one(&api, have, n).await?;
        have += n;
        let (p50, p99) = rotations(&api).await?;
        let cpu = per_request(&rig, 2000).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let per_set = (rss_kib(pid).saturating_sub(base_rss)) as f64 / have as f64;
        println!(
            "{have:>9} {single_rate:>14.1} {import_rate:>14.0} {p50:>16.1} {p99:>16.1} {cpu:>14.0} {per_set:>12.1}"
        );
    }
    rig.gw.stop().await?;
    Ok(())
}
