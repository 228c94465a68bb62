//! The audit chain verifier and canonical JSON over arbitrary event lists: no panics,
//! and an unmodified chain rebuilt from the input always verifies.
#![no_main]

use excalibur_core::audit::{AuditEvent, ChainVerifier, GENESIS_HASH};
use excalibur_core::ids::AuditSeq;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(events) = serde_json::from_slice::<Vec<AuditEvent>>(data) else {
        return;
    };
    let mut v = ChainVerifier::default();
    events.iter().for_each(|e| v.push(e));
    let _ = v.finish(events.last().map(|e| (e.seq.0, e.hash.as_str())));

    // Re-chain the same contents correctly: it must verify.
    let mut prev = GENESIS_HASH.to_owned();
    let mut fixed = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        let mut e = e;
        e.seq = AuditSeq(i64::try_from(i).unwrap_or(0) + 1);
        e.prev_hash = prev.clone();
        e.hash = e.recompute_hash();
        prev = e.hash.clone();
        fixed.push(e);
    }
    let mut v = ChainVerifier::default();
    fixed.iter().for_each(|e| v.push(e));
    let report = v.finish(fixed.last().map(|e| (e.seq.0, e.hash.as_str())));
    assert!(report.ok, "{report:?}");
});
