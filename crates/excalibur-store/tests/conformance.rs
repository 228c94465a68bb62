//! The same behaviour from every `Store` backend: one suite, run against a SQLite file
//! and against a real PostgreSQL server started here; plus PostgreSQL's own promise
//! (several replicas writing at once keep one linear audit chain).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed step should fail the test loudly"
)]

use std::sync::Arc;

use excalibur_core::Secret;
use excalibur_core::api::{CryptoFamily, Flow, MappingRecord, Revocation, TokenInfo};
use excalibur_core::audit::{EventType, NewEvent};
use excalibur_core::ids::{CredentialId, Role, TokenId};
use excalibur_core::time::Timestamp;
use excalibur_store::postgres::PgConnect;
use excalibur_store::seal::MasterKey;
use excalibur_store::sql::SqlStore;
use excalibur_store::{
    AuditQuery, Exchanged, Expiry, FlowQuery, SnapshotKey, SnapshotRow, Store, StoreError,
    WorkloadIssue,
};
use excalibur_test_support::postgres::Postgres;
use serde_json::{Value, json};

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn flow(id: &str, principal: &str, host: &str, ms: i64) -> Flow {
    from(
        json!({"id": id, "ts": Timestamp::from_millis(ms).to_rfc3339(), "principal": principal,
        "method": "GET", "host": host, "path": "/", "status": 200, "bytes_up": 1, "bytes_down": 2,
        "latency_ms": 3, "placeholders": [], "decision": "allow", "reason": null}),
    )
}

async fn types(store: &dyn Store, glob: &str) -> Vec<String> {
    store
        .audit_list(AuditQuery {
            event_type: Some(glob.into()),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

/// Every method, with what a caller relies on.
async fn suite(store: &dyn Store) {
    // API tokens.
    let info = TokenInfo {
        id: TokenId::new("tok_1"),
        name: "ops".into(),
        role: Role::Operator,
        prefix: "xat_ab".into(),
        created_at: String::new(),
        revoked_at: None,
    };
    store
        .token_create(info, "h1".into(), "admin".into())
        .await
        .unwrap();
    assert_eq!(
        store
            .token_by_hash("h1".into())
            .await
            .unwrap()
            .unwrap()
            .name,
        "ops"
    );
    assert_eq!(store.token_list().await.unwrap().len(), 1);
    let revoked = store
        .token_revoke(TokenId::new("tok_1"), "admin".into())
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.token_by_hash("h1".into()).await.unwrap().is_none());

    // Providers, placeholders (created, rotated, sealed and opened).
    store
        .provider_upsert(
            from(json!({"id": "github", "hosts": ["api.github.com"], "passthrough": false})),
            "admin".into(),
        )
        .await
        .unwrap();
    assert!(!store.provider_list().await.unwrap()[0].passthrough);
    let up = |v: &str| {
        from(json!({"placeholder": "XCALIBUR_GH", "real_value": v, "provider_id": "github"}))
    };
    let a = store
        .placeholder_upsert(up("v1"), "admin".into())
        .await
        .unwrap();
    assert!(a.created && !a.rotated);
    let b = store
        .placeholder_upsert(up("v2"), "admin".into())
        .await
        .unwrap();
    assert!(!b.created && b.rotated);
    let data = store.snapshot_data().await.unwrap();
    assert_eq!(data.placeholders[0].value.expose(), b"v2");
    assert!(matches!(
        store.provider_delete("github".into(), "admin".into()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .placeholder_upsert(
                from(json!({"placeholder": "X", "real_value": "v", "provider_id": "nope"})),
                "a".into()
            )
            .await,
        Err(StoreError::Invalid(_))
    ));

    // Service credentials (the `user` column), one live credential per name.
    let cred = |id: &str| -> excalibur_core::api::ServiceCredentialInfo {
        from(
            json!({"id": id, "name": "ci", "user": "robot", "source_network": "10.0.0.0/8",
            "allowed_domains": ["api.github.com"], "prefix": "xsc_1", "created_at": "", "revoked_at": null,
            "revoked_reason": null, "expires_at": null}),
        )
    };
    store
        .credential_create(cred("svc_1"), "ch1".into(), "admin".into())
        .await
        .unwrap();
    assert!(matches!(
        store
            .credential_create(cred("svc_2"), "ch2".into(), "admin".into())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let listed = store.credential_list().await.unwrap();
    assert_eq!(
        (listed[0].user.as_str(), listed[0].allowed_domains.len()),
        ("robot", 1)
    );
    assert_eq!(
        store.snapshot_data().await.unwrap().credentials[0].hash,
        "ch1"
    );
    let r = store
        .credential_revoke(CredentialId::new("svc_1"), "admin".into(), "admin".into())
        .await
        .unwrap();
    assert_eq!(r.revoked_reason.as_deref(), Some("admin"));
    assert!(store.snapshot_data().await.unwrap().credentials.is_empty());
    // One row, as the snapshot reads it back after a write.
    let row = |key| store.snapshot_row(key);
    match row(SnapshotKey::Credential(CredentialId::new("svc_1")))
        .await
        .unwrap()
    {
        Some(SnapshotRow::Credential(c)) => {
            assert_eq!(
                (c.hash.as_str(), c.info.revoked_at.is_some()),
                ("ch1", true)
            );
        }
        other => panic!("{other:?}"),
    }
    match row(SnapshotKey::Provider("github".into())).await.unwrap() {
        Some(SnapshotRow::Provider(p)) => assert_eq!(p.hosts, ["api.github.com"]),
        other => panic!("{other:?}"),
    }
    assert!(
        row(SnapshotKey::Provider("nope".into()))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        row(SnapshotKey::Workload("wl_nope".into()))
            .await
            .unwrap()
            .is_none()
    );

    // Rules and policies.
    let rule = store
        .rule_create(
            from(json!({"placeholder": "XCALIBUR_GH", "hosts": ["api.github.com"]})),
            "admin".into(),
        )
        .await
        .unwrap();
    assert_eq!(store.rule_list().await.unwrap()[0].rule.path_prefix, "/");
    match store
        .snapshot_row(SnapshotKey::Rule(rule.id.clone()))
        .await
        .unwrap()
    {
        Some(SnapshotRow::Rule(r)) => assert_eq!(r.rule.hosts, ["api.github.com"]),
        other => panic!("{other:?}"),
    }
    store
        .rule_delete(rule.id.clone(), "admin".into())
        .await
        .unwrap();
    assert!(store.rule_list().await.unwrap().is_empty());
    assert!(
        store
            .snapshot_row(SnapshotKey::Rule(rule.id))
            .await
            .unwrap()
            .is_none()
    );
    let p = || from(json!({"id": "p1", "policy": "permit (principal, action, resource);"}));
    store.policy_create(p(), "admin".into()).await.unwrap();
    assert!(matches!(
        store.policy_create(p(), "admin".into()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.policy_list().await.unwrap().len(), 1);
    store
        .policy_delete("p1".into(), "admin".into())
        .await
        .unwrap();

    // Webhooks, deliveries (idempotent enqueue), cursors.
    store
        .webhook_create(
            from(json!({"id": "wh_1", "url": "https://hooks.example/x", "event_types": ["*"], "secret_fingerprint": "fp", "created_at": ""})),
            Secret::new(b"whsec".to_vec()),
            "admin".into(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.webhook_secrets().await.unwrap()[0].1.expose(),
        b"whsec"
    );
    let d = |id: &str| -> excalibur_core::api::Delivery {
        from(
            json!({"id": id, "webhook_id": "wh_1", "event_seq": 7, "event_type": "x", "status": "pending",
            "attempts": 0, "last_status": null, "last_error": null, "created_at": "", "updated_at": ""}),
        )
    };
    store
        .delivery_enqueue(vec![d("dl_1")], ("webhooks".into(), 7))
        .await
        .unwrap();
    store
        .delivery_enqueue(vec![d("dl_2")], ("webhooks".into(), 9))
        .await
        .unwrap();
    assert_eq!(store.cursor_get("webhooks".into()).await.unwrap(), Some(9));
    let due = store.deliveries_due(10).await.unwrap();
    assert_eq!(due.len(), 1, "one delivery per (webhook, event)");
    store
        .delivery_update(
            "dl_1".into(),
            "failed".into(),
            Some(500),
            Some("boom".into()),
            0,
        )
        .await
        .unwrap();
    let listed = store.delivery_list("wh_1".into(), 10).await.unwrap();
    assert_eq!((listed[0].attempts, listed[0].last_status), (1, Some(500)));
    assert!(store.deliveries_due(10).await.unwrap().is_empty());

    // Expiry.
    store
        .placeholder_upsert(
            from(
                json!({"placeholder": "XCALIBUR_OLD", "real_value": "x", "provider_id": "github",
                "expires_at": Timestamp::from_millis(Timestamp::now().millis() + 50).to_rfc3339()}),
            ),
            "admin".into(),
        )
        .await
        .unwrap();
    let later = Timestamp::now().millis() + 3_600_000;
    store
        .placeholder_upsert(
            from(
                json!({"placeholder": "XCALIBUR_LATER", "real_value": "y", "provider_id": "github",
                "expires_at": Timestamp::from_millis(later).to_rfc3339()}),
            ),
            "admin".into(),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // The sweep expires what is due and says when the next one is (the sweeper sleeps
    // until then).
    let swept = store.expire_due().await.unwrap();
    assert_eq!(swept.expired, 1);
    let next = swept.next_ms.expect("XCALIBUR_LATER is still to expire");
    assert!(
        (next - later).abs() < 1000,
        "next expiry {next}, want {later}"
    );
    assert_eq!(
        store.expire_due().await.unwrap(),
        Expiry {
            expired: 0,
            next_ms: Some(next)
        }
    );

    // Namespaces and workload bearers (replay, revocation by jti and principal).
    store
        .namespace_upsert(
            from(json!({"name": "prod", "allowed_domains": ["api.github.com"]})),
            "admin".into(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.namespace_list().await.unwrap()[0]
            .allowed_domains
            .len(),
        1
    );
    let issue_from = |id: &str, jti: &str, source: &str| WorkloadIssue {
        info: from(
            json!({"id": id, "namespace": "prod", "principal": "k8s:prod/api", "attestation": "kubernetes",
            "source": source, "token_prefix": "xwt_1", "created_at": "",
            "expires_at": Timestamp::from_millis(Timestamp::now().millis() + 60_000).to_rfc3339(),
            "details": {"jti": jti}}),
        ),
        hash: format!("wh_{id}"),
        jti: jti.into(),
        jti_expires_ms: Timestamp::now().millis() + 60_000,
    };
    let issue = |id: &str, jti: &str| issue_from(id, jti, "10.1.1.1");
    assert_eq!(
        store.workload_exchange(issue("wl_0", "j1")).await.unwrap(),
        Exchanged::Issued
    );
    assert_eq!(
        store
            .workload_exchange(issue_from("wl_x", "j1", "10.9.9.9"))
            .await
            .unwrap(),
        Exchanged::Replay,
        "a jti replayed from another address"
    );
    // From the first address again (a restart): a new bearer, the earlier one revoked.
    assert_eq!(
        store.workload_exchange(issue("wl_1", "j1")).await.unwrap(),
        Exchanged::Reissued
    );
    assert_eq!(types(store, "workload_token_reissued").await.len(), 1);
    assert_eq!(
        store.workload_exchange(issue("wl_2", "j2")).await.unwrap(),
        Exchanged::Issued
    );
    let mut live: Vec<String> = store
        .snapshot_data()
        .await
        .unwrap()
        .workloads
        .into_iter()
        .map(|(w, _)| w.id)
        .collect();
    live.sort();
    assert_eq!(live, ["wl_1", "wl_2"], "wl_0 was revoked by the re-issue");
    match store
        .snapshot_row(SnapshotKey::Workload("wl_2".into()))
        .await
        .unwrap()
    {
        Some(SnapshotRow::Workload(w, hash)) => {
            assert_eq!((w.id.as_str(), hash.as_str()), ("wl_2", "wh_wl_2"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        store
            .snapshot_row(SnapshotKey::Workload("wl_0".into()))
            .await
            .unwrap()
            .is_none()
    );
    let by_jti = Revocation {
        workload_id: None,
        principal: None,
        jti: Some("j2".into()),
    };
    assert_eq!(
        store.workload_revoke(by_jti, "admin".into()).await.unwrap(),
        1
    );
    let by_principal = Revocation {
        workload_id: None,
        principal: Some("k8s:prod/api".into()),
        jti: None,
    };
    assert_eq!(
        store
            .workload_revoke(by_principal, "admin".into())
            .await
            .unwrap(),
        1
    );
    assert!(store.snapshot_data().await.unwrap().workloads.is_empty());
    // The kill switch is a standing deny until lifted.
    assert_eq!(
        store.workload_exchange(issue("wl_k", "j3")).await.unwrap(),
        Exchanged::PrincipalRevoked
    );
    let standing = store.principal_revocation_list().await.unwrap();
    assert_eq!(standing.len(), 1);
    assert_eq!(standing[0].principal, "k8s:prod/api");
    assert!(matches!(
        store
            .principal_revocation_delete("rev_nope".into(), "admin".into())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .principal_revocation_delete(standing[0].id.clone(), "admin".into())
        .await
        .unwrap();
    assert_eq!(
        store.workload_exchange(issue("wl_3", "j4")).await.unwrap(),
        Exchanged::Issued
    );

    // Flows and events recorded together; filters.
    let now = Timestamp::now().millis();
    store
        .record(
            vec![
                flow("f1", "svc:a", "a.example", now),
                flow("f2", "svc:b", "b.example", now + 1),
            ],
            vec![NewEvent::new(
                EventType::PlaceholderDenied,
                "svc:b",
                json!({"reason": "no_rule"}),
            )],
        )
        .await
        .unwrap();
    let flows = store
        .flow_list(FlowQuery {
            limit: 10,
            ..FlowQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        flows.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["f2", "f1"]
    );
    let only_a = store
        .flow_list(FlowQuery {
            principal: Some("svc:a".into()),
            limit: 10,
            ..FlowQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(only_a.len(), 1);
    assert!(
        flows[0].seq > flows[1].seq,
        "{:?}",
        (flows[0].seq, flows[1].seq)
    );

    // Cursor paging: older than a flow's seq, newer than it (oldest first), and by time.
    let older = store
        .flow_list(FlowQuery {
            before_seq: flows[0].seq,
            limit: 10,
            ..FlowQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["f1"]
    );
    let newer = store
        .flow_list(FlowQuery {
            after_seq: flows[1].seq,
            oldest_first: true,
            limit: 10,
            ..FlowQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        newer.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["f2"]
    );
    let until = store
        .flow_list(FlowQuery {
            until_ms: Some(now + 1),
            limit: 10,
            ..FlowQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        until.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        ["f1"]
    );
    let all = store
        .audit_list(AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let pivot = all[1].seq.0;
    let before = store
        .audit_list(AuditQuery {
            before_seq: Some(pivot),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(before.len(), all.len() - 2);
    assert!(before.iter().all(|e| e.seq.0 < pivot));

    // Write-ahead flows: an intent is a flow in flight (not listed) until its completion
    // is written; a gateway that died with some open has them completed as `interrupted`.
    let mut open = flow("f3", "svc:a", "a.example", now + 2);
    open.placeholders = vec!["XCALIBUR_X".into()];
    let other = flow("f4", "svc:a", "a.example", now + 3);
    store
        .record_with_intents(std::sync::Arc::new(excalibur_store::RecordBatch {
            intents: vec![open.clone(), other],
            gateway: "gw_1".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(store.flow_gateways_in_flight().await.unwrap(), ["gw_1"]);
    let listed = store
        .flow_list(FlowQuery {
            limit: 1000,
            ..FlowQuery::default()
        })
        .await
        .unwrap();
    assert!(listed.iter().all(|f| f.id != "f3" && f.id != "f4"));
    let mut done = open.clone();
    done.status = 200;
    store.record(vec![done], Vec::new()).await.unwrap();
    assert_eq!(store.flows_interrupted("gw_1".into()).await.unwrap(), 1);
    assert!(store.flow_gateways_in_flight().await.unwrap().is_empty());
    let latest = store
        .flow_list(FlowQuery {
            limit: 2,
            ..FlowQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (latest[0].id.as_str(), latest[0].reason.as_deref()),
        ("f4", Some("interrupted"))
    );
    assert_eq!((latest[1].id.as_str(), latest[1].status), ("f3", 200));
    assert_eq!(types(store, "flow_recorded").await, ["flow_recorded"]);

    // Checkpoints: leaves of the log, a checkpoint with its frontier and event, and
    // `audit_verify` recomputing its root.
    let leaves = store.audit_leaves(0, u64::MAX).await.unwrap();
    assert!(!leaves.is_empty());
    assert_eq!(store.audit_leaves(1, 2).await.unwrap(), leaves[1..2]);
    let mut tree = excalibur_core::merkle::Frontier::default();
    for l in &leaves {
        tree.push(*l);
    }
    let cp = excalibur_core::merkle::Checkpoint {
        tree_size: tree.size,
        root_hash: excalibur_core::secret::hex(&tree.root()),
        signature: "c2ln".into(),
        key_id: "k".into(),
        ts: Timestamp::now().to_rfc3339(),
    };
    assert!(store.checkpoint_latest().await.unwrap().is_none());
    store
        .checkpoint_append(cp.clone(), tree.clone())
        .await
        .unwrap();
    let (latest, frontier) = store.checkpoint_latest().await.unwrap().unwrap();
    assert_eq!((latest, frontier), (cp.clone(), tree));
    assert_eq!(
        store.checkpoint_list(0, 10).await.unwrap(),
        std::slice::from_ref(&cp)
    );
    assert!(
        store
            .checkpoint_list(cp.tree_size, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(types(store, "audit_checkpoint").await, ["audit_checkpoint"]);
    assert!(store.audit_verify().await.unwrap().ok);

    // Settings (sealed), crypto mappings, SSH routes and sessions.
    store
        .setting_put("s1".into(), Secret::new(b"v".to_vec()))
        .await
        .unwrap();
    store
        .setting_put("s1".into(), Secret::new(b"w".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        store
            .setting_get("s1".into())
            .await
            .unwrap()
            .unwrap()
            .expose(),
        b"w"
    );
    assert!(store.setting_get("nope".into()).await.unwrap().is_none());
    let mapping = MappingRecord {
        family: CryptoFamily::Sigv4,
        id: "sigv4_1".into(),
        provider_id: "github".into(),
        config: json!({"target_host": "api.github.com"}),
        fingerprint: String::new(),
        created_at: String::new(),
        updated_at: String::new(),
    };
    let (_, created) = store
        .mapping_upsert(mapping.clone(), Secret::new(b"k".to_vec()), "admin".into())
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        store.mapping_list(CryptoFamily::Sigv4).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.snapshot_data().await.unwrap().mappings[0].1.expose(),
        b"k"
    );
    store
        .mapping_delete(CryptoFamily::Sigv4, "sigv4_1".into(), "admin".into())
        .await
        .unwrap();
    let route: excalibur_core::api::SshRoute = from(
        json!({"id": "sshr_1", "user": "alice", "source_network": "10.0.0.0/8",
        "target_host": "db1", "target_port": 22, "target_user": "ops", "target_host_key": "ssh-ed25519 AAAA",
        "target_key": "", "authorized_keys": [], "allowed_domains": [], "inject_proxy": true,
        "port_forwarding": false, "created_at": "", "updated_at": ""}),
    );
    store
        .ssh_route_upsert(route, Some(Secret::new(b"pem".to_vec())), "admin".into())
        .await
        .unwrap();
    assert_eq!(
        store.snapshot_data().await.unwrap().ssh_routes[0]
            .1
            .as_ref()
            .unwrap()
            .expose(),
        b"pem"
    );
    let session: excalibur_core::api::SshSession = from(json!({"id": "sess_1", "user": "alice",
        "principal": "user_session:alice@sess_1", "route_id": "sshr_1", "source": "10.0.0.9", "target": "db1:22",
        "auth": "publickey", "started_at": Timestamp::now().to_rfc3339(), "state": "active", "proxy_source": "10.0.0.8"}));
    store.ssh_session_start(session, "sh".into()).await.unwrap();
    assert_eq!(store.ssh_session_active().await.unwrap().len(), 1);
    store
        .ssh_session_end(
            "sess_1".into(),
            "revoked".into(),
            "revoked".into(),
            "admin".into(),
        )
        .await
        .unwrap();
    assert!(store.ssh_session_active().await.unwrap().is_empty());

    // The audit log: globs (with metacharacters taken literally), paging, the chain.
    let placeholder_events = types(store, "placeholder_*").await;
    assert!(
        placeholder_events
            .iter()
            .all(|t| t.starts_with("placeholder_")),
        "{placeholder_events:?}"
    );
    assert!(placeholder_events.contains(&"placeholder_rotated".to_owned()));
    assert!(
        types(store, "placeholder_%").await.is_empty(),
        "a LIKE wildcard is literal"
    );
    assert!(
        types(store, "placeholder?updated").await.is_empty(),
        "a GLOB wildcard is literal"
    );
    let all = store
        .audit_list(AuditQuery {
            limit: 1000,
            oldest_first: true,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(
        all.windows(2).all(|w| w[1].seq.0 == w[0].seq.0 + 1),
        "seqs are contiguous"
    );
    assert!(
        all.windows(2).all(|w| w[1].prev_hash == w[0].hash),
        "each event names its predecessor"
    );
    let after = store
        .audit_list(AuditQuery {
            after_seq: Some(all[2].seq.0),
            limit: 2,
            oldest_first: true,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(after[0].seq.0, all[3].seq.0);
    let report = store.audit_verify().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, i64::try_from(all.len()).unwrap());
}

#[tokio::test]
async fn sqlite_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let mk = MasterKey::generate();
    let store = tokio::task::spawn_blocking(move || SqlStore::open(&path, &mk))
        .await
        .unwrap()
        .unwrap();
    suite(&store).await;
    assert!(
        store
            .exclusive("leader".into(), false)
            .await
            .unwrap()
            .is_some()
    );
}

async fn pg_store(url: &str, mk: &MasterKey) -> SqlStore {
    let connect = PgConnect::new(url, None).unwrap();
    let mk = MasterKey::new(mk.bytes().clone()).unwrap();
    tokio::task::spawn_blocking(move || SqlStore::connect_postgres(&connect, &mk))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn postgres_backend_conforms() {
    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .unwrap()
        .unwrap();
    let mk = MasterKey::generate();
    let store = pg_store(&pg.url, &mk).await;
    suite(&store).await;
    // A second connection (a restart, another replica) sees the same sealed data and
    // chain; a wrong master key is refused.
    let again = pg_store(&pg.url, &mk).await;
    assert!(again.audit_verify().await.unwrap().ok);
    assert_eq!(
        again
            .setting_get("s1".into())
            .await
            .unwrap()
            .unwrap()
            .expose(),
        b"w"
    );
    let (connect, other) = (
        PgConnect::new(&pg.url, None).unwrap(),
        MasterKey::generate(),
    );
    assert!(
        tokio::task::spawn_blocking(move || SqlStore::connect_postgres(&connect, &other))
            .await
            .unwrap()
            .is_err()
    );
    // Cluster locks: one holder at a time, released with the guard.
    let held = store
        .exclusive("leader".into(), false)
        .await
        .unwrap()
        .expect("free");
    assert!(held.is_held());
    assert!(
        again
            .exclusive("leader".into(), false)
            .await
            .unwrap()
            .is_none()
    );
    drop(held);
    let mut got = None;
    for _ in 0..50 {
        got = again.exclusive("leader".into(), false).await.unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(got.is_some(), "released when the holder drops it");
}

#[tokio::test]
async fn postgres_replicas_writing_at_once_keep_one_linear_chain() {
    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .unwrap()
        .unwrap();
    let mk = MasterKey::generate();
    let a = Arc::new(pg_store(&pg.url, &mk).await);
    let b = Arc::new(pg_store(&pg.url, &mk).await);
    a.provider_upsert(
        from(json!({"id": "p", "hosts": ["h.example"], "passthrough": false})),
        "x".into(),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for (n, store) in [
        (0, Arc::clone(&a)),
        (1, Arc::clone(&b)),
        (2, Arc::clone(&a)),
        (3, Arc::clone(&b)),
    ] {
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store
                    .placeholder_upsert(
                        from(json!({"placeholder": format!("P_{n}_{i}"), "real_value": "v", "provider_id": "p"})),
                        "admin".into(),
                    )
                    .await
                    .unwrap();
                store
                    .record(Vec::new(), vec![NewEvent::new(EventType::PlaceholderDenied, "x", json!({"i": i}))])
                    .await
                    .unwrap();
            }
        }));
    }
    // A verifier reading while both replicas write always sees a consistent chain (its
    // read is one snapshot: the head and the events it covers).
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let verifier = {
        let (b, done) = (Arc::clone(&b), Arc::clone(&done));
        tokio::spawn(async move {
            let mut runs = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let report = b.audit_verify().await.unwrap();
                assert!(report.ok, "mid-write verify: {report:?}");
                runs += 1;
            }
            runs
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(verifier.await.unwrap() > 0);
    for store in [&a, &b] {
        let report = store.audit_verify().await.unwrap();
        assert!(report.ok, "{report:?}");
        // 1 provider event + 100 upserts + 100 recorded events.
        assert_eq!(report.checked, 201);
    }
}

#[tokio::test]
async fn postgres_over_tls_verifies_the_server() {
    let pg = tokio::task::spawn_blocking(Postgres::start_tls)
        .await
        .unwrap()
        .unwrap();
    let ca = pg.ca_pem.clone().unwrap();
    let mk = MasterKey::generate();
    let url = format!("{}?sslmode=require", pg.url);
    let open = |url: String, ca: Option<String>| {
        let mk = MasterKey::new(mk.bytes().clone()).unwrap();
        tokio::task::spawn_blocking(move || {
            let connect = PgConnect::new(&url, ca.as_deref().map(str::as_bytes))?;
            SqlStore::connect_postgres(&connect, &mk)
        })
    };
    // The server's certificate verifies with its CA: the store works over TLS.
    let store = open(url.clone(), Some(ca)).await.unwrap().unwrap();
    store
        .setting_put("s".into(), Secret::new(b"x".to_vec()))
        .await
        .unwrap();
    assert!(store.audit_verify().await.unwrap().ok);
    assert!(
        store
            .exclusive("leader".into(), false)
            .await
            .unwrap()
            .is_some(),
        "locks over TLS too"
    );
    // Another CA: the handshake fails, nothing falls back to plain text.
    let (other_ca, _, _) = excalibur_test_support::tls_files(&["127.0.0.1"]).unwrap();
    let err = open(url.clone(), Some(other_ca))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err:?}");
    // sslmode=require without a CA is refused before connecting.
    assert!(matches!(
        open(url, None).await.unwrap(),
        Err(StoreError::Invalid(_))
    ));
}
