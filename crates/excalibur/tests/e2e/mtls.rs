//! Issue: upstream mTLS mediation. curl goes through the running binary to nginx with
//! `ssl_verify_client on`; the proxy presents the client certificate it holds, only to
//! the mapped authority.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use excalibur_test_support::{Gateway, Options};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::json;

use crate::data_plane::{curl, proxy_url, wait_events};
use crate::server_bin;

const PARTNER: &str = "partner.example";
const OTHER: &str = "other.example";

/// A client CA and two client certificates it issued: `(ca_pem, [(cert_pem, key_pem); 2])`.
fn client_pki() -> (String, Vec<(String, String)>) {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "Partner Client CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaves = ["excalibur-client", "excalibur-client-2"]
        .iter()
        .map(|cn| {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, *cn);
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let cert = p.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        })
        .collect();
    (ca_cert.pem(), leaves)
}

struct Nginx {
    child: tokio::process::Child,
    verify_on: std::net::SocketAddr,
    optional: std::net::SocketAddr,
}

async fn nginx(dir: &Path, client_ca: &str) -> Nginx {
    let (_, chain, key) = excalibur_test_support::tls_files(&[PARTNER, OTHER]).unwrap();
    let p = |n: &str| dir.join(n);
    std::fs::write(p("nginx-cert.pem"), &chain).unwrap();
    std::fs::write(p("nginx-key.pem"), &key).unwrap();
    std::fs::write(p("client-ca.pem"), client_ca).unwrap();
    std::fs::create_dir_all(p("nginx-tmp")).unwrap();
    let (a, b) = (
        excalibur_test_support::free_port().unwrap(),
        excalibur_test_support::free_port().unwrap(),
    );
    let tls = format!(
        "ssl_certificate {}; ssl_certificate_key {}; ssl_client_certificate {};",
        p("nginx-cert.pem").display(),
        p("nginx-key.pem").display(),
        p("client-ca.pem").display()
    );
    let tmp = p("nginx-tmp").display().to_string();
    let conf = format!(
        "daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;\n\
           server {{ listen {a} ssl; server_name {PARTNER}; {tls} ssl_verify_client on;\n\
             location / {{ return 200 \"verified=$ssl_client_verify dn=$ssl_client_s_dn\\n\"; }} }}\n\
           server {{ listen {b} ssl; server_name {OTHER}; {tls} ssl_verify_client optional;\n\
             location / {{ return 200 \"verified=$ssl_client_verify dn=$ssl_client_s_dn\\n\"; }} }}\n\
         }}\n"
    );
    std::fs::write(p("nginx.conf"), conf).unwrap();
    let child = tokio::process::Command::new("nginx")
        .args(["-p", &tmp, "-c"])
        .arg(p("nginx.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nginx not found: run ./test.sh (it installs Debian's nginx)");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(a).await.is_ok()
            && tokio::net::TcpStream::connect(b).await.is_ok()
        {
            return Nginx {
                child,
                verify_on: a,
                optional: b,
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nginx did not start");
}

async fn get(gw: &Gateway, token: &str, host: &str) -> (String, String) {
    let (code, out, err) = curl(&[
        "-x",
        &proxy_url(gw),
        "--proxy-user",
        &format!("ci:{token}"),
        "--cacert",
        gw.data_dir.join("ca.pem").to_str().unwrap(),
        "-w",
        "%{http_code}",
        &format!("https://{host}/"),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let (body, status) = out.split_at_checked(out.len().saturating_sub(3)).unwrap();
    (status.to_owned(), body.to_owned())
}

#[tokio::test]
async fn seed_001_mtls_certificate_only_for_the_mapped_authority() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (client_ca, leaves) = client_pki();
    let mut server = nginx(dir.path(), &client_ca).await;
    let server_ca = std::fs::read_to_string(dir.path().join("nginx-cert.pem")).unwrap();
    // The chain file ends with the CA certificate: trust it for upstream TLS.
    let ca_only = server_ca
        .split_inclusive("-----END CERTIFICATE-----\n")
        .last()
        .unwrap()
        .to_owned();
    std::fs::write(dir.path().join("upstream-ca.pem"), ca_only).unwrap();

    // Control: nginx refuses a handshake without a client certificate (400).
    let (code, out, _) = curl(&[
        "--cacert",
        dir.path().join("upstream-ca.pem").to_str().unwrap(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--connect-to",
        &format!("{PARTNER}:443:{}", server.verify_on),
        &format!("https://{PARTNER}/"),
    ])
    .await;
    assert_eq!((code, out.as_str()), (0, "400"));

    let config = format!(
        "[upstream]\nca_file = {:?}\nresolve = [\"{PARTNER}:443={}\", \"{OTHER}:443={}\"]\n",
        dir.path().join("upstream-ca.pem"),
        server.verify_on,
        server.optional
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
        json!({"id": "partner-api", "hosts": [PARTNER, OTHER]}),
    )
    .await
    .unwrap();

    // A key that does not belong to the certificate is refused.
    let (st, _, v) = api
        .send(
            "POST",
            "/api/crypto/mtls/mappings",
            Some(
                json!({"provider_id": "partner-api", "target_authority": PARTNER,
            "real_client_cert_pem": leaves[0].0, "real_client_key_pem": leaves[1].1}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(st, 422, "{v}");

    let m = api
        .post(
            "/api/crypto/mtls/mappings",
            json!({"provider_id": "partner-api", "target_authority": PARTNER,
            "real_client_cert_pem": leaves[0].0, "real_client_key_pem": leaves[0].1}),
        )
        .await
        .unwrap();
    let id = m["id"].as_str().unwrap().to_owned();
    assert_eq!(m["target_authority"], format!("{PARTNER}:443"));
    assert!(m["surrogate_authority"].as_str().unwrap().starts_with(&id));
    assert!(
        m["certificate_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    api.post(
        "/api/translation-rules",
        json!({"placeholder": "mtls_*", "hosts": [PARTNER], "principal": "service:ci-runner"}),
    )
    .await
    .unwrap();
    let (_, token) =
        crate::data_plane::credential(&gw, "ci-runner", "127.0.0.0/8", &[PARTNER, OTHER]).await;

    let (status, body) = get(&gw, &token, PARTNER).await;
    assert_eq!(status, "200", "{body}");
    assert!(
        body.contains("verified=SUCCESS") && body.contains("CN=excalibur-client"),
        "{body}"
    );
    // Another authority, even on the same provider and right after, never gets the certificate.
    let (status, body) = get(&gw, &token, OTHER).await;
    assert_eq!(status, "200");
    assert!(body.contains("verified=NONE"), "{body}");
    let (_, body) = get(&gw, &token, PARTNER).await;
    assert!(body.contains("verified=SUCCESS"), "{body}");

    // Rotation: one upsert, the next request presents the new certificate.
    api.post(
        "/api/crypto/mtls/mappings",
        json!({"id": id, "provider_id": "partner-api", "target_authority": PARTNER,
        "real_client_cert_pem": leaves[1].0, "real_client_key_pem": leaves[1].1}),
    )
    .await
    .unwrap();
    let (_, body) = get(&gw, &token, PARTNER).await;
    assert!(body.contains("CN=excalibur-client-2"), "{body}");
    wait_events(&gw, "mtls_mapping_updated", 1).await;

    // A principal without a rule naming the mapping is refused before any handshake.
    let (_, other) = crate::data_plane::credential(&gw, "other", "127.0.0.0/8", &[PARTNER]).await;
    let (status, _) = get(&gw, &other, PARTNER).await;
    assert_eq!(status, "403");

    let listed = api
        .get("/api/crypto/mtls/mappings")
        .await
        .unwrap()
        .to_string();
    assert!(!listed.contains("PRIVATE KEY") && listed.contains(&id));
    let _ = server.child.kill().await;
}
