//! Issue: web UI. Headless Chromium (Playwright) logs in, creates a service credential,
//! watches a rotation arrive live, and an operator sees no write controls. Plus the
//! security properties checked over plain HTTP: CSP, cookies, CSRF.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::gateway;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

#[tokio::test]
async fn chromium_drives_the_ui() {
    // A gateway with an upstream, and 1,000 flows through it to page through.
    let s = crate::data_plane::setup().await;
    let gw = &s.gw;
    let api = gw.api();
    let (_, token) =
        crate::data_plane::credential(gw, "load", "127.0.0.0/8", &["api.github.com"]).await;
    let (code, out, err) = crate::data_plane::curl(&[
        "--max-time",
        "120",
        "-x",
        &crate::data_plane::proxy_url(gw),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "--cacert",
        s.ca.to_str().unwrap(),
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\n",
        "https://api.github.com/ui-flow/[1-1000]",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| *l == "200").count(), 1000);
    // Long unbroken values must wrap, not widen the page (checked at 1400 px).
    let long = "x".repeat(300);
    api.post(
        "/api/translation-rules",
        json!({"principal": "*", "placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"], "path_prefix": format!("/{long}")}),
    )
    .await
    .unwrap();
    api.post(
        "/api/policies",
        json!({"id": "long-description", "description": long, "policy": "forbid (principal, action == Action::\"redeem\", resource) when { resource.name == \"XCALIBUR_NEVER\" };"}),
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
        json!({"placeholder": "XCALIBUR_STRIPE_SECRET_KEY", "real_value": "sk_live_BEFORE", "provider_id": "stripe"}),
    )
    .await
    .unwrap();
    let op = api
        .post("/api/tokens", json!({"name": "viewer", "role": "operator"}))
        .await
        .unwrap();
    let out = workspace().join("target/ui-screenshots");
    let ui_dir = workspace().join("tests/ui");
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "chromium not found: run ./test.sh (it installs Debian's chromium)"
    );
    assert!(
        ui_dir.join("node_modules/playwright-core").exists(),
        "playwright-core missing: run ./test.sh (it runs `npm ci` in tests/ui)"
    );
    let run = tokio::process::Command::new("node")
        .arg("ui.test.mjs")
        .current_dir(&ui_dir)
        .env("BASE", format!("http://localhost:{}", gw.api_addr.port()))
        .env("ADMIN_TOKEN", &gw.admin_token)
        .env("OPERATOR_TOKEN", op["token"].as_str().unwrap())
        .env("OUT", &out)
        .output()
        .await
        .expect("node not found: run ./test.sh (it installs nodejs and runs `npm ci` in tests/ui)");
    assert!(
        run.status.success(),
        "ui test failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let results: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(results["pages"], 11);
    assert_eq!(results["lifecycle"], "live");
    assert_eq!(results["vaultRow"], "live");
    assert_eq!(results["expiredBadge"], "live");
    assert_eq!(results["flowsPaged"], 1000);
    assert_eq!(results["operator"], "read-only");
    let shots = std::fs::read_dir(&out).unwrap().count();
    assert!(shots >= 14, "{shots} screenshots");
    // The credential created in the browser is real.
    let creds = api.get("/api/service-credentials").await.unwrap();
    let names: Vec<&str> = creds
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["load", "ci-runner"]);
}

#[tokio::test]
async fn ui_security_headers_cookies_and_csrf() {
    let gw = gateway().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = gw.url();
    let resp = client.get(format!("{base}/ui")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/login");
    let login = client.get(format!("{base}/login")).send().await.unwrap();
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline")
    );
    assert_eq!(login.headers()["x-frame-options"], "DENY");

    let bad = client
        .post(format!("{base}/login"))
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let ok = client
        .post(format!("{base}/login"))
        .form(&[("token", gw.admin_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains(&gw.admin_token),
        "the cookie is a session id, not the token"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    // A form post without the CSRF token is refused and writes nothing.
    let forged = client
        .post(format!("{base}/ui/services/create"))
        .header("cookie", &session)
        .form(&[
            ("csrf", "guess"),
            ("name", "evil"),
            ("user", "x"),
            ("source_network", "0.0.0.0/0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(
        gw.api()
            .get("/api/service-credentials")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );

    // With the page's token it works.
    let page = client
        .get(format!("{base}/ui/services"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let created = client
        .post(format!("{base}/ui/services/create"))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "web"),
            ("user", "ops"),
            ("source_network", "10.0.0.0/8"),
            ("allowed_domains", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    assert!(created.text().await.unwrap().contains("shown-once"));
    // Escaping: a hostile name renders as text.
    gw.api()
        .post("/api/providers", json!({"id": "p", "hosts": ["x.example"]}))
        .await
        .unwrap();
    let evil = client
        .post(format!("{base}/ui/policies/create"))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("id", "x"),
            ("description", "<script>alert(1)</script>"),
            ("policy", "permit (principal, action, resource);"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        evil.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            && !evil.contains("<script>alert(1)")
    );
    // Logging out ends the session.
    client
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let after = client
        .get(format!("{base}/ui"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
}

/// Logs in to the UI with the admin token; returns the session cookie.
pub(crate) async fn ui_cookie(gw: &excalibur_test_support::Gateway) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ok = client
        .post(format!("{}/login", gw.url()))
        .form(&[("token", gw.admin_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_fleet_page_revokes_by_principal_and_jti_and_an_introspection_token_cannot_log_in() {
    let gw = gateway().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = gw.url();
    // A token for downstream introspection is refused at the login page.
    let intro = gw
        .api()
        .post(
            "/api/tokens",
            json!({"name": "mcp", "role": "introspection"}),
        )
        .await
        .unwrap();
    let refused = client
        .post(format!("{base}/login"))
        .form(&[("token", intro["token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let ok = client
        .post(format!("{base}/login"))
        .form(&[("token", gw.admin_token.as_str())])
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
        .get(format!("{base}/ui/fleet"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("action=\"/ui/revocations\""), "{page}");
    // Every page names the favicon, served without a session.
    assert!(page.contains("rel=\"icon\" type=\"image/svg+xml\" href=\"/favicon.svg\""));
    let icon = client
        .get(format!("{base}/favicon.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().starts_with("<svg"));
    for header in ["Tags", "Actor"] {
        assert!(page.contains(&format!("<th>{header}</th>")), "{header}");
    }
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    for (kind, value) in [
        ("principal", "k8s:prod/payments/api"),
        ("jti", "jti-from-ui"),
    ] {
        let resp = client
            .post(format!("{base}/ui/revocations"))
            .header("cookie", &session)
            .form(&[("csrf", csrf.as_str()), ("kind", kind), ("value", value)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{kind}");
    }
    // Without the CSRF token nothing is written.
    let forged = client
        .post(format!("{base}/ui/revocations"))
        .header("cookie", &session)
        .form(&[
            ("csrf", "guess"),
            ("kind", "principal"),
            ("value", "k8s:other/x/y"),
        ])
        .send()
        .await
        .unwrap();
    assert_ne!(forged.status(), 303);
    let standing = gw.api().get("/api/revocations").await.unwrap();
    let principals: Vec<&str> = standing
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["principal"].as_str())
        .collect();
    assert_eq!(principals, ["k8s:prod/payments/api"]);
    let revoked = gw
        .api()
        .get("/api/audit?type=principal_revoked")
        .await
        .unwrap();
    assert_eq!(revoked.as_array().unwrap().len(), 1);
}
