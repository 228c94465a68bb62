//! aws-chunked bodies: re-signing a client's signed chunks in place, and encoding an
//! unsigned body as signed chunks. Both stream: at most one chunk is held.

use super::SignatureChain;

/// Longest chunk header line accepted (`hex;chunk-signature=<64 hex>` is < 100 bytes).
const MAX_LINE: usize = 1024;
/// Longest trailer block accepted.
const MAX_TRAILERS: usize = 16 * 1024;
/// Chunk size the encoder emits (AWS recommends 64 KiB; at least 8 KiB but the last).
pub const ENCODE_CHUNK: usize = 64 * 1024;
const SIG_LEN: usize = 64;

/// A body transformation that streams: bytes in, bytes out, with a final check.
pub trait Reframe: Send {
    /// Consumes `input`, appending what can be emitted to `out`.
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError>;
    /// The input ended: appends the rest, or fails if the framing is incomplete.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), FramingError>;
}

/// The client's aws-chunked body is malformed; nothing more is forwarded.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// A chunk header is not `hex-size;chunk-signature=<64 hex>`.
    #[error("malformed aws-chunked chunk header")]
    BadHeader,
    /// A chunk is larger than the configured cap.
    #[error("aws-chunked chunk of {0} bytes exceeds the limit")]
    ChunkTooLarge(u64),
    /// Chunk data was not followed by CRLF.
    #[error("aws-chunked chunk data not followed by CRLF")]
    MissingCrlf,
    /// Trailers are malformed or too long.
    #[error("malformed aws-chunked trailer")]
    BadTrailer,
    /// Bytes after the end of the body.
    #[error("data after the final aws-chunked chunk")]
    TrailingData,
    /// The body ended inside a chunk.
    #[error("the aws-chunked body ended early")]
    Truncated,
    /// An event-stream message is malformed (length, CRC or headers).
    #[error("malformed event-stream message: {0}")]
    BadEvent(&'static str),
}

#[derive(Debug)]
enum State {
    Header,
    Data { hex: String, size: usize },
    DataCrlf { hex: String, got_cr: bool },
    Trailers,
    FinalCrlf,
    Done,
}

/// Re-signs a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]` body: every chunk signature
/// (and the trailer signature) is recomputed from the new seed and written in place of
/// the client's, so the body's length does not change.
#[derive(Debug)]
pub struct ChunkResigner {
    chain: SignatureChain,
    trailer: bool,
    max_chunk: usize,
    state: State,
    buf: Vec<u8>,
}

impl ChunkResigner {
    /// A re-signer continuing `chain` (seeded with the new request signature).
    pub fn new(chain: SignatureChain, trailer: bool, max_chunk: usize) -> Self {
        Self {
            chain,
            trailer,
            max_chunk,
            state: State::Header,
            buf: Vec::new(),
        }
    }

    fn take_line(
        &mut self,
        input: &mut &[u8],
        max: usize,
    ) -> Result<Option<Vec<u8>>, FramingError> {
        if let Some(pos) = input.iter().position(|&b| b == b'\n') {
            let (head, tail) = input.split_at(pos + 1);
            self.buf.extend_from_slice(head);
            *input = tail;
            let mut line = std::mem::take(&mut self.buf);
            if line.len() > max || !line.ends_with(b"\r\n") {
                return Err(FramingError::BadHeader);
            }
            line.truncate(line.len() - 2);
            return Ok(Some(line));
        }
        self.buf.extend_from_slice(input);
        *input = &[];
        if self.buf.len() > max {
            return Err(FramingError::BadHeader);
        }
        Ok(None)
    }

    fn header(&mut self, line: &[u8]) -> Result<(String, usize), FramingError> {
        let text = std::str::from_utf8(line).map_err(|_| FramingError::BadHeader)?;
        let (hex, ext) = text.split_once(';').ok_or(FramingError::BadHeader)?;
        let sig = ext
            .strip_prefix("chunk-signature=")
            .ok_or(FramingError::BadHeader)?;
        if hex.is_empty()
            || hex.len() > 16
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
            || sig.len() != SIG_LEN
            || !sig.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(FramingError::BadHeader);
        }
        let size = u64::from_str_radix(hex, 16).map_err(|_| FramingError::BadHeader)?;
        if size > self.max_chunk as u64 {
            return Err(FramingError::ChunkTooLarge(size));
        }
        Ok((
            hex.to_owned(),
            usize::try_from(size).map_err(|_| FramingError::BadHeader)?,
        ))
    }

    fn emit_trailers(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
        let text = std::str::from_utf8(block).map_err(|_| FramingError::BadTrailer)?;
        let mut trailers = Vec::new();
        let mut sig_name = None;
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').ok_or(FramingError::BadTrailer)?;
            if name.eq_ignore_ascii_case("x-amz-trailer-signature") {
                // Exactly 64 hex digits: the new signature replaces it byte for byte.
                if value.len() != SIG_LEN
                    || !value.bytes().all(|b| b.is_ascii_hexdigit())
                    || sig_name.is_some()
                {
                    return Err(FramingError::BadTrailer);
                }
                sig_name = Some(name.to_owned());
            } else if sig_name.is_some() {
                return Err(FramingError::BadTrailer);
            } else {
                trailers.push((name, value));
            }
        }
        let sig_name = sig_name.ok_or(FramingError::BadTrailer)?;
        let mut canonical: Vec<(String, &str)> = trailers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim()))
            .collect();
        canonical.sort_by(|a, b| a.0.cmp(&b.0));
        let mut block = String::new();
        for (n, v) in &canonical {
            block.push_str(n);
            block.push(':');
            block.push_str(v);
            block.push('\n');
        }
        let sig = self.chain.trailer(block.as_bytes());
        for (n, v) in &trailers {
            out.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("{sig_name}:{sig}\r\n\r\n").as_bytes());
        Ok(())
    }
}

impl Reframe for ChunkResigner {
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
        while !input.is_empty() {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Header => match self.take_line(&mut input, MAX_LINE)? {
                    None => self.state = State::Header,
                    Some(line) => {
                        let (hex, size) = self.header(&line)?;
                        if size == 0 {
                            let sig = self.chain.chunk(&[]);
                            out.extend_from_slice(
                                format!("{hex};chunk-signature={sig}\r\n").as_bytes(),
                            );
                            self.state = if self.trailer {
                                State::Trailers
                            } else {
                                State::FinalCrlf
                            };
                        } else {
                            self.buf.reserve(size);
                            self.state = State::Data { hex, size };
                        }
                    }
                },
                State::Data { hex, size } => {
                    let want = size - self.buf.len();
                    let (head, tail) = input.split_at(want.min(input.len()));
                    self.buf.extend_from_slice(head);
                    input = tail;
                    self.state = if self.buf.len() == size {
                        State::DataCrlf { hex, got_cr: false }
                    } else {
                        State::Data { hex, size }
                    };
                }
                State::DataCrlf { hex, got_cr } => {
                    // Chunk data is in `buf`; a CRLF must follow (maybe split across pushes).
                    let Some((&b, tail)) = input.split_first() else {
                        break;
                    };
                    input = tail;
                    if !got_cr {
                        if b != b'\r' {
                            return Err(FramingError::MissingCrlf);
                        }
                        self.state = State::DataCrlf { hex, got_cr: true };
                        continue;
                    }
                    if b != b'\n' {
                        return Err(FramingError::MissingCrlf);
                    }
                    let data = std::mem::take(&mut self.buf);
                    let sig = self.chain.chunk(&data);
                    out.extend_from_slice(format!("{hex};chunk-signature={sig}\r\n").as_bytes());
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                    self.state = State::Header;
                }
                State::Trailers => {
                    self.buf.extend_from_slice(input);
                    input = &[];
                    if self.buf.len() > MAX_TRAILERS {
                        return Err(FramingError::BadTrailer);
                    }
                    if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        if end + 4 != self.buf.len() {
                            return Err(FramingError::TrailingData);
                        }
                        let mut block = std::mem::take(&mut self.buf);
                        block.truncate(end + 2);
                        self.emit_trailers(&block, out)?;
                        self.state = State::Done;
                    } else {
                        self.state = State::Trailers;
                    }
                }
                State::FinalCrlf => {
                    self.buf.extend_from_slice(input);
                    input = &[];
                    if !b"\r\n".starts_with(&self.buf) {
                        return Err(FramingError::TrailingData);
                    }
                    if self.buf.len() == 2 {
                        self.buf.clear();
                        out.extend_from_slice(b"\r\n");
                        self.state = State::Done;
                    } else {
                        self.state = State::FinalCrlf;
                    }
                }
                State::Done => return Err(FramingError::TrailingData),
            }
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<u8>) -> Result<(), FramingError> {
        match self.state {
            State::Done => Ok(()),
            _ => Err(FramingError::Truncated),
        }
    }
}

/// Encodes an unsigned body as `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` chunks of
/// [`ENCODE_CHUNK`] bytes, each signed on the fly.
#[derive(Debug)]
pub struct ChunkEncoder {
    chain: SignatureChain,
    buf: Vec<u8>,
}

impl ChunkEncoder {
    /// An encoder continuing `chain` (seeded with the request signature).
    pub fn new(chain: SignatureChain) -> Self {
        Self {
            chain,
            buf: Vec::with_capacity(ENCODE_CHUNK),
        }
    }

    /// The encoded length of a `decoded`-byte body (the upstream `Content-Length`).
    pub fn encoded_len(decoded: u64) -> u64 {
        let chunk = ENCODE_CHUNK as u64;
        let frame =
            |size: u64| format!("{size:x}").len() as u64 + 17 + SIG_LEN as u64 + 2 + size + 2;
        let full = decoded / chunk;
        let rest = decoded % chunk;
        let mut total = full * frame(chunk);
        if rest > 0 {
            total += frame(rest);
        }
        // The final chunk: `0;chunk-signature=<sig>\r\n\r\n`.
        total + frame(0)
    }

    fn emit(&mut self, out: &mut Vec<u8>) {
        let data = std::mem::take(&mut self.buf);
        let sig = self.chain.chunk(&data);
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", data.len()).as_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
        self.buf = data;
        self.buf.clear();
    }
}

impl Reframe for ChunkEncoder {
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
        while !input.is_empty() {
            let (head, tail) = input.split_at((ENCODE_CHUNK - self.buf.len()).min(input.len()));
            self.buf.extend_from_slice(head);
            input = tail;
            if self.buf.len() == ENCODE_CHUNK {
                self.emit(out);
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), FramingError> {
        if !self.buf.is_empty() {
            self.emit(out);
        }
        self.emit(out);
        Ok(())
    }
}
