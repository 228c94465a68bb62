//! Issue 20 (scale): bulk import. Many sets (provider, placeholder, rule, service
//! credential) in one atomic request, one audit event per object, one snapshot update;
//! an invalid item names itself and writes nothing.

use serde_json::{Value, json};

use crate::data_plane::{Setup, curl, proxy_url, setup};

/// Proxies one request with `token` and `placeholder` to `url`: 200, and the upstream got
/// `real`.
async fn redeems(s: &Setup, token: &str, placeholder: &str, url: &str, real: &str) {
    let (code, body, err) = curl(&[
        "-x",
        &proxy_url(&s.gw),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "--cacert",
        s.ca.to_str().unwrap(),
        "-H",
        &format!("Authorization: Bearer {placeholder}"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url,
    ])
    .await;
    assert_eq!((code, body.as_str()), (0, "200"), "{url}: {err}");
    assert_eq!(
        s.echo.seen().last().unwrap().header("authorization"),
        Some(format!("Bearer {real}").as_str()),
        "{url}"
    );
}

fn sets(n: usize, tag: &str) -> Value {
    let providers: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("{tag}-{i}"), "hosts": [format!("{tag}{i}.example")]}))
        .collect();
    let placeholders: Vec<Value> = (0..n)
        .map(|i| json!({"placeholder": format!("XCALIBUR_{}_{i}", tag.to_uppercase()), "real_value": format!("value-{tag}-{i}"), "provider_id": format!("{tag}-{i}")}))
        .collect();
    let rules: Vec<Value> = (0..n)
        .map(|i| json!({"placeholder": format!("XCALIBUR_{}_{i}", tag.to_uppercase()), "hosts": [format!("{tag}{i}.example")]}))
        .collect();
    let creds: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("{tag}-ci-{i}"), "user": "ci", "source_network": "127.0.0.0/8", "allowed_domains": [format!("{tag}{i}.example")]}))
        .collect();
    json!({"providers": providers, "placeholders": placeholders, "translation_rules": rules, "service_credentials": creds})
}

#[tokio::test]
async fn thousands_of_sets_import_at_once_and_a_bad_item_writes_nothing() {
    let s = setup().await;
    let api = s.gw.api();
    let before = api.get("/api/audit/verify").await.unwrap()["checked"]
        .as_i64()
        .unwrap();
    // 2,000 sets, and one whose host the test upstream answers for.
    let mut doc = sets(2000, "bulk");
    for (key, item) in [
        (
            "providers",
            json!({"id": "other", "hosts": ["other.example"]}),
        ),
        (
            "placeholders",
            json!({"placeholder": "XCALIBUR_OTHER_KEY", "real_value": "other-real-value", "provider_id": "other"}),
        ),
        (
            "translation_rules",
            json!({"placeholder": "XCALIBUR_OTHER_KEY", "hosts": ["other.example"]}),
        ),
        (
            "service_credentials",
            json!({"name": "other-ci", "user": "ci", "source_network": "127.0.0.0/8", "allowed_domains": ["other.example"]}),
        ),
    ] {
        doc[key].as_array_mut().unwrap().push(item);
    }
    let started = std::time::Instant::now();
    let (status, _, out) = api.send("POST", "/api/import", Some(doc)).await.unwrap();
    let took = started.elapsed();
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["service_credentials"].as_array().unwrap().len(), 2001);
    assert!(
        out.to_string().contains("sha256:"),
        "fingerprints, not values"
    );
    assert!(
        !out.to_string().contains("value-bulk-1\""),
        "no real value echoed"
    );
    eprintln!("imported 2,001 sets (8,004 objects) in {took:?}");
    // One audit event per object, in the one chain.
    let v = api.get("/api/audit/verify").await.unwrap();
    assert_eq!(v["ok"], true, "{v}");
    // Checkpoints within the range verified (the checkpointer may add one after it).
    let head = v["head_seq"].as_i64().unwrap();
    let checkpoints = api
        .get("/api/audit?type=audit_checkpoint&limit=1000")
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["seq"].as_i64().is_some_and(|seq| seq <= head))
        .count() as i64;
    assert_eq!(
        v["checked"].as_i64().unwrap() - before - checkpoints,
        8004,
        "{v}"
    );
    // An imported credential redeems an imported placeholder at once.
    let token = out["service_credentials"][2000]["token"].as_str().unwrap();
    redeems(
        &s,
        token,
        "XCALIBUR_OTHER_KEY",
        "https://other.example/imported",
        "other-real-value",
    )
    .await;

    // A small import (here 5 objects) patches the snapshot row by row: a new set and a
    // rotated placeholder are in force for the next request.
    let small = json!({
        "providers": [{"id": "small", "hosts": ["small.example"]}],
        "placeholders": [
            {"placeholder": "XCALIBUR_SMALL_KEY", "real_value": "small-real-value", "provider_id": "other"},
            {"placeholder": "XCALIBUR_OTHER_KEY", "real_value": "other-rotated-value", "provider_id": "other"}
        ],
        "translation_rules": [{"placeholder": "XCALIBUR_SMALL_KEY", "hosts": ["other.example"]}],
        "service_credentials": [{"name": "small-ci", "user": "ci", "source_network": "127.0.0.0/8", "allowed_domains": ["other.example"]}]
    });
    let (status, _, out) = api.send("POST", "/api/import", Some(small)).await.unwrap();
    assert_eq!(status, 201, "{out}");
    let token = out["service_credentials"][0]["token"].as_str().unwrap();
    for (placeholder, url, real) in [
        (
            "XCALIBUR_SMALL_KEY",
            "https://other.example/imported-small",
            "small-real-value",
        ),
        (
            "XCALIBUR_OTHER_KEY",
            "https://other.example/rotated",
            "other-rotated-value",
        ),
    ] {
        redeems(&s, token, placeholder, url, real).await;
    }

    // Atomic: a placeholder for a provider that does not exist (the store refuses it)
    // rolls back everything before it in the same import.
    let mut bad = sets(3, "half");
    bad["placeholders"][2]["provider_id"] = json!("no-such-provider");
    let (status, _, err) = api.send("POST", "/api/import", Some(bad)).await.unwrap();
    assert!(status == 422 || status == 400, "{status} {err}");
    let providers = api.get("/api/providers").await.unwrap();
    assert!(
        !providers.to_string().contains("half-0"),
        "nothing of a refused import is written"
    );
    // A validation error names the item.
    let mut invalid = sets(2, "named");
    invalid["translation_rules"][1]["hosts"] = json!([]);
    let (status, _, err) = api
        .send("POST", "/api/import", Some(invalid))
        .await
        .unwrap();
    assert_eq!(status, 422, "{err}");
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .contains("translation_rules[1]"),
        "{err}"
    );
    let (status, _, _) = api
        .send("POST", "/api/import", Some(json!({})))
        .await
        .unwrap();
    assert_eq!(status, 422);
}
