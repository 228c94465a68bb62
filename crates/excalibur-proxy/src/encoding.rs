//! Content and transfer codings: what a message says it is wrapped in, and a bounded
//! streaming decoder for the codings the scrubber can see through.
//!
//! Every instance and every list element of `Content-Encoding` counts, and so does
//! every transfer coding other than `chunked` (hyper removes only `chunked`): a body is
//! scrubbable only once all of them are undone.

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, TRANSFER_ENCODING};
use http_body::{Body, Frame};

use crate::body::BoxError;

/// One coding a body was wrapped in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `gzip` / `x-gzip` (RFC 9110 §8.4.1.3).
    Gzip,
    /// `deflate`: the zlib format (RFC 9110 §8.4.1.2).
    Deflate,
    /// Anything else (`br`, `zstd`, `compress`, unknown): not seen through.
    Other(String),
}

impl Coding {
    fn parse(token: &str) -> Option<Self> {
        let t = token.trim().to_ascii_lowercase();
        match t.as_str() {
            // `aws-chunked` is SigV4 request framing, not a compression; S3 servers
            // that store it echo it on GET with a plain body.
            "" | "identity" | "aws-chunked" => None,
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "deflate" => Some(Self::Deflate),
            _ => Some(Self::Other(t)),
        }
    }
}

/// The codings applied to a body, in the order they were applied: every
/// `Content-Encoding` element, then every transfer coding except `chunked`.
pub(crate) fn applied(headers: &HeaderMap) -> Vec<Coding> {
    let mut out = list(headers, CONTENT_ENCODING);
    out.extend(transfer_codings(headers));
    out
}

/// The transfer codings other than `chunked`.
pub(crate) fn transfer_codings(headers: &HeaderMap) -> Vec<Coding> {
    list(headers, TRANSFER_ENCODING)
        .into_iter()
        .filter(|c| *c != Coding::Other("chunked".to_owned()))
        .collect()
}

fn list(headers: &HeaderMap, name: http::HeaderName) -> Vec<Coding> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| {
            // A value that is not text is a coding nobody can name: never identity.
            let text = v.to_str().unwrap_or("\u{fffd}");
            text.split(',')
                .filter_map(Coding::parse)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The first coding the decoder cannot undo, if any.
pub(crate) fn unsupported(codings: &[Coding]) -> Option<&str> {
    codings.iter().find_map(|c| match c {
        Coding::Other(name) => Some(name.as_str()),
        Coding::Gzip | Coding::Deflate => None,
    })
}

/// The decoded body grew past its bound (a decompression bomb, or just too big).
#[derive(Debug, thiserror::Error)]
#[error("the decoded response exceeds {0} bytes")]
pub(crate) struct DecodedTooLarge(pub u64);

/// A decoding failed: the body is not what its headers say.
#[derive(Debug, thiserror::Error)]
#[error("the response body is not valid {0}")]
pub(crate) struct Undecodable(&'static str);

enum Layer {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
}

impl Layer {
    fn new(coding: &Coding) -> Option<Self> {
        match coding {
            Coding::Gzip => Some(Self::Gzip(flate2::write::MultiGzDecoder::new(Vec::new()))),
            Coding::Deflate => Some(Self::Deflate(flate2::write::ZlibDecoder::new(Vec::new()))),
            Coding::Other(_) => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Gzip(_) => "gzip",
            Self::Deflate(_) => "deflate",
        }
    }

    /// Feeds `input`; returns what decoded so far.
    fn push(&mut self, input: &[u8], end: bool) -> Result<Vec<u8>, Undecodable> {
        let name = self.name();
        let bad = |_| Undecodable(name);
        match self {
            Self::Gzip(d) => {
                d.write_all(input).map_err(bad)?;
                if end {
                    d.try_finish().map_err(bad)?;
                }
                Ok(std::mem::take(d.get_mut()))
            }
            Self::Deflate(d) => {
                d.write_all(input).map_err(bad)?;
                if end {
                    d.try_finish().map_err(bad)?;
                }
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

/// A body with its codings undone as it streams, at most `limit` decoded bytes.
pub(crate) struct Decoded<B> {
    inner: B,
    /// Outermost first: the order to undo them in.
    layers: Vec<Layer>,
    limit: u64,
    produced: u64,
    finished: bool,
}

impl<B> std::fmt::Debug for Decoded<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("layers", &self.layers.len())
            .field("produced", &self.produced)
            .finish_non_exhaustive()
    }
}

impl<B> Decoded<B> {
    /// Wraps `inner`, whose body has `codings` applied (in applied order). `None` when
    /// one of them cannot be undone.
    pub(crate) fn new(inner: B, codings: &[Coding], limit: u64) -> Option<Self> {
        let layers = codings
            .iter()
            .rev()
            .map(Layer::new)
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            inner,
            layers,
            limit,
            produced: 0,
            finished: false,
        })
    }

    fn run(&mut self, input: &[u8], end: bool) -> Result<Vec<u8>, BoxError> {
        let mut data = input.to_vec();
        for layer in &mut self.layers {
            data = layer.push(&data, end)?;
        }
        self.produced += u64::try_from(data.len()).unwrap_or(u64::MAX);
        if self.produced > self.limit {
            return Err(Box::new(DecodedTooLarge(self.limit)));
        }
        Ok(data)
    }
}

impl<B> Body for Decoded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => match this.run(&data, false) {
                        Ok(out) if out.is_empty() => {}
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => {
                            this.finished = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    },
                    // Trailers pass on to the scrubber, which sees them next.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    this.finished = true;
                    return match this.run(&[], true) {
                        Ok(out) if out.is_empty() => Poll::Ready(None),
                        Ok(out) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => Poll::Ready(Some(Err(e))),
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http_body_util::BodyExt as _;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// `check(headers, applied codings)`.
    fn check(pairs: &[(&str, &str)], expected: &[Coding]) {
        assert_eq!(applied(&headers(pairs)), expected, "{pairs:?}");
    }

    #[test]
    fn every_instance_and_element_counts() {
        use Coding::{Deflate, Gzip, Other};
        check(&[], &[]);
        check(&[("content-encoding", "identity")], &[]);
        check(
            &[
                ("content-encoding", "identity"),
                ("content-encoding", "gzip"),
            ],
            &[Gzip],
        );
        check(&[("content-encoding", "IDENTITY, x-gzip")], &[Gzip]);
        check(&[("content-encoding", "aws-chunked")], &[]);
        check(
            &[("content-encoding", "deflate,br")],
            &[Deflate, Other("br".into())],
        );
        check(&[("transfer-encoding", "gzip, chunked")], &[Gzip]);
        check(&[("transfer-encoding", "chunked")], &[]);
        check(
            &[
                ("content-encoding", "gzip"),
                ("transfer-encoding", "deflate, chunked"),
            ],
            &[Gzip, Deflate],
        );
        assert_eq!(unsupported(&[Gzip, Other("zstd".into())]), Some("zstd"));
        assert_eq!(unsupported(&[Gzip, Deflate]), None);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A body that yields `wire` in `chunk`-sized frames.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    async fn decode(
        wire: Vec<u8>,
        codings: &[Coding],
        chunk: usize,
        limit: u64,
    ) -> Result<Vec<u8>, String> {
        let body = Chunks(wire.chunks(chunk).map(Bytes::copy_from_slice).collect());
        let decoded = Decoded::new(body, codings, limit).unwrap();
        decoded
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn layers_undo_in_reverse_for_every_chunking() {
        let secret = b"ghp_realrealrealrealreal".repeat(50);
        let wire = zlib(&gzip(&secret));
        for chunk in [1, 7, 64, 100_000] {
            let out = decode(
                wire.clone(),
                &[Coding::Gzip, Coding::Deflate],
                chunk,
                1 << 20,
            )
            .await
            .unwrap();
            assert_eq!(out, secret, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn bombs_and_garbage_fail_the_body() {
        let bomb = gzip(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        let err = decode(bomb, &[Coding::Gzip], 4096, 1 << 20)
            .await
            .unwrap_err();
        assert!(err.contains("exceeds"), "{err}");
        let err = decode(b"not gzip at all".to_vec(), &[Coding::Gzip], 4, 1 << 20)
            .await
            .unwrap_err();
        assert!(err.contains("not valid gzip"), "{err}");
        // A truncated stream is not a valid end either.
        let mut cut = gzip(b"hello hello hello");
        cut.truncate(cut.len() - 6);
        assert!(decode(cut, &[Coding::Gzip], 3, 1 << 20).await.is_err());
    }
}
