//! Issue: foundation. Roles, bad input, atomic upserts, audit tamper detection,
//! restart, no secret leaks, the CLI, TLS on 8443, the OpenAPI routes.

use std::sync::Arc;

use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::{ctl, ctl_as, gateway, server_bin};

async fn provider(gw: &Gateway) {
    gw.api()
        .post(
            "/api/providers",
            json!({"id": "stripe", "hosts": ["api.stripe.com"]}),
        )
        .await
        .unwrap();
}

async fn audit_count(gw: &Gateway) -> usize {
    gw.api()
        .get("/api/audit?limit=1000")
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn roles_are_enforced() {
    let gw = gateway().await;
    let anon = gw.api_as(None);
    let (s, ct, body) = anon.send("GET", "/api/placeholders", None).await.unwrap();
    assert_eq!(s, 401);
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["code"], "unauthenticated");

    let created = gw
        .api()
        .post("/api/tokens", json!({"name": "viewer", "role": "operator"}))
        .await
        .unwrap();
    let op_token = created["token"].as_str().unwrap().to_owned();
    assert!(op_token.starts_with(created["prefix"].as_str().unwrap()));
    let op = gw.api_as(Some(&op_token));
    assert_eq!(
        op.send("GET", "/api/placeholders", None).await.unwrap().0,
        200
    );
    let (s, _, body) = op
        .send(
            "POST",
            "/api/providers",
            Some(json!({"id": "x", "hosts": ["x.com"]})),
        )
        .await
        .unwrap();
    assert_eq!(s, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("admin"));

    // The token list never shows tokens, only prefixes.
    let list = gw.api().get("/api/tokens").await.unwrap().to_string();
    assert!(!list.contains(&op_token));

    let id = created["id"].as_str().unwrap();
    let (s, _, _) = gw
        .api()
        .send("DELETE", &format!("/api/tokens/{id}"), None)
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        op.send("GET", "/api/placeholders", None).await.unwrap().0,
        401
    );
    let events = gw.api().get("/api/audit?type=token_*").await.unwrap();
    let types: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        types.contains(&"token_revoked".to_owned()) && types.contains(&"token_created".to_owned())
    );
}

#[tokio::test]
async fn bad_input_gets_problem_details_and_writes_nothing() {
    let gw = gateway().await;
    provider(&gw).await;
    let before = audit_count(&gw).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/placeholders", gw.url());
    let auth = format!("Bearer {}", gw.admin_token);
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (Some("application/json"), b"{not json".to_vec(), 400, "invalid JSON"),
        (
            Some("application/json"),
            br#"{"placeholder":"XCALIBUR_STRIPE","real_value":"v","provider_id":"stripe","extra":1}"#.to_vec(),
            400,
            "unknown field `extra`",
        ),
        (Some("text/plain"), b"{}".to_vec(), 415, "application/json"),
        (Some("application/json"), vec![b' '; 70 * 1024], 413, "larger than"),
        (
            Some("application/json"),
            br#"{"placeholder":"XCALIBUR_STRIPE","real_value":"a\r\nX-Evil: 1","provider_id":"stripe"}"#.to_vec(),
            422,
            "control characters",
        ),
        (
            Some("application/json"),
            br#"{"placeholder":"XCALIBUR_STRIPE","real_value":"v","provider_id":"nope"}"#.to_vec(),
            422,
            "provider `nope` does not exist",
        ),
    ];
    for (ct, body, status, detail) in cases {
        let mut req = client.post(&url).header("authorization", &auth).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let v: Value = resp.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains(detail), "{v}");
        assert_eq!(v["status"], status);
    }
    assert!(
        gw.api()
            .get("/api/placeholders")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(audit_count(&gw).await, before);
}

#[tokio::test]
async fn concurrent_upserts_are_atomic_and_all_audited() {
    let gw = gateway().await;
    provider(&gw).await;
    let api = gw.api();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            api.post(
                "/api/placeholders",
                json!({"placeholder": "XCALIBUR_STRIPE_SECRET_KEY", "real_value": format!("sk_live_{i:04}"), "provider_id": "stripe", "route_family": "stripe"}),
            )
            .await
        }));
    }
    let mut fingerprints = Vec::new();
    for t in tasks {
        fingerprints.push(
            t.await.unwrap().unwrap()["fingerprint"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let list = api.get("/api/placeholders").await.unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(fingerprints.contains(&rows[0]["fingerprint"].as_str().unwrap().to_owned()));
    let updated = api
        .get("/api/audit?type=placeholder_updated&limit=1000")
        .await
        .unwrap();
    assert_eq!(updated.as_array().unwrap().len(), 20);
    let rotated = api
        .get("/api/audit?type=placeholder_rotated&limit=1000")
        .await
        .unwrap();
    assert_eq!(rotated.as_array().unwrap().len(), 19);
    assert_eq!(api.get("/api/audit/verify").await.unwrap()["ok"], true);
}

#[tokio::test]
async fn audit_verify_catches_a_tampered_row() {
    let gw = gateway().await;
    provider(&gw).await;
    for i in 0..3 {
        gw.api()
            .post(
                "/api/placeholders",
                json!({"placeholder": "XCALIBUR_STRIPE_KEY", "real_value": format!("v{i}"), "provider_id": "stripe"}),
            )
            .await
            .unwrap();
    }
    let (code, out, _) = ctl(&gw, &["audit", "verify"], None).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"));

    let target = gw
        .api()
        .get("/api/audit?type=placeholder_rotated&limit=1")
        .await
        .unwrap()[0]["seq"]
        .as_i64()
        .unwrap();
    let db = rusqlite::Connection::open(gw.data_dir.join("excalibur.db")).unwrap();
    db.execute(
        "UPDATE audit_events SET principal = 'someone-else' WHERE seq = ?1",
        [target],
    )
    .unwrap();
    drop(db);

    let (code, out, _) = ctl(&gw, &["audit", "verify"], None).await;
    assert_eq!(code, 2);
    assert!(out.contains(&format!("BROKEN at seq {target}")), "{out}");
    let report = gw.api().get("/api/audit/verify").await.unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_broken_seq"], target);
}

#[tokio::test]
async fn restart_keeps_everything_and_secrets_never_leak() {
    const SECRET: &str = "sk_live_TOPSECRET_9f8e7d6c5b4a";
    let first = Gateway::start(
        server_bin(),
        Options {
            no_admin_token: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        first.admin_token.starts_with("xca_"),
        "bootstrap token written to admin-token"
    );
    assert!(
        first.output().contains(&first.admin_token),
        "bootstrap token printed once"
    );
    provider(&first).await;
    let resp = first
        .api()
        .post(
            "/api/placeholders",
            json!({"placeholder": "XCALIBUR_STRIPE_SECRET_KEY", "real_value": SECRET, "provider_id": "stripe"}),
        )
        .await
        .unwrap();
    let mut seen = resp.to_string();
    seen.push_str(
        &first
            .api()
            .get("/api/placeholders")
            .await
            .unwrap()
            .to_string(),
    );
    seen.push_str(
        &first
            .api()
            .get("/api/audit?limit=1000")
            .await
            .unwrap()
            .to_string(),
    );
    let (_, out, err) = ctl(&first, &["placeholder", "list"], None).await;
    seen.push_str(&out);
    seen.push_str(&err);
    assert!(out.contains("XCALIBUR_STRIPE_SECRET_KEY") && out.contains("sha256:"));
    let ca_before = first.api().get("/api/ca.pem").await.unwrap();
    let token = first.admin_token.clone();
    let dir = Arc::clone(&first.dir);
    let data_dir = first.data_dir.clone();
    let first_output = first.output();
    assert_eq!(
        first.stop().await.unwrap(),
        Some(0),
        "clean exit on SIGTERM"
    );

    // Data-dir permissions and sealing at rest.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&data_dir.join("master.key")), 0o600);
    assert_eq!(mode(&data_dir.join("admin-token")), 0o600);
    assert_eq!(mode(&data_dir.join("excalibur.db")), 0o600);
    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "secret stored in the clear"
        );
    }

    let second = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            no_admin_token: true,
            data_dir: Some(data_dir),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        !second.output().contains(&token),
        "bootstrap token printed only on first start"
    );
    let mut second = second;
    second.admin_token = token;
    let list = second.api().get("/api/placeholders").await.unwrap();
    assert_eq!(list[0]["placeholder"], "XCALIBUR_STRIPE_SECRET_KEY");
    assert_eq!(second.api().get("/api/ca.pem").await.unwrap(), ca_before);
    assert_eq!(
        second.api().get("/api/audit/verify").await.unwrap()["ok"],
        true
    );

    for text in [seen, first_output, second.output()] {
        assert!(!text.contains(SECRET), "secret leaked: {text}");
    }
}

#[tokio::test]
async fn cli_manages_placeholders_tokens_and_ca() {
    let gw = gateway().await;
    let (code, out, err) = ctl(
        &gw,
        &[
            "provider",
            "add",
            "--id",
            "github",
            "--host",
            "api.github.com",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("api.github.com"));
    let (code, _, err) = ctl(
        &gw,
        &[
            "placeholder",
            "add",
            "--name",
            "XCALIBUR_GITHUB_TOKEN",
            "--value-file",
            "-",
            "--provider",
            "github",
        ],
        Some("ghp_fromstdin\n"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = ctl(&gw, &["--json", "placeholder", "list"], None).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v[0]["fingerprint"],
        excalibur_core::secret::fingerprint(b"ghp_fromstdin")
    );

    let (code, out, _) = ctl(
        &gw,
        &[
            "--json", "token", "create", "--name", "ops", "--role", "operator",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0);
    let op: Value = serde_json::from_str(&out).unwrap();
    let op_token = op["token"].as_str().unwrap();
    let (code, out, _) = ctl(&gw, &["token", "list"], None).await;
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("ID"));
    assert!(out.contains("ops") && !out.contains(op_token));

    // An operator cannot write: one-line error, non-zero exit.
    let (code, _, err) = ctl_as(
        &gw,
        op_token,
        &[
            "placeholder",
            "add",
            "--name",
            "XCALIBUR_X_TOKEN",
            "--value",
            "v",
            "--provider",
            "github",
        ],
        None,
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1);
    assert!(err.contains("403"), "{err}");

    let (code, out, _) = ctl(&gw, &["audit", "list", "--type", "placeholder_*"], None).await;
    assert_eq!(code, 0);
    assert!(out.contains("placeholder_updated") && !out.contains("token_created"));

    let (code, pem, _) = ctl(&gw, &["ca", "export"], None).await;
    assert_eq!(code, 0);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

    let (code, _, _) = ctl(&gw, &["token", "revoke", op["id"].as_str().unwrap()], None).await;
    assert_eq!(code, 0);
    let (code, _, err) = ctl_as(&gw, op_token, &["placeholder", "list"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("401"));
}

#[tokio::test]
async fn tls_on_8443_with_the_exported_ca() {
    let gw = gateway().await;
    let pem = std::fs::read(gw.data_dir.join("ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/api/placeholders", gw.api_addr.port());
    let resp = client
        .get(&url)
        .bearer_auth(&gw.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // curl too, over HTTP/2.
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--http2", "--cacert"])
        .arg(gw.data_dir.join("ca.pem"))
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "-H",
        ])
        .arg(format!("Authorization: Bearer {}", gw.admin_token))
        .arg(&url)
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 2");
    // An untrusting client fails the handshake.
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let gw = gateway().await;
    let doc = gw.api().get("/api/openapi.json").await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    // `excalibur openapi` prints the same document, without a server.
    let printed = tokio::process::Command::new(crate::server_bin())
        .arg("openapi")
        .output()
        .await
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&printed.stdout).unwrap(),
        doc
    );
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "none").replace("{name}", "none");
            let body = (method == "post").then(|| json!({}));
            let (status, _, _) = gw
                .api_as(None)
                .send(&method.to_uppercase(), &concrete, body)
                .await
                .unwrap();
            assert!(
                status != 404 && status != 405,
                "{method} {path} -> {status}"
            );
        }
    }
    assert_eq!(
        gw.api_as(None)
            .send("GET", "/api/nope", None)
            .await
            .unwrap()
            .0,
        404
    );
}
