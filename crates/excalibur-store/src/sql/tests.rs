use excalibur_core::api::{Provider, UpsertPlaceholder};

use super::*;
use crate::sqlite::SqliteStore;
use rusqlite::Connection;

fn open(dir: &tempfile::TempDir, mk: &MasterKey) -> SqliteStore {
    SqliteStore::open(&dir.path().join("x.db"), mk).unwrap()
}

async fn seed(store: &SqliteStore) {
    store
        .provider_upsert(
            Provider {
                id: "github".into(),
                hosts: vec!["api.github.com".into()],
                passthrough: false,
                dangerous_allow_plaintext: false,
            },
            "admin".into(),
        )
        .await
        .unwrap();
}

fn upsert(name: &str, value: &str) -> UpsertPlaceholder {
    UpsertPlaceholder {
        placeholder: name.into(),
        real_value: value.into(),
        provider_id: "github".into(),
        route_family: None,
        expires_at: None,
    }
}

#[tokio::test]
async fn upsert_reports_rotation_and_chains_events() {
    let dir = tempfile::tempdir().unwrap();
    let mk = MasterKey::generate();
    let store = open(&dir, &mk);
    seed(&store).await;
    let a = store
        .placeholder_upsert(upsert("XCALIBUR_GH", "v1"), "admin".into())
        .await
        .unwrap();
    assert!(a.created && !a.rotated);
    let b = store
        .placeholder_upsert(upsert("XCALIBUR_GH", "v1"), "admin".into())
        .await
        .unwrap();
    assert!(!b.created && !b.rotated);
    let c = store
        .placeholder_upsert(upsert("XCALIBUR_GH", "v2"), "admin".into())
        .await
        .unwrap();
    assert!(c.rotated);
    let rotated = store
        .audit_list(AuditQuery {
            event_type: Some("placeholder_r*".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rotated.len(), 1);
    let all = store
        .audit_list(AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5); // provider_updated + 3 updated + 1 rotated
    assert!(store.audit_verify().await.unwrap().ok);
    let data = store.snapshot_data().await.unwrap();
    assert_eq!(data.placeholders[0].value.expose(), b"v2");

    // Reopen with the same master key: values survive; a different key is refused.
    drop(store);
    let again = open(&dir, &mk);
    assert_eq!(
        again.snapshot_data().await.unwrap().placeholders[0]
            .value
            .expose(),
        b"v2"
    );
    assert!(SqliteStore::open(&dir.path().join("x.db"), &MasterKey::generate()).is_err());
}

#[tokio::test]
async fn unknown_provider_is_rejected_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, &MasterKey::generate());
    let err = store
        .placeholder_upsert(upsert("XCALIBUR_GH", "v1"), "admin".into())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(store.placeholder_list().await.unwrap().is_empty());
    assert!(
        store
            .audit_list(AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn verify_catches_truncation_and_rewritten_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mk = MasterKey::generate();
    let store = open(&dir, &mk);
    seed(&store).await;
    for i in 0..4 {
        store
            .placeholder_upsert(upsert("XCALIBUR_GH", &format!("v{i}")), "admin".into())
            .await
            .unwrap();
    }
    let raw = Connection::open(dir.path().join("x.db")).unwrap();
    let max: i64 = raw
        .query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))
        .unwrap();
    raw.execute("DELETE FROM audit_events WHERE seq = ?1", [max])
        .unwrap();
    let report = store.audit_verify().await.unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_broken_seq, Some(max));

    // Rewriting the head to the new tail without the master key is caught too.
    let (s, h): (i64, String) = raw
        .query_row(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    raw.execute(
        "UPDATE audit_head SET seq = ?1, hash = ?2",
        rusqlite::params![s, h],
    )
    .unwrap();
    let report = store.audit_verify().await.unwrap();
    assert!(!report.ok);
    assert!(report.reason.unwrap().contains("authenticated head"));
}

#[tokio::test]
async fn concurrent_upserts_keep_one_consistent_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, &MasterKey::generate());
    seed(&store).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.placeholder_upsert(upsert("XCALIBUR_GH", &format!("v{i}")), "admin".into())
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let list = store.placeholder_list().await.unwrap();
    assert_eq!(list.len(), 1);
    let data = store.snapshot_data().await.unwrap();
    assert_eq!(
        data.placeholders[0].value.fingerprint(),
        list[0].fingerprint
    );
    assert!(store.audit_verify().await.unwrap().ok);
}

#[tokio::test]
async fn crypto_mappings_are_sealed_rotated_and_block_provider_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mk = MasterKey::generate();
    let store = open(&dir, &mk);
    seed(&store).await;
    let record = |secret_marker: &str| MappingRecord {
        family: CryptoFamily::Sigv4,
        id: "sigv4_0123456789abcdef".into(),
        provider_id: "github".into(),
        config: json!({"target_host": "api.github.com", "marker": secret_marker.len()}),
        fingerprint: String::new(),
        created_at: String::new(),
        updated_at: String::new(),
    };
    let secret = "MAPPING-SECRET-VALUE-1";
    let (first, created) = store
        .mapping_upsert(record(secret), Secret::new(secret.into()), "admin".into())
        .await
        .unwrap();
    assert!(created);
    let (second, created) = store
        .mapping_upsert(
            record(secret),
            Secret::new(b"MAPPING-SECRET-VALUE-2".to_vec()),
            "admin".into(),
        )
        .await
        .unwrap();
    assert!(!created);
    assert_ne!(
        first.fingerprint, second.fingerprint,
        "rotation changes the fingerprint"
    );
    assert_eq!(
        store.mapping_list(CryptoFamily::Sigv4).await.unwrap().len(),
        1
    );
    let snap = store.snapshot_data().await.unwrap();
    assert_eq!(snap.mappings.len(), 1);
    assert_eq!(snap.mappings[0].1.expose(), b"MAPPING-SECRET-VALUE-2");
    // Unknown provider, and a provider still in use, are refused.
    let mut orphan = record(secret);
    orphan.id = "sigv4_ffffffffffffffff".into();
    orphan.provider_id = "nope".into();
    assert!(
        store
            .mapping_upsert(orphan, Secret::new(b"x".to_vec()), "admin".into())
            .await
            .is_err()
    );
    assert!(matches!(
        store.provider_delete("github".into(), "admin".into()).await,
        Err(StoreError::Conflict(_))
    ));
    let events = store
        .audit_list(AuditQuery {
            event_type: Some("sigv4_mapping_*".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types.len(), 2, "{types:?}");
    store
        .mapping_delete(CryptoFamily::Sigv4, first.id.clone(), "admin".into())
        .await
        .unwrap();
    assert!(
        store
            .mapping_list(CryptoFamily::Sigv4)
            .await
            .unwrap()
            .is_empty()
    );
    drop(store);
    // Neither value is in the database file in the clear.
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!bytes.windows(20).any(|w| w == &b"MAPPING-SECRET-VALUE"[..]));
    }
}

fn route(id: &str) -> SshRoute {
    SshRoute {
        id: id.into(),
        user: "alice".into(),
        source_network: "10.0.0.0/8".into(),
        target_host: "db1".into(),
        target_port: 22,
        target_user: "ops".into(),
        target_host_key: "ssh-ed25519 AAAA".into(),
        target_key: String::new(),
        target_key_fingerprint: None,
        authorized_keys: vec![],
        allowed_domains: vec!["api.github.com".into()],
        inject_proxy: true,
        port_forwarding: false,
        created_at: String::new(),
        updated_at: String::new(),
    }
}

#[tokio::test]
async fn ssh_routes_seal_their_key_and_sessions_end_once() {
    let dir = tempfile::tempdir().unwrap();
    let mk = MasterKey::generate();
    let store = open(&dir, &mk);
    let (r, created) = store
        .ssh_route_upsert(
            route("sshr_1"),
            Some(Secret::new(b"-----BEGIN KEY-----".to_vec())),
            "admin".into(),
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(r.target_key, "route");
    assert!(r.target_key_fingerprint.is_some());
    let raw = std::fs::read(dir.path().join("x.db")).unwrap();
    assert!(
        !raw.windows(19).any(|w| w == b"-----BEGIN KEY-----"),
        "the target key is sealed at rest"
    );
    let (r2, created) = store
        .ssh_route_upsert(route("sshr_1"), None, "admin".into())
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(r2.target_key, "gateway");
    assert_eq!(r2.created_at, r.created_at);
    let data = store.snapshot_data().await.unwrap();
    assert_eq!(data.ssh_routes.len(), 1);

    let session = SshSession {
        id: "sess_1".into(),
        user: "alice".into(),
        principal: "user_session:alice@sess_1".into(),
        route_id: "sshr_1".into(),
        source: "10.1.1.1".into(),
        target: "db1:22".into(),
        auth: "publickey".into(),
        started_at: Timestamp::now().to_rfc3339(),
        state: "active".into(),
        ended_at: None,
        end_reason: None,
        proxy_source: "10.2.2.2".into(),
        gateway: "gw_1".into(),
        factors: Vec::new(),
        tags: std::collections::BTreeMap::new(),
    };
    store
        .ssh_session_start(session, "hash1".into())
        .await
        .unwrap();
    let data = store.snapshot_data().await.unwrap();
    assert_eq!(data.ssh_sessions.len(), 1);
    assert_eq!(store.ssh_session_active().await.unwrap().len(), 1);
    let ended = store
        .ssh_session_end(
            "sess_1".into(),
            "revoked".into(),
            "revoked".into(),
            "admin".into(),
        )
        .await
        .unwrap()
        .expect("was active");
    assert_eq!(ended.state, "revoked");
    assert!(
        store
            .ssh_session_end("sess_1".into(), "ended".into(), "closed".into(), "x".into())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .ssh_session_end("nope".into(), "ended".into(), "closed".into(), "x".into())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.snapshot_data().await.unwrap().ssh_sessions.is_empty());
    assert!(store.ssh_session_active().await.unwrap().is_empty());
    let listed = store.ssh_session_list(10).await.unwrap();
    assert_eq!(listed.first().map(|s| s.state.as_str()), Some("revoked"));
    let types: Vec<String> = store
        .audit_list(AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    for t in [
        "ssh_route_created",
        "ssh_route_updated",
        "ssh_session_started",
        "ssh_session_ended",
    ] {
        assert_eq!(
            types.iter().filter(|x| *x == t).count(),
            1,
            "{t} in {types:?}"
        );
    }
    assert!(store.audit_verify().await.unwrap().ok);
    store
        .ssh_route_delete("sshr_1".into(), "admin".into())
        .await
        .unwrap();
    assert!(store.ssh_route_list().await.unwrap().is_empty());
}

/// A full read of the configuration in `store`: what differs from what was last
/// authenticated (`None`: nothing), every row's MAC, and the per-row guide table.
async fn full_config_read(
    store: &SqliteStore,
    mk: &MasterKey,
) -> (
    Option<Vec<String>>,
    std::collections::BTreeMap<String, String>,
    std::collections::BTreeMap<String, String>,
) {
    let key = HeadKey(mk.config_key());
    let inner = Arc::clone(&store.inner);
    tokio::task::spawn_blocking(move || {
        let mut out = None;
        inner
            .conns
            .with_backend(&mut |b| {
                let mut tx = b.begin(Mode::Read)?;
                let state = config_state(tx.as_mut(), &key)?;
                let guide = tx
                    .query_map("SELECT row_key, mac FROM config_row_macs", params![], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .into_iter()
                    .collect();
                out = Some((state.changes, state.now.rows, guide));
                Ok(())
            })
            .unwrap();
        out.unwrap()
    })
    .await
    .unwrap()
}

/// A write authenticates only the rows it changed (from this connection's change log);
/// the result must be what reading and authenticating every row gives: a fresh
/// process (no cache) finds the configuration intact, the per-row guide matches, and
/// an edit through another connection is still refused and named.
#[tokio::test]
async fn incremental_configuration_macs_match_a_full_read() {
    let dir = tempfile::tempdir().unwrap();
    let mk = MasterKey::generate();
    let store = open(&dir, &mk);
    seed(&store).await;
    for i in 0..5 {
        store
            .placeholder_upsert(upsert(&format!("XCALIBUR_P{i}"), "v1"), "admin".into())
            .await
            .unwrap();
    }
    // Rotate, delete, upsert again: updates, deletes and re-inserts of the same keys.
    store
        .placeholder_upsert(upsert("XCALIBUR_P1", "v2"), "admin".into())
        .await
        .unwrap();
    store
        .placeholder_delete("XCALIBUR_P2".into(), "admin".into())
        .await
        .unwrap();
    store
        .placeholder_upsert(upsert("XCALIBUR_P2", "v3"), "admin".into())
        .await
        .unwrap();
    store
        .placeholder_delete("XCALIBUR_P3".into(), "admin".into())
        .await
        .unwrap();
    let full = full_config_read(&store, &mk).await;
    assert_eq!(full.0, None, "a full read finds the configuration intact");
    assert_eq!(full.1, full.2, "the per-row guide is every row's MAC");
    assert!(!full.1.contains_key("placeholders/XCALIBUR_P3"));
    drop(store);

    // A new process trusts nothing cached; an edit through another connection (a
    // shell on the file) is refused by the next write and named by verify.
    let store = open(&dir, &mk);
    store
        .placeholder_upsert(upsert("XCALIBUR_P4", "v5"), "admin".into())
        .await
        .unwrap();
    let db = Connection::open(dir.path().join("x.db")).unwrap();
    db.execute(
        "UPDATE providers SET hosts = '[\"evil.example\"]' WHERE id = 'github'",
        [],
    )
    .unwrap();
    drop(db);
    let err = store
        .placeholder_upsert(upsert("XCALIBUR_P0", "v6"), "admin".into())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Tampered), "{err:?}");
    let report = store.audit_verify().await.unwrap();
    assert!(!report.ok);
    assert_eq!(
        report.config_rows,
        vec!["providers/github (changed)".to_owned()],
        "{report:?}"
    );
}
