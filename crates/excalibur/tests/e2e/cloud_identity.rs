//! Issue 19 (inbound): cloud runtime credentials become principals. A GCP service
//! account's Google-signed ID token (`gcp-wif`) and an Azure managed identity's Entra ID
//! token (`azure-mi`), minted here with keys whose JWKS the test serves on 127.0.0.1,
//! are exchanged at `/api/oauth/token` (form; curl, as the README shows) and
//! `/v1/exchange/token` (JSON), under the same replay and TTL rules as the other
//! attestors; every claim the attestors check is also refused when wrong.

use std::sync::Arc;

use excalibur_test_support::cluster::{ClusterKey, JwksServer};
use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::server_bin;

const AUD: &str = "https://excalibur.test";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OID: &str = "9a3a2f5e-1111-4c2b-8d2e-6f0e5c1d2b3a";
const SA: &str = "ci-7@acme-prod.iam.gserviceaccount.com";
const GCP_TYPE: &str = "urn:starfly:token-type:gcp-wif";
const AZURE_TYPE: &str = "urn:starfly:token-type:azure-mi";

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// An ID token as the GCE metadata server issues it (`format=full`).
fn google_claims() -> Value {
    let t = now();
    json!({"iss": "https://accounts.google.com", "aud": AUD, "azp": "112233445566", "sub": "112233445566",
           "email": SA, "email_verified": true, "iat": t - 5, "exp": t + 3600,
           "google": {"compute_engine": {"project_id": "acme-prod", "project_number": 123456789,
                      "instance_id": "4242", "instance_name": "ci-runner-1", "zone": "us-east1-b"}}})
}

/// An access token as Azure IMDS issues it for a managed identity (v1 issuer).
fn entra_claims(uti: &str) -> Value {
    let t = now();
    json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "aud": "api://excalibur", "tid": TENANT,
           "oid": OID, "sub": OID, "appid": "5c4b7f0e-aaaa-bbbb-cccc-0123456789ab", "idtyp": "app",
           "xms_mirid": "/subscriptions/0000/resourcegroups/ci/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ci-runner",
           "iat": t - 5, "nbf": t - 5, "exp": t + 3600, "uti": uti, "ver": "1.0"})
}

async fn gateway(google: &JwksServer, entra: &JwksServer) -> Gateway {
    let config = format!(
        "[[gcp]]\naudience = \"{AUD}\"\nprojects = [\"acme-prod\"]\nservice_accounts = [\"ci-*@acme-prod.iam.gserviceaccount.com\"]\n\
         jwks_url = \"{}\"\ntags = {{ zone = \"google/compute_engine/zone\" }}\n\n\
         [[azure]]\ntenant = \"{TENANT}\"\naudience = \"api://excalibur\"\njwks_url = \"{}\"\n",
        google.url(),
        entra.url()
    );
    Gateway::start_in(
        server_bin(),
        Arc::new(tempfile::tempdir().unwrap()),
        Options {
            config_toml: config,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// The form exchange through curl: `(HTTP status, body)`.
async fn exchange(gw: &Gateway, token: &str, token_type: &str) -> (u16, Value) {
    exchange_from(gw, token, token_type, "127.0.0.1").await
}

/// [`exchange`] from another loopback source address.
async fn exchange_from(gw: &Gateway, token: &str, token_type: &str, source: &str) -> (u16, Value) {
    let (code, out, err) = crate::data_plane::curl(&[
        "--interface",
        source,
        "-w",
        "\n%{http_code}",
        "--data-urlencode",
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange",
        "--data-urlencode",
        &format!("subject_token={token}"),
        "--data-urlencode",
        &format!("subject_token_type={token_type}"),
        &format!("{}/api/oauth/token", gw.url()),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let (body, status) = out.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn gcp_and_azure_workload_tokens_become_principals() {
    let google_key = ClusterKey::generate("google-1").unwrap();
    let google = JwksServer::start(&[&google_key]).await.unwrap();
    let entra_key = ClusterKey::generate("entra-1").unwrap();
    let entra = JwksServer::start(&[&entra_key]).await.unwrap();
    let gw = gateway(&google, &entra).await;
    let api = gw.api();

    // GCP: exchanged, listed as gcp:<project>/<email>, attested by `gcp`.
    let token = google_key.sign(&google_claims(), None).unwrap();
    let (status, body) = exchange(&gw, &token, GCP_TYPE).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["access_token"].as_str().unwrap().starts_with("xcw_"),
        "{body}"
    );
    let first = body["access_token"].as_str().unwrap().to_owned();
    // The same token from another address is a replay; from the same one, a re-issue
    // that revokes the first bearer (the rules of every attestor).
    let (status, body) = exchange_from(&gw, &token, GCP_TYPE, "127.0.0.2").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "replay: {body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("replay"),
        "{body}"
    );
    let (status, body) = exchange(&gw, &token, GCP_TYPE).await;
    assert_eq!(status, 200, "re-issue: {body}");
    assert_ne!(body["access_token"].as_str().unwrap(), first);

    // Azure v1 token at the form endpoint, a v2 token at the JSON endpoint.
    let token = entra_key.sign(&entra_claims("uti-1"), None).unwrap();
    let (status, body) = exchange(&gw, &token, AZURE_TYPE).await;
    assert_eq!(status, 200, "{body}");
    let mut v2 = entra_claims("uti-2");
    v2["iss"] = json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0"));
    v2["azp"] = v2["appid"].clone();
    let (status, _, minted) = api
        .send(
            "POST",
            "/v1/exchange/token",
            Some(json!({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                        "subject_token": entra_key.sign(&v2, None).unwrap(),
                        "subject_token_type": AZURE_TYPE, "audience": "https://api.partner.example"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{minted}");
    let claims =
        excalibur_identity::attest::unverified_claims(minted["access_token"].as_str().unwrap())
            .unwrap();
    assert_eq!(
        claims["principal"],
        format!("azure:{TENANT}/{OID}"),
        "{claims}"
    );
    assert_eq!(claims["attestation"], "azure");

    let workloads = api.get("/api/workloads").await.unwrap();
    let row = |principal: &str| {
        workloads
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["principal"] == principal)
            .cloned()
            .unwrap_or_else(|| panic!("{principal} not in {workloads}"))
    };
    let gcp = row(&format!("gcp:acme-prod/{SA}"));
    assert_eq!(
        (gcp["attestation"].as_str(), gcp["namespace"].as_str()),
        (Some("gcp"), Some("acme-prod"))
    );
    assert_eq!(
        gcp["details"]["tags"]["zone"], "us-east1-b",
        "claims become Cedar tags: {gcp}"
    );
    let azure = row(&format!("azure:{TENANT}/{OID}"));
    assert_eq!(
        (azure["attestation"].as_str(), azure["namespace"].as_str()),
        (Some("azure"), Some(TENANT))
    );
    let attested = api
        .get("/api/audit?type=workload_attested&limit=100")
        .await
        .unwrap();
    let attestors: Vec<&str> = attested
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["attestor"].as_str().unwrap())
        .collect();
    assert!(
        attestors.contains(&"gcp") && attestors.contains(&"azure"),
        "{attested}"
    );
    let tagged = attested
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["attestor"] == "gcp")
        .unwrap();
    assert_eq!(tagged["details"]["service_account"], SA, "{tagged}");
}

#[tokio::test]
async fn cloud_tokens_failing_any_check_are_refused() {
    let google_key = ClusterKey::generate("google-1").unwrap();
    let google = JwksServer::start(&[&google_key]).await.unwrap();
    let entra_key = ClusterKey::generate("entra-1").unwrap();
    let entra = JwksServer::start(&[&entra_key]).await.unwrap();
    let stranger = ClusterKey::generate("google-1").unwrap();
    let gw = gateway(&google, &entra).await;

    let gcp_cases: Vec<(&str, Value, &ClusterKey)> = vec![
        (
            "email_verified false",
            json!({"email_verified": false}),
            &google_key,
        ),
        (
            "azp of another client",
            json!({"azp": "999-user-oauth-client"}),
            &google_key,
        ),
        (
            "another project",
            json!({"email": "ci-7@evil-prod.iam.gserviceaccount.com"}),
            &google_key,
        ),
        (
            "an account the glob does not admit",
            json!({"email": "admin@acme-prod.iam.gserviceaccount.com"}),
            &google_key,
        ),
        (
            "another audience",
            json!({"aud": "https://elsewhere.example"}),
            &google_key,
        ),
        (
            "another issuer",
            json!({"iss": "https://evil.example"}),
            &google_key,
        ),
        ("expired", json!({"exp": now() - 600}), &google_key),
        (
            "signed by another key with the same kid",
            json!({}),
            &stranger,
        ),
    ];
    for (why, patch, key) in gcp_cases {
        let mut claims = google_claims();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let (status, body) = exchange(&gw, &key.sign(&claims, None).unwrap(), GCP_TYPE).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{why}: {body}"
        );
    }
    // A Google token is not a generic JWT here (no [[oidc]] trusts accounts.google.com),
    // and an Azure token is not a GCP one.
    let good = google_key.sign(&google_claims(), None).unwrap();
    let (status, _) = exchange(&gw, &good, "urn:ietf:params:oauth:token-type:jwt").await;
    assert_eq!(status, 400);
    let azure_token = entra_key.sign(&entra_claims("uti-x"), None).unwrap();
    let (status, _) = exchange(&gw, &azure_token, GCP_TYPE).await;
    assert_eq!(status, 400);

    let azure_cases: Vec<(&str, Value)> = vec![
        (
            "another tenant",
            json!({"tid": "00000000-0000-0000-0000-000000000000"}),
        ),
        (
            "an issuer of another tenant",
            json!({"iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"}),
        ),
        ("no object id", json!({"oid": null})),
        (
            "another resource",
            json!({"aud": "https://management.azure.com/"}),
        ),
        ("expired", json!({"exp": now() - 600})),
    ];
    for (i, (why, patch)) in azure_cases.into_iter().enumerate() {
        let mut claims = entra_claims(&format!("uti-bad-{i}"));
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let (status, body) =
            exchange(&gw, &entra_key.sign(&claims, None).unwrap(), AZURE_TYPE).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{why}: {body}"
        );
    }
    // Nothing of the above became a workload.
    assert_eq!(gw.api().get("/api/workloads").await.unwrap(), json!([]));
}

/// An RSA key as Google and Entra ID sign with (RS256), and its public JWK.
fn rsa_key(kid: &str) -> (jsonwebtoken::EncodingKey, Value) {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let der = key.public_key_raw();
    let mut at = 0usize;
    let read_len = |d: &[u8], at: &mut usize| -> usize {
        let first = d[*at];
        *at += 1;
        if first < 0x80 {
            return usize::from(first);
        }
        let n = usize::from(first & 0x7f);
        let mut len = 0usize;
        for _ in 0..n {
            len = (len << 8) | usize::from(d[*at]);
            *at += 1;
        }
        len
    };
    assert_eq!(der[at], 0x30);
    at += 1;
    read_len(der, &mut at);
    let mut ints = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02);
        at += 1;
        let len = read_len(der, &mut at);
        let mut v = &der[at..at + len];
        while v.first() == Some(&0) {
            v = &v[1..];
        }
        ints.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v));
        at += len;
    }
    let jwk =
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": ints[0], "e": ints[1]});
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap();
    (encoding, jwk)
}

fn rs256(key: &jsonwebtoken::EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Google and Entra ID sign with RS256: tokens signed like theirs, with keys published
/// the way their JWKS endpoints publish them, are accepted.
#[tokio::test]
async fn rs256_tokens_as_google_and_entra_sign_them_are_accepted() {
    let (google_key, google_jwk) = rsa_key("google-rsa");
    let (entra_key, entra_jwk) = rsa_key("entra-rsa");
    let google = JwksServer::start(&[]).await.unwrap();
    google.publish_raw(&json!({"keys": [google_jwk]}));
    let entra = JwksServer::start(&[]).await.unwrap();
    entra.publish_raw(&json!({"keys": [entra_jwk]}));
    let gw = gateway(&google, &entra).await;
    let (status, body) = exchange(
        &gw,
        &rs256(&google_key, "google-rsa", &google_claims()),
        GCP_TYPE,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = exchange(
        &gw,
        &rs256(&entra_key, "entra-rsa", &entra_claims("uti-rsa")),
        AZURE_TYPE,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A moto server (a real STS API that issues credentials and checks SigV4 signatures
/// once its first `setup` actions are done), on a free loopback port.
struct Moto {
    child: tokio::process::Child,
    endpoint: String,
}

impl Moto {
    async fn start(setup: u32) -> Self {
        let venv =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aws-venv/bin");
        assert!(
            venv.join("moto_server").exists(),
            "moto_server missing: run ./test.sh (it installs moto[server] in target/aws-venv)"
        );
        let port = excalibur_test_support::free_port().unwrap().port();
        let child = tokio::process::Command::new(venv.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", setup.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}/"),
        }
    }
}

/// Issue 19: `aws-sts`. A workload holding credentials moto issued for role `ci-runner`
/// signs `sts:GetCallerIdentity` with botocore (bound to this server's id) without
/// sending it; Excalibur checks the envelope, sends it to moto, and names the principal
/// after the ARN moto answers with. A tampered signature (moto refuses it), a request
/// signed for another server or without the server id signed, an expired one, a role
/// the config does not admit, a replay from another address and a request naming
/// another URL are refused; the other URL is never contacted.
#[tokio::test]
async fn signed_aws_caller_identity_requests_become_principals() {
    // create_role x2 and assume_role x2 run unauthenticated; then moto checks signatures.
    let mut moto = Moto::start(4).await;
    let tripwire = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trip_url = format!("http://{}/", tripwire.local_addr().unwrap());
    let contacted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&contacted);
    tokio::spawn(async move {
        while let Ok((_conn, _)) = tripwire.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers/aws_sts_envelopes.py");
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aws-venv/bin/python");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([moto.endpoint.as_str(), "excalibur.test", trip_url.as_str()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens: Value = serde_json::from_slice(&out.stdout).unwrap();

    let config = format!(
        "[[aws]]\naccounts = [\"123456789012\"]\nrole_patterns = [\"ci-*\"]\nserver_id = \"excalibur.test\"\nsts_endpoint = \"{}\"\n",
        moto.endpoint
    );
    let gw = Gateway::start_in(
        server_bin(),
        Arc::new(tempfile::tempdir().unwrap()),
        Options {
            config_toml: config,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    const AWS_TYPE: &str = "urn:starfly:token-type:aws-sts";
    let good = tokens["good"].as_str().unwrap();
    let (status, body) = exchange(&gw, good, AWS_TYPE).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("xcw_"));
    // No longer than the signed request's 15 minutes.
    assert!(body["expires_in"].as_i64().unwrap() <= 15 * 60, "{body}");
    let (status, body) = exchange_from(&gw, good, AWS_TYPE, "127.0.0.2").await;
    assert_eq!(status, 400, "replay: {body}");
    assert!(body.to_string().contains("replay"), "{body}");

    for (name, why) in [
        ("tampered", "STS refused"),
        ("other_server", "another server"),
        ("server_id_unsigned", "must be signed"),
        ("expired", "expired"),
        ("admin", "role `admin` is not admitted"),
        ("other_url", "no trusted issuer"),
    ] {
        let (status, body) = exchange(&gw, tokens[name].as_str().unwrap(), AWS_TYPE).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{name}: {body}"
        );
        assert!(
            body["error_description"].as_str().unwrap().contains(why),
            "{name}: {body}"
        );
    }
    assert_eq!(
        contacted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "another URL was contacted"
    );

    let workloads = gw.api().get("/api/workloads").await.unwrap();
    let row = &workloads.as_array().unwrap()[0];
    assert_eq!(
        row["principal"], "aws:123456789012/ci-runner",
        "{workloads}"
    );
    assert_eq!(
        (row["attestation"].as_str(), row["namespace"].as_str()),
        (Some("aws"), Some("123456789012"))
    );
    let attested = gw
        .api()
        .get("/api/audit?type=workload_attested")
        .await
        .unwrap();
    assert_eq!(attested[0]["details"]["attestor"], "aws");
    assert_eq!(attested[0]["details"]["session"], "build-42");
    assert_eq!(workloads.as_array().unwrap().len(), 1, "{workloads}");
    let _ = moto.child.kill().await;
}
