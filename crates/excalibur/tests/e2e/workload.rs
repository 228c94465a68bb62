//! Issue: workload identity (Kubernetes). The seed 000 §3 flow end to end with curl:
//! a projected SA token exchanged (RFC 8693) for a proxy bearer, used through the proxy.

use std::sync::Arc;

use excalibur_test_support::cluster::{ClusterKey, JwksServer, sa_claims};
use excalibur_test_support::upstream::Echo;
use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::data_plane::{curl, wait_events};
use crate::server_bin;

const ISSUER: &str = "https://kubernetes.default.svc";
const AUDIENCE: &str = "excalibur";
const REAL: &str = "ghp_K8S_REAL_VALUE_1234";

struct Cluster {
    gw: Gateway,
    echo: Echo,
    jwks: JwksServer,
    key: ClusterKey,
}

async fn cluster() -> Cluster {
    let echo = Echo::start(&["api.github.com"]).await.unwrap();
    let key = ClusterKey::generate("key-1").unwrap();
    let jwks = JwksServer::start(&[&key]).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, &echo.ca_pem).unwrap();
    let config = format!(
        "[upstream]\nca_file = {ca_file:?}\nresolve = [\"api.github.com:443={}\"]\n",
        echo.tls_addr
    );
    let env = vec![
        ("EXCALIBUR_K8S_ISSUER".to_owned(), ISSUER.to_owned()),
        (
            "EXCALIBUR_K8S_CLUSTER".to_owned(),
            "prod-eu-west".to_owned(),
        ),
        ("EXCALIBUR_K8S_JWKS_URL".to_owned(), jwks.url()),
        (
            "EXCALIBUR_MAX_WORKLOAD_TOKEN_TTL".to_owned(),
            "600".to_owned(),
        ),
    ];
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
        "/api/namespaces",
        json!({"name": "payments", "allowed_domains": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post("/api/placeholders", json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": REAL, "provider_id": "github"}))
        .await
        .unwrap();
    api.post("/api/translation-rules", json!({"principal": "k8s:*", "placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"]}))
        .await
        .unwrap();
    Cluster {
        gw,
        echo,
        jwks,
        key,
    }
}

/// The seed's exchange, with curl; returns (HTTP status, JSON body).
async fn exchange(gw: &Gateway, token: &str, extra: &[&str]) -> (u16, Value) {
    exchange_scoped(gw, token, Some("provider:github provider:stripe"), extra).await
}

/// [`exchange`] with `scope` (or none).
async fn exchange_scoped(
    gw: &Gateway,
    token: &str,
    scope: Option<&str>,
    extra: &[&str],
) -> (u16, Value) {
    let scope = scope.map(|s| format!("scope={s}"));
    let mut args = vec![
        "-X",
        "POST",
        "-w",
        "\n%{http_code}",
        "--data-urlencode",
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
        "--data-urlencode",
        "subject_token_type=urn:ietf:params:oauth:token-type:jwt",
        "--data-urlencode",
        "audience=https://excalibur.corp.example",
    ];
    if let Some(scope) = &scope {
        args.extend(["--data-urlencode", scope.as_str()]);
    }
    let subject = format!("subject_token={token}");
    args.extend(["--data-urlencode", subject.as_str()]);
    args.extend(extra);
    let url = format!("{}/api/oauth/token", gw.url());
    args.push(&url);
    let (_, out, _) = curl(&args).await;
    let (body, status) = out.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn seed_000_kubernetes_exchange_then_proxy() {
    let c = cluster().await;
    let gw = &c.gw;
    let sa = c
        .key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 120, "jti-1"),
            None,
        )
        .unwrap();
    let (status, body) = exchange(gw, &sa, &[]).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let ttl = body["expires_in"].as_i64().unwrap();
    assert!(
        ttl > 100 && ttl <= 120,
        "TTL {ttl} never exceeds the SA token's remaining life"
    );

    // The workload uses it through HTTPS_PROXY=https://…:8443.
    let (code, out, err) = curl(&[
        "--proxy",
        &format!("https://localhost:{}", gw.api_addr.port()),
        "--proxy-cacert",
        gw.data_dir.join("ca.pem").to_str().unwrap(),
        "--cacert",
        gw.data_dir.join("ca.pem").to_str().unwrap(),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "-H",
        "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
        "https://api.github.com/user",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(REAL));
    let seen = c.echo.seen();
    assert_eq!(
        seen.last().unwrap().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );

    // Fleet & Namespaces lists it; the events carry the attestation.
    let workloads = gw.api().get("/api/workloads").await.unwrap();
    let w = &workloads[0];
    assert_eq!(w["principal"], "k8s:prod-eu-west/payments/api");
    assert_eq!(w["namespace"], "payments");
    assert_eq!(w["attestation"], "kubernetes");
    assert_eq!(w["source"], "127.0.0.1");
    assert!(token.starts_with(w["token_prefix"].as_str().unwrap()));
    let (code, out, _) = crate::ctl(gw, &["workload", "list"], None).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("ID")
            && out.contains("k8s:prod-eu-west/payments/api")
            && out.contains("kubernetes"),
        "{out}"
    );
    let (code, out, _) = crate::ctl(gw, &["namespace", "list"], None).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("payments") && out.contains("api.github.com"),
        "{out}"
    );
    let attested = wait_events(gw, "workload_attested", 1).await;
    assert_eq!(attested[0]["details"]["attestor"], "kubernetes");
    assert_eq!(attested[0]["details"]["subject"], "payments/api");
    assert_eq!(attested[0]["details"]["cluster"], "prod-eu-west");
    let issued = wait_events(gw, "workload_token_issued", 1).await;
    assert_eq!(
        issued[0]["details"]["scopes"],
        json!(["provider:github", "provider:stripe"])
    );
    let flows = wait_events(gw, "flow_recorded", 1).await;
    assert_eq!(flows[0]["principal"], "k8s:prod-eu-west/payments/api");

    // The same SA token again from another address: replay.
    let (status, body) = exchange(gw, &sa, &["--interface", "127.0.0.2"]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        !wait_events(gw, "workload_token_replay_denied", 1)
            .await
            .is_empty()
    );

    // The bearer is bound to the address that exchanged it.
    let (_, out, _) = curl(&[
        "--interface",
        "127.0.0.2",
        "-x",
        &format!("http://{}", gw.proxy()),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com/",
    ])
    .await;
    assert_eq!(out, "407");
    // Egress comes from the namespace's allowed domains: other hosts are refused.
    let (_, out, _) = curl(&[
        "-x",
        &format!("http://{}", gw.proxy()),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.stripe.com/",
    ])
    .await;
    assert_eq!(out, "403");
}

#[tokio::test]
async fn bad_subject_tokens_get_rfc_8693_errors() {
    let c = cluster().await;
    let gw = &c.gw;
    let other = ClusterKey::generate("key-1").unwrap();
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            c.key
                .sign(
                    &sa_claims(ISSUER, AUDIENCE, "payments", "api", -120, "j-exp"),
                    None,
                )
                .unwrap(),
        ),
        (
            "wrong issuer",
            c.key
                .sign(
                    &sa_claims(
                        "https://evil.example",
                        AUDIENCE,
                        "payments",
                        "api",
                        600,
                        "j-iss",
                    ),
                    None,
                )
                .unwrap(),
        ),
        (
            "wrong audience",
            c.key
                .sign(
                    &sa_claims(ISSUER, "someone-else", "payments", "api", 600, "j-aud"),
                    None,
                )
                .unwrap(),
        ),
        (
            "bad signature",
            other
                .sign(
                    &sa_claims(ISSUER, AUDIENCE, "payments", "api", 600, "j-sig"),
                    None,
                )
                .unwrap(),
        ),
        (
            "unknown kid",
            c.key
                .sign(
                    &sa_claims(ISSUER, AUDIENCE, "payments", "api", 600, "j-kid"),
                    Some("nope"),
                )
                .unwrap(),
        ),
        ("not a jwt", "not-a-jwt".to_owned()),
    ];
    for (what, token) in &cases {
        let (status, body) = exchange(gw, token, &[]).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        assert!(body["error_description"].is_string());
    }
    // Wrong grant type and missing parameters.
    let url = format!("{}/api/oauth/token", gw.url());
    let (_, out, _) = curl(&["-d", "grant_type=password&username=x", &url]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error"],
        "unsupported_grant_type"
    );
    let (_, out, _) = curl(&[
        "-d",
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
        &url,
    ])
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error"],
        "invalid_request"
    );

    // Key rotation: a new key published by the cluster is picked up on first sight.
    let key2 = ClusterKey::generate("key-2").unwrap();
    c.jwks.publish(&[&c.key, &key2]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let token = key2
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 3600, "j-rot"),
            None,
        )
        .unwrap();
    let (status, body) = exchange(gw, &token, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 600, "capped by max_workload_token_ttl");
    assert!(
        gw.api()
            .get("/api/workloads")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len()
            == 1
    );
}

#[tokio::test]
async fn kill_switch_revokes_bearers_even_in_open_tunnels() {
    let c = cluster().await;
    let gw = &c.gw;
    let sa = c
        .key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 600, "jti-kill"),
            None,
        )
        .unwrap();
    let (status, body) = exchange(gw, &sa, &[]).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let pem = std::fs::read(gw.data_dir.join("ca.pem")).unwrap();
    let proxy = reqwest::Proxy::https(format!("http://{}", gw.proxy()))
        .unwrap()
        .custom_http_auth(format!("Bearer {token}").parse().unwrap());
    let client = reqwest::Client::builder()
        .proxy(proxy)
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let get = || {
        client
            .get("https://api.github.com/repos")
            .header("authorization", "Bearer XCALIBUR_GITHUB_TOKEN")
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);

    // Bad input, then the kill switch for the principal.
    let (status, _, _) = gw
        .api()
        .send("POST", "/api/revocations", Some(json!({})))
        .await
        .unwrap();
    assert_eq!(status, 422);
    let revoked = gw
        .api()
        .post(
            "/api/revocations",
            json!({"principal": "k8s:prod-eu-west/payments/api"}),
        )
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], 1);

    // The open tunnel (pooled by the client) refuses the next request at once.
    let resp = get().await.unwrap();
    assert_eq!(resp.status(), 407);
    assert_eq!(resp.headers()["x-excalibur-reason"], "credential_revoked");
    // The answer names what was presented (a workload bearer) and what to do.
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("workload bearer") && body.contains("/api/oauth/token"),
        "{body}"
    );
    assert!(!body.contains("service credential"), "{body}");
    // A new connection is refused too.
    let (_, out, _) = curl(&[
        "-x",
        &format!("http://{}", gw.proxy()),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {token}"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com/",
    ])
    .await;
    assert_eq!(out, "407");
    let events = wait_events(gw, "workload_token_revoked", 1).await;
    assert_eq!(
        events[0]["details"]["principal"],
        "k8s:prod-eu-west/payments/api"
    );

    // The killed principal does not come back: its next exchange is refused, with a
    // fresh token too, until an admin lifts the standing revocation.
    let fresh = c
        .key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 600, "jti-kill-2"),
            None,
        )
        .unwrap();
    let (status, body) = exchange(gw, &fresh, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("revoked"), "{body}");
    wait_events(gw, "workload_exchange_denied", 1).await;
    let (code, out, err) = crate::ctl(gw, &["workload", "revocations"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("k8s:prod-eu-west/payments/api"), "{out}");
    let standing = gw.api().get("/api/revocations").await.unwrap();
    let id = standing[0]["id"].as_str().unwrap().to_owned();
    // The Fleet page lists it, with a Lift button for admins.
    let cookie = crate::ui::ui_cookie(gw).await;
    let page = reqwest::Client::new()
        .get(format!("{}/ui/fleet", gw.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("k8s:prod-eu-west/payments/api"), "{page}");
    assert!(
        page.contains("<th>Scopes</th>") || page.contains(">Scopes<"),
        "{page}"
    );
    assert!(page.contains("provider:github provider:stripe"), "{page}");
    assert!(
        page.contains(&format!("/ui/revocations/{id}/lift")),
        "{page}"
    );
    let (code, out, err) = crate::ctl(gw, &["workload", "lift", &id], None).await;
    assert_eq!(code, 0, "{out}{err}");
    wait_events(gw, "principal_revocation_lifted", 1).await;
    let fresh = c
        .key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 600, "jti-kill-3"),
            None,
        )
        .unwrap();
    let (status, body) = exchange(gw, &fresh, &[]).await;
    assert_eq!(status, 200, "{body}");
    // Revocation by the subject token's jti, through the API and the CLI.
    for (jti, via_cli) in [("jti-by-api", false), ("jti-by-cli", true)] {
        let claims = sa_claims(ISSUER, AUDIENCE, "payments", "worker", 600, jti);
        let sa = c.key.sign(&claims, None).unwrap();
        let (status, body) = exchange(gw, &sa, &[]).await;
        assert_eq!(status, 200, "{body}");
        let bearer = body["access_token"].as_str().unwrap().to_owned();
        if via_cli {
            let (code, out, err) =
                crate::ctl(gw, &["workload", "revoke", "--jti", jti], None).await;
            assert_eq!(code, 0, "{out}{err}");
        } else {
            let revoked = gw
                .api()
                .post("/api/revocations", json!({"jti": jti}))
                .await
                .unwrap();
            assert_eq!(revoked["revoked"], 1, "{revoked}");
        }
        let (_, out, _) = curl(&[
            "-x",
            &format!("http://{}", gw.proxy()),
            "--proxy-header",
            &format!("Proxy-Authorization: Bearer {bearer}"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            "https://api.github.com/",
        ])
        .await;
        assert_eq!(out, "407", "{jti}");
    }
    let (status, _, _) = gw
        .api()
        .send(
            "POST",
            "/api/revocations",
            Some(json!({"jti": "x", "principal": "y"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 422);
}

#[tokio::test]
async fn spiffe_jwt_svids_and_oidc_workload_tokens_are_exchanged() {
    let echo = Echo::start(&["api.github.com"]).await.unwrap();
    let svid_key = ClusterKey::generate("svid-1").unwrap();
    let bundle = JwksServer::start(&[]).await.unwrap();
    // A SPIFFE bundle: only `use: jwt-svid` keys count.
    let stray = ClusterKey::generate("sig-1").unwrap();
    bundle.publish_raw(
        &json!({"keys": [svid_key.jwk_with_use("jwt-svid"), stray.jwk()], "spiffe_sequence": 1}),
    );
    let gha_key = ClusterKey::generate("gha-1").unwrap();
    let gha = JwksServer::start(&[&gha_key]).await.unwrap();
    let gitlab_key = ClusterKey::generate("gl-1").unwrap();
    let gitlab = JwksServer::start(&[&gitlab_key]).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, &echo.ca_pem).unwrap();
    let config = format!(
        "[upstream]\nca_file = {ca_file:?}\nresolve = [\"api.github.com:443={}\"]\n\n\
         [[spiffe]]\ntrust_domain = \"prod.example.com\"\naudience = \"excalibur\"\nbundle_url = \"{}\"\nadmit_paths = [\"/svc/\"]\n\n\
         [[oidc]]\nname = \"github-actions\"\nissuer = \"https://token.actions.githubusercontent.com\"\naudience = \"excalibur\"\n\
         jwks_url = \"{}\"\nprincipal_claim = \"repository\"\nnamespace_claim = \"repository_owner\"\n\n\
         [[oidc]]\nname = \"gitlab\"\nissuer = \"{}\"\naudience = \"excalibur\"\ndiscovery = true\nprincipal_claim = \"project_path\"\n",
        echo.tls_addr,
        bundle.url(),
        gha.url(),
        gitlab.base()
    );
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post(
        "/api/namespaces",
        json!({"name": "prod.example.com", "allowed_domains": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/namespaces",
        json!({"name": "acme", "allowed_domains": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post("/api/placeholders", json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": REAL, "provider_id": "github"}))
        .await
        .unwrap();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();

    let svid = |sub: &str, aud: &str, key: &ClusterKey| {
        key.sign(
            &json!({"sub": sub, "aud": [aud], "exp": now + 300, "iat": now}),
            None,
        )
        .unwrap()
    };
    let good = svid(
        "spiffe://prod.example.com/svc/billing",
        "excalibur",
        &svid_key,
    );
    let (status, body) = exchange(&gw, &good, &[]).await;
    assert_eq!(status, 200, "{body}");
    let svid_bearer = body["access_token"].as_str().unwrap().to_owned();
    for (what, token) in [
        (
            "outside the admitted paths",
            svid("spiffe://prod.example.com/ops/x", "excalibur", &svid_key),
        ),
        (
            "another trust domain",
            svid(
                "spiffe://evil.example.com/svc/billing",
                "excalibur",
                &svid_key,
            ),
        ),
        (
            "malformed SPIFFE ID",
            svid("spiffe://prod.example.com//svc", "excalibur", &svid_key),
        ),
        (
            "wrong audience",
            svid("spiffe://prod.example.com/svc/billing", "other", &svid_key),
        ),
        (
            "a key without use jwt-svid",
            svid("spiffe://prod.example.com/svc/billing", "excalibur", &stray),
        ),
    ] {
        let (status, body) = exchange(&gw, &token, &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{what}: {body}"
        );
    }

    // A GitHub Actions-shaped OIDC token, mapped by claims.
    let gha_token = gha_key
        .sign(
            &json!({"iss": "https://token.actions.githubusercontent.com", "aud": "excalibur", "exp": now + 300, "iat": now,
                    "sub": "repo:acme/app:ref:refs/heads/main", "repository": "acme/app", "repository_owner": "acme",
                    "jti": "gha-1"}),
            None,
        )
        .unwrap();
    let (status, body) = exchange(&gw, &gha_token, &[]).await;
    assert_eq!(status, 200, "{body}");
    let gha_bearer = body["access_token"].as_str().unwrap().to_owned();

    for bearer in [&svid_bearer, &gha_bearer] {
        let (code, out, err) = curl(&[
            "-x",
            &format!("http://{}", gw.proxy()),
            "--proxy-header",
            &format!("Proxy-Authorization: Bearer {bearer}"),
            "--cacert",
            gw.data_dir.join("ca.pem").to_str().unwrap(),
            "-H",
            "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
            "https://api.github.com/user",
        ])
        .await;
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains(REAL));
    }
    let workloads = gw.api().get("/api/workloads").await.unwrap();
    let principals: Vec<&str> = workloads
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["principal"].as_str().unwrap())
        .collect();
    assert!(
        principals.contains(&"spiffe://prod.example.com/svc/billing"),
        "{principals:?}"
    );
    assert!(
        principals.contains(&"oidc:github-actions/acme/app"),
        "{principals:?}"
    );
    let attestations: Vec<&str> = workloads
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["attestation"].as_str().unwrap())
        .collect();
    assert!(attestations.contains(&"spiffe-jwt") && attestations.contains(&"oidc"));
}

/// Verifies an Excalibur-minted token against the published JWKS.
fn verify_minted(token: &str, jwks: &Value, audience: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let jwk = set
        .find(header.kid.as_deref().unwrap_or_default())
        .ok_or("kid not published")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[audience]);
    v.set_issuer(&["https://excalibur.localhost"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn seed_004_exchange_mints_audience_scoped_tokens_with_rotating_keys() {
    let c = cluster().await;
    let gw = &c.gw;
    let sa = c
        .key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 300, "jti-v1"),
            None,
        )
        .unwrap();
    let url = format!("{}/v1/exchange/token", gw.url());
    let body = json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": sa,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "audience": "https://mcp.example.com/tools/search"
    })
    .to_string();
    let (_, out, _) = curl(&[
        "-X",
        "POST",
        &url,
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
    ])
    .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    let first = v["access_token"].as_str().unwrap().to_owned();
    assert!(v["expires_in"].as_i64().unwrap() <= 300);
    let jwks = gw.api_as(None).get("/.well-known/jwks.json").await.unwrap();
    let claims = verify_minted(&first, &jwks, "https://mcp.example.com/tools/search").unwrap();
    assert_eq!(
        claims["sub"],
        "spiffe://excalibur/k8s/prod-eu-west/payments/api"
    );
    assert_eq!(claims["principal"], "k8s:prod-eu-west/payments/api");
    assert!(claims["jti"].as_str().unwrap().len() >= 32);
    assert!(
        verify_minted(&first, &jwks, "https://someone-else.example").is_err(),
        "audience-scoped"
    );

    // Missing audience is invalid_target; a bad subject token is invalid_request.
    let no_aud = json!({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "x.y.z",
                         "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}).to_string();
    let (_, out, _) = curl(&[
        "-X",
        "POST",
        &url,
        "-H",
        "Content-Type: application/json",
        "-d",
        &no_aud,
    ])
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error"],
        "invalid_target"
    );
    let bad = body.replace(&sa, "x.y.z");
    let (_, out, _) = curl(&[
        "-X",
        "POST",
        &url,
        "-H",
        "Content-Type: application/json",
        "-d",
        &bad,
    ])
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error"],
        "invalid_request"
    );

    // Rotation: new tokens carry the new kid; the old key stays published, so tokens
    // already issued keep verifying.
    let rotated = gw
        .api()
        .post("/api/signing-keys/rotate", json!({}))
        .await
        .unwrap();
    let post = |body: String| {
        let url = url.clone();
        async move {
            let (_, out, _) = curl(&[
                "--interface",
                "127.0.0.2",
                "-X",
                "POST",
                &url,
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
            ])
            .await;
            serde_json::from_str::<Value>(&out).unwrap()
        }
    };
    // One replay cache with /api/oauth/token: the same subject token from another
    // address is refused now, at /v1 and at the form endpoint.
    let again = post(body.clone()).await;
    assert_eq!(again["error"], "invalid_request", "{again}");
    assert!(again.to_string().contains("replay"), "{again}");
    let (status, form) = exchange(gw, &sa, &["--interface", "127.0.0.2"]).await;
    assert_eq!(status, 400, "{form}");
    // The declared type must match the token: a Kubernetes token is no SPIFFE SVID.
    let fresh = c
        .key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 300, "jti-v1b"),
            None,
        )
        .unwrap();
    let typed = body.replace(&sa, &fresh).replace(
        "urn:ietf:params:oauth:token-type:jwt",
        "urn:starfly:token-type:spiffe-svid",
    );
    let wrong = post(typed).await;
    assert_eq!(wrong["error"], "invalid_request", "{wrong}");
    assert!(wrong.to_string().contains("SPIFFE"), "{wrong}");
    let fresh = c
        .key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 300, "jti-v1c"),
            None,
        )
        .unwrap();
    let out = post(body.replace(&sa, &fresh)).await.to_string();
    let second = serde_json::from_str::<Value>(&out).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&second).unwrap().kid.as_deref(),
        rotated["kid"].as_str()
    );
    let jwks = gw.api_as(None).get("/.well-known/jwks.json").await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    verify_minted(&first, &jwks, "https://mcp.example.com/tools/search").unwrap();
    verify_minted(&second, &jwks, "https://mcp.example.com/tools/search").unwrap();
    assert!(!wait_events(gw, "signing_key_rotated", 1).await.is_empty());
}

#[tokio::test]
async fn x509_svid_client_certificates_identify_workloads_on_8443() {
    use excalibur_test_support::cluster::SvidAuthority;
    let echo = Echo::start(&["api.github.com"]).await.unwrap();
    let td = SvidAuthority::new("prod.example.com").unwrap();
    let rogue = SvidAuthority::new("prod.example.com").unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let ca_file = write("upstream-ca.pem", &echo.ca_pem);
    let bundle = write("td-bundle.pem", &td.ca_pem);
    let jwks = write("jwt-bundle.json", "{\"keys\": []}");
    let (good_cert, good_key) = td.leaf(&["spiffe://prod.example.com/svc/billing"]).unwrap();
    let (two_cert, two_key) = td
        .leaf(&[
            "spiffe://prod.example.com/svc/a",
            "spiffe://prod.example.com/svc/b",
        ])
        .unwrap();
    let (rogue_cert, rogue_key) = rogue
        .leaf(&["spiffe://prod.example.com/svc/billing"])
        .unwrap();
    // Signed by a trusted bundle, but naming another trust domain.
    let (foreign_cert, foreign_key) = td.leaf(&["spiffe://other.example.org/svc/x"]).unwrap();
    let files: Vec<String> = [
        ("good.pem", &good_cert),
        ("good.key", &good_key),
        ("two.pem", &two_cert),
        ("two.key", &two_key),
        ("rogue.pem", &rogue_cert),
        ("rogue.key", &rogue_key),
        ("foreign.pem", &foreign_cert),
        ("foreign.key", &foreign_key),
    ]
    .iter()
    .map(|(n, t)| write(n, t))
    .collect();
    let config = format!(
        "[upstream]\nca_file = {ca_file:?}\nresolve = [\"api.github.com:443={}\"]\n\n\
         [[spiffe]]\ntrust_domain = \"prod.example.com\"\naudience = \"excalibur\"\nbundle_file = {jwks:?}\nx509_bundle_file = {bundle:?}\n",
        echo.tls_addr
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
        "/api/namespaces",
        json!({"name": "prod.example.com", "allowed_domains": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/providers",
        json!({"id": "github", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post("/api/placeholders", json!({"placeholder": "XCALIBUR_GITHUB_TOKEN", "real_value": REAL, "provider_id": "github"}))
        .await
        .unwrap();
    api.post("/api/translation-rules", json!({"principal": "spiffe://prod.example.com/*", "placeholder": "XCALIBUR_GITHUB_TOKEN", "hosts": ["api.github.com"]}))
        .await
        .unwrap();
    let ours = gw.data_dir.join("ca.pem").to_string_lossy().into_owned();
    let proxy = format!("https://localhost:{}", gw.api_addr.port());
    let through = |cert: &str, key: &str| {
        let (cert, key, proxy, ours) =
            (cert.to_owned(), key.to_owned(), proxy.clone(), ours.clone());
        async move {
            curl(&[
                "--proxy",
                &proxy,
                "--proxy-cacert",
                &ours,
                "--proxy-cert",
                &cert,
                "--proxy-key",
                &key,
                "--cacert",
                &ours,
                "-v",
                "-H",
                "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
                "-w",
                "\n%{http_connect}",
                "https://api.github.com/x509",
            ])
            .await
        }
    };
    // A valid SVID: identified by the certificate alone, no Proxy-Authorization.
    let (code, out, err) = through(&files[0], &files[1]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/x509") && !out.contains(REAL));
    assert_eq!(
        echo.seen().last().unwrap().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    let ok = wait_events(&gw, "proxy_auth_ok", 1).await;
    assert!(ok.iter().any(
        |e| e["principal"] == "spiffe://prod.example.com/svc/billing"
            && e["details"]["via"] == "x509-svid"
    ));
    // Two URI SANs, or a trust domain with no bundle here: refused for that reason (in
    // the 407 and in the audit event), not as if nothing had been presented.
    for (cert, key, reason) in [
        (&files[2], &files[3], "svid_uri_san_count"),
        (&files[6], &files[7], "svid_trust_domain_unknown"),
    ] {
        let (_, out, err) = through(cert, key).await;
        assert!(out.ends_with("407"), "{out}");
        assert!(
            err.to_ascii_lowercase()
                .contains(&format!("x-excalibur-reason: {reason}")),
            "{err}"
        );
        let denied = wait_events(&gw, "proxy_auth_denied", 1).await;
        assert!(
            denied
                .iter()
                .any(|e| e["details"]["reason"] == reason && e["details"]["via"] == "x509-svid"),
            "{denied:?}"
        );
    }
    // A certificate from a CA outside the bundle fails the handshake.
    let (code, _, _) = through(&files[4], &files[5]).await;
    assert_ne!(code, 0);
    assert_eq!(
        echo.seen().len(),
        1,
        "only the valid SVID reached the upstream"
    );
}

#[tokio::test]
async fn a_bearer_redeems_only_within_its_scopes() {
    let c = cluster().await;
    let gw = &c.gw;
    let redeem = |bearer: String| async move {
        curl(&[
            "-x",
            &format!("http://{}", gw.proxy()),
            "--proxy-header",
            &format!("Proxy-Authorization: Bearer {bearer}"),
            "--cacert",
            gw.data_dir.join("ca.pem").to_str().unwrap(),
            "-H",
            "Authorization: Bearer XCALIBUR_GITHUB_TOKEN",
            "-i",
            "https://api.github.com/scoped",
        ])
        .await
        .1
    };
    for (jti, scope, allowed) in [
        ("jti-scope-bad", "provider:github admin", false),
        ("jti-scope-stripe", "provider:stripe", false),
        ("jti-scope-github", "provider:github", true),
        ("jti-scope-none", "", true),
    ] {
        let sa = c
            .key
            .sign(
                &sa_claims(ISSUER, AUDIENCE, "payments", "api", 300, jti),
                None,
            )
            .unwrap();
        let (_, body) = exchange_scoped(gw, &sa, Some(scope).filter(|s| !s.is_empty()), &[]).await;
        if scope.contains("admin") {
            // Unknown scopes are refused at exchange time (RFC 6749 invalid_scope).
            assert_eq!(body["error"], "invalid_scope", "{body}");
            continue;
        }
        let bearer = body["access_token"].as_str().unwrap().to_owned();
        let out = redeem(bearer).await;
        if allowed {
            assert!(
                out.starts_with("HTTP/1.1 200") || out.contains("HTTP/2 200"),
                "{scope}: {out}"
            );
        } else {
            assert!(out.contains(" 403"), "{scope}: {out}");
            assert!(
                out.contains("x-excalibur-reason: scope_not_granted"),
                "{out}"
            );
            assert!(!out.contains(REAL));
        }
    }
    let denied = wait_events(gw, "placeholder_denied", 1).await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"]["reason"] == "scope_not_granted"),
        "{denied:?}"
    );
}

#[tokio::test]
async fn an_in_cluster_jwks_is_fetched_with_the_pods_token_and_cluster_ca() {
    // The cluster's `/openid/v1/jwks` over HTTPS (its own CA) and 401 without a bearer.
    let key = ClusterKey::generate("key-1").unwrap();
    let (jwks, cluster_ca) = JwksServer::start_tls(&[&key], "pod-token-1").await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let token_file = dir.path().join("token");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&token_file, "pod-token-1\n").unwrap();
    std::fs::write(&ca_file, &cluster_ca).unwrap();
    let env = |url: String| {
        vec![
            ("EXCALIBUR_K8S_ISSUER".to_owned(), ISSUER.to_owned()),
            ("EXCALIBUR_K8S_JWKS_URL".to_owned(), url),
            (
                "EXCALIBUR_K8S_TOKEN_FILE".to_owned(),
                token_file.display().to_string(),
            ),
            (
                "EXCALIBUR_K8S_CA_FILE".to_owned(),
                ca_file.display().to_string(),
            ),
        ]
    };
    let gw = Gateway::start_in(
        server_bin(),
        Arc::clone(&dir),
        Options {
            env: env(jwks.url()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    gw.api()
        .post(
            "/api/namespaces",
            json!({"name": "payments", "allowed_domains": ["api.github.com"]}),
        )
        .await
        .unwrap();
    let sa = key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 300, "jti-in-cluster-1"),
            None,
        )
        .unwrap();
    let (status, body) = exchange(&gw, &sa, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        jwks.authorizations()
            .iter()
            .all(|a| a == "Bearer pod-token-1"),
        "{:?}",
        jwks.authorizations()
    );
    // Kubelet rotates the pod's token: the next fetch (a new signing key) sends the new one.
    std::fs::write(&token_file, "pod-token-2\n").unwrap();
    let key2 = ClusterKey::generate("key-2").unwrap();
    jwks.publish(&[&key, &key2]);
    // (Refetches are at most one a second.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let sa2 = key2
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 300, "jti-in-cluster-2"),
            None,
        )
        .unwrap();
    let _ = exchange(&gw, &sa2, &[]).await;
    assert_eq!(
        jwks.authorizations().last().map(String::as_str),
        Some("Bearer pod-token-2")
    );
    drop(gw);
    // A bearer token is never sent in clear: a token file with an http:// JWKS URL
    // refuses to start.
    let err = Gateway::start_in(
        server_bin(),
        Arc::clone(&dir),
        Options {
            env: env("http://127.0.0.1:9/openid/v1/jwks".to_owned()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("in clear"), "{err}");
}

/// Proxies one request with `bearer`; the CONNECT status.
async fn connect_with(gw: &Gateway, bearer: &str) -> String {
    curl(&[
        "-x",
        &format!("http://{}", gw.proxy()),
        "--proxy-header",
        &format!("Proxy-Authorization: Bearer {bearer}"),
        "--cacert",
        gw.data_dir.join("ca.pem").to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_connect}",
        "https://api.github.com/reissue",
    ])
    .await
    .1
}

#[tokio::test]
async fn a_restarted_workload_re_exchanges_its_token_from_the_same_address() {
    let c = cluster().await;
    let gw = &c.gw;
    let sa = c
        .key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 600, "jti-restart"),
            None,
        )
        .unwrap();
    let (status, first) = exchange(gw, &sa, &[]).await;
    assert_eq!(status, 200, "{first}");
    let first = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(connect_with(gw, &first).await, "200");
    // The container restarts and reads the same projected token file: from the same
    // address it gets a new bearer, and the old one stops working.
    let (status, second) = exchange(gw, &sa, &[]).await;
    assert_eq!(status, 200, "{second}");
    let second = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(connect_with(gw, &second).await, "200");
    assert_eq!(connect_with(gw, &first).await, "407");
    let reissued = wait_events(gw, "workload_token_reissued", 1).await;
    assert_eq!(reissued[0]["details"]["jti"], "jti-restart");
    assert!(reissued[0]["details"]["previous_workload_id"].is_string());
    // From anywhere else it is a replay.
    let (status, body) = exchange(gw, &sa, &["--interface", "127.0.0.2"]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("replay"), "{body}");
    // What an admin revoked is not re-issued, even to the same address.
    gw.api()
        .post("/api/revocations", json!({"jti": "jti-restart"}))
        .await
        .unwrap();
    assert_eq!(connect_with(gw, &second).await, "407");
    let (status, body) = exchange(gw, &sa, &[]).await;
    assert_eq!(status, 400, "{body}");
    let denied = wait_events(gw, "workload_token_replay_denied", 2).await;
    assert!(
        denied.iter().any(|e| e["details"]["reason"] == "revoked"),
        "{denied:?}"
    );
}

#[tokio::test]
async fn downstreams_introspect_audience_tokens_and_hear_of_their_revocation() {
    let receiver = excalibur_test_support::receiver::Receiver::start(0)
        .await
        .unwrap();
    let key = ClusterKey::generate("key-1").unwrap();
    let jwks = JwksServer::start(&[&key]).await.unwrap();
    let gw = Gateway::start(
        server_bin(),
        Options {
            config_toml:
                "[webhooks]\nretry_base_ms = 100\ndangerous_allow_private_destinations = true\n"
                    .into(),
            env: vec![
                ("EXCALIBUR_K8S_ISSUER".to_owned(), ISSUER.to_owned()),
                ("EXCALIBUR_K8S_CLUSTER".to_owned(), "prod".to_owned()),
                ("EXCALIBUR_K8S_JWKS_URL".to_owned(), jwks.url()),
                (
                    "EXCALIBUR_TRUST_DOMAIN".to_owned(),
                    "corp.example".to_owned(),
                ),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post(
        "/api/webhooks",
        json!({"url": format!("http://{}/hook", receiver.addr), "event_types": ["workload_token_revoked"]}),
    )
    .await
    .unwrap();
    // The downstream's credential: it can introspect and nothing else.
    let client = api
        .post(
            "/api/tokens",
            json!({"name": "mcp-server", "role": "introspection"}),
        )
        .await
        .unwrap();
    let client = client["token"].as_str().unwrap().to_owned();
    let (status, _, _) = gw
        .api_as(Some(&client))
        .send("GET", "/api/workloads", None)
        .await
        .unwrap();
    assert_eq!(status, 403, "an introspection token reads nothing");
    let sa = key
        .sign(
            &sa_claims(ISSUER, AUDIENCE, "payments", "api", 600, "jti-intro"),
            None,
        )
        .unwrap();
    let body = json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": sa,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "audience": "https://mcp.example.com",
        "scope": "tools:search"
    })
    .to_string();
    let url = format!("{}/v1/exchange/token", gw.url());
    let (_, out, _) = curl(&[
        "-X",
        "POST",
        &url,
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
    ])
    .await;
    let minted: Value = serde_json::from_str(&out).unwrap();
    let jwt = minted["access_token"].as_str().unwrap().to_owned();
    let keys = gw.api_as(None).get("/.well-known/jwks.json").await.unwrap();
    let claims = verify_minted(&jwt, &keys, "https://mcp.example.com").unwrap();
    // The configured trust domain, and the WIMSE/Starfly claims.
    assert_eq!(claims["sub"], "spiffe://corp.example/k8s/prod/payments/api");
    assert_eq!(claims["td"], "corp.example");
    assert_eq!(claims["scope"], "tools:search");
    for c in ["iss", "aud", "exp", "iat", "jti"] {
        assert!(!claims[c].is_null(), "{c} in {claims}");
    }
    let introspect = |token: String, auth: Option<String>| {
        let url = format!("{}/v1/introspect", gw.url());
        async move {
            let mut args = vec![
                "-X".to_owned(),
                "POST".to_owned(),
                url,
                "--data-urlencode".to_owned(),
                format!("token={token}"),
                "-w".to_owned(),
                "\n%{http_code}".to_owned(),
            ];
            if let Some(a) = auth {
                args.extend(["-H".to_owned(), format!("Authorization: Bearer {a}")]);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let (_, out, _) = curl(&refs).await;
            let (body, code) = out.rsplit_once('\n').unwrap();
            (
                code.to_owned(),
                serde_json::from_str::<Value>(body).unwrap_or_default(),
            )
        }
    };
    // No client credential: 401.
    assert_eq!(introspect(jwt.clone(), None).await.0, "401");
    let (code, live) = introspect(jwt.clone(), Some(client.clone())).await;
    assert_eq!(code, "200");
    assert_eq!(live["active"], true, "{live}");
    assert_eq!(live["sub"], claims["sub"]);
    assert_eq!(live["jti"], claims["jti"]);
    assert_eq!(live["aud"], "https://mcp.example.com");
    // Something Excalibur never issued (a token it signed for nobody, garbage): inactive.
    let (_, forged) = introspect(format!("{jwt}x"), Some(client.clone())).await;
    assert_eq!(forged, json!({"active": false}));
    // The audience token is no proxy bearer.
    assert_eq!(connect_with(&gw, &jwt).await, "407");
    // Revoked by its own jti: inactive at once, and pushed to the webhook receiver as
    // CAEP session-revoked.
    api.post("/api/revocations", json!({"jti": claims["jti"]}))
        .await
        .unwrap();
    let (_, dead) = introspect(jwt.clone(), Some(client.clone())).await;
    assert_eq!(dead, json!({"active": false}));
    let started = std::time::Instant::now();
    let pushed = loop {
        let got: Vec<Value> = receiver
            .received()
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter(|v| v["event_type"] == "workload_token_revoked")
            .collect();
        if let Some(v) = got.first() {
            break v.clone();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "nothing pushed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let caep = &pushed["event"]["details"]["caep"];
    assert_eq!(
        caep["event_type"],
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
    );
    assert_eq!(caep["subject"]["format"], "opaque");
    assert!(caep["event_timestamp"].is_i64(), "{caep}");
}

/// Seed 003's transfer-funds policy for this schema (README "Policy"): the tenant comes
/// from the workload token's claims, as a Cedar tag.
pub(crate) const TENANT_POLICY: &str = r#"permit (principal, action == Action::"redeem", resource)
when {
  resource.name == "XCALIBUR_VAULT_KEY"
  && principal.hasTag("tenant_id") && principal.getTag("tenant_id") == "acme"
  && (principal is Workload || (principal is Human && principal.factors_completed.contains("Fido2")))
};"#;

#[tokio::test]
async fn claims_become_tags_a_tenant_policy_decides_and_delegation_names_the_actor() {
    let echo = Echo::start(&["api.github.com"]).await.unwrap();
    let gha_key = ClusterKey::generate("gha-1").unwrap();
    let gha = JwksServer::start(&[&gha_key]).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, &echo.ca_pem).unwrap();
    let config = format!(
        "[upstream]\nca_file = {ca_file:?}\nresolve = [\"api.github.com:443={}\"]\n\n\
         [[oidc]]\nname = \"gha\"\nissuer = \"https://token.actions.githubusercontent.com\"\naudience = \"excalibur\"\n\
         jwks_url = \"{}\"\nprincipal_claim = \"repository\"\nnamespace_claim = \"repository_owner\"\n\
         tags = {{ tenant_id = \"repository_owner\", environment = \"environment\" }}\n",
        echo.tls_addr,
        gha.url(),
    );
    let gw = Gateway::start_in(
        server_bin(),
        dir,
        Options {
            config_toml: config,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    for ns in ["acme", "globex"] {
        api.post(
            "/api/namespaces",
            json!({"name": ns, "allowed_domains": ["api.github.com"]}),
        )
        .await
        .unwrap();
    }
    api.post(
        "/api/providers",
        json!({"id": "bank", "hosts": ["api.github.com"]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/placeholders",
        json!({"placeholder": "XCALIBUR_VAULT_KEY", "real_value": REAL, "provider_id": "bank"}),
    )
    .await
    .unwrap();
    // No translation rule: the operator's policy is what permits.
    api.post(
        "/api/policies",
        json!({"id": "transfer-funds", "description": "seed 003", "policy": TENANT_POLICY}),
    )
    .await
    .unwrap();
    let now = excalibur_core::time::Timestamp::now().millis() / 1000;
    let token = |owner: &str, repo: &str, jti: &str| {
        gha_key
            .sign(
                &json!({"iss": "https://token.actions.githubusercontent.com", "aud": "excalibur",
                        "exp": now + 300, "iat": now, "sub": format!("repo:{repo}"), "repository": repo,
                        "repository_owner": owner, "environment": "production", "jti": jti}),
                None,
            )
            .unwrap()
    };
    let redeem = |bearer: String| {
        let gw = &gw;
        async move {
            curl(&[
                "-x",
                &format!("http://{}", gw.proxy()),
                "--proxy-header",
                &format!("Proxy-Authorization: Bearer {bearer}"),
                "--cacert",
                gw.data_dir.join("ca.pem").to_str().unwrap(),
                "-H",
                "Authorization: Bearer XCALIBUR_VAULT_KEY",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "https://api.github.com/transfer",
            ])
            .await
            .1
        }
    };
    let bearer = |body: Value| body["access_token"].as_str().unwrap().to_owned();
    // acme's workload: tagged tenant_id=acme, so the policy permits.
    let (status, acme) =
        exchange_scoped(&gw, &token("acme", "acme/app", "t-acme"), None, &[]).await;
    assert_eq!(status, 200, "{acme}");
    assert_eq!(redeem(bearer(acme)).await, "200");
    assert_eq!(
        echo.seen().last().unwrap().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    // globex's is refused, and nothing reaches the upstream.
    let seen = echo.seen().len();
    let (_, globex) =
        exchange_scoped(&gw, &token("globex", "globex/app", "t-globex"), None, &[]).await;
    assert_eq!(redeem(bearer(globex)).await, "403");
    assert_eq!(echo.seen().len(), seen);
    // The tags are listed with the workload.
    let workloads = api.get("/api/workloads").await.unwrap();
    let acme_row = workloads
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["principal"] == "oidc:gha/acme/app")
        .unwrap()
        .clone();
    assert_eq!(
        acme_row["details"]["tags"],
        json!({"environment": "production", "tenant_id": "acme"})
    );

    // Delegation (RFC 8693): acme's CI acts for acme/app; the actor is in the token
    // (`act`), in the audit event, and visible to Cedar as `principal.actor`.
    api.post(
        "/api/policies",
        json!({"id": "only-ci-acts", "description": "delegation only from CI",
               "policy": "forbid (principal, action == Action::\"redeem\", resource) when { principal.actor != \"\" && principal.actor != \"oidc:gha/acme/ci\" };"}),
    )
    .await
    .unwrap();
    let actor_args = |actor: String| {
        vec![
            "--data-urlencode".to_owned(),
            format!("actor_token={actor}"),
            "--data-urlencode".to_owned(),
            "actor_token_type=urn:ietf:params:oauth:token-type:jwt".to_owned(),
        ]
    };
    let ci = actor_args(token("acme", "acme/ci", "t-ci"));
    let refs: Vec<&str> = ci.iter().map(String::as_str).collect();
    let (status, delegated) =
        exchange_scoped(&gw, &token("acme", "acme/app", "t-acme-2"), None, &refs).await;
    assert_eq!(status, 200, "{delegated}");
    assert_eq!(redeem(bearer(delegated)).await, "200");
    let intruder = actor_args(token("acme", "acme/intruder", "t-x"));
    let refs: Vec<&str> = intruder.iter().map(String::as_str).collect();
    let (status, other) =
        exchange_scoped(&gw, &token("acme", "acme/app", "t-acme-3"), None, &refs).await;
    assert_eq!(status, 200, "{other}");
    assert_eq!(redeem(bearer(other)).await, "403");
    let issued = wait_events(&gw, "workload_token_issued", 3).await;
    assert!(
        issued
            .iter()
            .any(|e| e["details"]["act"]["principal"] == "oidc:gha/acme/ci"),
        "{issued:?}"
    );
    // An actor token of an unknown kind is refused.
    let bad = [
        "--data-urlencode",
        "actor_token=not-a-token",
        "--data-urlencode",
        "actor_token_type=urn:ietf:params:oauth:token-type:jwt",
    ];
    let (status, body) =
        exchange_scoped(&gw, &token("acme", "acme/app", "t-acme-4"), None, &bad).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("actor_token"), "{body}");
    // /v1: the audience token carries `act`.
    let v1 = json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": token("acme", "acme/app", "t-acme-5"),
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "actor_token": token("acme", "acme/ci", "t-ci-2"),
        "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "audience": "https://mcp.example.com"
    })
    .to_string();
    let url = format!("{}/v1/exchange/token", gw.url());
    let (_, out, _) = curl(&[
        "-X",
        "POST",
        &url,
        "-H",
        "Content-Type: application/json",
        "-d",
        &v1,
    ])
    .await;
    let minted: Value = serde_json::from_str(&out).unwrap();
    let keys = gw.api_as(None).get("/.well-known/jwks.json").await.unwrap();
    let claims = verify_minted(
        minted["access_token"].as_str().unwrap(),
        &keys,
        "https://mcp.example.com",
    )
    .unwrap();
    assert_eq!(claims["act"]["sub"], "spiffe://excalibur/oidc/gha/acme/ci");
    assert_eq!(claims["act"]["principal"], "oidc:gha/acme/ci");
}
