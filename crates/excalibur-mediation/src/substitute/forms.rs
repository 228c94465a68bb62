//! The forms a name or a value takes once encoded: what the automata search for.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// The forms a real value takes when an upstream echoes it: literal; percent-encoded
/// (reserved bytes only, or every byte; upper- and lowercase hex); base64 and base64url
/// substrings at every alignment; JSON `\u00XX` escapes of every byte and `\/`.
/// Encoded forms are generated only for values long enough not to match by chance.
pub(super) fn echo_forms(value: &[u8]) -> Vec<Vec<u8>> {
    const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = vec![value.to_vec()];
    if value.len() < 8 {
        return out;
    }
    let hex = |b: u8, digits: &[u8; 16]| -> [u8; 2] {
        let d = |n: u8| digits.get(usize::from(n & 0x0f)).copied().unwrap_or(b'0');
        [d(b >> 4), d(b)]
    };
    for digits in [HEX_UPPER, HEX_LOWER] {
        let (mut reserved, mut every, mut json) = (Vec::new(), Vec::new(), Vec::new());
        for &b in value {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                reserved.push(b);
            } else {
                reserved.push(b'%');
                reserved.extend_from_slice(&hex(b, digits));
            }
            every.push(b'%');
            every.extend_from_slice(&hex(b, digits));
            json.extend_from_slice(b"\\u00");
            json.extend_from_slice(&hex(b, digits));
        }
        out.extend([reserved, every, json]);
    }
    if value.contains(&b'/') {
        let mut slashed = Vec::new();
        for &b in value {
            if b == b'/' {
                slashed.push(b'\\');
            }
            slashed.push(b);
        }
        out.push(slashed);
    }
    out.extend(
        base64_fragments(value)
            .into_iter()
            .filter(|f| f.len() >= 10)
            .map(String::into_bytes),
    );
    out.dedup();
    out
}

/// Base64 substrings that appear whenever `name` is base64-encoded at any alignment,
/// in the standard and URL-safe alphabets.
pub(super) fn base64_fragments(name: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut input = vec![0u8; offset];
        input.extend_from_slice(name);
        let start = (offset * 4).div_ceil(3);
        let end = (offset + name.len()) * 4 / 3;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let enc = engine.encode(&input);
            if let Some(fragment) = enc.get(start..end)
                && fragment.len() >= 6
                && !out.iter().any(|f| f == fragment)
            {
                out.push(fragment.to_owned());
            }
        }
    }
    out
}

pub(super) fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (input.get(i + 1), input.get(i + 2))
            && let (Some(h), Some(l)) = (char::from(*h).to_digit(16), char::from(*l).to_digit(16))
            && let Ok(byte) = u8::try_from(h * 16 + l)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}
