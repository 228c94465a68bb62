//! `audit export` files and their offline verification: no server, no token. A file is
//! JSON lines, each `{"event": <audit event>}` or `{"checkpoint": <signed checkpoint>}`;
//! the verifier recomputes the hash chain and the RFC 9162 Merkle tree from the events,
//! and checks every checkpoint's Ed25519 signature against the pinned key and its root
//! against the events it covers. Appending a checkpoint kept by a witness (a webhook
//! receiver) to an export checks the export against it.

use excalibur_core::audit::{AuditEvent, ChainVerifier};
use excalibur_core::merkle::{self, Checkpoint, Frontier};
use excalibur_core::secret::hex;
use serde::{Deserialize, Serialize};

/// One line of an export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// An audit event.
    Event(AuditEvent),
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
}

/// What the verifier found.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Events checked.
    pub events: u64,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The largest checkpoint's tree size and root, if any.
    pub latest: Option<(u64, String)>,
}

/// Why an export does not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A line is not an event or a checkpoint.
    #[error("line {0} is not an event or a checkpoint: {1}")]
    Malformed(usize, String),
    /// The hash chain breaks: an event dropped, edited or out of order.
    #[error("the audit chain breaks at seq {seq}: {reason}")]
    Chain {
        /// First bad seq.
        seq: i64,
        /// Why.
        reason: String,
    },
    /// A checkpoint not signed by the pinned key.
    #[error("the checkpoint at tree size {0} is not signed by this key")]
    Signature(u64),
    /// A checkpoint covers events the export does not have.
    #[error("the checkpoint at tree size {size} covers events the export lacks (it has {have})")]
    Missing {
        /// The checkpoint's size.
        size: u64,
        /// Events in the export.
        have: u64,
    },
    /// The events do not hash to a checkpoint's root: history before it was rewritten.
    #[error(
        "the events do not match the checkpoint at tree size {size}: the first bad seq is in {from}..={size}"
    )]
    Rewritten {
        /// The checkpoint's size.
        size: u64,
        /// The first seq not covered by an earlier matching checkpoint.
        from: u64,
    },
}

impl Broken {
    /// The first bad seq, as far as it is known.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            Broken::Chain { seq, .. } => u64::try_from(*seq).ok(),
            Broken::Missing { have, .. } => Some(have + 1),
            Broken::Rewritten { from, .. } => Some(*from),
            Broken::Malformed(..) | Broken::Signature(_) => None,
        }
    }
}

/// Verifies an export against the raw Ed25519 key `public_key`.
pub fn verify(text: &str, public_key: &[u8]) -> Result<Verified, Broken> {
    let mut events = Vec::new();
    let mut checkpoints = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Event(e)) => events.push(e),
            Ok(Line::Checkpoint(c)) => checkpoints.push(c),
            Err(e) => return Err(Broken::Malformed(i + 1, e.to_string())),
        }
    }
    let mut chain = ChainVerifier::default();
    for e in &events {
        chain.push(e);
    }
    let last = events.last().map(|e| (e.seq.0, e.hash.as_str()));
    let report = chain.finish(last);
    if !report.ok {
        return Err(Broken::Chain {
            seq: report.first_broken_seq.unwrap_or(1),
            reason: report.reason.unwrap_or_default(),
        });
    }
    for cp in &checkpoints {
        if !merkle::verify_checkpoint(cp, public_key) {
            return Err(Broken::Signature(cp.tree_size));
        }
    }
    checkpoints.sort_by_key(|c| c.tree_size);
    let have = events.len() as u64;
    let mut tree = Frontier::default();
    let mut leaves = events.iter().map(merkle::leaf_hash);
    let mut matched = 0u64;
    for cp in &checkpoints {
        if cp.tree_size > have {
            return Err(Broken::Missing {
                size: cp.tree_size,
                have,
            });
        }
        while tree.size < cp.tree_size {
            let Some(leaf) = leaves.next() else { break };
            tree.push(leaf);
        }
        if hex(&tree.root()) != cp.root_hash {
            return Err(Broken::Rewritten {
                size: cp.tree_size,
                from: matched + 1,
            });
        }
        matched = cp.tree_size;
    }
    Ok(Verified {
        events: have,
        checkpoints: checkpoints.len(),
        latest: checkpoints
            .last()
            .map(|c| (c.tree_size, c.root_hash.clone())),
    })
}
