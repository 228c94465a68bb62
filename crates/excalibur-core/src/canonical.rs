//! Canonical JSON: the exact bytes the audit chain hashes.
//!
//! Object keys are sorted (serde_json's default map is ordered), no whitespace,
//! integers and strings only in practice. Stable across processes and key order.

use serde_json::Value;

/// Serializes `value` canonically: sorted keys, compact, UTF-8.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write(&mut out, value);
    out
}

/// [`to_vec`] as a `String`.
pub fn to_string(value: &Value) -> String {
    String::from_utf8(to_vec(value)).unwrap_or_default()
}

/// Appends the canonical form of `value` to `out`, without copying the tree (the
/// recorder writes one per flow).
pub fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write(out, v);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, v);
            }
            out.push(b']');
        }
        // INVARIANT: serializing a scalar into a Vec cannot fail (no I/O).
        scalar => serde_json::to_writer(&mut *out, scalar).unwrap_or_default(),
    }
}

/// Appends `s` as a JSON string (serde_json's escaping).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // INVARIANT: serializing a str into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The streaming writer gives the bytes of sorting a copy and serializing it.
    #[test]
    fn matches_sorted_serde_output() {
        fn sorted(v: &serde_json::Value) -> serde_json::Value {
            match v {
                serde_json::Value::Object(m) => {
                    let mut e: Vec<_> = m.iter().collect();
                    e.sort_by(|a, b| a.0.cmp(b.0));
                    serde_json::Value::Object(
                        e.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect(),
                    )
                }
                serde_json::Value::Array(a) => {
                    serde_json::Value::Array(a.iter().map(sorted).collect())
                }
                o => o.clone(),
            }
        }
        let v = json!({"z": "q\"uote\n\u{1}é", "a": [1.5, -3, null, true, {"k": {}, "b": []}],
                       "m": u64::MAX, "é": "x"});
        assert_eq!(super::to_vec(&v), serde_json::to_vec(&sorted(&v)).unwrap());
    }

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": "s"}});
        let b = json!({"a": {"x": "s", "y": [1, {"c": 3, "d": 2}]}, "b": 1});
        assert_eq!(super::to_vec(&a), super::to_vec(&b));
        assert_eq!(
            String::from_utf8(super::to_vec(&a)).unwrap(),
            r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }
}
