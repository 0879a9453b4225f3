//! The request hash: SHA-256 (hex) of the canonical JSON of `{"input": ..., "operation": ...}`.
//! Canonical JSON here is compact serde_json output with object keys sorted by their UTF-8
//! bytes at every level (independent of serde_json's `preserve_order` feature). Logbook does not
//! need bit-compatibility with the Python platform's hashes (no such hashes are persisted).

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

pub fn request_hash(operation: &str, input: &impl Serialize) -> AppResult<String> {
    let input = serde_json::to_value(input)
        .map_err(|e| AppError::internal(format!("input not serializable: {e}")))?;
    let envelope = serde_json::json!({ "input": input, "operation": operation });
    Ok(hex::encode(Sha256::digest(canonical_json(&envelope))))
}

/// `value` as compact JSON with every object's keys sorted.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Serializing a scalar `Value` cannot fail.
    out.extend_from_slice(value.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let a = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 3}], "c": "é"}});
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap(),
            r#"{"a":{"c":"é","z":[1,{"x":3,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn the_hash_depends_on_input_and_operation() {
        let one = request_hash("startTrace", &json!({"a": 1, "b": 2})).unwrap();
        assert_eq!(
            one,
            request_hash("startTrace", &json!({"b": 2, "a": 1})).unwrap()
        );
        assert_ne!(
            one,
            request_hash("abortTrace", &json!({"a": 1, "b": 2})).unwrap()
        );
        assert_ne!(
            one,
            request_hash("startTrace", &json!({"a": 1, "b": 3})).unwrap()
        );
    }
}
