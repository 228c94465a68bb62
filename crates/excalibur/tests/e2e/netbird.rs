//! Issue: developer devices (NetBird). The binary syncs a NetBird-API stand-in; a synced
//! peer's overlay address identifies it to the proxy as `developer_device:<peer-id>`,
//! with egress derived from the domain routes distributed to its groups. curl is the
//! device (bound to the peer's address with --interface).

use std::sync::Arc;
use std::time::Duration;

use excalibur_test_support::netbird::{NetbirdApi, State, group, peer, route};
use excalibur_test_support::upstream::Echo;
use excalibur_test_support::{Gateway, Options};
use serde_json::Value;

use crate::data_plane::{curl, proxy_url, wait_events};
use crate::server_bin;

const PAT: &str = "nbp_EXCALIBURtestTOKEN000000000000000000";

fn state() -> State {
    State {
        peers: vec![
            peer(
                "p-laptop",
                "alice-mbp",
                "127.0.0.2",
                &[("g-dev", "developers")],
            ),
            // Outside the configured overlay network: never a principal.
            peer("p-far", "far", "100.100.0.9", &[("g-dev", "developers")]),
        ],
        groups: vec![group(
            "g-dev",
            "developers",
            &[("p-laptop", "alice-mbp"), ("p-far", "far")],
        )],
        routes: vec![
            route("r-github", Err(&["api.github.com"]), &["g-dev"]),
            route("r-exit", Ok("0.0.0.0/0"), &["g-dev"]),
            route("r-other", Err(&["other.example"]), &["g-ops"]),
        ],
        policies: vec![
            serde_json::json!({"id": "pol-1", "name": "dev", "description": "", "enabled": true,
            "source_posture_checks": [], "rules": []}),
        ],
        fail: None,
    }
}

async fn status(gw: &Gateway) -> Value {
    gw.api().get("/api/netbird/status").await.unwrap()
}

/// Waits (bounded) until the status satisfies `f`.
async fn wait_status(gw: &Gateway, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let s = status(gw).await;
        if f(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status(gw).await
}

async fn from(gw: &Gateway, ca: &str, source: &str, url: &str) -> String {
    // A refused CONNECT makes curl exit 56 with the proxy's status in %{http_connect}.
    let (code, out, err) = curl(&[
        "--interface",
        source,
        "-x",
        &proxy_url(gw),
        "--cacert",
        ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_connect}",
        url,
    ])
    .await;
    assert!(code == 0 || code == 56, "{err}");
    let (status, connect) = out.split_once(' ').unwrap();
    if status == "000" {
        connect.to_owned()
    } else {
        status.to_owned()
    }
}

#[tokio::test]
async fn netbird_peers_become_principals_and_a_failed_sync_keeps_state() {
    let nb = NetbirdApi::start(PAT, state()).await.unwrap();
    let echo = Echo::start(&["api.github.com", "other.example"])
        .await
        .unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &echo.ca_pem).unwrap();
    let t = echo.tls_addr;
    let config = format!(
        "[upstream]\nca_file = {upstream_ca:?}\nresolve = [\"api.github.com:443={t}\", \"other.example:443={t}\"]\n"
    );
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config,
            env: vec![
                ("EXCALIBUR_NETBIRD_SYNC_URL".into(), nb.url()),
                ("EXCALIBUR_NETBIRD_SYNC_TOKEN".into(), PAT.into()),
                ("EXCALIBUR_NETBIRD_SYNC_INTERVAL".into(), "1".into()),
                // Test-only choice: the overlay is a loopback range here.
                (
                    "EXCALIBUR_NETBIRD_OVERLAY_CIDR".into(),
                    "127.0.0.0/24".into(),
                ),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ca = gw.data_dir.join("ca.pem").to_string_lossy().into_owned();

    let s = wait_status(&gw, |s| s["peers"] == 1).await;
    assert_eq!(s["configured"], true, "{s}");
    assert_eq!(
        (
            s["groups"].as_u64(),
            s["routes"].as_u64(),
            s["policies"].as_u64()
        ),
        (Some(1), Some(3), Some(1)),
        "{s}"
    );
    assert!(
        s["error"].is_null() && s["last_success_at"].is_string(),
        "{s}"
    );
    let peers = gw.api().get("/api/netbird/peers").await.unwrap();
    assert_eq!(
        peers.as_array().unwrap().len(),
        1,
        "the peer outside the overlay is ignored: {peers}"
    );
    let p = &peers[0];
    assert_eq!(p["principal"], "developer_device:p-laptop");
    assert_eq!(p["allowed_domains"], serde_json::json!(["api.github.com"]));
    assert_eq!(p["networks"], serde_json::json!(["0.0.0.0/0"]));
    assert_eq!(p["default_route"], true);
    assert_eq!(p["groups"], serde_json::json!(["developers"]));

    // The device needs no credential; its route ACLs decide where it may go.
    assert_eq!(
        from(&gw, &ca, "127.0.0.2", "https://api.github.com/user").await,
        "200"
    );
    assert_eq!(
        from(&gw, &ca, "127.0.0.2", "https://other.example/").await,
        "403"
    );
    assert_eq!(
        from(&gw, &ca, "127.0.0.3", "https://api.github.com/user").await,
        "407"
    );
    let flows = gw.api().get("/api/flows?limit=10").await.unwrap();
    assert!(
        flows
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["principal"] == "developer_device:p-laptop" && f["status"] == 200),
        "{flows}"
    );

    // The API fails: the error is shown and the last good state stays in force.
    nb.set(|s| s.fail = Some(500));
    let s = wait_status(&gw, |s| s["error"].is_string()).await;
    assert!(
        s["error"].as_str().unwrap().contains("500 internal error"),
        "{s}"
    );
    assert_eq!(s["peers"], 1);
    assert_eq!(
        from(&gw, &ca, "127.0.0.2", "https://api.github.com/user").await,
        "200"
    );
    wait_events(&gw, "netbird_sync_failed", 1).await;

    // Recovery with the peer gone: it disappears, and its address identifies nobody.
    nb.set(|s| {
        s.fail = None;
        s.peers.remove(0);
    });
    let s = wait_status(&gw, |s| s["peers"] == 0 && s["error"].is_null()).await;
    assert_eq!(s["peers"], 0, "{s}");
    assert_eq!(
        from(&gw, &ca, "127.0.0.2", "https://api.github.com/user").await,
        "407"
    );
    let synced = wait_events(&gw, "netbird_synced", 2).await;
    assert!(
        synced
            .iter()
            .any(|e| e["details"]["removed"] == serde_json::json!(["p-laptop"])),
        "{synced:?}"
    );
}

#[tokio::test]
async fn a_wrong_token_is_reported_with_netbirds_message() {
    let nb = NetbirdApi::start(PAT, state()).await.unwrap();
    let gw = Gateway::start(
        server_bin(),
        Options {
            env: vec![
                ("EXCALIBUR_NETBIRD_SYNC_URL".into(), nb.url()),
                ("EXCALIBUR_NETBIRD_SYNC_TOKEN".into(), "nbp_wrong".into()),
                ("EXCALIBUR_NETBIRD_SYNC_INTERVAL".into(), "1".into()),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = wait_status(&gw, |s| s["error"].is_string()).await;
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("401 no valid authentication provided"),
        "{s}"
    );
    assert_eq!(s["peers"], 0);
    let out = gw.output();
    assert!(!out.contains("nbp_wrong"), "the token must never be logged");
}
