//! Issue: JWT-bearer crypto mediation. curl, holding no credential, goes through the
//! running binary to an Authlib authorization server (RFC 7523 grant) and resource server
//! on 127.0.0.1; the proxy signs the assertion, exchanges it, caches and injects the token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::data_plane::{curl, proxy_url, wait_events};
use crate::server_bin;

const AUTH: &str = "auth.example";
const API: &str = "api.example";
const AUDIENCE: &str = "https://auth.example/token";

struct Setup {
    gw: Gateway,
    peer: tokio::process::Child,
    peer_addr: std::net::SocketAddr,
    peer_ca: PathBuf,
    token: String,
    mapping: String,
    key_pem: String,
    _dir: Arc<tempfile::TempDir>,
}

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aws-venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run ./test.sh (it creates target/aws-venv with authlib and flask)",
        p.display()
    );
    p
}

fn ec_key() -> (String, String) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    (kp.serialize_pem(), kp.public_key_pem())
}

fn mapping_body(key_pem: &str, audience: &str, id: Option<&str>) -> Value {
    json!({"id": id, "provider_id": "partner", "token_host": AUTH, "token_path": "/token",
           "resource_host": API, "path_prefix": "/api", "issuer": "excalibur-client",
           "subject": "excalibur-client", "audience": audience, "real_private_pem": key_pem})
}

async fn setup(expires_in: u64) -> Setup {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (ca, chain, leaf_key) = excalibur_test_support::tls_files(&[AUTH, API]).unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("peer-ca.pem"), &ca).unwrap();
    std::fs::write(p("peer-cert.pem"), &chain).unwrap();
    std::fs::write(p("peer-key.pem"), &leaf_key).unwrap();
    let (key_pem, public_pem) = ec_key();
    std::fs::write(p("client-pub.pem"), &public_pem).unwrap();
    let peer_addr = excalibur_test_support::free_port().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/jwt_bearer_as.py");
    let peer = tokio::process::Command::new(python())
        .arg(&script)
        .arg(peer_addr.port().to_string())
        .args([p("peer-cert.pem"), p("peer-key.pem"), p("client-pub.pem")])
        .arg(AUDIENCE)
        .arg(expires_in.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(peer_addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the Authlib server did not start");
    let config = format!(
        "[upstream]\nca_file = {:?}\nresolve = [\"{AUTH}:443={peer_addr}\", \"{API}:443={peer_addr}\"]\n",
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
        json!({"id": "partner", "hosts": [AUTH, API]}),
    )
    .await
    .unwrap();
    let m = api
        .post(
            "/api/crypto/jwt-bearer/mappings",
            mapping_body(&key_pem, AUDIENCE, None),
        )
        .await
        .unwrap();
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "jwtb_*", "hosts": [API], "principal": "service:ci-runner"}),
    )
    .await
    .unwrap();
    let (_, token) = crate::data_plane::credential(&gw, "ci-runner", "127.0.0.0/8", &[API]).await;
    Setup {
        gw,
        peer,
        peer_addr,
        peer_ca: p("peer-ca.pem"),
        token,
        mapping: m["id"].as_str().unwrap().to_owned(),
        key_pem,
        _dir: dir,
    }
}

/// GET through the proxy with no credential; returns (status, body).
async fn call(s: &Setup, path: &str) -> (u16, String) {
    let (code, out, err) = curl(&[
        "-x",
        &proxy_url(&s.gw),
        "--proxy-user",
        &format!("ci:{}", s.token),
        "--cacert",
        s.gw.data_dir.join("ca.pem").to_str().unwrap(),
        "-w",
        "\n%{http_code}",
        &format!("https://{API}{path}"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let (body, status) = out.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

async fn peer(s: &Setup, method: &str, path: &str) -> Value {
    let (code, out, err) = curl(&[
        "-X",
        method,
        "--cacert",
        s.peer_ca.to_str().unwrap(),
        "--connect-to",
        &format!("{AUTH}:443:{}", s.peer_addr),
        &format!("https://{AUTH}{path}"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[tokio::test]
async fn seed_001_jwt_bearer_exchange_cache_single_flight_and_scrub() {
    let mut s = setup(3600).await;
    let (status, body) = call(&s, "/api/installations").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ok"], true);
    // The resource server echoed the real token; the workload sees the mapping id instead.
    assert_eq!(v["authorization"], format!("Bearer {}", s.mapping));
    assert_eq!(peer(&s, "GET", "/_stats").await["issued"], 1);

    // Cached: more calls, no new exchange.
    for _ in 0..3 {
        assert_eq!(call(&s, "/api/repos").await.0, 200);
    }
    assert_eq!(peer(&s, "GET", "/_stats").await["token_requests"], 1);

    // A rotation (same key material re-uploaded, so the server still knows it) starts a
    // new cache entry; 8 concurrent callers then share one exchange.
    s.gw.api()
        .post(
            "/api/crypto/jwt-bearer/mappings",
            mapping_body(&format!("{}\n", s.key_pem), AUDIENCE, Some(&s.mapping)),
        )
        .await
        .unwrap();
    let calls: Vec<_> = (0..8).map(|_| call(&s, "/api/concurrent")).collect();
    for (status, body) in join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        peer(&s, "GET", "/_stats").await["token_requests"],
        2,
        "one exchange for 8 concurrent calls"
    );

    let signed = wait_events(&s.gw, "jwt_bearer_signed", 2).await;
    assert_eq!(signed[0]["details"]["issuer"], "excalibur-client");
    assert_eq!(signed[0]["details"]["audience"], AUDIENCE);
    assert!(signed[0]["details"]["kid"].is_string());
    let exchanges = wait_events(&s.gw, "jwt_bearer_exchange", 2).await;
    assert_eq!(
        exchanges[0]["details"]["token_endpoint"],
        format!("https://{AUTH}/token")
    );
    assert_eq!(exchanges[0]["details"]["status"], 200);
    let created = wait_events(&s.gw, "jwt_bearer_mapping_created", 1).await;
    assert_eq!(created[0]["details"]["provider_id"], "partner");
    let listed =
        s.gw.api()
            .get("/api/crypto/jwt-bearer/mappings")
            .await
            .unwrap();
    assert_eq!(listed[0]["token_host"], AUTH);
    assert_eq!(listed[0]["resource_host"], API);
    assert_eq!(listed[0]["alg"], "ES256");
    assert!(!listed.to_string().contains("PRIVATE KEY"));
    let _ = s.peer.kill().await;
}

/// Polls every future to completion on this task (they borrow the setup).
async fn join_all<F: std::future::Future<Output = (u16, String)>>(
    fs: Vec<F>,
) -> Vec<(u16, String)> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<(u16, String)>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn bad_assertions_fail_and_stale_tokens_are_never_injected() {
    let mut s = setup(3).await;
    assert_eq!(call(&s, "/api/a").await.0, 200);

    // IdP outage: within the token's life the cached token is used; once it has expired,
    // the proxy refuses (502) instead of injecting it.
    peer(&s, "POST", "/_outage/on").await;
    assert_eq!(call(&s, "/api/b").await.0, 200, "the token is still valid");
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let (status, body) = call(&s, "/api/c").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("token_exchange_failed"), "{body}");
    peer(&s, "POST", "/_outage/off").await;
    assert_eq!(
        call(&s, "/api/d").await.0,
        200,
        "recovers once the IdP is back"
    );

    // Wrong audience, and a key the server does not know: the AS refuses the assertion,
    // the workload gets 502, nothing is cached.
    let api = s.gw.api();
    api.post(
        "/api/crypto/jwt-bearer/mappings",
        mapping_body(&s.key_pem, "https://someone-else/token", Some(&s.mapping)),
    )
    .await
    .unwrap();
    let (status, _) = call(&s, "/api/e").await;
    assert_eq!(status, 502);
    let (other_key, _) = ec_key();
    api.post(
        "/api/crypto/jwt-bearer/mappings",
        mapping_body(&other_key, AUDIENCE, Some(&s.mapping)),
    )
    .await
    .unwrap();
    let (status, _) = call(&s, "/api/f").await;
    assert_eq!(status, 502);
    let refused = wait_events(&s.gw, "jwt_bearer_exchange", 5).await;
    let statuses: Vec<&Value> = refused.iter().map(|e| &e["details"]["status"]).collect();
    assert!(
        statuses.iter().filter(|v| **v == &json!(400)).count() >= 2,
        "{statuses:?}"
    );

    // Invalid keys and hosts outside the provider are refused at the API.
    let (st, _, _) = api
        .send(
            "POST",
            "/api/crypto/jwt-bearer/mappings",
            Some(mapping_body(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                AUDIENCE,
                None,
            )),
        )
        .await
        .unwrap();
    assert_eq!(st, 422);
    let mut github = mapping_body(&s.key_pem, AUDIENCE, None);
    github["preset"] = json!("github_app");
    github.as_object_mut().unwrap().remove("token_path");
    let (st, _, v) = api
        .send("POST", "/api/crypto/jwt-bearer/mappings", Some(github))
        .await
        .unwrap();
    assert_eq!(st, 422, "github_app needs its installation token path: {v}");
    let mut outside = mapping_body(&s.key_pem, AUDIENCE, None);
    outside["resource_host"] = json!("elsewhere.example");
    let (st, _, _) = api
        .send("POST", "/api/crypto/jwt-bearer/mappings", Some(outside))
        .await
        .unwrap();
    assert_eq!(st, 422);

    // A principal without a rule naming the mapping gets 403, never a token.
    let (_, other) = crate::data_plane::credential(&s.gw, "other", "127.0.0.0/8", &[API]).await;
    let (code, out, _) = curl(&[
        "-x",
        &proxy_url(&s.gw),
        "--proxy-user",
        &format!("x:{other}"),
        "--cacert",
        s.gw.data_dir.join("ca.pem").to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://{API}/api/x"),
    ])
    .await;
    assert_eq!((code, out.as_str()), (0, "403"));
    let _ = s.peer.kill().await;
}

/// Issue 19 (outbound, GCP and Azure): the federated presets store no key. Excalibur's
/// own issuer signs the assertion (verifiable at its JWKS), Azure AD's client-credentials
/// endpoint and GCP STS's token exchange (stand-ins written from their documented shapes)
/// answer with access tokens, and those tokens reach the resource hosts, never the
/// workload.
#[tokio::test]
async fn azure_and_gcp_federated_presets_use_excalibur_signed_assertions() {
    use excalibur_test_support::upstream::Echo;
    const LOGIN: &str = "login.microsoftonline.com";
    const GSTS: &str = "sts.googleapis.com";
    const AZ_API: &str = "management.azure.com";
    const G_API: &str = "storage.googleapis.com";
    const POOL: &str = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/excalibur/providers/excalibur";
    let echo = Echo::start(&[AZ_API, G_API]).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (ca, chain, key) = excalibur_test_support::tls_files(&[LOGIN, GSTS]).unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("ep-cert.pem"), &chain).unwrap();
    std::fs::write(p("ep-key.pem"), &key).unwrap();
    std::fs::write(p("roots.pem"), format!("{}\n{ca}", echo.ca_pem)).unwrap();
    let log = p("endpoints.log");
    let port = excalibur_test_support::free_port().unwrap().port();
    let mut endpoints = tokio::process::Command::new(python())
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/peers/federation_token_endpoints.py"),
        )
        .arg(port.to_string())
        .args([p("ep-cert.pem"), p("ep-key.pem"), log.clone()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut ready = String::new();
    tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(endpoints.stdout.take().unwrap()),
        &mut ready,
    )
    .await
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let t = echo.tls_addr;
    let config = format!(
        "[upstream]\nca_file = {:?}\nresolve = [\"{LOGIN}:443=127.0.0.1:{port}\", \"{GSTS}:443=127.0.0.1:{port}\", \"{AZ_API}:443={t}\", \"{G_API}:443={t}\"]\n",
        p("roots.pem")
    );
    let gw = Gateway::start_in(
        server_bin(),
        Arc::clone(&dir),
        Options {
            config_toml: config,
            env: vec![(
                "EXCALIBUR_ISSUER_URL".into(),
                "https://excalibur.test".into(),
            )],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "azure", "hosts": [LOGIN, AZ_API]}),
    )
    .await
    .unwrap();
    api.post(
        "/api/providers",
        json!({"id": "gcp", "hosts": [GSTS, G_API]}),
    )
    .await
    .unwrap();
    let azure = api
        .post(
            "/api/crypto/jwt-bearer/mappings",
            json!({"provider_id": "azure", "preset": "azure_federated", "token_host": LOGIN,
                   "token_path": "/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token",
                   "resource_host": AZ_API, "client_id": "app-registration-1",
                   "scope": "https://management.azure.com/.default"}),
        )
        .await
        .unwrap();
    let gcp = api
        .post(
            "/api/crypto/jwt-bearer/mappings",
            json!({"provider_id": "gcp", "preset": "gcp_workload_identity", "token_host": GSTS,
                   "resource_host": G_API, "audience": POOL}),
        )
        .await
        .unwrap();
    // A federated preset takes no key.
    let (status, _, _) = api
        .send(
            "POST",
            "/api/crypto/jwt-bearer/mappings",
            Some(
                json!({"provider_id": "gcp", "preset": "gcp_workload_identity", "token_host": GSTS,
                        "resource_host": G_API, "audience": POOL, "issuer": "me",
                        "real_private_pem": ec_key().0}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status, 422);
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "jwtb_*", "hosts": [AZ_API, G_API], "principal": "service:ci-runner"}),
    )
    .await
    .unwrap();
    let (_, token) =
        crate::data_plane::credential(&gw, "ci-runner", "127.0.0.0/8", &[AZ_API, G_API]).await;
    for (host, path) in [
        (AZ_API, "/subscriptions?api-version=2022-12-01"),
        (G_API, "/storage/v1/b?project=acme"),
    ] {
        let (code, out, err) = curl(&[
            "-x",
            &proxy_url(&gw),
            "--proxy-user",
            &format!("ci:{token}"),
            "--cacert",
            gw.data_dir.join("ca.pem").to_str().unwrap(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://{host}{path}"),
        ])
        .await;
        assert_eq!((code, out.as_str()), (0, "200"), "{host}: {err}");
    }
    let seen = echo.seen();
    // (The echo records the path; each host got its own.)
    let auth = |path: &str| {
        seen.iter()
            .find(|r| r.path.starts_with(path))
            .and_then(|r| r.header("authorization"))
            .map(str::to_owned)
    };
    assert_eq!(
        auth("/subscriptions").as_deref(),
        Some("Bearer eyAzureAccessTokenFromFederation")
    );
    assert_eq!(
        auth("/storage/v1/b").as_deref(),
        Some("Bearer ya29.gcpFederatedAccessToken")
    );

    // Each assertion verifies against Excalibur's published keys, with the audience the
    // cloud expects.
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(api.get("/.well-known/jwks.json").await.unwrap()).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(calls.len(), 2, "{text}");
    for (call, field, audience, mapping) in [
        (
            &calls[0],
            "client_assertion",
            "api://AzureADTokenExchange",
            &azure,
        ),
        (&calls[1], "subject_token", POOL, &gcp),
    ] {
        let jwt = call["form"][field].as_str().unwrap();
        let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&[audience]);
        v.set_issuer(&["https://excalibur.test"]);
        let claims = jsonwebtoken::decode::<Value>(jwt, &key, &v).unwrap().claims;
        assert_eq!(
            claims["sub"],
            format!("jwt-bearer:{}", mapping["id"].as_str().unwrap())
        );
    }
    let _ = endpoints.kill().await;
}
