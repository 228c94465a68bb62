//! Issue: webhooks and live events. Signed deliveries to a local receiver that fails
//! first, retries with backoff, the delivery log, `credential_expired`, and the SSE stream.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::{constant_time, hmac};
use excalibur_test_support::receiver::Receiver;
use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::server_bin;

const SECRET: &str = "whsec_test_secret_0123456789";

fn verify(secret: &str, header: &str, body: &str) -> bool {
    let Some((t, v1)) = header.split_once(',') else {
        return false;
    };
    let (Some(t), Some(v1)) = (t.strip_prefix("t="), v1.strip_prefix("v1=")) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let expected =
        excalibur_core::secret::hex(hmac::sign(&key, format!("{t}.{body}").as_bytes()).as_ref());
    constant_time::verify_slices_are_equal(expected.as_bytes(), v1.as_bytes()).is_ok()
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn signed_deliveries_retry_and_log_and_expiry_fires() {
    let receiver = Receiver::start(1).await.unwrap();
    let config = "[webhooks]\nretry_base_ms = 100\ndangerous_allow_private_destinations = true\n";
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    // Bad input first: not a URL, no event types, a short secret.
    for body in [
        json!({"url": "ftp://x", "event_types": ["credential_rotated"]}),
        json!({"url": format!("http://{}/hook", receiver.addr), "event_types": []}),
        json!({"url": format!("http://{}/hook", receiver.addr), "event_types": ["credential_rotated"], "secret": "short"}),
    ] {
        assert_eq!(
            api.send("POST", "/api/webhooks", Some(body))
                .await
                .unwrap()
                .0,
            422
        );
    }
    let hook = api
        .post(
            "/api/webhooks",
            json!({"url": format!("http://{}/hook", receiver.addr), "event_types": ["credential_rotated", "credential_expired"], "secret": SECRET}),
        )
        .await
        .unwrap();
    assert!(hook["secret"].is_null(), "a chosen secret is never echoed");
    assert!(!hook.to_string().contains(SECRET));
    let id = hook["id"].as_str().unwrap().to_owned();

    // A live follower on the SSE stream, started before the rotation.
    let stream = reqwest::Client::new()
        .get(format!("{}/api/events/stream?type=placeholder_*", gw.url()))
        .bearer_auth(&gw.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    api.post(
        "/api/providers",
        json!({"id": "stripe", "hosts": ["api.stripe.com"]}),
    )
    .await
    .unwrap();
    for v in ["sk_live_OLD_0001", "sk_live_NEW_0002"] {
        api.post(
            "/api/placeholders",
            json!({"placeholder": "XCALIBUR_STRIPE_KEY", "real_value": v, "provider_id": "stripe"}),
        )
        .await
        .unwrap();
    }

    // The SSE stream carries the lifecycle events as they happen.
    let mut stream = stream;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("event: placeholder_rotated") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("sse in time")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: placeholder_updated"));
    assert!(!text.contains("sk_live_"), "no secret on the stream");

    // First attempt fails (500), the retry succeeds; both signed.
    let got = until("two delivery attempts", async || {
        let r = receiver.received();
        (r.len() >= 2).then_some(r)
    })
    .await;
    for r in &got {
        assert!(
            verify(SECRET, r.header("x-excalibur-signature").unwrap(), &r.body),
            "bad signature"
        );
        assert!(!r.body.contains("sk_live_"));
    }
    assert_eq!(got[0].answered, 500);
    assert_eq!(got[1].answered, 204);
    assert_eq!(
        got[0].header("x-excalibur-delivery"),
        got[1].header("x-excalibur-delivery")
    );
    let payload: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(payload["event_type"], "credential_rotated");
    assert_eq!(payload["event"]["type"], "placeholder_rotated");
    assert_eq!(
        got[1].header("x-excalibur-event"),
        Some("credential_rotated")
    );
    // A tampered body fails verification.
    assert!(!verify(
        SECRET,
        got[1].header("x-excalibur-signature").unwrap(),
        &got[1].body.replace("rotated", "r0tated")
    ));

    let log = until("the delivery log", async || {
        let log = api
            .get(&format!("/api/webhooks/{id}/deliveries"))
            .await
            .unwrap();
        (log[0]["status"] == "delivered").then_some(log)
    })
    .await;
    assert_eq!(log[0]["attempts"], 2);
    assert_eq!(log[0]["event_type"], "credential_rotated");

    // An expiring placeholder fires credential_expired and stops being served.
    let soon = excalibur_core::time::Timestamp::from_millis(
        excalibur_core::time::Timestamp::now().millis() + 500,
    )
    .to_rfc3339();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_TEMP_KEY", "real_value": "sk_temp_value_1", "provider_id": "stripe", "expires_at": soon}),
    )
    .await
    .unwrap();
    let expired = until("credential_expired delivery", async || {
        receiver
            .received()
            .into_iter()
            .find(|r| r.header("x-excalibur-event") == Some("credential_expired"))
    })
    .await;
    let payload: Value = serde_json::from_str(&expired.body).unwrap();
    assert_eq!(
        payload["event"]["details"]["placeholder"],
        "XCALIBUR_TEMP_KEY"
    );
    assert!(verify(
        SECRET,
        expired.header("x-excalibur-signature").unwrap(),
        &expired.body
    ));
    assert_eq!(api.get("/api/audit/verify").await.unwrap()["ok"], true);
}

#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_by_default() {
    let receiver = Receiver::start(0).await.unwrap();
    let gw = Gateway::start(
        server_bin(),
        Options {
            config_toml: "[webhooks]\nretry_base_ms = 50\nmax_attempts = 2\n".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    // Refused when created, naming the address, rather than accepted and failed at
    // every delivery: loopback (also by name and IPv4-mapped), private, metadata.
    let port = receiver.addr.port();
    for (url, named) in [
        (format!("http://{}/hook", receiver.addr), "127.0.0.1"),
        (format!("http://localhost:{port}/hook"), "127.0.0.1"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            "127.0.0.1",
        ),
        ("http://10.1.2.3/hook".to_owned(), "10.1.2.3"),
        (
            "http://169.254.169.254/latest".to_owned(),
            "169.254.169.254",
        ),
        ("http://100.64.0.1/hook".to_owned(), "100.64.0.1"),
    ] {
        let (status, _, body) = api
            .send(
                "POST",
                "/api/webhooks",
                Some(json!({"url": url, "event_types": ["placeholder_*"]})),
            )
            .await
            .unwrap();
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["code"], "webhook_destination_forbidden", "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains(named),
            "{url}: {body}"
        );
    }
    assert!(
        api.get("/api/webhooks")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A name that does not resolve yet is accepted; deliveries check it again.
    let later = api
        .post(
            "/api/webhooks",
            json!({"url": "https://hooks.unresolved.invalid/x", "event_types": ["placeholder_*"]}),
        )
        .await
        .unwrap();
    assert!(later["secret"].as_str().unwrap().starts_with("whsec_"));
    api.post(
        "/api/providers",
        json!({"id": "stripe", "hosts": ["api.stripe.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_STRIPE_KEY", "real_value": "v1_value", "provider_id": "stripe"}),
    )
    .await
    .unwrap();
    let id = later["id"].as_str().unwrap().to_owned();
    let log = until("a failed delivery", async || {
        let log = api
            .get(&format!("/api/webhooks/{id}/deliveries"))
            .await
            .unwrap();
        (log[0]["status"] == "failed").then_some(log)
    })
    .await;
    assert!(
        log[0]["last_error"].as_str().unwrap().contains("resolve"),
        "{log}"
    );
    assert!(receiver.received().is_empty());
}
