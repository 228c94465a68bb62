//! `application/vnd.amazon.eventstream` request bodies (`STREAMING-AWS4-HMAC-SHA256-EVENTS`):
//! each outer message carries `:date` and `:chunk-signature` headers around the inner
//! message. The re-signer replaces both values in place (same length), recomputes the
//! message CRC, and continues the signature chain from the new seed.

#![allow(
    clippy::indexing_slicing,
    reason = "binary frame parser: every offset is checked against the frame's length \
              before use (see `message`); fuzzed by fuzz/fuzz_targets/aws_framing.rs"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SignatureChain;
use super::chunked::{FramingError, Reframe};

/// Largest message accepted (the format's limit is 24 MiB).
const MAX_MESSAGE: usize = 24 * 1024 * 1024;
const PRELUDE: usize = 12;

/// A clock, so tests can sign at a fixed instant.
pub type Clock = Box<dyn Fn() -> SystemTime + Send>;

/// Re-signs an event stream message by message.
pub struct EventResigner {
    chain: SignatureChain,
    clock: Clock,
    buf: Vec<u8>,
    ended: bool,
}

impl std::fmt::Debug for EventResigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventResigner")
            .field("chain", &self.chain)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The encoded `:date` header for `ms` (what the event string to sign hashes).
pub fn date_header(ms: i64) -> [u8; 15] {
    let mut h = [0u8; 15];
    h[0] = 5;
    h[1..6].copy_from_slice(b":date");
    h[6] = 8;
    h[7..].copy_from_slice(&ms.to_be_bytes());
    h
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

impl EventResigner {
    /// A re-signer continuing `chain` (seeded with the new request signature).
    pub fn new(chain: SignatureChain, clock: Clock) -> Self {
        Self {
            chain,
            clock,
            buf: Vec::new(),
            ended: false,
        }
    }

    fn message(&mut self, frame: &mut [u8]) -> Result<(), FramingError> {
        let total = frame.len();
        let headers_len = be32(&frame[4..8]);
        if crc32fast::hash(&frame[..8]) as usize != be32(&frame[8..12]) {
            return Err(FramingError::BadEvent("prelude CRC mismatch"));
        }
        if crc32fast::hash(&frame[..total - 4]) as usize != be32(&frame[total - 4..]) {
            return Err(FramingError::BadEvent("message CRC mismatch"));
        }
        if PRELUDE + headers_len + 4 > total {
            return Err(FramingError::BadEvent("headers longer than the message"));
        }
        let (mut sig_at, mut date_at) = (None, None);
        let mut i = PRELUDE;
        let end = PRELUDE + headers_len;
        while i < end {
            let name_len = usize::from(frame[i]);
            let name_end = i + 1 + name_len;
            if name_end + 1 > end {
                return Err(FramingError::BadEvent("header name overruns"));
            }
            let name = &frame[i + 1..name_end];
            let kind = frame[name_end];
            let v = name_end + 1;
            let len = match kind {
                0 | 1 => 0,
                2 => 1,
                3 => 2,
                4 => 4,
                5 | 8 => 8,
                9 => 16,
                6 | 7 => {
                    if v + 2 > end {
                        return Err(FramingError::BadEvent("header value overruns"));
                    }
                    2 + usize::from(u16::from_be_bytes([frame[v], frame[v + 1]]))
                }
                _ => return Err(FramingError::BadEvent("unknown header type")),
            };
            if v + len > end {
                return Err(FramingError::BadEvent("header value overruns"));
            }
            match (name, kind) {
                (b":chunk-signature", 6) if len == 34 => sig_at = Some(v + 2),
                (b":date", 8) => date_at = Some(v),
                (b":chunk-signature" | b":date", _) => {
                    return Err(FramingError::BadEvent("bad signature header"));
                }
                _ => {}
            }
            i = v + len;
        }
        let (Some(sig_at), Some(date_at)) = (sig_at, date_at) else {
            return Err(FramingError::BadEvent("message is not signed"));
        };
        let now = (self.clock)();
        let secs = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let time = UNIX_EPOCH + Duration::from_secs(secs);
        let ms = i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000;
        let payload = &frame[end..total - 4];
        if payload.is_empty() {
            self.ended = true;
        }
        let sig = self
            .chain
            .event(time, &date_header(ms), payload)
            .map_err(|_| FramingError::BadEvent("signing failed"))?;
        let raw =
            excalibur_core::secret::unhex(&sig).ok_or(FramingError::BadEvent("signing failed"))?;
        frame[sig_at..sig_at + 32].copy_from_slice(&raw);
        frame[date_at..date_at + 8].copy_from_slice(&ms.to_be_bytes());
        let crc = crc32fast::hash(&frame[..total - 4]);
        frame[total - 4..].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }
}

impl Reframe for EventResigner {
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
        self.buf.extend_from_slice(input);
        loop {
            if self.buf.len() < PRELUDE {
                return Ok(());
            }
            if self.ended {
                return Err(FramingError::TrailingData);
            }
            let total = be32(&self.buf[..4]);
            if !(PRELUDE + 4..=MAX_MESSAGE).contains(&total) {
                return Err(FramingError::BadEvent("message length out of range"));
            }
            if self.buf.len() < total {
                return Ok(());
            }
            let mut frame: Vec<u8> = self.buf.drain(..total).collect();
            self.message(&mut frame)?;
            out.extend_from_slice(&frame);
        }
    }

    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), FramingError> {
        if !self.buf.is_empty() {
            return Err(FramingError::Truncated);
        }
        Ok(())
    }
}
