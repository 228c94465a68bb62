//! Control-plane scale benchmark: how the gateway copes with many sets (provider,
//! placeholder, translation rule, service credential). Prints, at each size: the rate
//! of creating sets one API call at a time, the rate of `POST /api/import`, the latency
//! of one rotation (an upsert answered only after the snapshot that carries it is in
//! force), and the gateway's RSS per set.
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

use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

fn args() -> (PathBuf, Vec<usize>) {
    let mut gateway = PathBuf::from("target/release/excalibur");
    let mut sizes = vec![1000, 10_000];
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (bin, sizes) = args();
    let gw = Gateway::start(&bin, Options::default()).await?;
    let api = gw.api();
    let pid = gw.pid().unwrap_or(0);
    let base_rss = rss_kib(pid);
    println!(
        "excalibur-bench-scale: sets of provider + placeholder + rule + service credential, SQLite, one gateway"
    );
    println!(
        "{:>9} {:>16} {:>16} {:>18} {:>18} {:>14}",
        "sets",
        "one by one /s",
        "import sets/s",
        "rotation p50 ms",
        "rotation p99 ms",
        "RSS KiB/set"
    );
    let mut have = 0usize;
    for size in sizes {
        // One by one: 100 sets through the single-object endpoints, at this size.
        let started = Instant::now();
        let one_by_one = 100usize;
        for i in have..have + one_by_one {
            let doc = sets(i, 1);
            api.post("/api/providers", doc["providers"][0].clone())
                .await?;
            api.post("/api/placeholders", doc["placeholders"][0].clone())
                .await?;
            api.post(
                "/api/translation-rules",
                doc["translation_rules"][0].clone(),
            )
            .await?;
            api.post(
                "/api/service-credentials",
                doc["service_credentials"][0].clone(),
            )
            .await?;
        }
        let single_rate = one_by_one as f64 / started.elapsed().as_secs_f64();
        have += one_by_one;
        // The rest of the way by import, in chunks of 5,000 sets.
        let started = Instant::now();
        let imported = size.saturating_sub(have);
        while have < size {
            let n = (size - have).min(5000);
            let (status, _, body) = api.send("POST", "/api/import", Some(sets(have, n))).await?;
            anyhow::ensure!(status == 201, "import: {status} {body}");
            have += n;
        }
        let import_rate = imported as f64 / started.elapsed().as_secs_f64().max(1e-9);
        // Rotation latency: the API answers once the new snapshot is in force.
        let mut lat = Vec::new();
        for round in 0..40 {
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
        tokio::time::sleep(Duration::from_millis(200)).await;
        let per_set = (rss_kib(pid).saturating_sub(base_rss)) as f64 / have as f64;
        println!(
            "{:>9} {:>16.1} {:>16.0} {:>18.1} {:>18.1} {:>14.1}",
            have,
            single_rate,
            import_rate,
            pct(50),
            pct(99),
            per_set
        );
    }
    gw.stop().await?;
    Ok(())
}
