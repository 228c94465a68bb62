//! Issue: SigV4 crypto mediation. The AWS CLI, boto3 and curl, holding no AWS key (or a
//! dummy one), go through the running binary to a real S3 server (`s3s-fs`) that
//! verifies every signature, chunk signature and trailer with the real key.

#![allow(
    clippy::cast_possible_truncation,
    clippy::string_slice,
    reason = "test fixtures: byte patterns and ASCII bodies"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use excalibur_test_support::s3::S3Server;
use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::data_plane::{curl, proxy_url, wait_events};
use crate::server_bin;

const REAL_AKID: &str = "AKIAEXCALIBURREAL001";
const REAL_SECRET: &str = "real/Secret+Key0123456789abcdefEXCALIBUR";
const DUMMY_AKID: &str = "AKIADUMMYDUMMYDUMMY0";
const HOST: &str = "s3.us-east-1.amazonaws.com";
const TAMPER_HOST: &str = "tamper.s3.us-east-1.amazonaws.com";

struct Setup {
    gw: Gateway,
    s3: S3Server,
    token: String,
    mapping: String,
    ca: PathBuf,
    home: tempfile::TempDir,
}

async fn setup() -> Setup {
    let s3 = S3Server::start(REAL_AKID, REAL_SECRET, &[HOST, TAMPER_HOST])
        .await
        .unwrap();
    let tamper = s3
        .front(Some((b"TAMPER-ME!".to_vec(), b"TAMPERED!!".to_vec())))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s3_ca = dir.path().join("s3-ca.pem");
    std::fs::write(&s3_ca, &s3.ca_pem).unwrap();
    let config = format!(
        "[upstream]\nca_file = {s3_ca:?}\nresolve = [\"{HOST}:443={}\", \"{TAMPER_HOST}:443={tamper}\"]\n",
        s3.tls_addr
    );
    let gw = Gateway::start_in(
        server_bin(),
        Arc::new(dir),
        Options {
            config_toml: config,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "aws-prod-s3", "hosts": [HOST, TAMPER_HOST]}),
    )
    .await
    .unwrap();
    let m = api
        .post(
            "/api/crypto/sigv4/mappings",
            json!({"provider_id": "aws-prod-s3", "target_host": HOST, "path_prefix": "/",
                   "region": "us-east-1", "service": "s3",
                   "real_access_key_id": REAL_AKID, "real_secret_access_key": REAL_SECRET}),
        )
        .await
        .unwrap();
    api.post(
        "/api/crypto/sigv4/mappings",
        json!({"provider_id": "aws-prod-s3", "target_host": TAMPER_HOST,
               "region": "us-east-1", "service": "s3",
               "real_access_key_id": REAL_AKID, "real_secret_access_key": REAL_SECRET}),
    )
    .await
    .unwrap();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "sigv4_*", "hosts": [HOST, TAMPER_HOST], "principal": "service:ci-runner"}),
    )
    .await
    .unwrap();
    let (_, token) =
        crate::data_plane::credential(&gw, "ci-runner", "127.0.0.0/8", &[HOST, TAMPER_HOST]).await;
    let ca = gw.data_dir.join("ca.pem");
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
    )
    .unwrap();
    Setup {
        gw,
        s3,
        token,
        mapping: m["id"].as_str().unwrap().to_owned(),
        ca,
        home,
    }
}

fn venv_bin(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aws-venv/bin");
    let p = root.join(name);
    assert!(
        p.exists(),
        "{} missing: run ./test.sh (it creates target/aws-venv with awscli and boto3)",
        p.display()
    );
    p
}

/// The workload's environment: a proxy URL with its credential, Excalibur's CA, and
/// at most a dummy AWS key. Nothing inherited from the machine.
fn workload_env(s: &Setup, cmd: &mut tokio::process::Command, dummy_key: bool) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", s.home.path())
        .env(
            "HTTPS_PROXY",
            format!("http://ci:{}@{}", s.token, s.gw.proxy()),
        )
        .env("AWS_CA_BUNDLE", &s.ca)
        .env("REQUESTS_CA_BUNDLE", &s.ca)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_DEFAULT_REGION", "us-east-1");
    if dummy_key {
        cmd.env("AWS_ACCESS_KEY_ID", DUMMY_AKID)
            .env("AWS_SECRET_ACCESS_KEY", "dummy-secret-the-workload-holds");
    }
}

async fn aws(s: &Setup, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(venv_bin("aws"));
    workload_env(s, &mut cmd, true);
    cmd.arg("--endpoint-url")
        .arg(format!("https://{HOST}"))
        .args(args);
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("aws cli finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn python(s: &Setup, script: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(venv_bin("python"));
    workload_env(s, &mut cmd, true);
    cmd.arg("-c").arg(script).args(args);
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("python finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn object_on_disk(s: &Setup, bucket: &str, key: &str) -> Option<Vec<u8>> {
    std::fs::read(s.s3.root.path().join(bucket).join(key)).ok()
}

/// Bytes that are not all the same, so a reordered or repeated part would show.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + i / 4099) % 251) as u8).collect()
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(REAL_SECRET),
        "the real secret appears in {what}"
    );
    assert!(
        !text.contains(REAL_AKID),
        "the real key id appears in {what}"
    );
}

#[tokio::test]
async fn aws_cli_put_get_and_20mb_multipart_with_no_real_key_on_the_workload() {
    let s = setup().await;
    let work = tempfile::tempdir().unwrap();

    // Control: the server really checks signatures (the dummy key is refused directly).
    let mut direct = tokio::process::Command::new(venv_bin("aws"));
    direct
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", s.home.path())
        .env("AWS_ACCESS_KEY_ID", DUMMY_AKID)
        .env("AWS_SECRET_ACCESS_KEY", "dummy-secret-the-workload-holds")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .args([
            "--endpoint-url",
            &format!("http://{}", s.s3.plain_addr),
            "s3api",
            "create-bucket",
            "--bucket",
            "direct",
        ]);
    let out = direct.output().await.unwrap();
    assert!(
        !out.status.success(),
        "s3s-fs accepted a dummy key: the test would prove nothing"
    );

    let (code, out, err) = aws(&s, &["s3api", "create-bucket", "--bucket", "demo"]).await;
    assert_eq!(code, 0, "create-bucket: {out} {err}");

    let small = work.path().join("small.txt");
    std::fs::write(&small, b"hello from a workload without AWS keys\n").unwrap();
    let (code, out, err) = aws(
        &s,
        &["s3", "cp", small.to_str().unwrap(), "s3://demo/small.txt"],
    )
    .await;
    assert_eq!(code, 0, "put: {out} {err}");
    let back = work.path().join("small.back");
    let (code, out, err) = aws(
        &s,
        &["s3", "cp", "s3://demo/small.txt", back.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "get: {out} {err}");
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&small).unwrap()
    );

    // 20 MB: the CLI splits it into a multipart upload (8 MB parts), each part re-signed.
    let big = work.path().join("big.bin");
    let data = pattern(20 * 1024 * 1024);
    std::fs::write(&big, &data).unwrap();
    let (code, out, err) = aws(
        &s,
        &["s3", "cp", big.to_str().unwrap(), "s3://demo/big.bin"],
    )
    .await;
    assert_eq!(code, 0, "multipart put: {out} {err}");
    assert_eq!(
        object_on_disk(&s, "demo", "big.bin").as_deref(),
        Some(&data[..]),
        "stored object differs"
    );
    let big_back = work.path().join("big.back");
    let (code, out, err) = aws(
        &s,
        &["s3", "cp", "s3://demo/big.bin", big_back.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "multipart get: {out} {err}");
    assert!(
        std::fs::read(&big_back).unwrap() == data,
        "downloaded object differs"
    );
    let (code, out, _) = aws(&s, &["s3api", "list-objects-v2", "--bucket", "demo"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("big.bin") && out.contains("small.txt"),
        "{out}"
    );

    // Every signed call is audited with the key id's prefix, never the key.
    let events = wait_events(&s.gw, "sigv4_signed", 8).await;
    assert!(events.len() >= 8, "{} sigv4_signed events", events.len());
    let parts = events
        .iter()
        .filter(|e| e["details"]["payload"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        .count();
    assert!(
        parts >= 3,
        "expected the multipart parts as trailer-checksum uploads: {events:?}"
    );
    for e in &events {
        assert_eq!(e["details"]["key_id_prefix"], "AKIAEXCA…");
        assert_eq!(e["details"]["service"], "s3");
        assert_eq!(e["principal"], "service:ci-runner");
    }
    let all =
        s.gw.api()
            .get("/api/audit?limit=1000")
            .await
            .unwrap()
            .to_string();
    assert_no_secret("the audit log", &all);
    let listed = s.gw.api().get("/api/crypto/sigv4/mappings").await.unwrap();
    assert_no_secret("the mappings list", &listed.to_string());
    assert_eq!(listed[0]["access_key_id_prefix"], "AKIAEXCA…");
    assert_eq!(listed[0]["surrogate"], listed[0]["id"]);
    s.s3.stop().await;
}

const BOTO3_SCRIPT: &str = r#"
import json, os, sys, boto3, requests
from botocore.config import Config
host = sys.argv[1]
cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
             proxies={"https": os.environ["HTTPS_PROXY"]})
c = boto3.client("s3", endpoint_url="https://" + host, config=cfg, verify=os.environ["AWS_CA_BUNDLE"])
out = {}
c.create_bucket(Bucket="boto-bucket")
body = b"trailer-checksummed payload " * 5000
r = c.put_object(Bucket="boto-bucket", Key="t.bin", Body=body, ChecksumAlgorithm="CRC32")
out["put_crc32"] = r.get("ChecksumCRC32")
out["get_ok"] = c.get_object(Bucket="boto-bucket", Key="t.bin")["Body"].read() == body
url = c.generate_presigned_url("get_object", Params={"Bucket": "boto-bucket", "Key": "t.bin"}, ExpiresIn=300)
out["presigned_has_dummy_key"] = "AKIADUMMY" in url
g = requests.get(url, proxies={"https": os.environ["HTTPS_PROXY"]}, verify=os.environ["AWS_CA_BUNDLE"], timeout=30)
out["presigned_status"] = g.status_code
out["presigned_ok"] = g.content == body
print(json.dumps(out))
"#;

#[tokio::test]
async fn boto3_trailer_checksum_upload_and_presigned_urls() {
    let s = setup().await;
    let (code, out, err) = python(&s, BOTO3_SCRIPT, &[HOST]).await;
    assert_eq!(code, 0, "{out} {err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(r["put_crc32"].is_string(), "{r}");
    assert_eq!(r["get_ok"], true, "{r}");
    assert_eq!(r["presigned_has_dummy_key"], true, "{r}");
    assert_eq!(r["presigned_status"], 200, "{r}");
    assert_eq!(r["presigned_ok"], true, "{r}");
    let query = wait_events(&s.gw, "sigv4_signed", 4).await;
    assert!(
        query.iter().any(|e| e["details"]["auth"] == "query"),
        "{query:?}"
    );

    // An operator presigns through the API; the URL works without the proxy and only
    // for what was signed.
    let v =
        s.gw.api()
            .post(
                "/api/crypto/sigv4/presign",
                json!({"mapping_id": s.mapping, "path": "/boto-bucket/t.bin", "expires_in": 120}),
            )
            .await
            .unwrap();
    let url = v["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("https://{HOST}/boto-bucket/t.bin?"))
            && url.contains("X-Amz-Signature="),
        "{url}"
    );
    assert!(v["expires_at"].is_string());
    let s3_ca = s.gw.data_dir.parent().unwrap().join("s3-ca.pem");
    let connect_to = format!("{HOST}:443:{}", s.s3.tls_addr);
    let (code, body, err) = curl(&[
        "--cacert",
        s3_ca.to_str().unwrap(),
        "--connect-to",
        &connect_to,
        "-o",
        "-",
        "-w",
        "%{http_code}",
        url,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        body.ends_with("200") && body.starts_with("trailer-checksummed payload"),
        "{}",
        &body[body.len().saturating_sub(200)..]
    );
    let other = url.replace("/boto-bucket/t.bin?", "/boto-bucket/other.bin?");
    let (_, body, _) = curl(&[
        "--cacert",
        s3_ca.to_str().unwrap(),
        "--connect-to",
        &connect_to,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &other,
    ])
    .await;
    assert_eq!(body, "403", "a presigned URL must not work for another key");
    wait_events(&s.gw, "sigv4_presigned", 1).await;
    // Operators (read-only) cannot presign.
    let op =
        s.gw.api()
            .post("/api/tokens", json!({"name": "op", "role": "operator"}))
            .await
            .unwrap();
    let (status, _, _) =
        s.gw.api_as(op["token"].as_str())
            .send(
                "POST",
                "/api/crypto/sigv4/presign",
                Some(json!({"mapping_id": s.mapping, "path": "/boto-bucket/t.bin"})),
            )
            .await
            .unwrap();
    assert_eq!(status, 403);
    s.s3.stop().await;
}

/// A client-built `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body with dummy chunk signatures.
fn chunk_signed_body(data: &[u8], trailer: Option<&str>) -> Vec<u8> {
    let dummy = "f".repeat(64);
    let mut out = Vec::new();
    for chunk in data.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x};chunk-signature={dummy}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("0;chunk-signature={dummy}\r\n").as_bytes());
    match trailer {
        Some(t) => {
            out.extend_from_slice(
                format!("{t}\r\nx-amz-trailer-signature:{dummy}\r\n\r\n").as_bytes(),
            );
        }
        None => out.extend_from_slice(b"\r\n"),
    }
    out
}

async fn put_via_proxy(
    s: &Setup,
    host: &str,
    key: &str,
    body: &[u8],
    headers: &[String],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let mut args: Vec<String> = vec![
        "-x".into(),
        proxy_url(&s.gw),
        "--proxy-user".into(),
        format!("ci:{}", s.token),
        "--cacert".into(),
        s.ca.to_string_lossy().into_owned(),
        "-X".into(),
        "PUT".into(),
        "--data-binary".into(),
        format!("@{}", file.display()),
        "-H".into(),
        "Content-Type:".into(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push(h.clone());
    }
    args.push(format!("https://{host}/chunks/{key}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = curl(&args).await;
    assert_eq!(code, 0, "{err}");
    out
}

#[tokio::test]
async fn chunk_signatures_are_resigned_or_generated_and_a_tampered_chunk_fails() {
    let s = setup().await;
    let (code, out, err) = aws(&s, &["s3api", "create-bucket", "--bucket", "chunks"]).await;
    assert_eq!(code, 0, "{out} {err}");
    let mut data = pattern(150 * 1024);
    data[100_000..100_010].copy_from_slice(b"TAMPER-ME!");
    let dummy_auth = format!(
        "Authorization: AWS4-HMAC-SHA256 Credential={DUMMY_AKID}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
        "0".repeat(64)
    );
    let streaming = |decoded: usize, mode: &str| {
        vec![
            dummy_auth.clone(),
            "X-Amz-Date: 20260101T000000Z".to_owned(),
            format!("x-amz-content-sha256: {mode}"),
            "Content-Encoding: aws-chunked".to_owned(),
            format!("x-amz-decoded-content-length: {decoded}"),
        ]
    };

    // Client-signed chunks (dummy key): every signature is recomputed with the real key.
    let body = chunk_signed_body(&data, None);
    let status = put_via_proxy(
        &s,
        HOST,
        "resigned.bin",
        &body,
        &streaming(data.len(), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    )
    .await;
    assert_eq!(status, "200");
    assert_eq!(
        object_on_disk(&s, "chunks", "resigned.bin").as_deref(),
        Some(&data[..])
    );

    // Control: the tampering front forwards an unmarked body untouched.
    let clean = chunk_signed_body(&data[..90_000], None);
    let status = put_via_proxy(
        &s,
        TAMPER_HOST,
        "clean.bin",
        &clean,
        &streaming(90_000, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    )
    .await;
    assert_eq!(status, "200");
    // The same body, with one chunk altered after the proxy signed it: the server refuses.
    let status = put_via_proxy(
        &s,
        TAMPER_HOST,
        "tampered.bin",
        &body,
        &streaming(data.len(), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    )
    .await;
    assert!(
        !status.starts_with('2'),
        "a tampered chunk was accepted ({status})"
    );
    assert!(object_on_disk(&s, "chunks", "tampered.bin").is_none());

    // Signed chunks with a signed checksum trailer.
    let crc = crc32(&data);
    let trailer = format!("x-amz-checksum-crc32:{crc}");
    let body = chunk_signed_body(&data, Some(&trailer));
    let mut headers = streaming(data.len(), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER");
    headers.push("x-amz-trailer: x-amz-checksum-crc32".to_owned());
    let status = put_via_proxy(&s, HOST, "trailer.bin", &body, &headers).await;
    assert_eq!(status, "200");
    assert_eq!(
        object_on_disk(&s, "chunks", "trailer.bin").as_deref(),
        Some(&data[..])
    );
    // A wrong checksum in a correctly re-signed trailer is the server's to refuse.
    let body = chunk_signed_body(&data, Some("x-amz-checksum-crc32:AAAAAA=="));
    let status = put_via_proxy(&s, HOST, "badcrc.bin", &body, &headers).await;
    assert!(
        !status.starts_with('2'),
        "a wrong trailer checksum was accepted ({status})"
    );

    // A plain unsigned 2 MiB upload: the proxy chunk-signs it as it streams.
    let mut big = pattern(2 * 1024 * 1024);
    big[1_500_000..1_500_010].copy_from_slice(b"TAMPER-ME!");
    let status = put_via_proxy(&s, HOST, "generated.bin", &big, &[]).await;
    assert_eq!(status, "200");
    assert_eq!(
        object_on_disk(&s, "chunks", "generated.bin").as_deref(),
        Some(&big[..])
    );
    let status = put_via_proxy(&s, TAMPER_HOST, "generated-tampered.bin", &big, &[]).await;
    assert!(
        !status.starts_with('2'),
        "a tampered generated chunk was accepted ({status})"
    );

    // Malformed framing from the workload never reaches the server as a valid upload.
    let mut broken = chunk_signed_body(&data, None);
    broken.truncate(broken.len() - 40);
    let status = put_via_proxy(
        &s,
        HOST,
        "broken.bin",
        &broken,
        &streaming(data.len(), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    )
    .await;
    assert!(
        !status.starts_with('2'),
        "a truncated aws-chunked body was accepted ({status})"
    );
    assert!(object_on_disk(&s, "chunks", "broken.bin").is_none());

    let events = wait_events(&s.gw, "sigv4_signed", 6).await;
    let modes: Vec<&str> = events
        .iter()
        .filter_map(|e| e["details"]["body"].as_str())
        .collect();
    assert!(
        modes.contains(&"chunks_resigned") && modes.contains(&"chunks_signed"),
        "{modes:?}"
    );
    s.s3.stop().await;
}

fn crc32(data: &[u8]) -> String {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    // Standard base64 of the 4 big-endian bytes.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = (!crc).to_be_bytes();
    let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    let mut out: String = [18, 12, 6, 0]
        .iter()
        .map(|s| ALPHABET[((n >> s) & 63) as usize] as char)
        .collect();
    let m = u32::from(b[3]) << 16;
    out.push(ALPHABET[((m >> 18) & 63) as usize] as char);
    out.push(ALPHABET[((m >> 12) & 63) as usize] as char);
    out.push_str("==");
    out
}

#[tokio::test]
async fn mappings_are_policed_validated_and_rotated_with_one_upsert() {
    let s = setup().await;
    let api = s.gw.api();
    // A host outside the provider is refused; so is an unknown provider.
    let (status, _, v) = api
        .send("POST", "/api/crypto/sigv4/mappings", Some(json!({"provider_id": "aws-prod-s3", "target_host": "evil.example",
            "region": "us-east-1", "service": "s3", "real_access_key_id": REAL_AKID, "real_secret_access_key": "x"})))
        .await
        .unwrap();
    assert_eq!(status, 422, "{v}");
    let (status, _, _) = api
        .send("POST", "/api/crypto/sigv4/mappings", Some(json!({"provider_id": "nope", "target_host": HOST,
            "region": "us-east-1", "service": "s3", "real_access_key_id": REAL_AKID, "real_secret_access_key": "x"})))
        .await
        .unwrap();
    assert_eq!(status, 422);

    // A principal no rule lets use the mapping gets 403 and a deny event; nothing is stored.
    let (_, other) =
        crate::data_plane::credential(&s.gw, "other-runner", "127.0.0.0/8", &[HOST]).await;
    let (code, out, err) = curl(&[
        "-x",
        &proxy_url(&s.gw),
        "--proxy-user",
        &format!("x:{other}"),
        "--cacert",
        s.ca.to_str().unwrap(),
        "-X",
        "PUT",
        "--data-binary",
        "nope",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://{HOST}/denied-bucket"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "403");
    let denied = wait_events(&s.gw, "placeholder_denied", 1).await;
    assert_eq!(denied[0]["details"]["placeholders"][0], s.mapping.as_str());
    assert!(!s.s3.root.path().join("denied-bucket").exists());

    let (code, _, err) = aws(&s, &["s3api", "create-bucket", "--bucket", "rot"]).await;
    assert_eq!(code, 0, "{err}");
    // Rotate to a key the server does not know: the very next call fails upstream...
    let before = api.get("/api/crypto/sigv4/mappings").await.unwrap();
    let wrong = api
        .post("/api/crypto/sigv4/mappings", json!({"id": s.mapping, "provider_id": "aws-prod-s3", "target_host": HOST,
            "region": "us-east-1", "service": "s3", "real_access_key_id": "AKIAROTATEDWRONGKEY0", "real_secret_access_key": "wrong"}))
        .await
        .unwrap();
    assert_eq!(wrong["id"], s.mapping.as_str());
    assert_ne!(wrong["fingerprint"], before[0]["fingerprint"]);
    let (code, _, _) = aws(&s, &["s3api", "list-objects-v2", "--bucket", "rot"]).await;
    assert_ne!(code, 0, "the old key was still used after rotation");
    // ...and rotating back takes effect just as fast.
    api.post("/api/crypto/sigv4/mappings", json!({"id": s.mapping, "provider_id": "aws-prod-s3", "target_host": HOST,
        "region": "us-east-1", "service": "s3", "real_access_key_id": REAL_AKID, "real_secret_access_key": REAL_SECRET}))
        .await
        .unwrap();
    let (code, _, err) = aws(&s, &["s3api", "list-objects-v2", "--bucket", "rot"]).await;
    assert_eq!(code, 0, "{err}");
    let updated = wait_events(&s.gw, "sigv4_mapping_updated", 2).await;
    assert_eq!(updated.len(), 2);
    assert_no_secret("mapping events", &serde_json::to_string(&updated).unwrap());

    // Delete: the host is then forwarded unsigned (and the server refuses it).
    let (status, _, _) = api
        .send(
            "DELETE",
            &format!("/api/crypto/sigv4/mappings/{}", s.mapping),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    let (code, _, _) = aws(&s, &["s3api", "list-objects-v2", "--bucket", "rot"]).await;
    assert_ne!(code, 0);
    s.s3.stop().await;
}

#[tokio::test]
async fn ctl_adds_lists_presigns_and_deletes_mappings() {
    let s = setup().await;
    let (code, out, err) = crate::ctl(
        &s.gw,
        &[
            "crypto",
            "sigv4",
            "add",
            "--provider",
            "aws-prod-s3",
            "--target-host",
            HOST,
            "--path-prefix",
            "/logs/",
            "--region",
            "us-east-1",
            "--service",
            "s3",
            "--access-key-id",
            REAL_AKID,
            "--secret-key-file",
            "-",
        ],
        Some(&format!("{REAL_SECRET}\n")),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("AKIAEXCA…") && out.contains("/logs/"), "{out}");
    assert_no_secret("ctl output", &out);
    let (code, out, _) = crate::ctl(&s.gw, &["crypto", "sigv4", "list", "--json"], None).await;
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path_prefix"] == "/logs/")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out, err) = crate::ctl(
        &s.gw,
        &[
            "crypto",
            "sigv4",
            "presign",
            "--mapping",
            &id,
            "--path",
            "/logs/today.txt",
            "--expires-in",
            "60",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("https://{HOST}/logs/today.txt?"))
            && out.contains("X-Amz-Expires=60"),
        "{out}"
    );
    // Outside the mapping's path prefix: refused with a one-line error.
    let (code, _, err) = crate::ctl(
        &s.gw,
        &[
            "crypto",
            "sigv4",
            "presign",
            "--mapping",
            &id,
            "--path",
            "/other/x",
        ],
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("path_prefix"), "{err}");
    // The UI's Crypto Mediation page lists it on the SigV4 tab, for an operator too.
    let op =
        s.gw.api()
            .post("/api/tokens", json!({"name": "viewer", "role": "operator"}))
            .await
            .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ok = client
        .post(format!("{}/login", s.gw.url()))
        .form(&[("token", op["token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let session = ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client
        .get(format!("{}/ui/crypto?tab=sigv4", s.gw.url()))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for column in [
        "ID",
        "Provider",
        "Authority",
        "Token host",
        "Resource host",
        "Path prefix",
        "Surrogate",
    ] {
        assert!(page.contains(&format!("<th>{column}</th>")), "{column}");
    }
    assert!(
        page.contains(&id) && page.contains("/logs/"),
        "the mapping is not on the page"
    );
    assert_no_secret("the UI", &page);
    let (code, _, err) = crate::ctl(&s.gw, &["crypto", "sigv4", "delete", &id], None).await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = crate::ctl(&s.gw, &["crypto", "sigv4", "list", "--json"], None).await;
    assert!(!out.contains(&id));
    s.s3.stop().await;
}

#[tokio::test]
async fn non_s3_requests_are_hash_signed_and_an_echoed_session_token_is_scrubbed() {
    use excalibur_test_support::upstream::Echo;
    const STS: &str = "sts.us-east-1.amazonaws.com";
    const SESSION: &str = "FQoGZXIvYXdzEXAMPLE-REAL-SESSION-TOKEN-0123456789";
    let echo = Echo::start(&[STS]).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &echo.ca_pem).unwrap();
    let config = format!(
        "[upstream]\nca_file = {upstream_ca:?}\nresolve = [\"{STS}:443={}\"]\n",
        echo.tls_addr
    );
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post("/api/providers", json!({"id": "aws-sts", "hosts": [STS]}))
        .await
        .unwrap();
    let m = api
        .post("/api/crypto/sigv4/mappings", json!({"provider_id": "aws-sts", "target_host": STS, "region": "us-east-1",
               "service": "sts", "real_access_key_id": REAL_AKID, "real_secret_access_key": REAL_SECRET,
               "real_session_token": SESSION}))
        .await
        .unwrap();
    assert_eq!(m["session_token"], true);
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "sigv4_*", "hosts": [STS]}),
    )
    .await
    .unwrap();
    let (_, token) = crate::data_plane::credential(&gw, "ci", "127.0.0.0/8", &[STS]).await;
    let (code, out, err) = curl(&[
        "-x",
        &proxy_url(&gw),
        "--proxy-user",
        &format!("ci:{token}"),
        "--cacert",
        gw.data_dir.join("ca.pem").to_str().unwrap(),
        "-H",
        "Content-Type: application/x-www-form-urlencoded",
        "-d",
        "Action=GetCallerIdentity&Version=2011-06-15",
        &format!("https://{STS}/"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    // The echo shows the request back: the session token is replaced by the mapping id.
    assert!(
        !out.contains(SESSION),
        "the session token leaked back: {out}"
    );
    assert!(out.contains(m["id"].as_str().unwrap()), "{out}");
    let seen = echo.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.header("x-amz-security-token"), Some(SESSION));
    let auth = last.header("authorization").unwrap();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={REAL_AKID}/")),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/sts/aws4_request"), "{auth}");
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
        "{auth}"
    );
    // Non-S3: the full body hash is signed, no x-amz-content-sha256 is added.
    assert!(last.header("x-amz-content-sha256").is_none());
    assert_eq!(last.body, b"Action=GetCallerIdentity&Version=2011-06-15");
    let signed = wait_events(&gw, "sigv4_signed", 1).await;
    assert_eq!(signed[0]["details"]["payload"], "sha256");
}

#[tokio::test]
async fn aws_cli_default_presign_and_unknown_length_uploads_work_through_the_proxy() {
    let s = setup().await;
    let work = tempfile::tempdir().unwrap();
    let (code, out, err) = aws(&s, &["s3api", "create-bucket", "--bucket", "v2-bucket"]).await;
    assert_eq!(code, 0, "create-bucket: {out} {err}");
    let obj = work.path().join("obj.txt");
    std::fs::write(&obj, b"presigned by the aws cli with a dummy key\n").unwrap();
    let (code, out, err) = aws(
        &s,
        &["s3", "cp", obj.to_str().unwrap(), "s3://v2-bucket/obj.txt"],
    )
    .await;
    assert_eq!(code, 0, "put: {out} {err}");

    // The AWS CLI's default `presign`, made with the dummy key (SigV2 query auth on
    // aws-cli 1.x): through the proxy it is re-presigned with the real key.
    let (code, url, err) = aws(
        &s,
        &[
            "s3",
            "presign",
            "s3://v2-bucket/obj.txt",
            "--expires-in",
            "300",
        ],
    )
    .await;
    assert_eq!(code, 0, "presign: {err}");
    let url = url.trim().to_owned();
    assert!(url.contains(DUMMY_AKID), "{url}");
    let auth = format!("Proxy-Authorization: Bearer {}", s.token);
    let ca = s.ca.to_string_lossy().into_owned();
    let (code, body, err) = curl(&[
        "-x",
        &proxy_url(&s.gw),
        "--proxy-header",
        &auth,
        "--cacert",
        &ca,
        "-f",
        &url,
    ])
    .await;
    assert_eq!(code, 0, "presigned GET through the proxy ({url}): {err}");
    assert_eq!(body, "presigned by the aws cli with a dummy key\n");
    // aws-cli 1.x presigns with SigV2 by default: the proxy re-presigned it.
    assert!(
        url.contains("Signature=") && url.contains("AWSAccessKeyId="),
        "{url}"
    );
    let signed = wait_events(&s.gw, "sigv4_signed", 1).await;
    assert!(
        signed.iter().any(|e| e["details"]["auth"] == "query"),
        "{signed:?}"
    );
    // An expired SigV2 URL stays expired.
    let expired = format!(
        "https://{HOST}/v2-bucket/obj.txt?AWSAccessKeyId={DUMMY_AKID}&Signature=x&Expires=1000000000"
    );
    let (code, out, _) = curl(&[
        "-x",
        &proxy_url(&s.gw),
        "--proxy-header",
        &auth,
        "--cacert",
        &ca,
        "-i",
        &expired,
    ])
    .await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("HTTP/") && l.contains(" 403")),
        "{out}"
    );
    assert!(out.contains("presigned_url_expired"), "{out}");

    // Unknown-length uploads (`curl -T -`, chunked, no Content-Length), HTTP/1.1 and
    // HTTP/2: read up to the cap, signed with their length, stored intact.
    let data = pattern(5 * 1024 * 1024);
    let file = work.path().join("five.bin");
    std::fs::write(&file, &data).unwrap();
    for (version, key) in [("--http1.1", "h1.bin"), ("--http2", "h2.bin")] {
        let out = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cat {} | curl -sS --max-time 60 -o /dev/null -w '%{{http_code}}' {version} -x {} --proxy-header '{auth}' --cacert {ca} -T - https://{HOST}/v2-bucket/{key}",
                file.display(),
                proxy_url(&s.gw)
            ))
            .env_remove("HTTPS_PROXY")
            .output()
            .await
            .unwrap();
        let status = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            status,
            "200",
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            object_on_disk(&s, "v2-bucket", key).as_deref(),
            Some(&data[..]),
            "{version}"
        );
    }
    // Over the cap: a clear 411 before the upstream is asked to store anything.
    let big = work.path().join("big.bin");
    std::fs::write(&big, pattern(11 * 1024 * 1024)).unwrap();
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {} | curl -sS --max-time 60 -i --http1.1 -x {} --proxy-header '{auth}' --cacert {ca} -T - https://{HOST}/v2-bucket/big.bin",
            big.display(),
            proxy_url(&s.gw)
        ))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("411") && text.contains("length_required"),
        "{text}"
    );
    assert!(object_on_disk(&s, "v2-bucket", "big.bin").is_none());
}

/// Issue 19 (outbound): a SigV4 mapping with `role_arn` and no key. Excalibur signs a
/// web-identity JWT as an OIDC issuer, calls AssumeRoleWithWebIdentity on an STS
/// stand-in (TLS, the documented shapes) that returns the key pair the S3 server
/// (s3s-fs, checking signatures) knows, and signs with those temporary credentials, the
/// session token included. The AWS CLI holds no AWS credentials at all. A failed STS
/// call is not cached; the credentials are reused until shortly before they expire,
/// then assumed again; the JWT verifies against Excalibur's published JWKS.
#[tokio::test]
async fn a_role_mapping_signs_with_assumed_credentials_and_no_static_key() {
    const STS_HOST: &str = "sts.us-east-1.amazonaws.com";
    const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLEsessionTOKENforTHEtest";
    let s3 = S3Server::start(REAL_AKID, REAL_SECRET, &[HOST])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sts_ca, sts_chain, sts_key) = excalibur_test_support::tls_files(&[STS_HOST]).unwrap();
    let (cert, key, log) = (
        dir.path().join("sts.pem"),
        dir.path().join("sts.key"),
        dir.path().join("sts.log"),
    );
    let log_path = log.clone();
    std::fs::write(&cert, sts_chain).unwrap();
    std::fs::write(&key, sts_key).unwrap();
    let port = excalibur_test_support::free_port().unwrap().port();
    let mut sts = tokio::process::Command::new(venv_bin("python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/sts_standin.py"))
        .args([
            port.to_string().as_str(),
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            log.to_str().unwrap(),
        ])
        .args(["20", REAL_AKID, REAL_SECRET, SESSION_TOKEN])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut ready = String::new();
    tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(sts.stdout.take().unwrap()),
        &mut ready,
    )
    .await
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let roots = dir.path().join("upstream-ca.pem");
    std::fs::write(&roots, format!("{}\n{sts_ca}", s3.ca_pem)).unwrap();
    let config = format!(
        "[upstream]\nca_file = {roots:?}\nresolve = [\"{HOST}:443={}\", \"{STS_HOST}:443=127.0.0.1:{port}\"]\n",
        s3.tls_addr
    );
    let gw = Gateway::start_in(
        server_bin(),
        Arc::new(dir),
        Options {
            config_toml: config,
            env: vec![(
                "EXCALIBUR_ISSUER_URL".into(),
                "https://excalibur.test".into(),
            )],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post("/api/providers", json!({"id": "aws-role", "hosts": [HOST]}))
        .await
        .unwrap();
    let m = api
        .post(
            "/api/crypto/sigv4/mappings",
            json!({"provider_id": "aws-role", "target_host": HOST, "region": "us-east-1", "service": "s3",
                   "role_arn": "arn:aws:iam::123456789012:role/excalibur-s3", "session_name": "excalibur-ci"}),
        )
        .await
        .unwrap();
    assert_eq!(
        m["role_arn"], "arn:aws:iam::123456789012:role/excalibur-s3",
        "{m}"
    );
    let mapping = m["id"].as_str().unwrap().to_owned();
    // A key and a role at once is refused.
    let (status, _, _) = api
        .send(
            "POST",
            "/api/crypto/sigv4/mappings",
            Some(json!({"provider_id": "aws-role", "target_host": HOST, "region": "us-east-1", "service": "s3",
                        "role_arn": "arn:aws:iam::123456789012:role/x", "real_access_key_id": REAL_AKID,
                        "real_secret_access_key": REAL_SECRET})),
        )
        .await
        .unwrap();
    assert_eq!(status, 422);
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "sigv4_*", "hosts": [HOST], "principal": "service:ci-runner"}),
    )
    .await
    .unwrap();
    let (_, token) = crate::data_plane::credential(&gw, "ci-runner", "127.0.0.0/8", &[HOST]).await;
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
    )
    .unwrap();
    let ca = gw.data_dir.join("ca.pem");
    let cli = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(venv_bin("aws"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("HTTPS_PROXY", format!("http://ci:{token}@{}", gw.proxy()))
            .env("AWS_CA_BUNDLE", &ca)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args([
                "--no-sign-request",
                "--endpoint-url",
                &format!("https://{HOST}"),
            ])
            .args(args);
        async move {
            let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
                .await
                .unwrap()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let calls = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // The stand-in fails the first call: that request is refused (502) and the failure
    // is not kept, so the CLI's retry makes Excalibur call STS again and succeeds.
    let (code, out, err) = cli(vec!["s3".into(), "mb".into(), "s3://assumed".into()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        calls(),
        2,
        "a failed AssumeRoleWithWebIdentity is not cached"
    );
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("hello.txt");
    std::fs::write(&file, b"signed with assumed credentials").unwrap();
    let (code, out, err) = cli(vec![
        "s3".into(),
        "cp".into(),
        file.to_str().unwrap().into(),
        "s3://assumed/hello.txt".into(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(calls(), 2, "the assumed credentials are reused");
    assert_eq!(
        std::fs::read(s3.root.path().join("assumed/hello.txt")).unwrap(),
        b"signed with assumed credentials"
    );
    for text in [&out, &err] {
        assert_no_secret("the CLI's output", text);
        assert!(!text.contains(SESSION_TOKEN));
    }

    // The web identity token verifies against the published issuer keys.
    let log = std::fs::read_to_string(&log_path).unwrap();
    let form: Value = serde_json::from_str(log.lines().nth(1).unwrap()).unwrap();
    assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(
        form["RoleArn"],
        "arn:aws:iam::123456789012:role/excalibur-s3"
    );
    assert_eq!(form["RoleSessionName"], "excalibur-ci");
    let discovery = api.get("/.well-known/openid-configuration").await.unwrap();
    assert_eq!(discovery["issuer"], "https://excalibur.test");
    assert_eq!(
        discovery["jwks_uri"],
        "https://excalibur.test/.well-known/jwks.json"
    );
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(api.get("/.well-known/jwks.json").await.unwrap()).unwrap();
    let jwt = form["WebIdentityToken"].as_str().unwrap();
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["sts.amazonaws.com"]);
    validation.set_issuer(&["https://excalibur.test"]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], format!("sigv4:{mapping}"));
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 300);

    // Twenty-second credentials are assumed again ten seconds before they expire.
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let (code, out, err) = cli(vec!["s3".into(), "ls".into(), "s3://assumed".into()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hello.txt"), "{out}");
    assert_eq!(calls(), 3, "renewed before expiry");
    let assumed = crate::data_plane::wait_events(&gw, "sigv4_credentials_assumed", 3).await;
    let results: Vec<&str> = assumed
        .iter()
        .map(|e| e["details"]["result"].as_str().unwrap())
        .collect();
    assert!(
        results.contains(&"refused") && results.iter().filter(|r| **r == "assumed").count() == 2,
        "{results:?}"
    );
    for e in &assumed {
        let text = e.to_string();
        assert!(
            !text.contains(REAL_SECRET)
                && !text.contains(SESSION_TOKEN)
                && !text.contains(REAL_AKID),
            "{text}"
        );
    }
    let _ = sts.kill().await;
}
