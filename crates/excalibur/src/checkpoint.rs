//! Signed audit checkpoints: every `checkpoint_every_events` events or
//! `checkpoint_every_secs` seconds (whichever comes first, and only when something
//! happened), the delivery leader extends the Merkle tree from the last checkpoint's
//! frontier with the events since, signs its head with the Ed25519 checkpoint key (sealed
//! in the store) and stores it with an `audit_checkpoint` event, which webhooks carry
//! off-host: a receiver that keeps them is a witness.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use excalibur_core::merkle::{Checkpoint, Frontier, checkpoint_message, key_id};
use excalibur_core::secret::hex;
use excalibur_core::time::Timestamp;
use excalibur_store::Store;

/// The store setting holding the sealed checkpoint signing key (PKCS#8).
const KEY_SETTING: &str = "audit_checkpoint_key";

/// The checkpoint signing key.
pub(crate) struct CheckpointKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl CheckpointKey {
    /// Loads the key, generating it on first start.
    pub(crate) async fn load(store: &dyn Store) -> anyhow::Result<Self> {
        let pkcs8 = match store.setting_get(KEY_SETTING.to_owned()).await? {
            Some(s) => s,
            None => {
                let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
                    .map_err(|_| anyhow::anyhow!("cannot generate the checkpoint key"))?;
                let secret = excalibur_core::Secret::new(doc.as_ref().to_vec());
                store
                    .setting_put(KEY_SETTING.to_owned(), secret.clone())
                    .await?;
                tracing::info!("generated the audit checkpoint key");
                secret
            }
        };
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.expose())
            .map_err(|_| anyhow::anyhow!("the stored audit checkpoint key is unusable"))?;
        Ok(Self { pair })
    }

    /// The public key as a PEM `PUBLIC KEY`.
    pub(crate) fn public_pem(&self) -> String {
        excalibur_core::merkle::public_key_pem(self.pair.public_key().as_ref())
    }

    fn key_id(&self) -> String {
        key_id(self.pair.public_key().as_ref())
    }

    fn sign(&self, tree: &Frontier) -> Checkpoint {
        let root_hash = hex(&tree.root());
        let ts = Timestamp::now().to_rfc3339();
        let sig = self
            .pair
            .sign(checkpoint_message(tree.size, &root_hash, &ts).as_bytes());
        Checkpoint {
            tree_size: tree.size,
            root_hash,
            signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
            key_id: self.key_id(),
            ts,
        }
    }
}

/// Makes checkpoints when they are due.
#[derive(Debug, Clone)]
pub(crate) struct Checkpointer {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) key: Arc<CheckpointKey>,
    pub(crate) every_events: u64,
    pub(crate) every: Duration,
    /// The latest checkpoint's tree and time, as this leader last read or made it (only
    /// the leader makes checkpoints; [`Checkpointer::forget`] on a change of leader).
    pub(crate) latest: Option<(Frontier, Option<i64>)>,
}

impl Checkpointer {
    /// Reads the latest checkpoint from the store at the next tick (another replica may
    /// have made one).
    pub(crate) fn forget(&mut self) {
        self.latest = None;
    }

    /// Makes a checkpoint if one is due with the log's head at `head`; the new one, if
    /// any. With nothing new since the latest checkpoint it reads nothing.
    pub(crate) async fn tick(&mut self, head: u64) -> anyhow::Result<Option<Checkpoint>> {
        let (mut tree, last_ms) = match self.latest.take() {
            Some(known) => known,
            None => match self.store.checkpoint_latest().await? {
                Some((cp, f)) => (f, Timestamp::parse(&cp.ts).ok().map(Timestamp::millis)),
                None => (Frontier::default(), None),
            },
        };
        // Whether one is due is decided from the head's seq alone; the events are read
        // (and hashed) only for the checkpoint that is made.
        // The last checkpoint's own event is not news.
        let news = head
            .saturating_sub(tree.size)
            .saturating_sub(u64::from(last_ms.is_some()));
        let elapsed = last_ms.map(|at| Timestamp::now().millis() - at);
        let due = news > 0
            && (news >= self.every_events
                || elapsed.is_none_or(|ms| {
                    ms >= i64::try_from(self.every.as_millis()).unwrap_or(i64::MAX)
                }));
        if !due {
            self.latest = Some((tree, last_ms));
            return Ok(None);
        }
        let new = self.store.audit_leaves(tree.size, head).await?;
        for leaf in new {
            tree.push(leaf);
        }
        let cp = self.key.sign(&tree);
        self.store
            .checkpoint_append(cp.clone(), tree.clone())
            .await?;
        self.latest = Some((tree, Timestamp::parse(&cp.ts).ok().map(Timestamp::millis)));
        tracing::debug!(tree_size = cp.tree_size, "audit checkpoint signed");
        Ok(Some(cp))
    }
}
