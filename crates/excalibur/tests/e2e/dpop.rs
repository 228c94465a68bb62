//! Issue: DPoP crypto mediation. curl, holding no key, goes through the running binary to
//! oidc-provider (DPoP-bound JWT access tokens, nonces required) and to a resource server
//! that verifies the proof, `ath` and `cnf.jkt` with oauth4webapi.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::data_plane::{curl, proxy_url, wait_events};
use crate::server_bin;

const AUTH: &str = "idp.example";
const API: &str = "pubsub.example";
const CLIENT_SECRET: &str = "dpop-client-secret-REAL-0123456789";

#[tokio::test]
async fn seed_001_dpop_bound_tokens_through_the_proxy() {
    let peer_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/dpop");
    assert!(
        peer_dir.join("node_modules/oidc-provider").exists(),
        "oidc-provider missing: run ./test.sh (it runs `npm ci` in tests/peers/dpop)"
    );
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (ca, chain, key) = excalibur_test_support::tls_files(&[AUTH, API]).unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("peer-ca.pem"), &ca).unwrap();
    std::fs::write(p("peer-cert.pem"), &chain).unwrap();
    std::fs::write(p("peer-key.pem"), &key).unwrap();
    let addr = excalibur_test_support::free_port().unwrap();
    let mut peer = tokio::process::Command::new("node")
        .current_dir(&peer_dir)
        .arg("server.mjs")
        .arg(addr.port().to_string())
        .args([p("peer-cert.pem"), p("peer-key.pem")])
        .args([AUTH, API, CLIENT_SECRET])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "oidc-provider did not start");

    let config = format!(
        "[upstream]\nca_file = {:?}\nresolve = [\"{AUTH}:443={addr}\", \"{API}:443={addr}\"]\n",
        p("peer-ca.pem")
    );
    let gw = Gateway::start_in(
        server_bin(),
        Arc::clone(&dir),
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
        json!({"id": "internal-idp", "hosts": [AUTH, API]}),
    )
    .await
    .unwrap();
    // The client secret is an ordinary placeholder, substituted into the token request body.
    api.post("/api/placeholders", json!({"placeholder": "XCALIBUR_DPOP_CLIENT_SECRET", "real_value": CLIENT_SECRET, "provider_id": "internal-idp"}))
        .await
        .unwrap();
    api.post("/api/translation-rules", json!({"placeholder": "XCALIBUR_DPOP_CLIENT_SECRET", "hosts": [AUTH], "path_prefix": "/token", "substitute_body": true}))
        .await
        .unwrap();
    let m = api
        .post(
            "/api/crypto/dpop/mappings",
            json!({"provider_id": "internal-idp", "token_host": AUTH, "token_path_prefix": "/token",
               "resource_host": API, "resource_path_prefix": "/v1", "client_id": "excalibur-dpop"}),
        )
        .await
        .unwrap();
    let jkt = m["jkt"].as_str().unwrap().to_owned();
    assert_eq!(m["surrogate"], jkt.as_str());
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "dpop_*", "hosts": [AUTH, API], "principal": "service:ci-runner"}),
    )
    .await
    .unwrap();
    let (_, token) =
        crate::data_plane::credential(&gw, "ci-runner", "127.0.0.0/8", &[AUTH, API]).await;
    let ca_pem = gw.data_dir.join("ca.pem");
    let via = |extra: Vec<String>| {
        let mut a = vec![
            "-x".to_owned(),
            proxy_url(&gw),
            "--proxy-user".to_owned(),
            format!("ci:{token}"),
            "--cacert".to_owned(),
            ca_pem.to_string_lossy().into_owned(),
            "-w".to_owned(),
            "\n%{http_code}".to_owned(),
        ];
        a.extend(extra);
        a
    };
    let run = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = curl(&refs).await;
        assert_eq!(code, 0, "{err}");
        let (body, status) = out.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };

    // The workload's token request: no key, a placeholder for the client secret.
    let (status, body) = run(via(vec![
        "-X".into(), "POST".into(),
        "-d".into(), "grant_type=client_credentials&client_id=excalibur-dpop&client_secret=XCALIBUR_DPOP_CLIENT_SECRET".into(),
        format!("https://{AUTH}/token"),
    ]))
    .await;
    assert_eq!(status, "200", "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        t["token_type"], "DPoP",
        "the token is bound to the proxy's key"
    );
    let access = t["access_token"].as_str().unwrap().to_owned();

    // The resource call: the proxy presents the token with the DPoP scheme and a proof.
    let (status, body) = run(via(vec![
        "-H".into(),
        format!("Authorization: Bearer {access}"),
        format!("https://{API}/v1/topics"),
    ]))
    .await;
    assert_eq!(status, "200", "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(r["jkt"], jkt.as_str(), "cnf.jkt is the mapping's key");

    // Stolen, the token is useless without the key: direct to the resource server it fails.
    let (code, out, _) = curl(&[
        "--cacert",
        p("peer-ca.pem").to_str().unwrap(),
        "--connect-to",
        &format!("{API}:443:{addr}"),
        "-H",
        &format!("Authorization: DPoP {access}"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://{API}/v1/topics"),
    ])
    .await;
    assert_eq!((code, out.as_str()), (0, "401"));

    let signed = wait_events(&gw, "dpop_signed", 2).await;
    let token_leg = signed
        .iter()
        .find(|e| e["details"]["leg"] == "token")
        .unwrap();
    assert_eq!(
        token_leg["details"]["retried"], true,
        "the AS asked for a nonce and got one: {token_leg}"
    );
    assert_eq!(token_leg["details"]["htu"], format!("https://{AUTH}/token"));
    let resource_leg = signed
        .iter()
        .find(|e| e["details"]["leg"] == "resource")
        .unwrap();
    assert_eq!(resource_leg["details"]["status"], 200);
    assert_eq!(resource_leg["details"]["jkt"], jkt.as_str());
    let listed = api
        .get("/api/crypto/dpop/mappings")
        .await
        .unwrap()
        .to_string();
    assert!(listed.contains(&jkt) && !listed.contains("PRIVATE"));

    // The CLI: add from a JSON document on stdin, list with the seed's columns, delete.
    let doc = json!({"provider_id": "internal-idp", "token_host": AUTH, "resource_host": API, "resource_path_prefix": "/v2"});
    let (code, out, err) = crate::ctl(
        &gw,
        &["crypto", "dpop", "add", "--file", "-"],
        Some(&doc.to_string()),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SURROGATE") && out.contains("/v2"), "{out}");
    let (code, out, _) = crate::ctl(&gw, &["--json", "crypto", "dpop", "list"], None).await;
    assert_eq!(code, 0);
    let all: Value = serde_json::from_str(&out).unwrap();
    let added = all
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path_prefix"] == "/v2")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, _, err) = crate::ctl(&gw, &["crypto", "dpop", "delete", &added], None).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = crate::ctl(
        &gw,
        &["crypto", "mtls", "add", "--file", "-"],
        Some("not json"),
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("not JSON"), "{err}");
    let _ = peer.kill().await;
}
