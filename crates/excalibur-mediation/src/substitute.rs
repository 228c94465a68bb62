//! [`Mediator`]: the automata built once per snapshot, and the rewrites they drive.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use excalibur_core::Secret;
use excalibur_policy::Permit;
use forms::{base64_fragments, echo_forms, percent_decode};

/// Placeholder names and their real values, with the automata that find them.
///
/// Everything a rotation does not change is shared between the mediators of
/// successive snapshots (`Arc`), so a rotation costs the size of what rotated, not
/// the number of placeholders.
#[derive(Debug, Default)]
pub struct Mediator {
    names: Arc<[String]>,
    /// The values the scrub automata were built from.
    values: Arc<[Secret]>,
    /// Values rotated since `values` (by index): they take precedence, and their
    /// echoes are scrubbed by the [`Rebuilt::recent`] mediator. The old values are
    /// still scrubbed by the scrub automata, which is harmless.
    rotated: Arc<BTreeMap<usize, Secret>>,
    find: Option<AhoCorasick>,
    encoded: Option<AhoCorasick>,
    encoded_owner: Arc<[usize]>,
    max_name: usize,
    scrub: Arc<ScrubAutomata>,
    /// Placeholders added since the name automata were built (at most [`MAX_TAIL`]):
    /// found and substituted beside them as if one automaton held both, scrubbed by
    /// their own automata ([`Mediator::tail`]). Never has a tail of its own.
    tail: Option<Arc<Mediator>>,
    /// Placeholders deleted since the automata were built ([`Mediator::remove`]), in
    /// them or in the tail: never found nor substituted; their values stay scrubbed.
    removed: Arc<BTreeSet<String>>,
}

/// A mediator for the next snapshot ([`Mediator::rebuild`]).
#[derive(Debug)]
pub struct Rebuilt {
    /// Substitutes and detects every placeholder, and scrubs all values but the
    /// recently rotated ones.
    pub main: Arc<Mediator>,
    /// Scrubs the values rotated since `main`'s scrub automata were built (empty when
    /// there are none): a response must be scrubbed with both.
    pub recent: Arc<Mediator>,
}

/// Rotations scrubbed by a small second automaton before the whole set is rebuilt.
const MAX_RECENT: usize = 64;

/// Placeholders added to a small tail mediator before the whole set is rebuilt.
const MAX_TAIL: usize = 256;

/// The automata over placeholder names (they change only when names do).
struct NameAutomata {
    find: Option<AhoCorasick>,
    encoded: Option<AhoCorasick>,
    encoded_owner: Vec<usize>,
    max_name: usize,
}

/// The automata over real values, for scrubbing echoes.
#[derive(Debug, Default)]
struct ScrubAutomata {
    scrub: Option<AhoCorasick>,
    scrub_owner: Vec<usize>,
    scrub_folded: Option<AhoCorasick>,
    max_scrub: usize,
}

fn build_automaton(patterns: &[&[u8]]) -> Option<AhoCorasick> {
    if patterns.is_empty() {
        return None;
    }
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .build(patterns)
        .ok()
}

impl NameAutomata {
    fn build(names: &[String]) -> Self {
        let name_bytes: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        let mut encoded_patterns = Vec::new();
        let mut encoded_owner = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for fragment in base64_fragments(name.as_bytes()) {
                encoded_patterns.push(fragment);
                encoded_owner.push(i);
            }
        }
        let encoded_refs: Vec<&[u8]> = encoded_patterns.iter().map(|p| p.as_bytes()).collect();
        Self {
            find: build_automaton(&name_bytes),
            encoded: build_automaton(&encoded_refs),
            encoded_owner,
            max_name: names.iter().map(String::len).max().unwrap_or(0),
        }
    }
}

impl ScrubAutomata {
    fn build(values: &[Secret]) -> Self {
        // Echoes are scrubbed in every form the outbound detector catches, and more:
        // literal, percent-encoded, base64/base64url at every alignment, JSON escapes.
        let mut scrub_patterns: Vec<Vec<u8>> = Vec::new();
        let mut scrub_owner = Vec::new();
        // Deduplicated by index into `scrub_patterns` (a set lookup, not a scan: the
        // build stays linear in the number of placeholders).
        let mut seen: std::collections::HashMap<u64, Vec<usize>> = std::collections::HashMap::new();
        let state = std::hash::RandomState::new();
        for (i, v) in values.iter().enumerate() {
            for form in echo_forms(v.expose()) {
                let slot = seen
                    .entry(std::hash::BuildHasher::hash_one(&state, &form))
                    .or_default();
                if slot
                    .iter()
                    .any(|&j| scrub_patterns.get(j).is_some_and(|p| *p == form))
                {
                    continue;
                }
                slot.push(scrub_patterns.len());
                scrub_patterns.push(form);
                scrub_owner.push(i);
            }
        }
        let scrub_refs: Vec<&[u8]> = scrub_patterns.iter().map(Vec::as_slice).collect();
        // For header names, which arrive lowercased: the patterns lowercased, matched
        // against lowercased input (the same as ignoring ASCII case, at a fraction of a
        // case-insensitive automaton's build cost).
        let lowered: Vec<Vec<u8>> = scrub_patterns
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let lowered_refs: Vec<&[u8]> = lowered.iter().map(Vec::as_slice).collect();
        let scrub_folded = build_automaton(&lowered_refs);
        Self {
            scrub: build_automaton(&scrub_refs),
            scrub_owner,
            scrub_folded,
            max_scrub: scrub_patterns.iter().map(Vec::len).max().unwrap_or(0),
        }
    }
}

impl Mediator {
    /// Builds the automata for `(placeholder name, real value)` pairs.
    pub fn new(entries: Vec<(String, Secret)>) -> Self {
        let (names, values): (Vec<String>, Vec<Secret>) = entries.into_iter().unzip();
        let n = NameAutomata::build(&names);
        let v = ScrubAutomata::build(&values);
        Self::assemble(names, values, n, v)
    }

    /// [`Mediator::new`] for the next snapshot. The same pairs as `previous` give
    /// `previous` itself. The same names with other values (rotations) keep the name
    /// automata and the scrub automata, and the rotated values are scrubbed by a small
    /// `recent` mediator, until more than [`MAX_RECENT`] values have rotated since the
    /// scrub automata were built; then, or when names change, everything is rebuilt.
    pub fn rebuild(previous: &Arc<Mediator>, entries: Vec<(String, Secret)>) -> Rebuilt {
        let full = |entries| Rebuilt {
            main: Arc::new(Self::new(entries)),
            recent: Arc::new(Self::default()),
        };
        let same_names = previous.removed.is_empty()
            && previous.names.len() == entries.len()
            && previous
                .names
                .iter()
                .zip(&entries)
                .all(|(a, (b, _))| a == b);
        if !same_names {
            return full(entries);
        }
        let changed: Vec<(usize, Secret)> = entries
            .into_iter()
            .enumerate()
            .filter(|(i, (_, v))| previous.value(*i).is_none_or(|p| p.expose() != v.expose()))
            .map(|(i, (_, v))| (i, v))
            .collect();
        Self::overlay(previous, changed).unwrap_or_else(full)
    }

    /// `previous` with the values at `changed`'s indices replaced, sharing everything
    /// else; `Err` with every pair when too many values have rotated since the scrub
    /// automata were built ([`MAX_RECENT`]): then they are built again.
    fn overlay(
        previous: &Arc<Mediator>,
        changed: Vec<(usize, Secret)>,
    ) -> Result<Rebuilt, Vec<(String, Secret)>> {
        let mut rotated = (*previous.rotated).clone();
        let any = !changed.is_empty();
        rotated.extend(changed);
        let main = previous.sharing(Arc::new(rotated), previous.tail.clone());
        if main.rotated.len() > MAX_RECENT {
            let mut pairs = main.pairs();
            pairs.extend(main.tail_pairs());
            return Err(pairs);
        }
        let recent = Arc::new(main.recent());
        Ok(Rebuilt {
            main: if any {
                Arc::new(main)
            } else {
                Arc::clone(previous)
            },
            recent,
        })
    }

    /// This mediator's names, base values and automata (shared), with `rotated` and
    /// `tail` in place of its own.
    fn sharing(&self, rotated: Arc<BTreeMap<usize, Secret>>, tail: Option<Arc<Mediator>>) -> Self {
        Self {
            names: Arc::clone(&self.names),
            values: Arc::clone(&self.values),
            rotated,
            find: self.find.clone(),
            encoded: self.encoded.clone(),
            encoded_owner: Arc::clone(&self.encoded_owner),
            max_name: self.max_name,
            scrub: Arc::clone(&self.scrub),
            tail,
            removed: Arc::clone(&self.removed),
        }
    }

    /// The mediator that scrubs the values rotated since the scrub automata were built.
    fn recent(&self) -> Mediator {
        Self::new(
            self.rotated
                .iter()
                .filter_map(|(&i, v)| Some((self.names.get(i)?.clone(), v.clone())))
                .collect(),
        )
    }

    /// The pairs of the tail (empty without one), but those removed.
    fn tail_pairs(&self) -> Vec<(String, Secret)> {
        let mut pairs = self.tail.as_ref().map(|t| t.pairs()).unwrap_or_default();
        pairs.retain(|(n, _)| !self.removed.contains(n));
        pairs
    }

    /// Every `(name, value)` of this mediator's own automata, as rotated, but those
    /// removed.
    fn pairs(&self) -> Vec<(String, Secret)> {
        self.names
            .iter()
            .enumerate()
            .filter(|(_, n)| !self.removed.contains(*n))
            .filter_map(|(i, n)| Some((n.clone(), self.value(i)?.clone())))
            .collect()
    }

    /// `previous` without placeholder `name`, sharing every automaton: it is never
    /// found nor substituted again (its value is still scrubbed, which is harmless,
    /// until the next build leaves it out).
    pub fn remove(previous: &Arc<Mediator>, name: &str) -> Arc<Mediator> {
        Arc::new(previous.marking(|removed| removed.insert(name.to_owned())))
    }

    /// This mediator, sharing everything, with `change` made to its removed names.
    fn marking(&self, change: impl FnOnce(&mut BTreeSet<String>) -> bool) -> Self {
        let mut next = self.sharing(Arc::clone(&self.rotated), self.tail.clone());
        let mut removed = (*self.removed).clone();
        change(&mut removed);
        next.removed = Arc::new(removed);
        next
    }

    /// `previous` with placeholder `name` set to `value`: a rotation when it has the
    /// name ([`Mediator::rotate`]); else the name joins the tail, sharing every
    /// automaton over the other names, until the tail outgrows [`MAX_TAIL`] and all is
    /// built again.
    pub fn upsert(previous: &Arc<Mediator>, name: &str, value: &Secret) -> Rebuilt {
        // A name deleted and created again is found again.
        let restored;
        let previous = if previous.removed.contains(name) {
            restored = Arc::new(previous.marking(|removed| removed.remove(name)));
            &restored
        } else {
            previous
        };
        if let Some(r) = Self::rotate(previous, name, value) {
            return r;
        }
        let mut tail = previous.tail_pairs();
        match tail.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => tail.push((name.to_owned(), value.clone())),
        }
        if tail.len() > MAX_TAIL {
            let mut pairs = previous.pairs();
            pairs.extend(tail);
            return Rebuilt {
                main: Arc::new(Self::new(pairs)),
                recent: Arc::new(Self::default()),
            };
        }
        let main = previous.sharing(
            Arc::clone(&previous.rotated),
            Some(Arc::new(Self::new(tail))),
        );
        Rebuilt {
            recent: Arc::new(main.recent()),
            main: Arc::new(main),
        }
    }

    /// The mediator of the placeholders added since the name automata were built: a
    /// response is scrubbed with it too.
    pub fn tail(&self) -> Option<&Arc<Mediator>> {
        self.tail.as_ref()
    }

    /// The leftmost-longest placeholder names in `hay`, over the name automata and the
    /// tail's together: `(owner, pattern index in owner, start, end)`.
    fn name_matches<'m, 'h>(&'m self, hay: &'h [u8]) -> NameMatches<'m, 'h> {
        NameMatches {
            base: self,
            automaton: |m| m.find.as_ref(),
            name: |m, i| m.names.get(i),
            hay,
            pos: 0,
        }
    }

    /// The real value of the placeholder at `i`, as rotated.
    fn value(&self, i: usize) -> Option<&Secret> {
        self.rotated.get(&i).or_else(|| self.values.get(i))
    }

    /// [`Mediator::rebuild`] over `previous`'s own pairs with `name`'s value replaced by
    /// `value` (a rotation, without reading every value again); `None` when `previous`
    /// has no placeholder `name`.
    pub fn rotate(previous: &Arc<Mediator>, name: &str, value: &Secret) -> Option<Rebuilt> {
        let at = previous.names.iter().position(|n| n == name)?;
        let changed = if previous
            .value(at)
            .is_some_and(|v| v.expose() == value.expose())
        {
            Vec::new()
        } else {
            vec![(at, value.clone())]
        };
        Some(
            Self::overlay(previous, changed).unwrap_or_else(|pairs| Rebuilt {
                main: Arc::new(Self::new(pairs)),
                recent: Arc::new(Self::default()),
            }),
        )
    }

    fn assemble(
        names: Vec<String>,
        values: Vec<Secret>,
        n: NameAutomata,
        v: ScrubAutomata,
    ) -> Self {
        Self {
            find: n.find,
            encoded: n.encoded,
            encoded_owner: n.encoded_owner.into(),
            max_name: n.max_name,
            scrub: Arc::new(v),
            rotated: Arc::default(),
            names: names.into(),
            values: values.into(),
            tail: None,
            removed: Arc::default(),
        }
    }

    /// Number of placeholders (with the tail's).
    pub fn len(&self) -> usize {
        (self.names.len() + self.tail.as_ref().map_or(0, |t| t.len()))
            .saturating_sub(self.removed.len())
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the names of placeholders appearing literally in `haystack` to `out`.
    pub fn find(&self, haystack: &[u8], out: &mut BTreeSet<String>) {
        for (owner, i, _, _) in self.name_matches(haystack) {
            if let Some(n) = owner.names.get(i) {
                out.insert(n.clone());
            }
        }
    }

    /// Adds the names of placeholders appearing percent-encoded or base64-encoded in
    /// `haystack` to `out`. Such forms are never substituted; they are reported so the
    /// caller can refuse to send them toward a host that may not have them.
    pub fn find_encoded(&self, haystack: &[u8], out: &mut BTreeSet<String>) {
        if haystack.contains(&b'%') {
            self.find(&percent_decode(haystack), out);
        }
        let encoded = NameMatches {
            base: self,
            automaton: |m| m.encoded.as_ref(),
            name: |m, i| m.encoded_owner.get(i).and_then(|i| m.names.get(*i)),
            hay: haystack,
            pos: 0,
        };
        for (owner, i, _, _) in encoded {
            if let Some(n) = owner.encoded_owner.get(i).and_then(|i| owner.names.get(*i)) {
                out.insert(n.clone());
            }
        }
    }

    /// Replaces every placeholder the permit allows with its real value. Returns `None`
    /// when nothing was replaced.
    pub fn substitute(&self, permit: &Permit, input: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut last = 0;
        for (owner, i, start, end) in self.name_matches(input) {
            let (Some(name), Some(value)) = (owner.names.get(i), owner.value(i)) else {
                continue;
            };
            if !permit.allows(name) {
                continue;
            }
            out.extend_from_slice(input.get(last..start)?);
            out.extend_from_slice(value.expose());
            last = end;
        }
        if last == 0 && out.is_empty() {
            return None;
        }
        out.extend_from_slice(input.get(last..)?);
        Some(out)
    }

    /// Replaces every real value in `input`, literal or encoded, with its placeholder
    /// name. `None` when none found.
    pub fn scrub(&self, input: &[u8]) -> Option<Vec<u8>> {
        let ac = self.scrub.scrub.as_ref()?;
        if !ac.is_match(input) {
            return None;
        }
        // Each match's name is looked up as it is found: a table of every pattern's
        // name would cost the number of placeholders on every response that echoes.
        let mut out = Vec::with_capacity(input.len());
        ac.replace_all_with_bytes(input, &mut out, |m, _, dst| {
            let owner = self.scrub.scrub_owner.get(m.pattern().as_usize());
            if let Some(name) = owner.and_then(|i| self.names.get(*i)) {
                dst.extend_from_slice(name.as_bytes());
            }
            true
        });
        Some(out)
    }

    /// True when `input` carries a real value in any form, ignoring ASCII case (for
    /// header names, which arrive lowercased).
    pub fn leaks_folded(&self, input: &[u8]) -> bool {
        self.scrub
            .scrub_folded
            .as_ref()
            .is_some_and(|ac| ac.is_match(&input.to_ascii_lowercase()))
    }

    /// A streaming substituter for a request body.
    pub fn body_substituter(self: &Arc<Self>, permit: Permit) -> StreamRewriter {
        StreamRewriter {
            mediator: Arc::clone(self),
            mode: Mode::Substitute(Box::new(permit)),
            carry: Vec::new(),
        }
    }

    /// A streaming scrubber for a response body.
    pub fn body_scrubber(self: &Arc<Self>) -> StreamRewriter {
        StreamRewriter {
            mediator: Arc::clone(self),
            mode: Mode::Scrub,
            carry: Vec::new(),
        }
    }
}

/// [`Mediator::name_matches`]: the next match is the earliest-starting (the longest at
/// a tie) of the name automaton's and the tail's next matches from where the last one
/// ended, which is what one leftmost-longest automaton over both would report.
struct NameMatches<'m, 'h> {
    base: &'m Mediator,
    /// The name automaton or the encoded-names automaton.
    automaton: fn(&Mediator) -> Option<&AhoCorasick>,
    /// The name of that automaton's pattern.
    name: fn(&Mediator, usize) -> Option<&String>,
    hay: &'h [u8],
    pos: usize,
}

impl<'m> Iterator for NameMatches<'m, '_> {
    type Item = (&'m Mediator, usize, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos > self.hay.len() {
                return None;
            }
            let next = |m: &'m Mediator| {
                let found = (self.automaton)(m)?
                    .find(aho_corasick::Input::new(self.hay).range(self.pos..))?;
                Some((m, found))
            };
            let base = next(self.base);
            let tail = self.base.tail.as_deref().and_then(next);
            let (owner, found) = match (base, tail) {
                (Some(b), Some(t)) => {
                    let tail_first = t.1.start() < b.1.start()
                        || (t.1.start() == b.1.start() && t.1.end() > b.1.end());
                    if tail_first { t } else { b }
                }
                (b, t) => b.or(t)?,
            };
            self.pos = found.end().max(found.start() + 1);
            let i = found.pattern().as_usize();
            let removed = &self.base.removed;
            if !removed.is_empty() && (self.name)(owner, i).is_some_and(|n| removed.contains(n)) {
                continue;
            }
            return Some((owner, i, found.start(), found.end()));
        }
    }
}

mod forms;
mod stream;

use stream::Mode;
pub use stream::StreamRewriter;

#[cfg(test)]
mod tests;
