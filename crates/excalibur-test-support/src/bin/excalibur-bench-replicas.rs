//! Write-path scaling benchmark: 1, 2 and 4 `excalibur serve` replicas on one
//! PostgreSQL (Debian's, started here), load spread over every replica's proxy, every
//! request substituted and recorded. Prints the fleet's requests/s, how fast the flows
//! reach the database, how often a writer waited
//! for the cluster-wide audit-chain lock, and what that lock costs per transaction when
//! nobody contends for it.
//!
//! Usage: `excalibur-bench-replicas --gateway target/release/excalibur [--requests N]
//! [--concurrency C]` (see `bench/replicas.sh`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    reason = "benchmark driver, not library code"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use excalibur_test_support::postgres::Postgres;
use excalibur_test_support::upstream::Echo;
use excalibur_test_support::{Gateway, Options};
use serde_json::json;

const SECRET: &str = "ghp_BENCHMARK_real_value_0123456789";
const MASTER_KEY: &str = "6a0f4e1b2c3d4e5f60718293a4b5c6d7e8f901122334455667788990aabbccdd";
/// The store's write lock key (`postgres.rs`), to time it alone.
const WRITE_LOCK: i64 = 0x6578_6361_6c69_6275;

struct Args {
    gateway: PathBuf,
    requests: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut a = Args {
        gateway: PathBuf::from("target/release/excalibur"),
        requests: 8000,
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
    let pg = tokio::task::spawn_blocking(Postgres::start).await??;
    let echo = Echo::start(&["api.github.com"]).await?;
    println!(
        "excalibur-bench-replicas: {} requests per case over {} keep-alive clients, spread evenly over the replicas; one PostgreSQL 15 on 127.0.0.1",
        args.requests, args.concurrency
    );
    let lock_us = tokio::task::block_in_place(|| lock_cost(&pg.url))?;
    println!(
        "uncontended cluster lock: {lock_us:.1} us per write transaction (BEGIN; pg_advisory_xact_lock; COMMIT minus BEGIN; COMMIT)"
    );
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>8}",
        "replicas", "req/s", "p99 ms", "flows/s", "lock waits", "CPU us/req", "errors"
    );
    for n in [1usize, 2, 4] {
        let url = tokio::task::block_in_place(|| pg.database(&format!("bench_r{n}")))?;
        let row = case(&args, &echo, &url, n).await?;
        println!(
            "{:<10} {:>10.0} {:>10.2} {:>10.0} {:>11.1}% {:>12.0} {:>8}",
            n,
            row.rps,
            row.p99.as_secs_f64() * 1e3,
            row.flows_per_s,
            row.lock_wait_share * 100.0,
            row.cpu_us,
            row.errors
        );
    }
    println!(
        "lock waits: share of 2 ms samples in which a writer waited for the audit-chain lock (pg_locks)"
    );
    Ok(())
}

struct Row {
    rps: f64,
    p99: Duration,
    flows_per_s: f64,
    lock_wait_share: f64,
    cpu_us: f64,
    errors: usize,
}

async fn replica(bin: &std::path::Path, echo: &Echo, url: &str) -> anyhow::Result<Gateway> {
    let dir = tempfile::tempdir()?;
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &echo.ca_pem)?;
    Gateway::start_in(
        bin,
        Arc::new(dir),
        Options {
            config_toml: format!(
                "[upstream]\nca_file = {upstream_ca:?}\nresolve = [\"api.github.com:443={}\"]\n",
                echo.tls_addr
            ),
            env: vec![
                ("EXCALIBUR_DATABASE_URL".into(), url.to_owned()),
                ("EXCALIBUR_MASTER_KEY".into(), MASTER_KEY.into()),
            ],
            ..Default::default()
        },
    )
    .await
}

async fn case(args: &Args, echo: &Echo, url: &str, n: usize) -> anyhow::Result<Row> {
    let mut fleet = Vec::new();
    for _ in 0..n {
        fleet.push(replica(&args.gateway, echo, url).await?);
    }
    let token = configure(&fleet[0]).await?;
    let ca = std::fs::read(fleet[0].data_dir.join("ca.pem"))?;
    let clients: Vec<reqwest::Client> = fleet
        .iter()
        .map(|gw| client(gw, &token, &ca))
        .collect::<anyhow::Result<_>>()?;
    // Every replica has the configuration (notification) and warm connections.
    for c in &clients {
        let started = Instant::now();
        while send(c).await.is_err() {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(5), "no propagation");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let db = url.to_owned();
    let before = tokio::task::spawn_blocking(move || db_counters(&db)).await??;
    let pids: Vec<u32> = fleet.iter().filter_map(Gateway::pid).collect();
    let cpu_before: f64 = pids
        .iter()
        .map(|p| excalibur_test_support::cpu_seconds(*p))
        .sum();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, db) = (Arc::clone(&stop), url.to_owned());
        tokio::task::spawn_blocking(move || lock_samples(&db, &stop))
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let c = clients[w % n].clone();
        let count =
            args.requests / args.concurrency + usize::from(w < args.requests % args.concurrency);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(count);
            let mut errors = 0;
            for _ in 0..count {
                let t = Instant::now();
                match send(&c).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let answered = started.elapsed();
    // Recorded: until every answered request's flow is in the database (bounded).
    let expected = before.flows + lat.len() as i64;
    let db = url.to_owned();
    let after = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let c = db_counters(&db)?;
            if c.flows >= expected || Instant::now() > deadline {
                return anyhow::Ok(c);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .await??;
    let recorded = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (samples, waited) = sampler.await??;
    let cpu: f64 = pids
        .iter()
        .map(|p| excalibur_test_support::cpu_seconds(*p))
        .sum::<f64>()
        - cpu_before;
    for gw in fleet {
        gw.stop().await?;
    }
    lat.sort();
    let flows = (after.flows - before.flows) as f64;
    Ok(Row {
        rps: lat.len() as f64 / answered.as_secs_f64(),
        p99: lat
            .get((lat.len() * 99 / 100).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default(),
        flows_per_s: flows / recorded.as_secs_f64(),
        lock_wait_share: waited as f64 / samples.max(1) as f64,
        cpu_us: cpu * 1e6 / lat.len().max(1) as f64,
        errors,
    })
}

struct Counters {
    flows: i64,
}

fn db_counters(url: &str) -> anyhow::Result<Counters> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    let flows: i64 = c.query_one("SELECT count(*) FROM flows", &[])?.get(0);
    Ok(Counters { flows })
}

/// Samples `pg_locks` every 2 ms: (samples, samples with a writer waiting for the lock).
fn lock_samples(url: &str, stop: &AtomicBool) -> anyhow::Result<(u64, u64)> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    let (mut samples, mut waited) = (0u64, 0u64);
    while !stop.load(Ordering::SeqCst) && samples < 200_000 {
        let waiting: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                 AND classid::bigint = $1 AND objid::bigint = $2",
                &[&(WRITE_LOCK >> 32), &(WRITE_LOCK & 0xffff_ffff)],
            )?
            .get(0);
        samples += 1;
        waited += u64::from(waiting > 0);
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok((samples, waited))
}

/// What the advisory lock adds to one write transaction on an idle server (µs).
fn lock_cost(url: &str) -> anyhow::Result<f64> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    let rounds = 2000;
    let time = |c: &mut postgres::Client, lock: bool| -> anyhow::Result<Duration> {
        let t = Instant::now();
        for _ in 0..rounds {
            let mut tx = c.transaction()?;
            if lock {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
            }
            tx.commit()?;
        }
        Ok(t.elapsed())
    };
    time(&mut c, true)?;
    let with = time(&mut c, true)?;
    let without = time(&mut c, false)?;
    Ok((with.as_secs_f64() - without.as_secs_f64()) * 1e6 / f64::from(rounds))
}

async fn configure(gw: &Gateway) -> anyhow::Result<String> {
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
    Ok(cred["token"].as_str().unwrap_or_default().to_owned())
}

fn client(gw: &Gateway, token: &str, ca: &[u8]) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .tls_certs_only([reqwest::Certificate::from_pem(ca)?])
        .timeout(Duration::from_secs(10))
        .proxy(
            reqwest::Proxy::https(format!("http://{}", gw.proxy()))?
                .custom_http_auth(format!("Bearer {token}").parse()?),
        )
        .build()?)
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
