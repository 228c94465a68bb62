//! Issue: data plane. Real clients (curl, Python requests, reqwest) through the running
//! binary to a real HTTPS upstream on 127.0.0.1 that asserts what it received.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use excalibur_test_support::upstream::Echo;
use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::server_bin;

const GITHUB_REAL: &str = "ghp_REALVALUE_a1b2c3d4e5f6";
const STRIPE_REAL: &str = "sk_live_REALVALUE_0099887766";

pub(crate) struct Setup {
    pub(crate) gw: Gateway,
    pub(crate) echo: Echo,
    pub(crate) ca: PathBuf,
}

/// A gateway whose upstream names resolve to the echo server, with github and stripe
/// providers, their placeholders, and a rule for each.
pub(crate) async fn setup() -> Setup {
    setup_with(Vec::new()).await
}

/// [`setup`] with extra environment for the gateway.
pub(crate) async fn setup_with(env: Vec<(String, String)>) -> Setup {
    let echo = Echo::start(&["api.github.com", "api.stripe.com", "other.example"])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &echo.ca_pem).unwrap();
    let t = echo.tls_addr;
    let p = echo.plain_addr;
    let config = format!(
        "[upstream]\nca_file = {upstream_ca:?}\nresolve = [\"api.github.com:443={t}\", \"api.stripe.com:443={t}\", \"other.example:443={t}\", \"plain.example:80={p}\"]\n"
    );
    let dir = Arc::new(dir);
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config,
            env,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com", "plain.example"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/providers",
        json!({"id": "stripe", "hosts": ["api.stripe.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": GITHUB_REAL, "provider_id": "github"}),
    )
    .await
    .unwrap();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_STRIPE_SECRET_KEY", "real_value": STRIPE_REAL, "provider_id": "stripe"}),
    )
    .await
    .unwrap();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com", "plain.example"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_STRIPE_SECRET_KEY", "hosts": ["api.stripe.com"], "path_prefix": "/v1/", "substitute_body": true}),
    )
    .await
    .unwrap();
    let ca = gw.data_dir.join("ca.pem");
    Setup { gw, echo, ca }
}

pub(crate) async fn credential(
    gw: &Gateway,
    name: &str,
    source: &str,
    domains: &[&str],
) -> (String, String) {
    let v = gw
        .api()
        .post(
            "/api/service-credentials",
            json!({"name": name, "user": "ci", "source_network": source, "allowed_domains": domains}),
        )
        .await
        .unwrap();
    (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    )
}

/// Runs curl with the machine's CA variables cleared; returns (exit code, stdout, stderr).
pub(crate) async fn curl(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn proxy_url(gw: &Gateway) -> String {
    format!("http://{}", gw.proxy())
}

fn ca_arg(s: &Setup) -> String {
    s.ca.to_string_lossy().into_owned()
}

/// [`curl`] through the gateway's proxy, trusting its CA, with `auth` (a whole
/// `Proxy-Authorization` header line) on the CONNECT.
async fn curl_via(s: &Setup, auth: &str, args: &[&str]) -> (i32, String, String) {
    let proxy = proxy_url(&s.gw);
    let ca = ca_arg(s);
    let mut all = vec![
        "-x",
        proxy.as_str(),
        "--proxy-header",
        auth,
        "--cacert",
        &ca,
    ];
    all.extend_from_slice(args);
    curl(&all).await
}

async fn events(gw: &Gateway, ty: &str) -> Vec<Value> {
    gw.api()
        .get(&format!("/api/audit?type={ty}&limit=1000"))
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Waits (bounded) until the batching writer has stored at least `n` events of `ty`.
pub(crate) async fn wait_events(gw: &Gateway, ty: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let e = events(gw, ty).await;
        if e.len() >= n {
            return e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    events(gw, ty).await
}

#[tokio::test]
async fn seed_000_service_credential_flow_with_curl() {
    let s = setup().await;
    let gw = &s.gw;
    // Operator: mint the credential (seed 000 §1, plus the admin token our API requires).
    let (code, out, err) = curl(&[
        "-X", "POST", &format!("{}/api/service-credentials", gw.url()),
        "-H", "Content-Type: application/json",
        "-H", &format!("Authorization: Bearer {}", gw.admin_token),
        "-d", r#"{"name": "ci-runner", "user": "ci", "source_network": "127.0.0.0/8", "allowed_domains": ["api.github.com","registry.npmjs.org"]}"#,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with(created["prefix"].as_str().unwrap()));

    // Workload: present the credential.
    let (code, out, err) = curl(&[
        "-x",
        &proxy_url(gw),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "--cacert",
        &ca_arg(&s),
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "-D",
        "-",
        "https://api.github.com/user",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    // The upstream received the real value...
    let seen = s.echo.seen();
    let last = seen.last().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {GITHUB_REAL}").as_str())
    );
    assert_eq!(last.path, "/user");
    assert!(
        last.header("proxy-authorization").is_none(),
        "proxy credentials are never forwarded"
    );
    // ...and echoed it back in a header and the body, which were scrubbed.
    assert!(
        !out.contains(GITHUB_REAL),
        "echo leaked the real value: {out}"
    );
    assert!(
        out.to_lowercase()
            .contains("x-echo-authorization: bearer xcalibur_github_token"),
        "{out}"
    );
    assert!(
        out.contains("\"authorization\":\"Bearer XCALIBUR_GITHUB_TOKEN\""),
        "{out}"
    );

    // Verify: listed with a prefix, and the flow carries the principal.
    let creds = gw.api().get("/api/service-credentials").await.unwrap();
    assert_eq!(creds[0]["name"], "ci-runner");
    assert!(!creds.to_string().contains(token));
    wait_events(gw, "flow_recorded", 1).await;
    let flows = gw
        .api()
        .get("/api/flows?principal=service:ci-runner")
        .await
        .unwrap();
    let flow = &flows[0];
    assert_eq!(flow["host"], "api.github.com");
    assert_eq!(flow["status"], 200);
    assert_eq!(flow["placeholders"], json!(["XCALIBUR_GITHUB_TOKEN"]));
    assert!(flow["bytes_down"].as_u64().unwrap() > 0);
    for ty in [
        "service_credential_created",
        "proxy_auth_ok",
        "flow_recorded",
    ] {
        assert!(!wait_events(gw, ty, 1).await.is_empty(), "no {ty}");
    }
    assert_eq!(gw.api().get("/api/audit/verify").await.unwrap()["ok"], true);

    // Prometheus metrics: counted by decision and principal kind, never by id or secret.
    assert_eq!(
        gw.api_as(None)
            .send("GET", "/metrics", None)
            .await
            .unwrap()
            .0,
        401
    );
    let metrics = gw.api().get("/metrics").await.unwrap();
    let text = metrics.as_str().unwrap();
    assert!(text.contains(r#"excalibur_proxy_requests_total{decision="allow",principal_kind="service_credential"} 1"#), "{text}");
    assert!(
        text.contains("excalibur_proxy_substitutions_total 1"),
        "{text}"
    );
    assert!(
        text.contains("excalibur_proxy_upstream_latency_seconds_count 1"),
        "{text}"
    );
    assert!(text.contains("excalibur_snapshot_version"));
    assert!(!text.contains(GITHUB_REAL) && !text.contains("ci-runner"));

    // HEAD: the response is scrubbed like any other, and keeps its Content-Length.
    let (code, out, err) = curl(&[
        "-x",
        &proxy_url(gw),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "--cacert",
        &ca_arg(&s),
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "-I",
        "https://api.github.com/user",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.to_ascii_lowercase().contains("content-length:"),
        "{out}"
    );
    assert!(!out.contains(GITHUB_REAL));
}

#[tokio::test]
async fn missing_credential_gets_407_and_cidr_mismatch_revokes() {
    let s = setup().await;
    let gw = &s.gw;
    let (code, out, _) = curl(&[
        "-x",
        &proxy_url(gw),
        "--cacert",
        &ca_arg(&s),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com/",
    ])
    .await;
    assert_ne!(code, 0);
    assert_eq!(out, "407");

    let (id, token) = credential(gw, "far-away", "10.0.0.0/8", &["api.github.com"]).await;
    // X-Forwarded-For is never believed.
    let (_, out, _) = curl(&[
        "-x",
        &proxy_url(gw),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "--proxy-header",
        "X-Forwarded-For: 10.1.2.3",
        "--cacert",
        &ca_arg(&s),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com/",
    ])
    .await;
    assert_eq!(out, "407");
    let denied = wait_events(gw, "proxy_auth_denied", 2).await;
    let mismatch = denied
        .iter()
        .find(|e| e["details"]["reason"] == "source_network_mismatch")
        .expect("mismatch event");
    assert_eq!(mismatch["details"]["credential_id"], id);
    assert_eq!(mismatch["principal"], "service:far-away");
    let creds = gw.api().get("/api/service-credentials").await.unwrap();
    let cred = creds
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(cred["revoked_reason"], "source_network_mismatch");
    assert!(!events(gw, "service_credential_revoked").await.is_empty());
    assert!(s.echo.seen().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn placeholder_toward_a_disallowed_host_is_refused_and_never_substituted() {
    let s = setup().await;
    let gw = &s.gw;
    let (_, token) = credential(
        gw,
        "ci",
        "127.0.0.0/8",
        &["api.github.com", "api.stripe.com", "other.example"],
    )
    .await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    let basic = format!(
        "Authorization: Basic {}",
        base64_encode("x-access-token:XCALIBUR_GITHUB_TOKEN")
    );
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        // The GitHub secret toward Stripe: bound to another provider's hosts.
        (
            vec![
                "-H",
                "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
                "https://api.stripe.com/v1/charges",
            ],
            "403",
            "placeholder_denied",
        ),
        // Toward a host no provider binds, in the query string.
        (
            vec!["https://other.example/?token=XCALIBUR_GITHUB_TOKEN"],
            "403",
            "placeholder_denied",
        ),
        // Percent-encoded and base64-encoded forms are caught too.
        (
            vec!["https://other.example/?token=%58CALIBUR_GITHUB_TOKEN"],
            "403",
            "placeholder_denied",
        ),
        (
            vec!["-H", basic.as_str(), "https://other.example/"],
            "403",
            "placeholder_denied",
        ),
        // Stripe's rule covers /v1/ only.
        (
            vec![
                "-H",
                "Authorization: Bearer XCALIBUR_STRIPE_SECRET_KEY",
                "https://api.stripe.com/v2/x",
            ],
            "403",
            "placeholder_denied",
        ),
        // Egress outside allowed_domains, and raw-IP CONNECT.
        (
            vec!["https://api.example.org/"],
            "403",
            "egress_not_allowed",
        ),
        (vec!["https://127.0.0.1/"], "403", "egress_not_allowed"),
    ];
    for (args, status, reason) in cases {
        let mut full = vec![
            "-x",
            proxy_url(gw).leak(),
            "--proxy-header",
            auth.as_str(),
            "--cacert",
            ca_arg(&s).leak(),
        ];
        // The status of the inner request, or of the CONNECT when the tunnel is refused.
        full.extend([
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}/%{http_connect}",
        ]);
        full.extend(args.iter().copied());
        let (_, out, _) = curl(&full).await;
        let (inner_status, connect_status) = out
            .rsplit_once('\n')
            .map(|(_, l)| l)
            .unwrap_or(&out)
            .split_once('/')
            .unwrap();
        assert!(
            inner_status == status || connect_status == status,
            "{args:?}: {out}"
        );
        assert!(
            out.to_lowercase()
                .contains(&format!("x-excalibur-reason: {reason}")),
            "{args:?}: {out}"
        );
    }
    for seen in s.echo.seen() {
        assert!(
            !seen.text().contains(GITHUB_REAL) && !seen.text().contains(STRIPE_REAL),
            "leaked: {}",
            seen.text()
        );
    }
    let denied = wait_events(gw, "placeholder_denied", 5).await;
    assert_eq!(denied.len(), 5);
    assert!(
        denied
            .iter()
            .all(|e| e["details"]["reason"].is_string() && e["principal"] == "service:ci")
    );
    assert!(wait_events(gw, "egress_denied", 2).await.len() >= 2);

    // The allowed path works for the same credential, body substitution included.
    let (_, out, _) = curl_via(
        &s,
        &auth,
        &[
            "-H",
            "Authorization: Bearer XCALIBUR_STRIPE_SECRET_KEY",
            "-d",
            "key=XCALIBUR_STRIPE_SECRET_KEY&amount=5",
            "https://api.stripe.com/v1/charges",
        ],
    )
    .await;
    let last = s.echo.seen().last().cloned().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {STRIPE_REAL}").as_str())
    );
    assert_eq!(
        String::from_utf8_lossy(&last.body),
        format!("key={STRIPE_REAL}&amount=5")
    );
    assert!(
        !out.contains(STRIPE_REAL) && out.contains("key=XCALIBUR_STRIPE_SECRET_KEY"),
        "{out}"
    );
}

#[tokio::test]
async fn domain_fronting_and_host_mismatch_are_refused() {
    let s = setup().await;
    let gw = &s.gw;
    let (_, token) = credential(gw, "ci", "127.0.0.0/8", &["api.github.com"]).await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    // CONNECT api.github.com, but TLS SNI and Host say api.stripe.com.
    let (code, _, _) = curl_via(
        &s,
        &auth,
        &[
            "--connect-to",
            "api.stripe.com:443:api.github.com:443",
            "-H",
            "Authorization: Bearer XCALIBUR_STRIPE_SECRET_KEY",
            "https://api.stripe.com/v1/charges",
        ],
    )
    .await;
    assert_ne!(code, 0, "the handshake must fail");
    let denied = wait_events(gw, "egress_denied", 1).await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"]["reason"] == "sni_mismatch"),
        "{denied:?}"
    );
    // SNI right, Host header wrong.
    let (_, out, _) = curl_via(
        &s,
        &auth,
        &[
            "-H",
            "Host: api.stripe.com",
            "-H",
            "Authorization: Bearer XCALIBUR_STRIPE_SECRET_KEY",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "https://api.github.com/v1/charges",
        ],
    )
    .await;
    assert_eq!(out, "421");
    assert!(s.echo.seen().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn http2_http1_python_requests_https_proxy_and_plain_http() {
    let s = setup().await;
    let gw = &s.gw;
    let (_, token) = credential(
        gw,
        "ci",
        "127.0.0.0/8",
        &["api.github.com", "plain.example"],
    )
    .await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    for (flag, want) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (code, out, err) = curl_via(
            &s,
            &auth,
            &[
                flag,
                "-H",
                "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
                "https://api.github.com/h",
            ],
        )
        .await;
        assert_eq!(out, format!("200 {want}"), "{err}");
        assert_eq!(code, 0);
    }
    let via_h2 = s.echo.seen();
    assert!(
        via_h2
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {GITHUB_REAL}").as_str()))
    );
    // The upstream leg follows the workload's protocol: h2 for the HTTP/2 request,
    // HTTP/1.1 for the other (the h2 pool's multiplexing costs a hand-off per frame).
    let versions: Vec<&str> = via_h2.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(versions, ["HTTP/2.0", "HTTP/1.1"], "upstream versions");

    // HTTPS_PROXY=https://...:8443: TLS to the proxy, CONNECT inside it.
    let (code, out, err) = curl(&[
        "--proxy",
        &format!("https://localhost:{}", gw.api_addr.port()),
        "--proxy-cacert",
        &ca_arg(&s),
        "--proxy-header",
        &auth,
        "--cacert",
        &ca_arg(&s),
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "https://api.github.com/over-tls-proxy",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/over-tls-proxy") && !out.contains(GITHUB_REAL));

    // Absolute-form plain HTTP: a secret never crosses a cleartext leg by default.
    let plain = [
        "-x",
        &proxy_url(gw),
        "--proxy-header",
        &auth,
        "-i",
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "http://plain.example/p?x=1",
    ];
    let before = s.echo.seen().len();
    let (code, out, err) = curl(&plain).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(
        out.contains("x-excalibur-reason: plaintext_upstream"),
        "{out}"
    );
    assert_eq!(s.echo.seen().len(), before, "the upstream was contacted");
    let denied = wait_events(gw, "placeholder_denied", 1).await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"]["reason"] == "plaintext_upstream"
                && e["details"]["host"] == "plain.example"),
        "{denied:?}"
    );
    // Unless the provider opts in, loudly.
    gw.api()
        .post(
            "/api/providers",
            json!({"id": "github", "hosts": ["api.github.com", "plain.example"], "dangerous_allow_plaintext": true}),
        )
        .await
        .unwrap();
    let (code, out, err) = curl(&plain).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let last = s.echo.seen().last().cloned().unwrap();
    assert!(!last.tls);
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {GITHUB_REAL}").as_str())
    );
    assert!(last.header("via").unwrap().contains("excalibur"));
    assert!(!out.contains(GITHUB_REAL));

    // Python requests with the credential in the proxy URL (Basic), as most clients send it.
    let script = r#"
import json, os, sys, requests
proxy = "http://ci:%s@%s" % (os.environ["TOKEN"], os.environ["PROXY"])
r = requests.get("https://api.github.com/py", headers={"Authorization": "Bearer XCALIBUR_GITHUB_TOKEN"},
                 proxies={"https": proxy}, verify=os.environ["CA"], timeout=10)
print(json.dumps({"status": r.status_code, "body": r.text, "echo": r.headers.get("x-echo-authorization")}))
"#;
    let out = tokio::process::Command::new("python3")
        .args(["-c", script])
        .env("TOKEN", &token)
        .env("PROXY", gw.proxy().to_string())
        .env("CA", &s.ca)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["echo"], "Bearer XCALIBUR_GITHUB_TOKEN");
    assert!(!v.to_string().contains(GITHUB_REAL));
    let last = s.echo.seen().last().cloned().unwrap();
    assert_eq!(last.path, "/py");
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {GITHUB_REAL}").as_str())
    );
}

#[tokio::test]
async fn rotation_under_load_has_no_failures_and_switches_values() {
    let s = setup().await;
    let gw = &s.gw;
    let (_, token) = credential(gw, "ci", "127.0.0.0/8", &["api.stripe.com"]).await;
    let pem = std::fs::read(&s.ca).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let rotated = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let proxy = reqwest::Proxy::https(format!("http://{}", gw.proxy()))
            .unwrap()
            .custom_http_auth(format!("Bearer {token}").parse().unwrap());
        let client = reqwest::Client::builder()
            .proxy(proxy)
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap();
        let (stop, rotated, ok) = (Arc::clone(&stop), Arc::clone(&rotated), Arc::clone(&ok));
        workers.push(tokio::spawn(async move {
            let mut after = Vec::new();
            for i in 0..3000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let started_after = rotated.load(Ordering::SeqCst);
                let id = format!("{w}-{i}");
                let resp = client
                    .post("https://api.stripe.com/v1/charges")
                    .header("authorization", "Bearer XCALIBUR_STRIPE_SECRET_KEY")
                    .header("x-req", &id)
                    .body("amount=1")
                    .send()
                    .await
                    .expect("request through the proxy");
                assert_eq!(resp.status(), 200, "request {id} failed during rotation");
                // The upstream echoes what it got: neither the old value nor the new one
                // (scrubbed by the snapshot's automaton for recent rotations) comes back.
                let header = format!("{:?}", resp.headers().get("x-echo-authorization"));
                let echoed = format!("{header}{}", resp.text().await.expect("response body"));
                assert!(
                    !echoed.contains(STRIPE_REAL)
                        && !echoed.contains("sk_live_NEW_VALUE_FROM_VAULT"),
                    "request {id}: a real value was echoed back: {echoed}"
                );
                assert!(echoed.contains("XCALIBUR_STRIPE_SECRET_KEY"), "{echoed}");
                ok.fetch_add(1, Ordering::SeqCst);
                if started_after {
                    after.push(id);
                }
            }
            after
        }));
    }
    // Let load build, rotate, let it run on, stop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ok.load(Ordering::SeqCst) < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for `ok.load(Ordering::SeqCst) < 100`"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    gw.api()
        .post(
            "/api/placeholders",
            json!({"placeholder": "XCALIBUR_STRIPE_SECRET_KEY", "real_value": "sk_live_NEW_VALUE_FROM_VAULT", "provider_id": "stripe", "route_family": "stripe"}),
        )
        .await
        .unwrap();
    rotated.store(true, Ordering::SeqCst);
    let before = ok.load(Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ok.load(Ordering::SeqCst) < before + 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for `ok.load(Ordering::SeqCst) < before + 100`"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut after_ids = Vec::new();
    for w in workers {
        after_ids.extend(w.await.unwrap());
    }
    let seen = s.echo.seen();
    let old = seen
        .iter()
        .filter(|r| r.header("authorization") == Some(format!("Bearer {STRIPE_REAL}").as_str()))
        .count();
    let new = seen
        .iter()
        .filter(|r| r.header("authorization") == Some("Bearer sk_live_NEW_VALUE_FROM_VAULT"))
        .count();
    assert_eq!(
        old + new,
        ok.load(Ordering::SeqCst),
        "every request succeeded with one of the two values"
    );
    assert!(old >= 100 && new >= 100, "old {old}, new {new}");
    for id in &after_ids {
        let r = seen
            .iter()
            .find(|r| r.header("x-req") == Some(id.as_str()))
            .unwrap();
        assert_eq!(
            r.header("authorization"),
            Some("Bearer sk_live_NEW_VALUE_FROM_VAULT"),
            "request {id} started after the rotation"
        );
    }
    assert!(!wait_events(gw, "placeholder_rotated", 1).await.is_empty());
}

fn base64_encode(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn passthrough_private_destinations_and_duplicate_names() {
    let s = setup().await;
    let gw = &s.gw;
    // A passthrough provider: tunnelled without interception, so the workload sees the
    // upstream's own certificate and no substitution can happen.
    gw.api()
        .post(
            "/api/providers",
            json!({"id": "bank", "hosts": ["other.example"], "passthrough": true}),
        )
        .await
        .unwrap();
    let (_, token) = credential(gw, "ci", "127.0.0.0/8", &["other.example", "localhost"]).await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    let upstream_ca = s.gw.dir.path().join("upstream-ca.pem");
    let (code, out, err) = curl(&[
        "-x",
        &proxy_url(gw),
        "--proxy-header",
        &auth,
        "--cacert",
        upstream_ca.to_str().unwrap(),
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "https://other.example/tunnel",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/tunnel"));
    let last = s.echo.seen().last().cloned().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some("Bearer XCALIBUR_GITHUB_TOKEN"),
        "never substituted in a passthrough tunnel"
    );
    // The Excalibur CA is not what the passthrough host presents.
    let (code, _, _) = curl_via(&s, &auth, &["https://other.example/"]).await;
    assert_ne!(code, 0);

    // A name that resolves to loopback is refused after resolution.
    let (_, out, _) = curl_via(
        &s,
        &auth,
        &[
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            "https://localhost/",
        ],
    )
    .await;
    assert!(
        out.to_lowercase()
            .contains("x-excalibur-reason: destination_forbidden"),
        "{out}"
    );
    let denied = wait_events(gw, "egress_denied", 1).await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"]["reason"] == "destination_forbidden")
    );

    // One live credential per name (the name is the principal id).
    let (status, _, body) = gw
        .api()
        .send(
            "POST",
            "/api/service-credentials",
            Some(json!({"name": "ci", "user": "ci", "source_network": "127.0.0.1"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn a_revoked_credential_is_refused_and_attributed_to_itself() {
    let s = setup().await;
    let (id, token) = credential(&s.gw, "ci-old", "127.0.0.0/8", &["api.github.com"]).await;
    s.gw.api()
        .send("DELETE", &format!("/api/service-credentials/{id}"), None)
        .await
        .unwrap();
    let (_, out, err) = curl(&[
        "-x",
        &proxy_url(&s.gw),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "--cacert",
        &ca_arg(&s),
        "-v",
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com/",
    ])
    .await;
    assert_eq!(out, "407");
    assert!(
        err.to_ascii_lowercase()
            .contains("x-excalibur-reason: credential_revoked"),
        "{err}"
    );
    let denied = wait_events(&s.gw, "proxy_auth_denied", 1).await;
    assert_eq!(denied[0]["principal"], "service:ci-old", "{denied:?}");
    assert_eq!(denied[0]["details"]["reason"], "credential_revoked");
    assert_eq!(denied[0]["details"]["credential_id"], id.as_str());
    // A token nobody issued stays unknown, and unattributed.
    let (_, out, _) = curl(&[
        "-x",
        &proxy_url(&s.gw),
        "--proxy-header",
        "Proxy-Authorization: Bearer xcs_never_issued_anywhere_0123456789",
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com/",
    ])
    .await;
    assert_eq!(out, "407");
    let denied = wait_events(&s.gw, "proxy_auth_denied", 2).await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"]["reason"] == "unknown_credential"
                && e["principal"] == "unidentified"
                && e["details"]["credential_id"].is_null())
    );
}

/// Each write is in force for the very next request, through the path that patches the
/// snapshot with the one row written: a rule deleted and created again, a provider's
/// hosts changed, a new placeholder and its rule.
#[tokio::test]
async fn every_write_is_in_force_for_the_very_next_request() {
    let s = setup().await;
    let api = s.gw.api();
    let post = async |path: &str, body: Value| {
        api.post(path, body).await.unwrap();
    };
    let (_, token) = credential(&s.gw, "ci", "127.0.0.0/8", &["api.github.com"]).await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    let send = async |placeholder: &str| {
        let bearer = format!("Authorization: Bearer {placeholder}");
        let before = s.echo.seen().len();
        let (_, out, _) = curl_via(
            &s,
            &auth,
            &[
                "-H",
                &bearer,
                "-o",
                "/dev/null",
                "-D",
                "-",
                "https://api.github.com/user",
            ],
        )
        .await;
        // The inner response's status line (the first is the CONNECT's), and what the
        // upstream received, if this request reached it.
        let status = out
            .lines()
            .rfind(|l| l.starts_with("HTTP/"))
            .unwrap_or_default()
            .to_owned();
        let seen = s.echo.seen();
        let upstream = (seen.len() > before)
            .then(|| {
                seen.last()
                    .and_then(|r| r.header("authorization"))
                    .map(str::to_owned)
            })
            .flatten();
        (status, upstream, out.to_lowercase())
    };
    let substituted = |(status, upstream, _): &(String, Option<String>, String), value: &str| {
        status.contains(" 200") && upstream.as_deref() == Some(&format!("Bearer {value}"))
    };
    let refused = |r: (String, Option<String>, String)| {
        assert!(
            r.0.contains(" 403")
                && r.1.is_none()
                && r.2.contains("x-excalibur-reason: placeholder_denied"),
            "{r:?}"
        );
    };
    let r = send("XCALIBUR_GITHUB_TOKEN").await;
    assert!(substituted(&r, GITHUB_REAL), "{r:?}");

    let rules = api.get("/api/translation-rules").await.unwrap();
    let id = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["placeholder"] == "XCALIBUR_GITHUB_TOKEN")
        .and_then(|r| r["id"].as_str())
        .unwrap()
        .to_owned();
    api.send("DELETE", &format!("/api/translation-rules/{id}"), None)
        .await
        .unwrap();
    refused(send("XCALIBUR_GITHUB_TOKEN").await);
    post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"]}),
    )
    .await;
    assert!(substituted(
        &send("XCALIBUR_GITHUB_TOKEN").await,
        GITHUB_REAL
    ));

    // The provider no longer lists the host: its placeholder is not bound there.
    post(
        "/api/providers",
        json!({"id": "github", "hosts": ["plain.example"]}),
    )
    .await;
    refused(send("XCALIBUR_GITHUB_TOKEN").await);
    post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com", "plain.example"]}),
    )
    .await;
    assert!(substituted(
        &send("XCALIBUR_GITHUB_TOKEN").await,
        GITHUB_REAL
    ));

    // A new placeholder: found, refused without a rule, substituted once it has one.
    post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_GITHUB_NEW", "real_value": "ghp_NEWVALUE_0123456789", "provider_id": "github"}),
    )
    .await;
    refused(send("XCALIBUR_GITHUB_NEW").await);
    post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_GITHUB_NEW", "hosts": ["api.github.com"]}),
    )
    .await;
    assert!(substituted(
        &send("XCALIBUR_GITHUB_NEW").await,
        "ghp_NEWVALUE_0123456789"
    ));

    // Deleted (its rule stays): never substituted again; the name goes out as it is.
    api.send("DELETE", "/api/placeholders/XCALIBUR_GITHUB_NEW", None)
        .await
        .unwrap();
    let r = send("XCALIBUR_GITHUB_NEW").await;
    assert_eq!(r.1.as_deref(), Some("Bearer XCALIBUR_GITHUB_NEW"), "{r:?}");
    assert!(!r.2.contains("ghp_newvalue"), "{r:?}");
    // Created again with another value: that one, at once.
    post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_GITHUB_NEW", "real_value": "ghp_AGAIN_0123456789", "provider_id": "github"}),
    )
    .await;
    assert!(substituted(
        &send("XCALIBUR_GITHUB_NEW").await,
        "ghp_AGAIN_0123456789"
    ));
}

/// A service credential past its `expires_at` is refused at the decision, the first
/// request after the instant, as `credential_expired` and attributed to itself; still
/// as `credential_expired` once the expiry sweep has revoked it (the sweep wakes at the
/// instant, so either may come first). A credential created or revoked is in force for
/// the very next request.
#[tokio::test]
async fn a_credential_works_until_its_expiry_and_not_one_request_after() {
    let s = setup().await;
    let expires_ms = excalibur_core::time::Timestamp::now().millis() + 1500;
    let at = excalibur_core::time::Timestamp::from_millis(expires_ms).to_rfc3339();
    let v = s
        .gw
        .api()
        .post(
            "/api/service-credentials",
            json!({"name": "ci-job-1", "user": "ci", "source_network": "127.0.0.0/8", "allowed_domains": ["api.github.com"], "expires_at": at}),
        )
        .await
        .unwrap();
    let (id, token) = (v["id"].as_str().unwrap(), v["token"].as_str().unwrap());
    let auth = format!("Proxy-Authorization: Bearer {token}");
    let ask = async || {
        let (_, out, err) = curl_via(
            &s,
            &auth,
            &[
                "-v",
                "-o",
                "/dev/null",
                "-w",
                "%{http_connect} %{http_code}",
                "https://api.github.com/",
            ],
        )
        .await;
        let reason = err
            .to_ascii_lowercase()
            .lines()
            .find_map(|l| l.strip_prefix("< x-excalibur-reason: ").map(str::to_owned));
        (out, reason, excalibur_core::time::Timestamp::now().millis())
    };
    let (out, _, _) = ask().await;
    assert_eq!(out, "200 200", "the very next request after creation");
    let refused = loop {
        let (out, reason, at) = ask().await;
        if out != "200 200" {
            break (out, reason, at);
        }
        assert!(at < expires_ms + 5000, "still served long past its expiry");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    // At the CONNECT, or inside a tunnel opened just before the instant.
    assert!(
        ["407 000", "200 407"].contains(&refused.0.as_str()),
        "{refused:?}"
    );
    assert_eq!(
        refused.1.as_deref(),
        Some("credential_expired"),
        "{refused:?}"
    );
    let denied = wait_events(&s.gw, "proxy_auth_denied", 1).await;
    assert_eq!(denied[0]["principal"], "service:ci-job-1", "{denied:?}");
    assert_eq!(denied[0]["details"]["credential_id"], id);
    // After the sweep (its `credential_expired` event, the credential revoked as
    // `expired`), the answer is the same.
    let swept = wait_events(&s.gw, "credential_expired", 1).await;
    assert_eq!(swept[0]["details"]["id"], id, "{swept:?}");
    let listed = s.gw.api().get("/api/service-credentials").await.unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap();
    assert_eq!(row["revoked_reason"], "expired", "{row}");
    let (out, reason, _) = ask().await;
    assert_eq!(
        (out.as_str(), reason.as_deref()),
        ("407 000", Some("credential_expired"))
    );

    // Revoked: refused by the very next request.
    let (id, token) = credential(&s.gw, "ci-job-2", "127.0.0.0/8", &["api.github.com"]).await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    let args = [
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com/",
    ];
    assert_eq!(curl_via(&s, &auth, &args).await.1, "200");
    s.gw.api()
        .send("DELETE", &format!("/api/service-credentials/{id}"), None)
        .await
        .unwrap();
    assert_eq!(curl_via(&s, &auth, &args).await.1, "407");
}

/// The recorder batches flows off the request path, but a read of flows or audit
/// events waits for what was queued before it: the very next read after a response
/// shows that request's flow and its `flow_recorded` event, every time (no polling).
/// The flow is completed before the response's last bytes leave, not when the proxy
/// drops the body later: 25 rounds, since that race showed about once per CI run.
#[tokio::test]
async fn a_flow_is_listed_by_the_first_read_after_its_response() {
    let s = setup().await;
    let (_, token) = credential(&s.gw, "ci-read", "127.0.0.0/8", &["api.github.com"]).await;
    let api = s.gw.api();
    let mut seen = std::collections::HashSet::new();
    for i in 0..25 {
        let path = format!("/read-after-write/{i}");
        let (code, out, err) = curl(&[
            "-x",
            &proxy_url(&s.gw),
            "--proxy-header",
            &format!("Proxy-Authorization: Bearer {token}"),
            "--cacert",
            &ca_arg(&s),
            "-H",
            "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://api.github.com{path}"),
        ])
        .await;
        assert_eq!((code, out.as_str()), (0, "200"), "{err}");
        let flows = api.get("/api/flows?limit=1").await.unwrap();
        let flow = &flows[0];
        assert_eq!(flow["path"], path.as_str(), "{flows}");
        assert_eq!(flow["placeholders"], json!(["XCALIBUR_GITHUB_TOKEN"]));
        assert!(seen.insert(flow["id"].as_str().unwrap().to_owned()));
        let recorded = api
            .get("/api/audit?type=flow_recorded&limit=1")
            .await
            .unwrap();
        assert_eq!(recorded[0]["details"]["flow_id"], flow["id"], "{recorded}");
    }
}

/// Issue 22: flows and audit events page by cursor. 30 requests (one curl, keep-alive),
/// read 7 at a time with `before=<last seq>`: every flow once, newest first; `after`
/// with `order=asc` walks back; a time bound works too; a bad cursor is a 400 problem.
#[tokio::test]
async fn flows_and_audit_events_page_by_cursor() {
    let s = setup().await;
    let (_, token) = credential(&s.gw, "ci-page", "127.0.0.0/8", &["api.github.com"]).await;
    let (code, out, err) = curl(&[
        "-s",
        "-x",
        &proxy_url(&s.gw),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "--cacert",
        &ca_arg(&s),
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\n",
        "https://api.github.com/page/[1-30]",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| *l == "200").count(), 30, "{out}");
    let api = s.gw.api();

    let mut paths = Vec::new();
    let mut seqs = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let page = api
            .get(&format!("/api/flows?host=api.github.com&limit=7{cursor}"))
            .await
            .unwrap();
        let page = page.as_array().unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        for f in page {
            paths.push(f["path"].as_str().unwrap().to_owned());
            seqs.push(f["seq"].as_i64().unwrap());
        }
        cursor = format!("&before={}", seqs.last().unwrap());
    }
    let want: Vec<String> = (1..=30).rev().map(|i| format!("/page/{i}")).collect();
    assert_eq!(paths, want, "every flow once, newest first");
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");

    // Toward newer flows: the 7 just after the oldest, oldest first.
    let newer = api
        .get(&format!(
            "/api/flows?host=api.github.com&limit=7&order=asc&after={}",
            seqs[29]
        ))
        .await
        .unwrap();
    let newer: Vec<&str> = newer
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        newer,
        [
            "/page/2", "/page/3", "/page/4", "/page/5", "/page/6", "/page/7", "/page/8"
        ]
    );

    // A time bound: nothing before the first flow's time.
    let all = api
        .get("/api/flows?host=api.github.com&limit=1000")
        .await
        .unwrap();
    let first_ts = all.as_array().unwrap().last().unwrap()["ts"]
        .as_str()
        .unwrap()
        .to_owned();
    let before_first = api
        .get(&format!("/api/flows?host=api.github.com&before={first_ts}"))
        .await
        .unwrap();
    assert_eq!(before_first, json!([]));

    // Audit events page the same way.
    let mut events = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let page = api
            .get(&format!("/api/audit?type=flow_recorded&limit=8{cursor}"))
            .await
            .unwrap();
        let page = page.as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        cursor = format!("&before={}", last["seq"]);
        events.extend(page);
    }
    assert_eq!(events.len(), 30);
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["details"]["flow_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 30);

    for bad in ["before=yesterday", "after=-1", "order=sideways", "limit=0"] {
        let (status, ct, body) = api
            .send("GET", &format!("/api/flows?{bad}"), None)
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(ct.starts_with("application/problem+json"), "{bad}: {ct}");
    }
}

/// A body the rule would scan that is larger than `max_substitute_body_bytes` is refused
/// with 413 `body_too_large` (not a 502), whatever HTTP version either leg speaks, and
/// the upstream never sees a complete request.
#[tokio::test]
async fn a_body_over_the_substitution_cap_is_refused_with_413() {
    let s = setup().await;
    let gw = &s.gw;
    let (_, token) = credential(gw, "billing", "127.0.0.0/8", &["api.stripe.com"]).await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    // The default cap is 10 MiB; the placeholder sits past it.
    let mut body = vec![b'a'; 11 * 1024 * 1024];
    body.extend_from_slice(b"XCALIBUR_STRIPE_SECRET_KEY");
    std::fs::write(&big, &body).unwrap();
    let upload = format!("@{}", big.display());
    for flag in ["--http2", "--http1.1"] {
        let (_, out, err) = curl_via(
            &s,
            &auth,
            &[
                flag,
                "-H",
                "Authorization: Bearer XCALIBUR_STRIPE_SECRET_KEY",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &upload,
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "https://api.stripe.com/v1/charges",
            ],
        )
        .await;
        assert!(out.ends_with("413"), "{flag}: {out} {err}");
        assert!(
            out.to_ascii_lowercase()
                .contains("x-excalibur-reason: body_too_large"),
            "{flag}: {out}"
        );
    }
    assert!(
        s.echo
            .seen()
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains(STRIPE_REAL)),
        "nothing past the cap was substituted"
    );
}
