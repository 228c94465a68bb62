//! The audit log as an RFC 9162 Merkle tree, and its signed checkpoints (tree heads).
//!
//! Leaf `i` (0-based) is audit event `seq = i + 1`: `SHA-256(0x00 ‖ canonical event)`,
//! the event as the API returns it (`seq`, `ts`, `type`, `principal`, `details`,
//! `prev_hash`, `hash`) in canonical JSON. Nodes are `SHA-256(0x01 ‖ left ‖ right)`; the
//! tree over `n` leaves splits at the largest power of two below `n`. A checkpoint signs
//! the text [`checkpoint_message`] with Ed25519; hashes are lowercase hex, signatures
//! standard base64.

use aws_lc_rs::digest;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::audit::AuditEvent;
use crate::secret::hex;

/// A node or leaf hash.
pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The leaf hash of one event.
pub fn leaf_hash(event: &AuditEvent) -> Hash {
    leaf_hash_stored(&StoredEvent {
        seq: event.seq.0,
        ts: &event.ts,
        event_type: &event.event_type,
        principal: &event.principal,
        details: &crate::canonical::to_vec(&event.details),
        prev_hash: &event.prev_hash,
        hash: &event.hash,
    })
}

/// An event's columns as stored, its details already canonical JSON (as the chain
/// writes them): what the checkpointer reads, so it hashes leaves without parsing.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// Position in the chain.
    pub seq: i64,
    /// RFC 3339 time.
    pub ts: &'a str,
    /// Event type wire name.
    pub event_type: &'a str,
    /// Principal.
    pub principal: &'a str,
    /// Details, canonical JSON bytes.
    pub details: &'a [u8],
    /// Previous event's hash.
    pub prev_hash: &'a str,
    /// This event's hash.
    pub hash: &'a str,
}

/// [`leaf_hash`] from stored columns: the canonical event is assembled around the
/// stored details bytes (keys in sorted order), never parsed and re-serialized.
pub fn leaf_hash_stored(e: &StoredEvent<'_>) -> Hash {
    use crate::canonical::write_str;
    let mut body = Vec::with_capacity(e.details.len() + 320);
    body.push(0u8);
    body.extend_from_slice(b"{\"details\":");
    body.extend_from_slice(e.details);
    body.extend_from_slice(b",\"hash\":");
    write_str(&mut body, e.hash);
    body.extend_from_slice(b",\"prev_hash\":");
    write_str(&mut body, e.prev_hash);
    body.extend_from_slice(b",\"principal\":");
    write_str(&mut body, e.principal);
    body.extend_from_slice(b",\"seq\":");
    body.extend_from_slice(e.seq.to_string().as_bytes());
    body.extend_from_slice(b",\"ts\":");
    write_str(&mut body, e.ts);
    body.extend_from_slice(b",\"type\":");
    write_str(&mut body, e.event_type);
    body.push(b'}');
    sha256(&[&body])
}

/// An interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1u8], left, right])
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// `leaves` split at the largest power of two below their number (`len >= 2`).
fn halves(leaves: &[Hash]) -> (&[Hash], &[Hash]) {
    let k = split(leaves.len());
    leaves.split_at_checked(k).unwrap_or((leaves, &[]))
}

/// The Merkle tree hash of `leaves` (`SHA-256("")` for none).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => sha256(&[]),
        [one] => *one,
        _ => {
            let (left, right) = halves(leaves);
            node_hash(&root(left), &root(right))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree over `leaves` (RFC 9162 `PATH`).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    if leaves.len() <= 1 || index >= leaves.len() {
        return Vec::new();
    }
    let (left, right) = halves(leaves);
    let k = left.len();
    let (mut path, sibling) = if index < k {
        (inclusion_proof(left, index), root(right))
    } else {
        (inclusion_proof(right, index - k), root(left))
    };
    path.push(sibling);
    path
}

/// The consistency proof between the tree over the first `m` of `leaves` and the tree
/// over all of them (RFC 9162 `PROOF`).
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    if m == 0 || m >= leaves.len() {
        return Vec::new();
    }
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    if m == leaves.len() {
        return if whole {
            Vec::new()
        } else {
            vec![root(leaves)]
        };
    }
    let (left, right) = halves(leaves);
    let k = left.len();
    if m <= k {
        let mut p = subproof(m, left, whole);
        p.push(root(right));
        p
    } else {
        let mut p = subproof(m - k, right, false);
        p.push(root(left));
        p
    }
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Checks that the tree of size `m` with root `root_m` is a prefix of the tree of size
/// `n` with root `root_n` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, root_m: &Hash, root_n: &Hash, proof: &[Hash]) -> bool {
    if m == 0 || m > n {
        return m == 0;
    }
    if m == n {
        return proof.is_empty() && root_m == root_n;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if m.is_power_of_two() {
        path.push(*root_m);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (m - 1, n - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *root_m && sr == *root_n && s == 0
}

/// The right edge of a growing tree (its perfect subtrees, largest first): appending a
/// leaf and computing the root cost `O(log n)`, so checkpoints never re-read the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    /// Leaves so far.
    pub size: u64,
    /// `(leaves, hash)` of each perfect subtree, sizes strictly decreasing.
    subtrees: Vec<(u64, String)>,
}

impl Frontier {
    /// Appends one leaf.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (1u64, leaf);
        while let Some((size, hash)) = self.subtrees.last() {
            if *size != node.0 {
                break;
            }
            let left = unhex32(hash).unwrap_or_default();
            node = (size * 2, node_hash(&left, &node.1));
            self.subtrees.pop();
        }
        self.subtrees.push((node.0, hex(&node.1)));
        self.size += 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self
            .subtrees
            .iter()
            .rev()
            .map(|(_, h)| unhex32(h).unwrap_or_default());
        let Some(mut acc) = hashes.next() else {
            return sha256(&[]);
        };
        for left in hashes {
            acc = node_hash(&left, &acc);
        }
        acc
    }
}

/// 32 bytes from 64 hex characters.
pub fn unhex32(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A signed tree head over the first `tree_size` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// Events covered (seq 1 ..= tree_size).
    pub tree_size: u64,
    /// The tree's root, hex.
    pub root_hash: String,
    /// Ed25519 over [`checkpoint_message`], base64.
    pub signature: String,
    /// [`key_id`] of the signing key.
    pub key_id: String,
    /// RFC 3339 time of signing.
    pub ts: String,
}

/// What a checkpoint's signature covers.
pub fn checkpoint_message(tree_size: u64, root_hash: &str, ts: &str) -> String {
    format!("excalibur audit checkpoint v1\n{tree_size}\n{root_hash}\n{ts}\n")
}

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A key's id: the first 16 hex characters of SHA-256 over its raw 32 bytes.
pub fn key_id(public_key: &[u8]) -> String {
    hex(&sha256(&[public_key])).chars().take(16).collect()
}

/// A raw Ed25519 public key as a PEM `PUBLIC KEY`.
pub fn public_key_pem(public_key: &[u8]) -> String {
    let mut der = ED25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(public_key);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// The raw key of an Ed25519 PEM `PUBLIC KEY`.
pub fn parse_public_key_pem(pem: &str) -> Option<[u8; 32]> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let raw = der.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    raw.try_into().ok()
}

/// Whether `cp` is signed by `public_key` (raw Ed25519) and names its id.
pub fn verify_checkpoint(cp: &Checkpoint, public_key: &[u8]) -> bool {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&cp.signature) else {
        return false;
    };
    cp.key_id == key_id(public_key)
        && UnparsedPublicKey::new(&ED25519, public_key)
            .verify(
                checkpoint_message(cp.tree_size, &cp.root_hash, &cp.ts).as_bytes(),
                &sig,
            )
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaf as first defined: the event serialized to a JSON tree, then canonical.
    fn leaf_by_tree(event: &AuditEvent) -> Hash {
        let value = serde_json::to_value(event).unwrap();
        sha256(&[&[0u8], &crate::canonical::to_vec(&value)])
    }

    #[test]
    fn leaves_from_stored_columns_equal_leaves_from_the_event_tree() {
        let details = [
            serde_json::json!({}),
            serde_json::json!({"z": 1, "a": [true, null, -3, 1.5], "m": {"y": "\u{2028}", "b": "q\"\\"}}),
            serde_json::json!({"host": "api.github.com", "status": 200, "bytes": 18446744073709551615u64}),
            serde_json::json!({"reason": "ünïcödé 🗝", "tab": "\t\n\u{1}"}),
        ];
        for (i, d) in details.iter().enumerate() {
            let e = AuditEvent {
                seq: crate::ids::AuditSeq(i64::try_from(i).unwrap() * 1_000_003 + 1),
                ts: "2026-12-01T18:00:00.123Z".into(),
                event_type: "flow_recorded".into(),
                principal: ["service:ci", "human:\"o'neil\"", "", "ns/ü"][i].into(),
                details: d.clone(),
                prev_hash: "ab".repeat(32),
                hash: "cd".repeat(32),
            };
            let stored = crate::canonical::to_vec(&e.details);
            let leaf = leaf_hash_stored(&StoredEvent {
                seq: e.seq.0,
                ts: &e.ts,
                event_type: &e.event_type,
                principal: &e.principal,
                details: &stored,
                prev_hash: &e.prev_hash,
                hash: &e.hash,
            });
            assert_eq!(leaf, leaf_by_tree(&e), "event {i}");
            assert_eq!(leaf_hash(&e), leaf_by_tree(&e), "event {i}");
        }
    }

    fn leaves(n: u8) -> Vec<Hash> {
        (0..n).map(|i| sha256(&[&[0u8], &[i]])).collect()
    }

    /// RFC 6962 reference leaves and roots (transparency-dev/merkle testonly), sizes 1-8.
    #[test]
    fn rfc6962_reference_vectors() {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let all: Vec<Hash> = data.iter().map(|d| sha256(&[&[0u8], d])).collect();
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (i, want) in roots.iter().enumerate() {
            assert_eq!(hex(&root(&all[..=i])), *want, "size {}", i + 1);
        }
        let path: Vec<String> = inclusion_proof(&all, 0).iter().map(|h| hex(h)).collect();
        assert_eq!(
            path,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]
        );
        let proof: Vec<String> = consistency_proof(&all, 2).iter().map(|h| hex(h)).collect();
        assert_eq!(proof.len(), 2);
        assert!(proof[0].starts_with("5f083f0a") && proof[1].starts_with("6b47aaf2"));
        let path5: Vec<String> = inclusion_proof(&all, 5).iter().map(|h| hex(h)).collect();
        assert!(path5[0].starts_with("bc1a0643") && path5[1].starts_with("ca854ea1"));
        assert!(path5[2].starts_with("d37ee418"));
        // Garbage before or after, or a component removed: refused.
        let r8 = root(&all);
        let p = inclusion_proof(&all, 0);
        assert!(verify_inclusion(0, 8, &all[0], &p, &r8));
        let mut longer = p.clone();
        longer.push(p[0]);
        assert!(!verify_inclusion(0, 8, &all[0], &longer, &r8));
        assert!(!verify_inclusion(0, 8, &all[0], &p[..2], &r8));
        assert!(!verify_inclusion(1, 8, &all[0], &p, &r8));
        assert!(!verify_inclusion(8, 8, &all[0], &p, &r8));
    }

    #[test]
    fn empty_tree_is_the_hash_of_nothing() {
        // RFC 9162 §2.1.1: MTH({}) = SHA-256().
        assert_eq!(
            hex(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn frontier_roots_match_the_recursive_definition() {
        let all = leaves(40);
        let mut f = Frontier::default();
        for (i, leaf) in all.iter().enumerate() {
            f.push(*leaf);
            assert_eq!(f.root(), root(&all[..=i]), "size {}", i + 1);
        }
        let copy: Frontier = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(copy.root(), f.root());
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_wrong_one_does_not() {
        for n in 1..=17u8 {
            let all = leaves(n);
            let r = root(&all);
            for i in 0..all.len() {
                let p = inclusion_proof(&all, i);
                let (i64_, n64) = (i as u64, u64::from(n));
                assert!(verify_inclusion(i64_, n64, &all[i], &p, &r), "n {n} i {i}");
                let other = all[(i + 1) % all.len()];
                if n > 1 {
                    assert!(!verify_inclusion(i64_, n64, &other, &p, &r), "n {n} i {i}");
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewritten_prefix_does_not() {
        for n in 1..=17u8 {
            let all = leaves(n);
            let rn = root(&all);
            for m in 1..=all.len() {
                let rm = root(&all[..m]);
                let p = consistency_proof(&all, m);
                assert!(
                    verify_consistency(m as u64, u64::from(n), &rm, &rn, &p),
                    "m {m} n {n}"
                );
                // A different history of the first m leaves is not a prefix.
                let mut forged = all.clone();
                forged[0] = sha256(&[b"forged"]);
                let p = consistency_proof(&forged, m);
                assert!(
                    !verify_consistency(m as u64, u64::from(n), &rm, &root(&forged), &p),
                    "m {m} n {n}"
                );
            }
        }
    }

    #[test]
    fn checkpoint_signatures_bind_key_size_root_and_time() {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = key.public_key().as_ref().to_vec();
        let root_hash = hex(&root(&leaves(3)));
        let ts = "2026-12-01T00:00:00.000Z".to_owned();
        let sig = key.sign(checkpoint_message(3, &root_hash, &ts).as_bytes());
        let cp = Checkpoint {
            tree_size: 3,
            root_hash,
            signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
            key_id: key_id(&public),
            ts,
        };
        assert!(verify_checkpoint(&cp, &public));
        assert_eq!(
            parse_public_key_pem(&public_key_pem(&public))
                .as_ref()
                .map(|k| &k[..]),
            Some(&public[..])
        );
        let mut bigger = cp.clone();
        bigger.tree_size = 4;
        assert!(!verify_checkpoint(&bigger, &public));
        let other = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let other = Ed25519KeyPair::from_pkcs8(other.as_ref()).unwrap();
        assert!(!verify_checkpoint(&cp, other.public_key().as_ref()));
    }
}
