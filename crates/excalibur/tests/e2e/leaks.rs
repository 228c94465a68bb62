//! Issue 16: the real value never reaches the workload, however a hostile upstream
//! tries to hand it back (trailers, stacked and transfer codings, header names, encoded
//! echoes), and never leaves over a cleartext leg or after its expiry. Driven with curl
//! (HTTP/1.1 and HTTP/2) through the running binary.

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use excalibur_test_support::hostile::Hostile;
use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::data_plane::{credential, curl, proxy_url};
use crate::server_bin;

const REAL: &str = "ghp_HostileEchoTarget_9f8e7d6c5b4a";

struct Rig {
    gw: Gateway,
    ca: String,
    auth: String,
    proxy: String,
}

async fn rig(extra: &str) -> Rig {
    let hostile = Hostile::start(&["api.github.com", "uploads.github.com"])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &hostile.ca_pem).unwrap();
    let config = format!(
        "[upstream]\nca_file = {upstream_ca:?}\nresolve = [\"api.github.com:443={}\", \"uploads.github.com:443={}\"]\n{extra}",
        hostile.addr, hostile.h2_addr
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
        json!({"id": "github", "hosts": ["api.github.com", "uploads.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": REAL, "provider_id": "github"}),
    )
    .await
    .unwrap();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com", "uploads.github.com"]}),
    )
    .await
    .unwrap();
    let (_, token) = credential(
        &gw,
        "hostile",
        "127.0.0.1/32",
        &["api.github.com", "uploads.github.com"],
    )
    .await;
    let ca = gw.data_dir.join("ca.pem").to_string_lossy().into_owned();
    Rig {
        proxy: proxy_url(&gw),
        gw,
        ca,
        auth: format!("Proxy-Authorization: Bearer {token}"),
    }
}

/// Every form of the real value a test looks for in what the workload received.
fn forms() -> Vec<String> {
    let std = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut out = vec![
        REAL.to_owned(),
        REAL.to_ascii_lowercase(),
        REAL.bytes().map(|b| format!("%{b:02X}")).collect(),
        REAL.bytes().map(|b| format!("\\u{b:04x}")).collect(),
    ];
    // The middle of every base64 alignment, both alphabets.
    for prefix in ["", "u", "us", "user:"] {
        for engine in [&std, &url] {
            let enc = engine.encode(format!("{prefix}{REAL}"));
            let skip = (prefix.len() * 4).div_ceil(3) + 2;
            out.push(enc.chars().skip(skip).take(16).collect());
        }
    }
    out
}

/// Undoes HTTP/1.1 chunked framing (trailers follow the last chunk and are kept).
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            out.extend_from_slice(rest);
            return out;
        };
        let size_line = String::from_utf8_lossy(&rest[..end]);
        let Ok(size) = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
        else {
            out.extend_from_slice(rest);
            return out;
        };
        rest = &rest[end + 2..];
        if size == 0 {
            out.extend_from_slice(rest);
            return out;
        }
        out.extend_from_slice(&rest[..size.min(rest.len())]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
}

/// What the workload got for `path`: (status, headers incl. trailers, decoded body).
async fn fetch(r: &Rig, path: &str, http2: bool) -> (u16, String, Vec<u8>) {
    fetch_from(r, "api.github.com", path, http2).await
}

/// [`fetch`] from `host`.
async fn fetch_from(r: &Rig, host: &str, path: &str, http2: bool) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers_file = dir.path().join("headers");
    let body_file = dir.path().join("body");
    let url = format!("https://{host}{path}");
    let mut args = vec![
        "-x",
        &r.proxy,
        "--proxy-header",
        &r.auth,
        "--cacert",
        &r.ca,
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "-D",
        headers_file.to_str().unwrap(),
        "-o",
        body_file.to_str().unwrap(),
        "-w",
        "%{http_code}",
    ];
    if http2 {
        args.push("--http2");
    } else {
        // A client that accepts trailers: the hostile one sends them.
        args.extend(["--http1.1", "--raw", "-H", "TE: trailers"]);
    }
    args.push(&url);
    let (code, out, err) = curl(&args).await;
    // A body cut off mid-stream (the decode bound) ends the transfer early: curl says
    // so, and what arrived is still checked.
    assert!(code == 0 || path == "/bomb", "{path}: {err}");
    let headers = std::fs::read_to_string(&headers_file).unwrap_or_default();
    let mut body = Vec::new();
    std::fs::File::open(&body_file)
        .and_then(|mut f| f.read_to_end(&mut body))
        .unwrap_or_default();
    let chunked = headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if !http2 && chunked {
        body = dechunk(&body);
    }
    (out.trim().parse().unwrap_or(0), headers, body)
}

fn assert_clean(what: &str, headers: &str, body: &[u8]) {
    let text = format!("{headers}\n{}", String::from_utf8_lossy(body));
    for form in forms() {
        assert!(
            !text.contains(&form),
            "{what}: `{form}` reached the workload:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_hostile_upstream_cannot_hand_the_value_back() {
    let r = rig("").await;
    for path in [
        "/trailer",
        "/double-ce",
        "/ce-list",
        "/te-gzip",
        "/deflate",
        "/header-name",
        "/encoded",
        "/plain",
    ] {
        let (status, headers, body) = fetch(&r, path, false).await;
        assert_eq!(status, 200, "{path}: {headers}");
        assert_clean(path, &headers, &body);
        // Decoded for the workload: no coding left that could hide anything.
        let lower = headers.to_ascii_lowercase();
        assert!(!lower.contains("content-encoding"), "{path}: {headers}");
        assert!(!lower.contains("gzip"), "{path}: {headers}");
        let text = String::from_utf8_lossy(&body);
        match path {
            "/header-name" => assert!(text.contains("ok"), "{text}"),
            "/trailer" => {
                assert!(
                    text.contains("x-echo: XCALIBUR_GITHUB_TOKEN"),
                    "{path}: {text:?} {headers}"
                )
            }
            _ => assert!(text.contains("XCALIBUR_GITHUB_TOKEN"), "{path}: {text}"),
        }
    }
    // HTTP/2 trailers (upstream leg and workload leg) are scrubbed too.
    let (status, headers, body) = fetch_from(&r, "uploads.github.com", "/any", true).await;
    assert_eq!(status, 200, "{headers}");
    assert_clean("h2 trailers", &headers, &body);
    assert!(headers.contains("XCALIBUR_GITHUB_TOKEN"), "{headers}");
    // A coding nobody here can undo is refused, not passed through.
    let (status, headers, body) = fetch(&r, "/br", false).await;
    assert_eq!(status, 502, "{headers}");
    assert!(
        headers.contains("x-excalibur-reason: unscrubbable_response"),
        "{headers}"
    );
    assert_clean("/br", &headers, &body);
}

#[tokio::test]
async fn a_decompression_bomb_stops_at_the_bound() {
    let r = rig("[proxy]\nmax_decoded_response_bytes = 1048576\n").await;
    let (_, headers, body) = fetch(&r, "/bomb", false).await;
    assert!(body.len() <= 1 << 20, "{} bytes decoded", body.len());
    assert_clean("/bomb", &headers, &body);
}

#[tokio::test]
async fn an_expired_placeholder_is_never_redeemed() {
    let r = rig("").await;
    let api = r.gw.api();
    let at = excalibur_core::time::Timestamp::from_millis(
        excalibur_core::time::Timestamp::now().millis() + 1500,
    )
    .to_rfc3339();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": REAL, "provider_id": "github", "expires_at": at}),
    )
    .await
    .unwrap();
    let (status, _, _) = fetch(&r, "/plain", false).await;
    assert_eq!(status, 200);
    // Past expires_at: refused at the decision, whatever the sweeper has done.
    let mut refused = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, headers, body) = fetch(&r, "/plain", false).await;
        assert_clean("expired", &headers, &body);
        if status == 403 {
            refused = Some(headers);
            break;
        }
    }
    let headers = refused.expect("refused once expired");
    assert!(
        headers.contains("x-excalibur-reason: placeholder_expired"),
        "{headers}"
    );
    let listed = api.get("/api/placeholders").await.unwrap();
    assert_eq!(listed[0]["expired"], json!(true), "{listed}");
    let events: Value = api
        .get("/api/audit?type=placeholder_denied&limit=50")
        .await
        .unwrap();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"]["reason"] == "placeholder_expired"),
        "{events}"
    );
    let (code, out, _) = crate::ctl(&r.gw, &["placeholder", "list"], None).await;
    assert_eq!(code, 0);
    assert!(out.contains("EXPIRED") && out.contains("true"), "{out}");
}

#[tokio::test]
async fn refusals_of_bodied_requests_always_arrive() {
    let r = rig("").await;
    r.gw.api()
        .post(
            "/api/placeholders",
            json!({"placeholder": "XCALIBUR_NORULE_TOKEN", "real_value": "never-sent-0123456789", "provider_id": "github"}),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (size, name) in [(12 * 1024, "small"), (1024 * 1024, "large")] {
        let file = dir.path().join(name);
        std::fs::write(&file, vec![b'x'; size]).unwrap();
        let data = format!("@{}", file.display());
        for (http2, expect) in [(true, true), (true, false), (false, true), (false, false)] {
            let mut got = Vec::new();
            for _ in 0..20 {
                let mut args = vec![
                    "-x",
                    &r.proxy,
                    "--proxy-header",
                    &r.auth,
                    "--cacert",
                    &r.ca,
                    // A placeholder no rule lets this principal redeem: refused.
                    "-H",
                    "Authorization: Bearer XCALIBUR_NORULE_TOKEN",
                    "-H",
                    if std::env::var("NOEXPECT").is_ok() {
                        "X-No: 1"
                    } else {
                        "Expect: 100-continue"
                    },
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--data-binary",
                    &data,
                ];
                args.push(if http2 { "--http2" } else { "--http1.1" });
                args.push("https://api.github.com/upload");
                let (_, out, err) = curl(&args).await;
                // The answer's status is what the workload must get; curl may still grumble
                // about how the stream of its unfinished upload was closed afterwards.
                got.push((out, err));
            }
            let ok = got.iter().filter(|(out, _)| out.trim() == "403").count();
            assert_eq!(ok, 20, "{name} http2={http2} expect={expect}: {got:?}");
        }
    }
}

#[tokio::test]
async fn an_early_upstream_answer_to_a_streaming_upload_reaches_the_workload() {
    let r = rig("").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload");
    std::fs::write(&file, vec![b'u'; 5 * 1024 * 1024]).unwrap();
    for (host, version) in [
        ("api.github.com", "--http1.1"),
        ("api.github.com", "--http2"),
        ("uploads.github.com", "--http2"),
        ("uploads.github.com", "--http1.1"),
    ] {
        let mut got = Vec::new();
        for _ in 0..5 {
            let url = format!("https://{host}/early");
            let (_, out, err) = curl(&[
                "-x",
                &r.proxy,
                "--proxy-header",
                &r.auth,
                "--cacert",
                &r.ca,
                "-H",
                "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
                version,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-T",
                file.to_str().unwrap(),
                &url,
            ])
            .await;
            // The answer's status is what the workload must get; curl may still grumble
            // about how the stream of its unfinished upload was closed afterwards.
            got.push((out, err));
        }
        let ok = got.iter().filter(|(out, _)| out.trim() == "401").count();
        assert_eq!(ok, 5, "{host} {version}: {got:?}");
    }
}
