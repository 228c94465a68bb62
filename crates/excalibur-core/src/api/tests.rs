//! DTO tests: secrets stay out of `Debug`.

use super::*;

#[test]
fn debug_never_shows_secret_values() {
    let req = UpsertPlaceholder {
        placeholder: "XCALIBUR_X_TOKEN".into(),
        real_value: "sk_live_SECRET".into(),
        provider_id: "p".into(),
        route_family: None,
        expires_at: None,
    };
    let hook = CreateWebhook {
        url: "https://h".into(),
        event_types: vec![],
        secret: Some("whsec_SECRET".into()),
    };
    for text in [format!("{req:?}"), format!("{hook:?}")] {
        assert!(!text.contains("SECRET"), "{text}");
    }
}

/// Every request DTO with a secret field, read from JSON as the API reads it: its
/// `Debug` shows none of the secrets (the field type redacts, not a hand-written impl).
#[test]
fn request_dtos_redact_their_secrets_structurally() {
    fn debug_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(v: serde_json::Value) -> String {
        format!("{:?}", serde_json::from_value::<T>(v).unwrap())
    }
    let texts = [
        debug_of::<CreateSigv4Mapping>(serde_json::json!({
            "provider_id": "aws", "target_host": "s3.example", "region": "us-east-1", "service": "s3",
            "real_access_key_id": "AKIAEXAMPLE", "real_secret_access_key": "SECRET_sak", "real_session_token": "SECRET_st"})),
        debug_of::<CreateJwtBearerMapping>(serde_json::json!({
            "provider_id": "p", "token_host": "t.example", "resource_host": "r.example", "issuer": "i",
            "real_private_pem": "-----BEGIN PRIVATE KEY-----SECRET"})),
        debug_of::<CreateMtlsMapping>(serde_json::json!({
            "provider_id": "p", "target_authority": "m.example:443",
            "real_client_cert_pem": "cert", "real_client_key_pem": "-----BEGIN PRIVATE KEY-----SECRET"})),
        debug_of::<CreateOauthRefreshMapping>(serde_json::json!({
            "provider_id": "p", "token_host": "t.example", "resource_host": "r.example", "client_id": "c",
            "real_client_secret": "SECRET_cs", "real_refresh_token": "SECRET_rt"})),
        debug_of::<CreateSshRoute>(serde_json::json!({
            "user": "u", "source_network": "10.0.0.0/8", "target_host": "h", "target_user": "t",
            "target_host_key": "ssh-ed25519 AAAA", "target_private_key": "-----BEGIN OPENSSH PRIVATE KEY-----SECRET"})),
        format!(
            "{:?}",
            Sigv4Keys {
                access_key_id: "AKIAEXAMPLE".into(),
                secret_access_key: "SECRET_sak".into(),
                session_token: Some("SECRET_st".into()),
            }
        ),
    ];
    for text in texts {
        assert!(!text.contains("SECRET"), "{text}");
    }
    // The sealed payload still carries the values (it is sealed, never answered).
    let keys = Sigv4Keys {
        access_key_id: "AKIAEXAMPLE".into(),
        secret_access_key: "SECRET_sak".into(),
        session_token: None,
    };
    let sealed = serde_json::to_string(&keys).unwrap();
    assert!(sealed.contains("SECRET_sak"), "{sealed}");
    let back: Sigv4Keys = serde_json::from_str(&sealed).unwrap();
    assert_eq!(back.secret_access_key.expose(), "SECRET_sak");
}
