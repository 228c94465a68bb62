//! Issue 22: the five crypto families behind one API seam answer alike. For each:
//! create 201 (listed, no secret in the answer or the list), replace by id 200, an
//! unknown id 404, an unknown provider 422 naming it, an unknown field 400, delete 204
//! and gone from the list, each with its audit event.

use serde_json::{Value, json};

use crate::gateway;

fn families(cert: &str, key: &str, jwt_key: &str) -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "sigv4",
            json!({"provider_id": "fam", "target_host": "s3.fam.example", "region": "us-east-1",
                   "service": "s3", "real_access_key_id": "AKIAFAMILYSEAM000001",
                   "real_secret_access_key": "SEAM_SECRET_sigv4"}),
            "SEAM_SECRET_sigv4",
        ),
        (
            "jwt-bearer",
            json!({"provider_id": "fam", "token_host": "auth.fam.example", "resource_host": "api.fam.example",
                   "issuer": "seam", "subject": "seam", "audience": "https://auth.fam.example/token",
                   "real_private_pem": jwt_key}),
            "PRIVATE KEY",
        ),
        (
            "mtls",
            json!({"provider_id": "fam", "target_authority": "mtls.fam.example:443",
                   "real_client_cert_pem": cert, "real_client_key_pem": key}),
            "PRIVATE KEY",
        ),
        (
            "dpop",
            json!({"provider_id": "fam", "token_host": "auth.fam.example", "resource_host": "api.fam.example"}),
            "PRIVATE KEY",
        ),
        (
            "oauth-refresh",
            json!({"provider_id": "fam", "token_host": "auth.fam.example", "resource_host": "api.fam.example",
                   "path_prefix": "/", "client_id": "seam", "real_client_secret": "SEAM_SECRET_client",
                   "real_refresh_token": "SEAM_SECRET_refresh"}),
            "SEAM_SECRET",
        ),
    ]
}

#[tokio::test]
async fn every_crypto_family_answers_create_replace_and_delete_alike() {
    let gw = gateway().await;
    let api = gw.api();
    api.post(
        "/api/providers",
        json!({"id": "fam", "hosts": ["s3.fam.example", "auth.fam.example", "api.fam.example", "mtls.fam.example"]}),
    )
    .await
    .unwrap();
    let (_, cert, key) = excalibur_test_support::tls_files(&["seam-client"]).unwrap();
    let jwt_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    for (family, body, secret) in families(&cert, &key, &jwt_key) {
        let base = format!("/api/crypto/{family}/mappings");
        let (status, _, created) = api.send("POST", &base, Some(body.clone())).await.unwrap();
        assert_eq!(status, 201, "{family}: {created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let listed = api.get(&base).await.unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1, "{family}: {listed}");
        assert_eq!(listed[0]["id"], id.as_str());
        for shown in [created.to_string(), listed.to_string()] {
            assert!(
                !shown.contains(secret),
                "{family} shows its secret: {shown}"
            );
        }

        let mut replace = body.clone();
        replace["id"] = json!(id);
        let (status, _, replaced) = api.send("POST", &base, Some(replace)).await.unwrap();
        assert_eq!(
            (status, replaced["id"].as_str()),
            (200, Some(id.as_str())),
            "{family}: {replaced}"
        );

        let mut unknown = body.clone();
        unknown["id"] = json!("not_one_of_ours");
        let (status, ct, problem) = api.send("POST", &base, Some(unknown)).await.unwrap();
        assert_eq!(status, 404, "{family}: {problem}");
        assert!(ct.starts_with("application/problem+json"));

        let mut no_provider = body.clone();
        no_provider["provider_id"] = json!("nope");
        let (status, _, problem) = api.send("POST", &base, Some(no_provider)).await.unwrap();
        assert_eq!(status, 422, "{family}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("`nope`"),
            "{family}: {problem}"
        );

        let mut extra = body.clone();
        extra["surprise"] = json!(true);
        let (status, _, problem) = api.send("POST", &base, Some(extra)).await.unwrap();
        assert_eq!(status, 400, "{family}: {problem}");

        let (status, _, _) = api
            .send("DELETE", &format!("{base}/{id}"), None)
            .await
            .unwrap();
        assert_eq!(status, 204, "{family}");
        assert_eq!(api.get(&base).await.unwrap(), json!([]), "{family}");
    }
    let events = api
        .get("/api/audit?type=*_mapping_*&limit=1000")
        .await
        .unwrap();
    let mut types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    let mut want: Vec<String> = ["sigv4", "jwt_bearer", "mtls", "dpop", "oauth_refresh"]
        .iter()
        .flat_map(|f| ["created", "updated", "deleted"].map(|v| format!("{f}_mapping_{v}")))
        .collect();
    want.sort_unstable();
    assert_eq!(types, want, "one event per create, replace and delete");
}
