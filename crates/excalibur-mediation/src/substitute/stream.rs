//! Streaming rewrites of bodies: substitution toward the upstream, scrubbing toward the
//! workload, chunk by chunk with the result of rewriting the whole body.

use std::sync::Arc;

use excalibur_core::Secret;
use excalibur_policy::Permit;

use super::Mediator;

#[derive(Debug)]
pub(super) enum Mode {
    Substitute(Box<Permit>),
    Scrub,
}

/// Rewrites a byte stream chunk by chunk with the same result as rewriting it whole:
/// it holds back at most one pattern length minus one byte between chunks.
#[derive(Debug)]
pub struct StreamRewriter {
    pub(super) mediator: Arc<Mediator>,
    pub(super) mode: Mode,
    pub(super) carry: Vec<u8>,
}

impl StreamRewriter {
    /// Feeds one chunk; returns the bytes that are final.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut pieces = Vec::new();
        self.push_bytes(bytes::Bytes::copy_from_slice(chunk), &mut pieces);
        pieces.concat()
    }

    /// Feeds one chunk; appends the bytes that are final to `out`, in order. Where
    /// nothing in the stream so far could be part of a match (the common case: no
    /// placeholder or echo), they are the held-back bytes and a slice of `chunk`, not
    /// copies; otherwise one rewritten piece.
    pub fn push_bytes(&mut self, chunk: bytes::Bytes, out: &mut Vec<bytes::Bytes>) {
        let Some(window) = self.window() else {
            // Nothing to find (no real value to scrub): every byte is final as it is.
            if !self.carry.is_empty() {
                out.push(bytes::Bytes::from(std::mem::take(&mut self.carry)));
            }
            if !chunk.is_empty() {
                out.push(chunk);
            }
            return;
        };
        // INVARIANT: the carry is at most `window` bytes, and no pattern is longer than
        // `window + 1`. So an occurrence in `carry ++ chunk` lies wholly in `chunk`, or
        // starts in the carry and ends within the first `window` bytes of `chunk`.
        if chunk.len() >= window && !self.occurs(&chunk) && !self.occurs_across(&chunk, window) {
            // What the general path would give when nothing matches: all but the last
            // `window` bytes, the rest held back.
            let cut = chunk.len() - window;
            if !self.carry.is_empty() {
                out.push(bytes::Bytes::from(std::mem::take(&mut self.carry)));
            }
            if cut > 0 {
                out.push(chunk.slice(..cut));
            }
            self.carry = chunk.get(cut..).unwrap_or_default().to_vec();
            return;
        }
        let rewritten = self.push_joined(&chunk);
        if !rewritten.is_empty() {
            out.push(bytes::Bytes::from(rewritten));
        }
    }

    /// The bytes held back between chunks: the longest pattern's length minus one.
    /// `None` when there is no pattern at all.
    fn window(&self) -> Option<usize> {
        let m = &self.mediator;
        match &self.mode {
            Mode::Substitute(_) => {
                let longest = m
                    .tail
                    .as_ref()
                    .map_or(m.max_name, |t| t.max_name.max(m.max_name));
                Some(longest.saturating_sub(1))
            }
            Mode::Scrub => m
                .scrub
                .scrub
                .as_ref()
                .map(|_| m.scrub.max_scrub.saturating_sub(1)),
        }
    }

    /// True when any pattern occurs anywhere in `hay` (whether or not the general
    /// path would rewrite it: a deleted name, a name the permit refuses).
    fn occurs(&self, hay: &[u8]) -> bool {
        let m = &self.mediator;
        match &self.mode {
            Mode::Substitute(_) => {
                m.find.as_ref().is_some_and(|ac| ac.is_match(hay))
                    || m.tail
                        .as_ref()
                        .and_then(|t| t.find.as_ref())
                        .is_some_and(|ac| ac.is_match(hay))
            }
            Mode::Scrub => m.scrub.scrub.as_ref().is_some_and(|ac| ac.is_match(hay)),
        }
    }

    /// True when a pattern occurs in the carry followed by `chunk`'s first `window`
    /// bytes (those that start in the carry end there).
    fn occurs_across(&self, chunk: &[u8], window: usize) -> bool {
        if self.carry.is_empty() {
            return false;
        }
        let mut joint = Vec::with_capacity(self.carry.len() + window);
        joint.extend_from_slice(&self.carry);
        joint.extend_from_slice(chunk.get(..window).unwrap_or(chunk));
        self.occurs(&joint)
    }

    /// The general path: `carry ++ chunk` rewritten; returns the bytes that are final.
    fn push_joined(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let m = &self.mediator;
        let (out, cutoff) = match &self.mode {
            Mode::Substitute(permit) => {
                let longest = m
                    .tail
                    .as_ref()
                    .map_or(m.max_name, |t| t.max_name.max(m.max_name));
                let matches = m.name_matches(&buf).map(|(owner, i, start, end)| {
                    let value = owner
                        .names
                        .get(i)
                        .filter(|n| permit.allows(n))
                        .and_then(|_| owner.value(i))
                        .map(Secret::expose);
                    (start, end, value)
                });
                rewrite(&buf, longest, matches)
            }
            Mode::Scrub => {
                let Some(ac) = m.scrub.scrub.as_ref() else {
                    return buf;
                };
                let matches = ac.find_iter(&buf).map(|found| {
                    let name = m
                        .scrub
                        .scrub_owner
                        .get(found.pattern().as_usize())
                        .and_then(|owner| m.names.get(*owner))
                        .map(String::as_bytes);
                    (found.start(), found.end(), name)
                });
                rewrite(&buf, m.scrub.max_scrub, matches)
            }
        };
        self.carry = buf.get(cutoff..).unwrap_or_default().to_vec();
        out
    }

    /// Flushes what is held back at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.carry);
        let whole = match &self.mode {
            Mode::Substitute(permit) => self.mediator.substitute(permit, &rest),
            Mode::Scrub => self.mediator.scrub(&rest),
        };
        whole.unwrap_or(rest)
    }
}

/// Rewrites the final part of `buf` (all but the last `longest - 1` bytes, or more when
/// a match ends past them) with `matches` (`(start, end, replacement)`, in order, `None`
/// kept as is); returns the bytes and where the held-back rest starts.
fn rewrite<'a>(
    buf: &[u8],
    longest: usize,
    matches: impl Iterator<Item = (usize, usize, Option<&'a [u8]>)>,
) -> (Vec<u8>, usize) {
    let mut cutoff = buf.len().saturating_sub(longest.saturating_sub(1));
    let mut out = Vec::with_capacity(buf.len());
    let mut last = 0;
    for (start, end, replacement) in matches {
        // INVARIANT: a match starting before the cutoff lies wholly in `buf` and no
        // longer match at the same start can exist beyond it (every pattern fits).
        if start >= cutoff {
            break;
        }
        let Some(replacement) = replacement else {
            continue;
        };
        out.extend_from_slice(buf.get(last..start).unwrap_or_default());
        out.extend_from_slice(replacement);
        last = end;
        cutoff = cutoff.max(last);
    }
    out.extend_from_slice(buf.get(last..cutoff).unwrap_or_default());
    (out, cutoff)
}
