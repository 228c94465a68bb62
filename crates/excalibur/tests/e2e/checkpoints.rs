//! Issue 17: signed audit checkpoints. A Merkle tree over the audit log, signed tree
//! heads pushed to webhooks, inclusion and consistency proofs, and an export that
//! `excalibur-ctl audit verify --offline` checks with no server. Once a checkpoint has
//! left the host, someone holding the database file and the master key can rewrite the
//! history before it (recomputing every hash and the authenticated head, re-signing new
//! checkpoints), but the witness's checkpoint no longer matches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use excalibur_core::audit::{AuditEvent, chain_hash};
use excalibur_core::merkle::{self, Checkpoint};
use excalibur_core::secret::hex;
use excalibur_test_support::receiver::Receiver;
use excalibur_test_support::{Gateway, Options};
use serde_json::{Value, json};

use crate::{ctl, ctl_bin, server_bin};

const CONFIG: &str = "[audit]\ncheckpoint_every_events = 5\ncheckpoint_every_secs = 1\n[webhooks]\nretry_base_ms = 100\ndangerous_allow_private_destinations = true\n";

async fn events(gw: &Gateway, n: usize, tag: &str) {
    for i in 0..n {
        gw.api()
            .post(
                "/api/providers",
                json!({"id": format!("{tag}-{i}"), "hosts": [format!("{tag}{i}.example")]}),
            )
            .await
            .unwrap();
    }
}

/// The checkpoints the receiver has been sent.
fn witnessed(receiver: &Receiver) -> Vec<Checkpoint> {
    receiver
        .received()
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter(|v| v["event_type"] == "audit_checkpoint")
        .filter_map(|v| serde_json::from_value(v["event"]["details"].clone()).ok())
        .collect()
}

async fn offline(dir: &std::path::Path, file: &str, key: &str) -> (i32, String) {
    let out = tokio::process::Command::new(ctl_bin())
        .args(["audit", "verify", "--offline", file, "--public-key", key])
        .current_dir(dir)
        .env_remove("EXCALIBUR_TOKEN")
        .env("EXCALIBUR_URL", "https://127.0.0.1:9")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn unhex(s: &str) -> merkle::Hash {
    merkle::unhex32(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witnessed_checkpoint_exposes_a_rewritten_history() {
    let receiver = Receiver::start(0).await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let gw = Gateway::start_in(
        server_bin(),
        Arc::clone(&dir),
        Options {
            config_toml: CONFIG.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api = gw.api();
    api.post(
        "/api/webhooks",
        json!({"url": format!("http://{}/hook", receiver.addr), "event_types": ["audit_checkpoint"]}),
    )
    .await
    .unwrap();
    events(&gw, 8, "before").await;

    // The receiver (off-host, in real life) is sent a checkpoint covering those events.
    let started = Instant::now();
    let witness = loop {
        if let Some(cp) = witnessed(&receiver).into_iter().find(|c| c.tree_size >= 9) {
            break cp;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no checkpoint delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The key needs no token; the witness's checkpoint verifies with it.
    let (status, _, pem) = gw
        .api_as(None)
        .send("GET", "/api/audit/checkpoint-key", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let pem = pem.as_str().unwrap().to_owned();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let key = merkle::parse_public_key_pem(&pem).unwrap();
    assert!(merkle::verify_checkpoint(&witness, &key), "{witness:?}");
    let latest: Checkpoint =
        serde_json::from_value(api.get("/api/audit/checkpoints/latest").await.unwrap()).unwrap();
    assert!(latest.tree_size >= witness.tree_size);
    let listed = api.get("/api/audit/checkpoints?after=0").await.unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["root_hash"] == witness.root_hash.as_str())
    );

    // Inclusion of event 2 in the witnessed tree, checked against the witness's root.
    let proof = api
        .get(&format!(
            "/api/audit/proof/inclusion?seq=2&tree_size={}",
            witness.tree_size
        ))
        .await
        .unwrap();
    let event2: AuditEvent = serde_json::from_value(
        api.get("/api/audit?after_seq=1&order=asc&limit=1")
            .await
            .unwrap()[0]
            .clone(),
    )
    .unwrap();
    let path: Vec<merkle::Hash> = proof["audit_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    assert!(merkle::verify_inclusion(
        1,
        witness.tree_size,
        &merkle::leaf_hash(&event2),
        &path,
        &unhex(&witness.root_hash)
    ));
    // The log grows; the latest tree extends the witnessed one.
    events(&gw, 6, "later").await;
    let consistent = |from: &Checkpoint, latest_size: u64, body: &Value| {
        let proof: Vec<merkle::Hash> = body["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| unhex(h.as_str().unwrap()))
            .collect();
        merkle::verify_consistency(
            from.tree_size,
            latest_size,
            &unhex(&from.root_hash),
            &unhex(body["to_root"].as_str().unwrap()),
            &proof,
        )
    };
    let head = api.get("/api/audit/verify").await.unwrap()["head_seq"]
        .as_u64()
        .unwrap();
    let body = api
        .get(&format!(
            "/api/audit/proof/consistency?from={}&to={head}",
            witness.tree_size
        ))
        .await
        .unwrap();
    assert!(consistent(&witness, head, &body), "{body}");

    // Export and verify offline: intact.
    let key_file = dir.path().join("checkpoint-key.pem");
    std::fs::write(&key_file, &pem).unwrap();
    let (code, out, err) = ctl(
        &gw,
        &[
            "audit",
            "export",
            "--out",
            dir.path().join("export.jsonl").to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let export = std::fs::read_to_string(dir.path().join("export.jsonl")).unwrap();
    let (code, out) = offline(dir.path(), "export.jsonl", "checkpoint-key.pem").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("export intact"), "{out}");

    // Tampered copies: an event dropped, edited, two swapped; another key.
    let lines: Vec<&str> = export.lines().collect();
    let event_lines: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("{\"event\""))
        .collect();
    let write = |name: &str, ls: Vec<String>| {
        std::fs::write(dir.path().join(name), ls.join("\n") + "\n").unwrap();
    };
    let owned: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let mut dropped = owned.clone();
    dropped.remove(event_lines[3]);
    write("dropped.jsonl", dropped);
    let mut edited = owned.clone();
    let mut line: Value = serde_json::from_str(&edited[event_lines[2]]).unwrap();
    line["event"]["principal"] = json!("someone-else");
    edited[event_lines[2]] = line.to_string();
    write("edited.jsonl", edited);
    let mut swapped = owned.clone();
    swapped.swap(event_lines[4], event_lines[5]);
    write("swapped.jsonl", swapped);
    for (file, seq) in [
        ("dropped.jsonl", 4),
        ("edited.jsonl", 3),
        ("swapped.jsonl", 5),
    ] {
        let (code, out) = offline(dir.path(), file, "checkpoint-key.pem").await;
        assert_eq!(code, 1, "{file}: {out}");
        assert!(
            out.contains(&format!("first bad seq {seq}")),
            "{file}: {out}"
        );
    }
    let other = {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        merkle::public_key_pem(pair.public_key().as_ref())
    };
    std::fs::write(dir.path().join("other-key.pem"), other).unwrap();
    let (code, out) = offline(dir.path(), "export.jsonl", "other-key.pem").await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not signed by this key"), "{out}");

    // The attacker: the database file and the master key. Gateway stopped, event 2's
    // details rewritten, every later hash recomputed, the authenticated head re-MACed,
    // and the stored checkpoints deleted (new ones will be signed over the new history).
    let data_dir = gw.data_dir.clone();
    gw.stop().await.unwrap();
    let master = {
        let text = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
        (0..32)
            .map(|i| u8::from_str_radix(text.trim().get(2 * i..2 * i + 2).unwrap(), 16).unwrap())
            .collect::<Vec<u8>>()
    };
    {
        let db = rusqlite::Connection::open(data_dir.join("excalibur.db")).unwrap();
        let mut rows: Vec<(i64, String, String, String, String)> = db
            .prepare("SELECT seq, ts, type, principal, details FROM audit_events ORDER BY seq")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // Who did event 2 is changed.
        rows[1].3 = "admin:someone-else".to_owned();
        let mut prev = excalibur_core::audit::GENESIS_HASH.to_owned();
        for (seq, ts, ty, principal, details) in &rows {
            let v: Value = serde_json::from_str(details).unwrap();
            let hash = chain_hash(
                excalibur_core::ids::AuditSeq(*seq),
                ts,
                ty,
                principal,
                &v,
                &prev,
            );
            db.execute(
                "UPDATE audit_events SET principal = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                rusqlite::params![principal, prev, hash, seq],
            )
            .unwrap();
            prev = hash;
        }
        let head_key = {
            let k = hmac::Key::new(hmac::HMAC_SHA256, &master);
            let derived = hmac::sign(&k, b"excalibur audit head v1");
            hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
        };
        let last = rows.last().unwrap().0;
        let mac = hex(hmac::sign(&head_key, format!("{last}:{prev}").as_bytes()).as_ref());
        db.execute(
            "UPDATE audit_head SET hash = ?1, mac = ?2 WHERE id = 1",
            rusqlite::params![prev, mac],
        )
        .unwrap();
        db.execute("DELETE FROM audit_checkpoints", []).unwrap();
    }
    let gw = Gateway::start_in(
        server_bin(),
        Arc::clone(&dir),
        Options {
            data_dir: Some(data_dir),
            config_toml: CONFIG.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // On the host, the forgery holds: the chain verifies, new checkpoints are signed.
    let v = gw.api().get("/api/audit/verify").await.unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let started = Instant::now();
    while gw
        .api()
        .send("GET", "/api/audit/checkpoints/latest", None)
        .await
        .unwrap()
        .0
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no new checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out, err) = ctl(
        &gw,
        &[
            "audit",
            "export",
            "--out",
            dir.path().join("forged.jsonl").to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out) = offline(dir.path(), "forged.jsonl", "checkpoint-key.pem").await;
    assert_eq!(code, 0, "the forged export is consistent by itself: {out}");
    // Off the host, the witness's checkpoint exposes it.
    let mut forged = std::fs::read_to_string(dir.path().join("forged.jsonl")).unwrap();
    forged.push_str(&json!({"checkpoint": witness}).to_string());
    forged.push('\n');
    std::fs::write(dir.path().join("forged+witness.jsonl"), forged).unwrap();
    let (code, out) = offline(dir.path(), "forged+witness.jsonl", "checkpoint-key.pem").await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "do not match the checkpoint at tree size {}",
            witness.tree_size
        )),
        "{out}"
    );
    // And no consistency proof the server can give links the witness to its new tree.
    let head = gw.api().get("/api/audit/verify").await.unwrap()["head_seq"]
        .as_u64()
        .unwrap();
    let body = gw
        .api()
        .get(&format!(
            "/api/audit/proof/consistency?from={}&to={head}",
            witness.tree_size
        ))
        .await
        .unwrap();
    assert!(!consistent(&witness, head, &body), "{body}");
}
