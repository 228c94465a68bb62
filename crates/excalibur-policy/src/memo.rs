//! A subject's memo of redeem decisions: a keep-alive connection asks the same question
//! (this placeholder, this host, path, method, scheme and port) request after request,
//! and Cedar answers it the same way while the policy is the same.
//!
//! Sound because a redeem decision is a pure function of the compiled policy (its
//! `generation`), the subject's entity (fixed for the subject's life), the placeholder's
//! entity (part of the policy) and the request's context, with one exception: the clock.
//! A policy that may read `context.time` turns the memo off for its whole generation
//! ([`crate::Policy`] decides). Expiry and revocation are checked outside Cedar, on every
//! request, before the decision, so a memoized allow never outlives either.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::Mutex;

use crate::{Deny, RedeemTarget};

/// At most this many answers per subject; a full memo starts over.
const CAPACITY: usize = 256;

/// One placeholder's answer.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Allowed by `policies`; `body` when one of them allows bodies.
    Allow {
        body: bool,
        policies: Vec<String>,
    },
    Deny(Deny),
}

#[derive(Debug)]
struct Key {
    name: String,
    host: String,
    path: String,
    method: String,
    scheme: String,
    port: u16,
}

impl Key {
    fn is(&self, name: &str, t: &RedeemTarget<'_>) -> bool {
        self.port == t.port
            && self.name == name
            && self.path == t.path
            && self.host == t.host
            && self.method == t.method
            && self.scheme == t.scheme
    }
}

#[derive(Debug, Default)]
struct Slots {
    generation: u64,
    len: usize,
    /// By hash of the question; a collision keeps both answers.
    entries: HashMap<u64, Vec<(Key, Outcome)>>,
}

/// The memo. Cloning a subject starts an empty one.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    hasher: std::collections::hash_map::RandomState,
    slots: Mutex<Slots>,
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Memo {
    fn hash(&self, name: &str, t: &RedeemTarget<'_>) -> u64 {
        self.hasher
            .hash_one((name, t.host, t.path, t.method, t.scheme, t.port))
    }

    /// The answer given under policy `generation` to this question, if any.
    pub(crate) fn get(&self, generation: u64, name: &str, t: &RedeemTarget<'_>) -> Option<Outcome> {
        let hash = self.hash(name, t);
        let slots = self.slots.lock().ok()?;
        if slots.generation != generation {
            return None;
        }
        slots
            .entries
            .get(&hash)?
            .iter()
            .find(|(k, _)| k.is(name, t))
            .map(|(_, o)| o.clone())
    }

    /// Keeps `outcome` as the answer under `generation`; a newer generation drops the rest.
    pub(crate) fn put(&self, generation: u64, name: &str, t: &RedeemTarget<'_>, outcome: &Outcome) {
        let hash = self.hash(name, t);
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        if slots.generation != generation || slots.len >= CAPACITY {
            slots.entries.clear();
            slots.len = 0;
            slots.generation = generation;
        }
        let key = Key {
            name: name.to_owned(),
            host: t.host.to_owned(),
            path: t.path.to_owned(),
            method: t.method.to_owned(),
            scheme: t.scheme.to_owned(),
            port: t.port,
        };
        let bucket = slots.entries.entry(hash).or_default();
        if !bucket.iter().any(|(k, _)| k.is(name, t)) {
            bucket.push((key, outcome.clone()));
            slots.len += 1;
        }
    }
}
