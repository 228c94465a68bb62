//! Issue: OAuth2 refresh mediation. curl, holding no token, goes through the running
//! binary to an Authlib server with the refresh_token grant (rotating refresh tokens).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::data_plane::{curl, proxy_url, wait_events};
use crate::server_bin;

const AS: &str = "login.example";
const API: &str = "data.example";
const SECRET: &str = "refresh-client-secret-REAL-42";
const INITIAL: &str = "rt-initial-REAL-0123456789abcdef";

#[tokio::test]
async fn refresh_tokens_are_used_rotated_stored_and_survive_a_restart() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (ca, chain, key) = excalibur_test_support::tls_files(&[AS, API]).unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("peer-ca.pem"), &ca).unwrap();
    std::fs::write(p("peer-cert.pem"), &chain).unwrap();
    std::fs::write(p("peer-key.pem"), &key).unwrap();
    let addr = excalibur_test_support::free_port().unwrap();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aws-venv/bin/python");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/oauth_refresh_as.py");
    let mut peer = tokio::process::Command::new(python)
        .arg(script)
        .arg(addr.port().to_string())
        .args([p("peer-cert.pem"), p("peer-key.pem")])
        .args([SECRET, INITIAL, "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the Authlib server did not start");
    let config = format!(
        "[upstream]\nca_file = {:?}\nresolve = [\"{AS}:443={addr}\", \"{API}:443={addr}\"]\n",
        p("peer-ca.pem")
    );
    let data_dir = dir.path().join("data");
    let opts = || Options {
        config_toml: config.clone(),
        data_dir: Some(data_dir.clone()),
        ..Default::default()
    };
    let gw = Gateway::start_in(server_bin(), Arc::clone(&dir), opts())
        .await
        .unwrap();
    let api = gw.api();
    api.post("/api/providers", json!({"id": "saas", "hosts": [AS, API]}))
        .await
        .unwrap();
    let m = api
        .post("/api/crypto/oauth-refresh/mappings", json!({"provider_id": "saas", "token_host": AS, "resource_host": API,
               "path_prefix": "/api", "client_id": "excalibur-refresh", "real_client_secret": SECRET, "real_refresh_token": INITIAL}))
        .await
        .unwrap();
    let id = m["id"].as_str().unwrap().to_owned();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "oauthr_*", "hosts": [API]}),
    )
    .await
    .unwrap();
    let (_, token) = crate::data_plane::credential(&gw, "ci-runner", "127.0.0.0/8", &[API]).await;
    let peer_stats = || async {
        let (_, out, _) = curl(&[
            "--cacert",
            p("peer-ca.pem").to_str().unwrap(),
            "--connect-to",
            &format!("{AS}:443:{addr}"),
            &format!("https://{AS}/_stats"),
        ])
        .await;
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let call = |gw: &Gateway| {
        let args = vec![
            "-x".to_owned(),
            proxy_url(gw),
            "--proxy-user".to_owned(),
            format!("ci:{token}"),
            "--cacert".to_owned(),
            gw.data_dir.join("ca.pem").to_string_lossy().into_owned(),
            "-o".to_owned(),
            "/dev/null".to_owned(),
            "-w".to_owned(),
            "%{http_code}".to_owned(),
            format!("https://{API}/api/items"),
        ];
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&refs).await.1
        }
    };

    assert_eq!(call(&gw).await, "200");
    assert_eq!(call(&gw).await, "200");
    assert_eq!(
        peer_stats().await["refreshes"],
        1,
        "the access token is cached"
    );
    // Before expiry (2 s lifetime) the proxy refreshes again, with the rotated token.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = call(&gw).await;
    if status != "200" {
        let ev = gw
            .api()
            .get("/api/audit?type=oauth_*&limit=50")
            .await
            .unwrap();
        panic!(
            "refresh with the rotated token: {status}\n{ev:#}\n{:#}",
            peer_stats().await
        );
    }
    let s = peer_stats().await;
    assert_eq!(s["refreshes"], 2);
    assert_eq!(
        s["rejected"], 0,
        "the rotated refresh token was used, not the old one"
    );

    // The server drops every access token: the 401 triggers a refresh and one retry.
    curl(&[
        "-X",
        "POST",
        "--cacert",
        p("peer-ca.pem").to_str().unwrap(),
        "--connect-to",
        &format!("{AS}:443:{addr}"),
        &format!("https://{AS}/_revoke_access"),
    ])
    .await;
    let status = call(&gw).await;
    if status != "200" {
        let ev = gw
            .api()
            .get("/api/audit?type=oauth_*&limit=50")
            .await
            .unwrap();
        let flows = gw.api().get("/api/flows?limit=5").await.unwrap();
        panic!(
            "refreshed on 401 and retried: {status}\n{ev:#}\n{flows:#}\n{:#}",
            peer_stats().await
        );
    }
    assert_eq!(peer_stats().await["refreshes"], 3);

    // Rotated refresh tokens are stored (sealed): after a restart the proxy still works,
    // which it could not with the initial (now revoked) token.
    let stored = wait_events(&gw, "oauth_refresh_mapping_updated", 3).await;
    assert!(
        stored.iter().all(|e| e["principal"] == "system"),
        "{stored:?}"
    );
    let refreshed = wait_events(&gw, "oauth_token_refreshed", 3).await;
    assert!(refreshed.iter().any(|e| e["details"]["rotated"] == true));
    gw.stop().await.unwrap();
    let gw = Gateway::start_in(server_bin(), Arc::clone(&dir), opts())
        .await
        .unwrap();
    assert_eq!(call(&gw).await, "200");
    assert_eq!(peer_stats().await["rejected"], 0);

    let listed = gw
        .api()
        .get("/api/crypto/oauth-refresh/mappings")
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(
        listed[0]["generation"], 1,
        "proxy-stored rotations do not bump the generation"
    );
    let all = format!(
        "{listed} {}",
        gw.api().get("/api/audit?limit=1000").await.unwrap()
    );
    assert!(
        !all.contains(SECRET) && !all.contains("rt-"),
        "a secret or refresh token leaked"
    );
    let _ = peer.kill().await;
}
