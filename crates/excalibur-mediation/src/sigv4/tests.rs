//! SigV4 conformance: the aws-c-auth v4 signing suite (committed under
//! `tests/data/aws-sigv4-v4` with its licence), AWS's published chunked-upload example,
//! the aws-c-auth trailer vector, and an event-stream vector.

#![allow(
    clippy::string_slice,
    clippy::cast_possible_truncation,
    reason = "test code over ASCII fixtures of known size"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use excalibur_core::Secret;

use super::*;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/aws-sigv4-v4")
}

struct Case {
    name: String,
    context: serde_json::Value,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Percent-encodes the bytes a client could not put on the wire raw (space, non-ASCII).
fn wire(raw: &str) -> String {
    let mut out = String::new();
    for &b in raw.as_bytes() {
        if b > 0x20 && b < 0x7f {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn load(dir: &Path) -> Case {
    let context: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap()).unwrap();
    let raw = std::fs::read(dir.join("request.txt")).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], text.as_bytes()[i + 2..].to_vec()),
        None => (text.trim_end_matches('\n'), Vec::new()),
    };
    let mut lines = head.split('\n');
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let (path, _) = rest.rsplit_once(" HTTP/").unwrap();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            // obs-fold: a continuation line joins the previous value with one space.
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let (n, v) = line.split_once(':').unwrap();
        headers.push((n.to_ascii_lowercase(), v.to_owned()));
    }
    Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        context,
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body,
    }
}

fn creds_of(ctx: &serde_json::Value) -> Credentials {
    let c = &ctx["credentials"];
    Credentials::new(
        c["access_key_id"].as_str().unwrap().to_owned(),
        Secret::new(c["secret_access_key"].as_str().unwrap().as_bytes().to_vec()),
        c["token"]
            .as_str()
            .map(|t| Secret::new(t.as_bytes().to_vec())),
    )
}

fn time_of(ctx: &serde_json::Value) -> SystemTime {
    let t = time::OffsetDateTime::parse(
        ctx["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).unwrap())
}

/// Vectors this signer does not reproduce, each for a stated reason:
/// - `get-space-normalized`, `get-utf8`: the request line carries a raw space / raw UTF-8,
///   which no client can send; aws-c-auth encodes that raw path once. On the wire the
///   path is already encoded, and the general (non-S3) rule encodes the wire path again
///   (as botocore and aws-sigv4 do), so these two describe input that never reaches us.
/// - `post-sts-header-after`: `omit_session_token` (token added after signing). Excalibur
///   always signs the session token it adds.
const NOT_APPLICABLE: &[&str] = &["get-space-normalized", "get-utf8", "post-sts-header-after"];

#[test]
fn aws_c_auth_v4_suite() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(suite_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 30, "the vector suite is missing");
    let (mut checked, mut skipped) = (0, Vec::new());
    for dir in &dirs {
        let case = load(dir);
        if NOT_APPLICABLE.contains(&case.name.as_str()) {
            skipped.push(case.name.clone());
            // The reason above must stay true: the raw request line is not wire-legal,
            // or the case asks for the omitted-token mode.
            let omit = case.context["omit_session_token"]
                .as_bool()
                .unwrap_or(false);
            assert!(
                omit || case.path.bytes().any(|b| b == b' ' || b >= 0x80),
                "{}",
                case.name
            );
            continue;
        }
        let ctx = &case.context;
        let creds = creds_of(ctx);
        let scope = Scope {
            region: ctx["region"].as_str().unwrap(),
            service: ctx["service"].as_str().unwrap(),
        };
        let normalize = ctx["normalize"].as_bool().unwrap();
        let host = case
            .headers
            .iter()
            .find(|(n, _)| n == "host")
            .map(|(_, v)| v.clone())
            .unwrap();
        let url = format!("https://{host}{}", wire(&case.path));
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let payload = sha256_hex(&case.body);
        let input = SignInput {
            method: &case.method,
            url: &url,
            headers: headers.clone(),
            payload: &payload,
            time: time_of(ctx),
            s3_uri: !normalize,
            content_sha256: ctx["sign_body"].as_bool().unwrap_or(false),
        };
        let signed = sign(&creds, scope, &input).unwrap();
        let expected = std::fs::read_to_string(dir.join("header-signature.txt")).unwrap();
        assert_eq!(
            signed.signature,
            expected.trim(),
            "header signature of {}",
            case.name
        );
        let auth = signed
            .headers
            .iter()
            .find(|h| h.0 == "authorization")
            .unwrap();
        assert!(auth.1.ends_with(expected.trim()) && auth.2, "{}", case.name);

        let query_expected = std::fs::read_to_string(dir.join("query-signature.txt")).unwrap();
        let expires = Duration::from_secs(ctx["expiration_in_seconds"].as_u64().unwrap());
        let input = SignInput {
            content_sha256: false,
            headers,
            ..input
        };
        let query = presign(&creds, scope, &input, expires).unwrap();
        let sig = query.rsplit_once("X-Amz-Signature=").unwrap().1;
        assert_eq!(
            sig,
            query_expected.trim(),
            "query signature of {}",
            case.name
        );
        checked += 1;
    }
    assert_eq!(skipped.len(), NOT_APPLICABLE.len(), "{skipped:?}");
    assert!(checked >= 30, "{checked} vectors checked");
}

fn example_creds() -> Credentials {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE".to_owned(),
        Secret::new(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_vec()),
        None,
    )
}

const S3: Scope<'static> = Scope {
    region: "us-east-1",
    service: "s3",
};
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const CHUNK_SIGS: [&str; 3] = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];

fn example_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_369_353_600) // 2013-05-24T00:00:00Z
}

/// The S3 documentation's chunked upload: the seed is the header signature.
#[test]
fn chunked_upload_seed_matches_the_s3_example() {
    let url = "https://s3.amazonaws.com/examplebucket/chunkObject.txt";
    let input = SignInput {
        method: "PUT",
        url,
        headers: vec![
            ("host", "s3.amazonaws.com"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("content-encoding", "aws-chunked"),
            ("content-length", "66824"),
            ("x-amz-decoded-content-length", "66560"),
        ],
        payload: STREAMING_PAYLOAD,
        time: example_time(),
        s3_uri: true,
        content_sha256: true,
    };
    let signed = sign(&example_creds(), S3, &input).unwrap();
    assert_eq!(signed.signature, SEED);
    let auth = &signed
        .headers
        .iter()
        .find(|h| h.0 == "authorization")
        .unwrap()
        .1;
    assert!(auth.contains("SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class"), "{auth}");
}

fn client_chunked(sizes: &[usize], trailer: Option<&str>) -> Vec<u8> {
    let dummy = "0".repeat(64);
    let mut body = Vec::new();
    for &n in sizes {
        body.extend_from_slice(format!("{n:x};chunk-signature={dummy}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'a', n));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0;chunk-signature={dummy}\r\n").as_bytes());
    match trailer {
        Some(t) => {
            body.extend_from_slice(t.as_bytes());
            body.extend_from_slice(format!("x-amz-trailer-signature:{dummy}\r\n\r\n").as_bytes());
        }
        None => body.extend_from_slice(b"\r\n"),
    }
    body
}

fn chain() -> SignatureChain {
    SignatureChain::new(&example_creds(), S3, example_time(), SEED.to_owned()).unwrap()
}

fn run(r: &mut dyn Reframe, input: &[u8], step: usize) -> Result<Vec<u8>, FramingError> {
    let mut out = Vec::new();
    for piece in input.chunks(step) {
        r.push(piece, &mut out)?;
    }
    r.finish(&mut out)?;
    Ok(out)
}

fn signatures(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.match_indices("signature=")
        .map(|(i, _)| text[i + 10..i + 74].to_owned())
        .chain(
            text.match_indices("signature:")
                .map(|(i, _)| text[i + 10..i + 74].to_owned()),
        )
        .collect()
}

#[test]
fn chunk_resigner_reproduces_the_published_chain_in_place() {
    let input = client_chunked(&[65536, 1024], None);
    assert_eq!(input.len(), 66824, "the example's Content-Length");
    // Any split of the input gives the same output.
    for step in [1, 7, 100, 4096, 65_537, input.len()] {
        let mut r = ChunkResigner::new(chain(), false, 1 << 20);
        let out = run(&mut r, &input, step).unwrap();
        assert_eq!(out.len(), input.len(), "length unchanged (step {step})");
        assert_eq!(signatures(&out), CHUNK_SIGS, "step {step}");
    }
}

#[test]
fn trailer_signature_matches_aws_c_auth() {
    let input = client_chunked(
        &[65536, 1024],
        Some("first:1st\r\nsecond:2nd\r\nthird:3rd\r\n"),
    );
    for step in [3, 1000, input.len()] {
        let mut r = ChunkResigner::new(chain(), true, 1 << 20);
        let out = run(&mut r, &input, step).unwrap();
        assert_eq!(out.len(), input.len());
        let sigs = signatures(&out);
        assert_eq!(&sigs[..3], CHUNK_SIGS);
        assert_eq!(
            sigs[3],
            "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c"
        );
        assert!(
            String::from_utf8_lossy(&out).contains("third:3rd\r\nx-amz-trailer-signature:df57")
        );
    }
}

#[test]
fn chunk_encoder_signs_an_unsigned_body_like_the_example() {
    let body = vec![b'a'; 66560];
    let mut e = ChunkEncoder::new(chain());
    let out = run(&mut e, &body, 5000).unwrap();
    assert_eq!(out.len() as u64, ChunkEncoder::encoded_len(66560));
    assert_eq!(out.len(), 66824);
    assert_eq!(signatures(&out), CHUNK_SIGS);
    for n in [0u64, 1, 65535, 65536, 65537, 3 * 65536 + 17] {
        let mut e = ChunkEncoder::new(chain());
        let out = run(&mut e, &vec![0u8; n as usize], 9999).unwrap();
        assert_eq!(out.len() as u64, ChunkEncoder::encoded_len(n), "{n}");
    }
}

#[test]
fn malformed_chunked_bodies_are_refused() {
    let good = client_chunked(&[10], None);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "not hex",
            b"zz;chunk-signature="
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'0', 64))
                .chain(*b"\r\n")
                .collect(),
        ),
        ("short signature", b"a;chunk-signature=00\r\n".to_vec()),
        ("unsigned chunk", b"a\r\naaaaaaaaaa\r\n".to_vec()),
        ("data without CRLF", {
            let mut b = good.clone();
            let at = b.iter().position(|&c| c == b'a').unwrap() + 10;
            b[at] = b'X';
            b
        }),
        (
            "data after the end",
            [good.clone(), b"extra".to_vec()].concat(),
        ),
        ("truncated", good[..good.len() - 5].to_vec()),
        ("oversized chunk", client_chunked(&[2048], None)),
        // Found by fuzzing: whitespace before the trailer signature changed the length.
        ("padded trailer signature", {
            let mut b = client_chunked(&[10], Some("x-amz-checksum-crc32:AAAAAA==\r\n"));
            let at = b
                .windows(24)
                .position(|w| w == b"x-amz-trailer-signature:")
                .unwrap()
                + 24;
            b.insert(at, 0x0b);
            b
        }),
    ];
    for (what, body) in cases {
        let trailer = what.contains("trailer");
        let mut r = ChunkResigner::new(chain(), trailer, 1024);
        assert!(run(&mut r, &body, 3).is_err(), "{what} accepted");
    }
    let mut r = ChunkResigner::new(chain(), false, 1024);
    assert!(run(&mut r, &good, 3).is_ok());
}

/// Signature computed independently (Python hmac/hashlib from the SPECS §1.9 recipe) for
/// the smithy-rs event-stream inputs: credentials ANOTREAL/notrealrnrELgWzOk3IfjzDKtFBhDby,
/// t = 123456789 s, us-east-1, testservice, previous signature sha256("last message sts").
#[test]
fn event_message_is_resigned_in_place() {
    let inner = excalibur_core::secret::unhex(
        "0000003000000014ded9b3920b736f6d652d68656164657207000576616c756574657374207061796c6f61643e89b924",
    )
    .unwrap();
    let outer = |sig: &[u8; 32], ms: i64, payload: &[u8]| {
        let mut headers = Vec::new();
        headers.push(16u8);
        headers.extend_from_slice(b":chunk-signature");
        headers.push(6);
        headers.extend_from_slice(&32u16.to_be_bytes());
        headers.extend_from_slice(sig);
        headers.extend_from_slice(&date_header(ms));
        let total = (12 + headers.len() + payload.len() + 4) as u32;
        let mut m = total.to_be_bytes().to_vec();
        m.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let crc = crc32fast::hash(&m);
        m.extend_from_slice(&crc.to_be_bytes());
        m.extend_from_slice(&headers);
        m.extend_from_slice(payload);
        let crc = crc32fast::hash(&m);
        m.extend_from_slice(&crc.to_be_bytes());
        m
    };
    let creds = Credentials::new(
        "ANOTREAL".to_owned(),
        Secret::new(b"notrealrnrELgWzOk3IfjzDKtFBhDby".to_vec()),
        None,
    );
    let scope = Scope {
        region: "us-east-1",
        service: "testservice",
    };
    let t = UNIX_EPOCH + Duration::new(123_456_789, 1234);
    let seed = sha256_hex(b"last message sts");
    let chain = SignatureChain::new(&creds, scope, t, seed).unwrap();
    let mut r = EventResigner::new(chain, Box::new(move || t));
    let client = [outer(&[7; 32], 1, &inner), outer(&[9; 32], 2, &[])].concat();
    let out = run(&mut r, &client, 11).unwrap();
    assert_eq!(out.len(), client.len());
    let expected = excalibur_core::secret::unhex(
        "08fed460df836999e1c4137962a3d6ad66a9e8c1bf8e8888e3cbeee26bbf774d",
    )
    .unwrap();
    let first = &out[..client.len() - outer(&[0; 32], 0, &[]).len()];
    assert_eq!(
        &first[12 + 1 + 16 + 1 + 2..12 + 1 + 16 + 1 + 2 + 32],
        &expected[..]
    );
    assert_eq!(
        &first[first.len() - 4..],
        &crc32fast::hash(&first[..first.len() - 4]).to_be_bytes()
    );
    // The date was rewritten to the signing second.
    assert!(first.windows(15).any(|w| w == date_header(123_456_789_000)));
    // A corrupted CRC or anything after the end-of-stream message is refused.
    let mut bad = client.clone();
    bad[20] ^= 1;
    let chain = SignatureChain::new(&creds, scope, t, sha256_hex(b"x")).unwrap();
    assert!(
        run(
            &mut EventResigner::new(chain, Box::new(move || t)),
            &bad,
            64
        )
        .is_err()
    );
    let chain = SignatureChain::new(&creds, scope, t, sha256_hex(b"x")).unwrap();
    let trailing = [client.clone(), outer(&[0; 32], 3, &inner)].concat();
    assert!(
        run(
            &mut EventResigner::new(chain, Box::new(move || t)),
            &trailing,
            64
        )
        .is_err()
    );
}

#[test]
fn wire_forms_are_strict() {
    assert_eq!(
        canonical_path("/bucket/a b:c@d(e)", true),
        "/bucket/a%20b%3Ac%40d%28e%29"
    );
    assert_eq!(
        canonical_path("/bucket/photos//x/./y", true),
        "/bucket/photos//x/./y"
    );
    assert_eq!(
        canonical_path("/bucket/%7Euser%2Fkey", true),
        "/bucket/~user%2Fkey"
    );
    assert_eq!(canonical_path("/a%20b/", false), "/a%20b/");
    assert_eq!(
        canonical_query("b=1+2&a=%2f&acl").as_deref(),
        Some("b=1%2B2&a=%2F&acl=")
    );
    assert_eq!(canonical_query(""), None);
    let (kept, expires, presigned) = strip_query_auth(
        "x-id=GetObject&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Expires=300&X-Amz-Signature=00",
    );
    assert_eq!(
        (kept.as_str(), expires, presigned),
        ("x-id=GetObject", Some(300), true)
    );
}

#[test]
fn presign_refuses_out_of_range_expiry() {
    let input = SignInput {
        method: "GET",
        url: "https://s3.amazonaws.com/b/k",
        headers: vec![("host", "s3.amazonaws.com")],
        payload: UNSIGNED_PAYLOAD,
        time: example_time(),
        s3_uri: true,
        content_sha256: false,
    };
    assert!(presign(&example_creds(), S3, &input, Duration::ZERO).is_err());
    assert!(
        presign(
            &example_creds(),
            S3,
            &input,
            MAX_PRESIGN_EXPIRES + Duration::from_secs(1)
        )
        .is_err()
    );
    let q = presign(&example_creds(), S3, &input, Duration::from_secs(60)).unwrap();
    assert!(
        q.contains(
            "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        ),
        "{q}"
    );
    assert!(q.contains("X-Amz-Expires=60"));
}
