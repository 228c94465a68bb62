//! Issue: Cedar policy. Operator policies through the API and CLI, validated on write,
//! deciding real proxied requests; dry runs; deny events carry the deciding policies.

use serde_json::json;

use crate::ctl;
use crate::data_plane::{credential, curl, proxy_url, setup, wait_events};

#[tokio::test]
async fn operator_policies_decide_real_requests() {
    let s = setup().await;
    let gw = &s.gw;
    let (_, token) = credential(gw, "ci", "127.0.0.0/8", &["api.github.com"]).await;
    let auth = format!("Proxy-Authorization: Bearer {token}");
    let ca = s.ca.to_string_lossy().into_owned();
    let request = |method: &'static str| {
        let (proxy, auth, ca) = (proxy_url(gw), auth.clone(), ca.clone());
        async move {
            curl(&[
                "-x",
                &proxy,
                "--proxy-header",
                &auth,
                "--cacert",
                &ca,
                "-X",
                method,
                "-H",
                "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "-w",
                "%{http_code}",
                "https://api.github.com/repos/x",
            ])
            .await
            .1
        }
    };
    assert!(request("DELETE").await.ends_with("200"));

    // A schema error is rejected with the validator's message and nothing is stored.
    let (status, ct, body) = gw
        .api()
        .send(
            "POST",
            "/api/policies",
            Some(json!({"id": "typo", "policy": "permit (principal, action == Action::\"redeem\", resource) when { principal.tenant_id == \"x\" };"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 422);
    assert_eq!(ct, "application/problem+json");
    assert!(
        body["detail"].as_str().unwrap().contains("tenant_id"),
        "{body}"
    );
    assert!(
        gw.api()
            .get("/api/policies")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A forbid added through the CLI overrides the translation rule at once.
    let forbid = "forbid (principal, action == Action::\"redeem\", resource) when { context.method == \"DELETE\" };";
    let (code, _, err) = ctl(
        gw,
        &[
            "policy",
            "add",
            "--id",
            "no-deletes",
            "--file",
            "-",
            "--description",
            "read-mostly",
        ],
        Some(forbid),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let out = request("DELETE").await;
    assert!(
        out.ends_with("403")
            && out
                .to_lowercase()
                .contains("x-excalibur-reason: placeholder_denied"),
        "{out}"
    );
    assert!(request("GET").await.ends_with("200"));
    let denied = wait_events(gw, "placeholder_denied", 1).await;
    assert_eq!(denied[0]["details"]["policies"], json!(["no-deletes"]));
    assert_eq!(denied[0]["details"]["reason"], "forbidden_by_policy");
    assert!(!wait_events(gw, "policy_created", 1).await.is_empty());

    // Dry runs name the determining policies.
    let (code, out, _) = ctl(
        gw,
        &[
            "--json",
            "policy",
            "test",
            "--principal",
            "Workload::\"service:ci\"",
            "--action",
            "redeem",
            "--resource",
            "Placeholder::\"XCALIBUR_GITHUB_TOKEN\"",
            "--host",
            "api.github.com",
            "--method",
            "DELETE",
        ],
        None,
    )
    .await;
    assert_eq!(code, 3, "deny exits 3");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["policies"], json!(["no-deletes"]));
    // A scoped bearer, a tag and an actor can be tried too: scopes are a Cedar forbid.
    let (code, out, _) = ctl(
        gw,
        &[
            "--json",
            "policy",
            "test",
            "--principal",
            "Workload::\"k8s:prod/payments/api\"",
            "--action",
            "redeem",
            "--resource",
            "Placeholder::\"XCALIBUR_GITHUB_TOKEN\"",
            "--host",
            "api.github.com",
            "--scope",
            "provider:stripe",
            "--tag",
            "tenant_id=acme",
            "--actor",
            "oidc:gha/acme/ci",
        ],
        None,
    )
    .await;
    assert_eq!(code, 3, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reason"], "scope_not_granted", "{v}");
    assert_eq!(v["policies"], json!(["builtin:scopes"]), "{v}");
    let v = gw
        .api()
        .post(
            "/api/policies/evaluate",
            json!({"principal": {"type": "Workload", "id": "service:ci"}, "action": "connect", "resource": {"type": "Host", "id": "api.github.com"}}),
        )
        .await
        .unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["policies"], json!(["egress:service:ci"]));

    // Deleting the policy restores the rule's decision.
    let (code, _, _) = ctl(gw, &["policy", "delete", "no-deletes"], None).await;
    assert_eq!(code, 0);
    assert!(request("DELETE").await.ends_with("200"));
}
