//! Canonical JSON: the exact bytes the audit chain hashes.
//!
//! Object keys are sorted (serde_json's default map is ordered), no whitespace,
//! integers and strings only in practice. Stable across processes and key order.

use serde_json::Value;

/// Serializes `value` canonically: sorted keys, compact, UTF-8.
pub fn to_vec(value: &Value) -> Vec<u8> {
    // INVARIANT: serializing a `Value` into a Vec cannot fail (no I/O, no non-string keys).
    serde_json::to_vec(&sort(value)).unwrap_or_default()
}

/// [`to_vec`] as a `String`.
pub fn to_string(value: &Value) -> String {
    String::from_utf8(to_vec(value)).unwrap_or_default()
}

fn sort(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sort(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
