//! AWS Signature Version 4 for a re-signing proxy: header signing and presigning through
//! the `aws-sigv4` crate, the chunk / trailer / event signature chain (ours: the crate
//! signs requests, the body framing is ours), and the strict URI encoding that makes the
//! bytes on the wire equal the bytes the signature covers.
//!
//! The caller chooses which headers are signed (every header passed in is) and sends
//! exactly those headers, unchanged, after signing.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
    SignatureLocation, SigningInstructions, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use excalibur_core::Secret;
use sha2::{Digest, Sha256};

mod chunked;
mod eventstream;
#[cfg(test)]
mod tests;

pub use chunked::{ChunkEncoder, ChunkResigner, ENCODE_CHUNK, FramingError, Reframe};
pub use eventstream::{Clock, EventResigner, date_header};

/// SHA-256 of the empty string, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// `x-amz-content-sha256` for a body the signature does not cover (TLS only).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// aws-chunked body, every chunk signed.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// aws-chunked body, every chunk and the trailer signed.
pub const STREAMING_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// aws-chunked body, unsigned chunks and trailer.
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// Event-stream body, every message signed.
pub const STREAMING_EVENTS: &str = "STREAMING-AWS4-HMAC-SHA256-EVENTS";

/// Longest presigned URL lifetime SigV4 allows (7 days).
pub const MAX_PRESIGN_EXPIRES: Duration = Duration::from_secs(604_800);

/// Headers never signed: changed in transit by proxies and clients (aws-c-auth skip list),
/// hop-by-hop, or produced by signing itself.
pub const UNSIGNABLE: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "sec-websocket-key",
    "sec-websocket-protocol",
    "sec-websocket-version",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
    "x-amzn-trace-id",
];

/// The upstream's long-term (or session) credentials. The secret never leaves this type
/// except into an HMAC key.
#[derive(Debug, Clone)]
pub struct Credentials {
    access_key_id: String,
    secret: Secret,
    session_token: Option<Secret>,
}

impl Credentials {
    /// Credentials from their parts (`secret` and `session_token` are UTF-8 text).
    pub fn new(access_key_id: String, secret: Secret, session_token: Option<Secret>) -> Self {
        Self {
            access_key_id,
            secret,
            session_token,
        }
    }

    /// Credentials from a mapping's sealed JSON ([`excalibur_core::api::Sigv4Keys`]).
    pub fn from_sealed(sealed: &Secret) -> Result<Self, SignError> {
        let keys: excalibur_core::api::Sigv4Keys =
            serde_json::from_slice(sealed.expose()).map_err(|_| SignError::BadCredentials)?;
        Ok(Self::new(
            keys.access_key_id.clone(),
            keys.secret_access_key.to_secret(),
            keys.session_token
                .as_ref()
                .map(excalibur_core::SecretString::to_secret),
        ))
    }

    /// The access key id as a value to scrub from responses.
    pub fn access_key_id(&self) -> Secret {
        Secret::new(self.access_key_id.as_bytes().to_vec())
    }

    /// The session token, if any (it travels upstream, so responses are scrubbed of it).
    pub fn session_token(&self) -> Option<&Secret> {
        self.session_token.as_ref()
    }

    /// The first eight characters of the access key id, for audit records.
    pub fn key_id_prefix(&self) -> String {
        let prefix: String = self.access_key_id.chars().take(8).collect();
        format!("{prefix}…")
    }

    fn secret_str(&self) -> Result<&str, SignError> {
        std::str::from_utf8(self.secret.expose()).map_err(|_| SignError::BadCredentials)
    }

    fn aws(&self) -> Result<AwsCredentials, SignError> {
        let token = match &self.session_token {
            Some(t) => Some(
                std::str::from_utf8(t.expose())
                    .map_err(|_| SignError::BadCredentials)?
                    .to_owned(),
            ),
            None => None,
        };
        Ok(AwsCredentials::new(
            self.access_key_id.clone(),
            self.secret_str()?.to_owned(),
            token,
            None,
            "excalibur",
        ))
    }
}

/// Region and service a signature is scoped to.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// e.g. `eu-west-1`.
    pub region: &'a str,
    /// e.g. `s3`.
    pub service: &'a str,
}

impl Scope<'_> {
    /// S3 (and S3-compatible) rules: no path normalization, single encoding,
    /// `x-amz-content-sha256` on every request.
    pub fn is_s3(&self) -> bool {
        matches!(self.service, "s3" | "s3-outposts" | "s3express")
    }
}

/// One request to sign.
#[derive(Debug)]
pub struct SignInput<'a> {
    /// Method as sent.
    pub method: &'a str,
    /// Absolute URL exactly as it will be sent (path and query in wire form; see
    /// [`canonical_path`] and [`canonical_query`]).
    pub url: &'a str,
    /// Every header to sign (lowercase names), including `host`, as they will be sent.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The payload hash line: 64 hex or one of the `UNSIGNED-*` / `STREAMING-*` literals.
    pub payload: &'a str,
    /// When to sign (now, on the request path).
    pub time: SystemTime,
    /// S3 URI rules (no normalization, single encoding) instead of the general ones.
    pub s3_uri: bool,
    /// Add and sign `x-amz-content-sha256` (always for S3).
    pub content_sha256: bool,
}

/// Headers to add to a signed request: `(name, value, sensitive)`.
#[derive(Debug)]
pub struct Signed {
    /// `authorization`, `x-amz-date`, `x-amz-content-sha256` (S3), `x-amz-security-token`.
    pub headers: Vec<(&'static str, String, bool)>,
    /// The request signature (the seed of a chunk or event chain).
    pub signature: String,
}

/// Why signing failed. Nothing is forwarded after a failure.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The stored credentials are not UTF-8.
    #[error("the mapping's credentials are not valid text")]
    BadCredentials,
    /// The request cannot be signed as given.
    #[error("the request cannot be signed: {0}")]
    Request(String),
}

fn settings(input: &SignInput<'_>, location: SignatureLocation) -> SigningSettings {
    let mut s = SigningSettings::default();
    s.signature_location = location;
    // We decide which headers are signed by passing only those.
    s.excluded_headers = Some(Vec::new());
    if input.s3_uri {
        s.percent_encoding_mode = PercentEncodingMode::Single;
        s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    if input.content_sha256 && location == SignatureLocation::Headers {
        s.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    s.session_token_mode = SessionTokenMode::Include;
    s
}

fn body(payload: &str) -> SignableBody<'_> {
    if payload == UNSIGNED_PAYLOAD {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Precomputed(payload.to_owned())
    }
}

/// Runs `aws-sigv4` over `input` with `settings` (header or query authentication).
fn run(
    creds: &Credentials,
    scope: Scope<'_>,
    input: &SignInput<'_>,
    settings: SigningSettings,
) -> Result<(SigningInstructions, String), SignError> {
    let identity = creds.aws()?.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(input.time)
        .settings(settings)
        .build()
        .map_err(|e| SignError::Request(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        input.method,
        input.url,
        input.headers.iter().copied(),
        body(input.payload),
    )
    .map_err(|e| SignError::Request(e.to_string()))?;
    Ok(aws_sigv4::http_request::sign(request, &params)
        .map_err(|e| SignError::Request(e.to_string()))?
        .into_parts())
}

/// Signs `input` with an `Authorization` header.
pub fn sign(
    creds: &Credentials,
    scope: Scope<'_>,
    input: &SignInput<'_>,
) -> Result<Signed, SignError> {
    let settings = settings(input, SignatureLocation::Headers);
    let (instructions, signature) = run(creds, scope, input, settings)?;
    let (headers, _) = instructions.into_parts();
    let headers = headers
        .into_iter()
        .map(|h| {
            (
                h.name(),
                h.value().to_owned(),
                h.sensitive() || h.name() == "authorization",
            )
        })
        .collect();
    Ok(Signed { headers, signature })
}

/// Presigns `input` (query authentication) valid for `expires` (at most seven days).
/// Returns the query parameters to append, already encoded, `X-Amz-Signature` last.
pub fn presign(
    creds: &Credentials,
    scope: Scope<'_>,
    input: &SignInput<'_>,
    expires: Duration,
) -> Result<String, SignError> {
    if expires.is_zero() || expires > MAX_PRESIGN_EXPIRES {
        return Err(SignError::Request(
            "expiry must be between 1 second and 7 days".to_owned(),
        ));
    }
    let mut settings = settings(input, SignatureLocation::QueryParams);
    settings.expires_in = Some(expires);
    let (instructions, _) = run(creds, scope, input, settings)?;
    let (_, mut params) = instructions.into_parts();
    // X-Amz-Signature goes last (readers expect it there; order does not affect it).
    params.sort_by_key(|(k, _)| *k == "X-Amz-Signature");
    let mut query = String::new();
    for (k, v) in params {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&uri_encode(k, false));
        query.push('=');
        query.push_str(&uri_encode(&v, false));
    }
    Ok(query)
}

/// `YYYYMMDDTHHMMSSZ` for `time`.
pub fn amz_date(time: SystemTime) -> String {
    let t = time::OffsetDateTime::from(time);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The signature chain of a streamed body: each chunk, the trailer, or each event is
/// signed over the previous signature, starting from the request's (the seed).
pub struct SignatureChain {
    creds: Credentials,
    region: String,
    service: String,
    key: zeroize::Zeroizing<Vec<u8>>,
    amz_date: String,
    prev: String,
}

impl std::fmt::Debug for SignatureChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureChain")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("prev", &self.prev)
            .finish_non_exhaustive()
    }
}

impl SignatureChain {
    /// Starts a chain at `seed` (the request signature) for a request signed at `time`.
    pub fn new(
        creds: &Credentials,
        scope: Scope<'_>,
        time: SystemTime,
        seed: String,
    ) -> Result<Self, SignError> {
        let mut chain = Self {
            creds: creds.clone(),
            region: scope.region.to_owned(),
            service: scope.service.to_owned(),
            key: zeroize::Zeroizing::new(Vec::new()),
            amz_date: String::new(),
            prev: seed,
        };
        chain.at(time)?;
        Ok(chain)
    }

    /// Moves the chain's clock (events are each signed at their own second).
    fn at(&mut self, time: SystemTime) -> Result<(), SignError> {
        let amz_date = amz_date(time);
        if self.amz_date.get(..8) != amz_date.get(..8) {
            let key = v4::generate_signing_key(
                self.creds.secret_str()?,
                time,
                &self.region,
                &self.service,
            );
            self.key = zeroize::Zeroizing::new(key.as_ref().to_vec());
        }
        self.amz_date = amz_date;
        Ok(())
    }

    fn next(&mut self, algorithm: &str, lines: &[&str]) -> String {
        let mut sts = format!(
            "{algorithm}\n{}\n{}/{}/{}/aws4_request\n{}",
            self.amz_date,
            self.amz_date.get(..8).unwrap_or_default(),
            self.region,
            self.service,
            self.prev
        );
        for l in lines {
            sts.push('\n');
            sts.push_str(l);
        }
        self.prev = v4::calculate_signature(&*self.key, sts.as_bytes());
        self.prev.clone()
    }

    /// Signs one aws-chunked chunk (the final chunk is `data = []`).
    pub fn chunk(&mut self, data: &[u8]) -> String {
        let hash = sha256_hex(data);
        self.next("AWS4-HMAC-SHA256-PAYLOAD", &[EMPTY_SHA256, &hash])
    }

    /// Signs the canonical trailer block (`name:value\n` per trailer, sorted by name).
    pub fn trailer(&mut self, canonical_trailers: &[u8]) -> String {
        let hash = sha256_hex(canonical_trailers);
        self.next("AWS4-HMAC-SHA256-TRAILER", &[&hash])
    }

    /// Signs one event-stream message at `time` (whole seconds): the encoded `:date`
    /// header and the inner message (empty for the end-of-stream message).
    pub fn event(
        &mut self,
        time: SystemTime,
        date_header: &[u8],
        message: &[u8],
    ) -> Result<String, SignError> {
        self.at(time)?;
        let (d, m) = (sha256_hex(date_header), sha256_hex(message));
        Ok(self.next("AWS4-HMAC-SHA256-PAYLOAD", &[&d, &m]))
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    excalibur_core::secret::hex(&Sha256::digest(data))
}

/// UriEncode: every byte but `A-Z a-z 0-9 - _ . ~` (and `/` when `keep_slash`) as `%XX`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        if c == b'%'
            && let [h, l, ..] = tail
            && let (Some(h), Some(l)) = (hexval(*h), hexval(*l))
        {
            out.push(h << 4 | l);
            rest = tail.get(2..).unwrap_or_default();
            continue;
        }
        out.push(c);
        rest = tail;
    }
    Cow::Owned(out)
}

fn hexval(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn encode_bytes(bytes: &[u8], keep_slash: bool) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => uri_encode(s, keep_slash),
        Err(_) => bytes.iter().fold(String::new(), |mut out, &b| {
            if b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b'~')
                || (keep_slash && b == b'/')
            {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
            out
        }),
    }
}

/// The wire path for S3: each segment decoded and strictly re-encoded, so S3's
/// canonical URI (the path as received) equals the one signed. Other services get the
/// path unchanged (they normalize and re-encode it themselves, as the signer does).
pub fn canonical_path(path: &str, s3: bool) -> String {
    if !s3 {
        return if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        };
    }
    let segments: Vec<String> = path
        .split('/')
        .map(|seg| encode_bytes(&percent_decode(seg), false))
        .collect();
    let joined = segments.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

/// The wire query: every key and value percent-decoded (`+` stays a literal plus) and
/// strictly re-encoded, in the original order. `None` when there is no query.
pub fn canonical_query(query: &str) -> Option<String> {
    if query.is_empty() {
        return None;
    }
    let pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            format!(
                "{}={}",
                encode_bytes(&percent_decode(k), false),
                encode_bytes(&percent_decode(v), false)
            )
        })
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("&"))
}

/// Query parameters that carry a presigned request's authentication.
pub const QUERY_AUTH_PARAMS: &[&str] = &[
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
];

/// A SigV2 query-authenticated URL (`AWSAccessKeyId` and `Signature`, with `Expires`;
/// what aws-cli 1.x `aws s3 presign` makes by default): the query without its auth
/// parameters, and the absolute expiry in Unix seconds. `None` when it is not one.
pub fn strip_sigv2_query_auth(query: &str) -> Option<(String, Option<u64>)> {
    let key = |pair: &str| {
        let k = pair.split_once('=').map_or(pair, |(k, _)| k);
        String::from_utf8_lossy(&percent_decode(k)).into_owned()
    };
    let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let has = |name: &str| pairs.iter().any(|p| key(p) == name);
    if !(has("AWSAccessKeyId") && has("Signature")) {
        return None;
    }
    let mut kept = Vec::new();
    let mut expires = None;
    for pair in pairs {
        match key(pair).as_str() {
            "AWSAccessKeyId" | "Signature" | "x-amz-security-token" => {}
            "Expires" => expires = pair.split_once('=').and_then(|(_, v)| v.parse().ok()),
            _ => kept.push(pair),
        }
    }
    Some((kept.join("&"), expires))
}

/// Splits a wire query into the non-authentication part and the client's
/// `X-Amz-Expires` (when the client sent a presigned URL).
pub fn strip_query_auth(query: &str) -> (String, Option<u64>, bool) {
    let mut kept = Vec::new();
    let mut expires = None;
    let mut presigned = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let decoded = String::from_utf8_lossy(&percent_decode(key)).to_ascii_lowercase();
        if QUERY_AUTH_PARAMS.contains(&decoded.as_str()) {
            presigned |= decoded == "x-amz-algorithm" || decoded == "x-amz-signature";
            if decoded == "x-amz-expires" {
                expires = pair.split_once('=').and_then(|(_, v)| v.parse().ok());
            }
            continue;
        }
        kept.push(pair);
    }
    (kept.join("&"), expires, presigned)
}
