//! SigV4 upload benchmark: MB/s of S3 PUTs through Excalibur, which signs every
//! 64 KiB chunk with the real key as the body streams (STREAMING-AWS4-HMAC-SHA256-PAYLOAD),
//! side by side with the same client uploading unsigned, directly, to an S3 server that
//! does not check signatures; plus the proxy passing an UNSIGNED-PAYLOAD body through
//! (signing the headers only), to separate the proxy's cost from the chunk signing.
//!
//! Usage: `excalibur-bench-sigv4 --gateway target/release/excalibur [--objects N] [--mib M]
//! [--concurrency C]` (see `bench/sigv4.sh`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "benchmark driver, not library code"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use excalibur_test_support::s3::S3Server;
use excalibur_test_support::{Gateway, Options};
use serde_json::json;

const HOST: &str = "s3.us-east-1.amazonaws.com";
const AKID: &str = "AKIABENCHMARKREAL001";
const SECRET: &str = "bench/Secret+Key0123456789abcdefBENCH";

struct Args {
    gateway: PathBuf,
    objects: usize,
    mib: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut a = Args {
        gateway: PathBuf::from("target/release/excalibur"),
        objects: 24,
        mib: 8,
        concurrency: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--gateway" => a.gateway = PathBuf::from(value),
            "--objects" => a.objects = value.parse().expect("--objects N"),
            "--mib" => a.mib = value.parse().expect("--mib M"),
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
    let signed_s3 = S3Server::start(AKID, SECRET, &[HOST]).await?;
    let open_s3 = S3Server::start_open(&[HOST]).await?;
    let dir = Arc::new(tempfile::tempdir()?);
    let s3_ca = dir.path().join("s3-ca.pem");
    std::fs::write(&s3_ca, &signed_s3.ca_pem)?;
    let config = format!(
        "[upstream]\nca_file = {s3_ca:?}\nresolve = [\"{HOST}:443={}\"]\n",
        signed_s3.tls_addr
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
    api.post("/api/providers", json!({"id": "aws", "hosts": [HOST]}))
        .await?;
    api.post(
        "/api/crypto/sigv4/mappings",
        json!({"provider_id": "aws", "target_host": HOST, "region": "us-east-1", "service": "s3",
               "real_access_key_id": AKID, "real_secret_access_key": SECRET}),
    )
    .await?;
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "sigv4_*", "hosts": [HOST]}),
    )
    .await?;
    let cred = api
        .post(
            "/api/service-credentials",
            json!({"name": "bench", "user": "bench", "source_network": "127.0.0.0/8", "allowed_domains": [HOST]}),
        )
        .await?;
    let token = cred["token"].as_str().unwrap().to_owned();
    let gw_ca = std::fs::read_to_string(gw.data_dir.join("ca.pem"))?;

    let direct = reqwest::Client::builder()
        .http1_only()
        .tls_certs_only([reqwest::Certificate::from_pem(open_s3.ca_pem.as_bytes())?])
        .resolve(HOST, open_s3.tls_addr)
        .no_proxy()
        .build()?;
    let proxied = reqwest::Client::builder()
        .http1_only()
        .tls_certs_only([reqwest::Certificate::from_pem(gw_ca.as_bytes())?])
        .proxy(
            reqwest::Proxy::https(format!("http://{}", gw.proxy()))?
                .custom_http_auth(format!("Bearer {token}").parse()?),
        )
        .build()?;
    for c in [&direct, &proxied] {
        let r = c.put(format!("https://{HOST}/bench")).send().await?;
        anyhow::ensure!(r.status().is_success(), "create bucket: {}", r.status());
    }
    let body: bytes::Bytes = (0..args.mib * 1024 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    println!(
        "excalibur-bench-sigv4: {} PUTs of {} MiB per case, concurrency {}, s3s-fs behind TLS on 127.0.0.1",
        args.objects, args.mib, args.concurrency
    );
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        "case", "MiB/s", "p50 ms", "errors"
    );
    let cases: [(&str, &reqwest::Client, Option<&str>); 3] = [
        ("direct, unsigned (no auth server)", &direct, None),
        ("via excalibur, signed 64 KiB chunks", &proxied, None),
        (
            "via excalibur, headers signed, UNSIGNED-PAYLOAD",
            &proxied,
            Some("UNSIGNED-PAYLOAD"),
        ),
    ];
    for (name, client, sha) in cases {
        let started = Instant::now();
        let mut lat = Vec::new();
        let mut errors = 0;
        let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..args.objects {
            let permit = Arc::clone(&sem).acquire_owned().await?;
            let mut req = client
                .put(format!("https://{HOST}/bench/obj-{i}"))
                .body(body.clone());
            if let Some(v) = sha {
                req = req.header("x-amz-content-sha256", v);
            }
            tasks.spawn(async move {
                let t = Instant::now();
                let ok = req
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                drop(permit);
                (ok, t.elapsed())
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (ok, d) = r?;
            if !ok {
                errors += 1;
            }
            lat.push(d);
        }
        let secs = started.elapsed().as_secs_f64();
        lat.sort();
        let p50 = lat.get(lat.len() / 2).copied().unwrap_or(Duration::ZERO);
        let mib = (args.objects * args.mib) as f64;
        println!(
            "{:<44} {:>10.1} {:>10.1} {:>8}",
            name,
            mib / secs,
            p50.as_secs_f64() * 1e3,
            errors
        );
    }
    let stored = std::fs::read_dir(signed_s3.root.path().join("bench"))?.count();
    println!("the signature-checking server stored {stored} objects");
    gw.stop().await?;
    signed_s3.stop().await;
    open_s3.stop().await;
    Ok(())
}
