//! The scrub stage: ONE scrubber per response, built from every value the workload must
//! not learn (the snapshot's placeholders, and what this request sent on its behalf:
//! SigV4 key ids and session tokens, injected access tokens), applied to the head's
//! header names and values, every body frame (after undoing every coding) and every
//! trailer frame.

use std::sync::Arc;

use excalibur_mediation::{Mediator, StreamRewriter};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;

use crate::body::{self, Direction, FlowState, Mediated, ProxyBody, Trailers};
use crate::encoding::{self, Decoded};
use crate::error::{ProxyError, refuse};

/// Every value that must not reach the workload in one response.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    /// Each automaton, and whether it also rewrites bodies (S3 object data keeps its
    /// bytes: SigV4 key ids are scrubbed from S3 headers only).
    layers: Vec<(Arc<Mediator>, bool)>,
}

impl Scrubber {
    /// A scrubber for the snapshot's placeholders.
    pub(crate) fn new(placeholders: &Arc<Mediator>) -> Self {
        let mut s = Self::default();
        s.add(placeholders, true);
        s
    }

    /// The scrubber for one response: the placeholders (and recent rotations), the SigV4 key ids the request
    /// was signed with (not from S3 object bodies), the injected token.
    pub(crate) fn for_response(
        snap: &crate::Snapshot,
        red: &crate::decide::Redemption<'_>,
        injected: Option<&crate::jwt_bearer::Injected>,
        assumed: Option<&Arc<Mediator>>,
    ) -> Self {
        let mut s = Self::new(&snap.mediator);
        // Values rotated since the snapshot's scrub automata were built.
        s.add(&snap.recent, true);
        if let Some(route) = red.families.sigv4 {
            s.add(route.scrub(), !route.is_s3());
            if let Some(assumed) = assumed {
                s.add(assumed, !route.is_s3());
            }
        }
        if let Some(inj) = injected {
            s.add(&inj.scrub, true);
        }
        s
    }

    /// Adds the values of `m` and of its tail; `bodies` says whether bodies are
    /// rewritten for them too.
    pub(crate) fn add(&mut self, m: &Arc<Mediator>, bodies: bool) {
        if !m.is_empty() {
            self.layers.push((Arc::clone(m), bodies));
        }
        if let Some(tail) = m.tail() {
            self.layers.push((Arc::clone(tail), bodies));
        }
    }

    /// Scrubs a header block in place: a field whose *name* carries a value is dropped
    /// (it cannot be rewritten into a valid name), values are rewritten. Returns how
    /// many fields were dropped.
    pub(crate) fn headers(&self, headers: &mut HeaderMap) -> usize {
        if self.layers.is_empty() {
            return 0;
        }
        let leaking: Vec<header::HeaderName> = headers
            .keys()
            .filter(|n| {
                self.layers
                    .iter()
                    .any(|(m, _)| m.leaks_folded(n.as_str().as_bytes()))
            })
            .cloned()
            .collect();
        for name in &leaking {
            headers.remove(name);
        }
        for value in headers.values_mut() {
            for (m, _) in &self.layers {
                if let Some(clean) = m.scrub(value.as_bytes()) {
                    // A value that cannot be rebuilt is emptied, never kept.
                    *value = HeaderValue::from_bytes(&clean)
                        .unwrap_or_else(|_| HeaderValue::from_static(""));
                }
            }
        }
        leaking.len()
    }

    fn rewriters(&self) -> Vec<StreamRewriter> {
        self.layers
            .iter()
            .filter(|(_, bodies)| *bodies)
            .map(|(m, _)| m.body_scrubber())
            .collect()
    }
}

/// Scrubs a response from upstream: head, body and trailers. Codings are undone first
/// (gzip and deflate, at most `max_decoded` bytes); a coding that cannot be undone is
/// refused with 502 `unscrubbable_response`. `head_only` (a HEAD answer) keeps its
/// `Content-Length` and gets an ended body.
pub(crate) fn response(
    scrubber: &Scrubber,
    resp: Response<ProxyBody>,
    head_only: bool,
    max_decoded: u64,
    flow: Arc<FlowState>,
) -> Result<(Response<ProxyBody>, usize), ProxyError> {
    let (mut parts, body) = resp.into_parts();
    // Read before the hop-by-hop headers (Transfer-Encoding among them) go.
    let codings = encoding::applied(&parts.headers);
    crate::pipeline::strip_hop_by_hop(&mut parts.headers);
    let dropped = scrubber.headers(&mut parts.headers);
    let bodiless = head_only
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    if bodiless {
        // HTTP/2 resets a stream whose DATA disagrees with Content-Length: send an
        // ended body. (Dropping `body` counts nothing for the flow.)
        drop(body);
        drop(flow);
        return Ok((Response::from_parts(parts, body::empty()), dropped));
    }
    let body = if codings.is_empty() {
        body
    } else {
        if let Some(name) = encoding::unsupported(&codings) {
            return Err(refuse(
                StatusCode::BAD_GATEWAY,
                "unscrubbable_response",
                &format!("the upstream sent a `{name}` coding, which cannot be scrubbed"),
            ));
        }
        parts.headers.remove(header::CONTENT_ENCODING);
        parts.headers.remove(header::CONTENT_LENGTH);
        match Decoded::new(body, &codings, max_decoded) {
            Some(d) => d.boxed_unsync(),
            None => {
                return Err(refuse(
                    StatusCode::BAD_GATEWAY,
                    "unscrubbable_response",
                    "the upstream's codings cannot be undone",
                ));
            }
        }
    };
    let rewriters = scrubber.rewriters();
    if !rewriters.is_empty() {
        // A rewritten body changes length.
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let body = Mediated::chain(
        body,
        rewriters,
        Trailers::Scrub(scrubber.clone()),
        Some(flow),
        Direction::Down,
        None,
    )
    .boxed_unsync();
    Ok((Response::from_parts(parts, body), dropped))
}

#[cfg(test)]
mod tests {
    use excalibur_core::Secret;

    use super::*;

    const REAL: &str = "ghp_RealSecretValue0123456789";

    fn scrubber() -> Scrubber {
        let m = Arc::new(Mediator::new(vec![(
            "XCALIBUR_GITHUB_TOKEN".to_owned(),
            Secret::new(REAL.as_bytes().to_vec()),
        )]));
        Scrubber::new(&m)
    }

    /// `check(header name, value, expected header after scrubbing)`: `None` = dropped.
    fn check(name: &str, value: &str, expected: Option<&str>) {
        let mut h = HeaderMap::new();
        h.insert(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        scrubber().headers(&mut h);
        let got = h.values().next().map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got.as_deref(), expected, "{name}: {value}");
    }

    #[test]
    fn names_and_every_encoding_of_values() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("u:{REAL}"));
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("xx{REAL}"));
        let json: String = REAL.bytes().map(|b| format!("\\u{b:04x}")).collect();
        check("x-echo", REAL, Some("XCALIBUR_GITHUB_TOKEN"));
        check(
            "x-echo",
            &format!("Bearer {REAL}"),
            Some("Bearer XCALIBUR_GITHUB_TOKEN"),
        );
        check(&format!("x-{}", REAL.to_ascii_lowercase()), "1", None);
        check(&format!("x-{REAL}-y"), "1", None);
        check("x-echo", "nothing here", Some("nothing here"));
        for encoded in [b64, b64url, json] {
            let mut h = HeaderMap::new();
            h.insert("x-echo", HeaderValue::from_str(&encoded).unwrap());
            scrubber().headers(&mut h);
            let v = h["x-echo"].to_str().unwrap();
            assert!(v.contains("XCALIBUR_GITHUB_TOKEN"), "{encoded} -> {v}");
        }
    }
}
