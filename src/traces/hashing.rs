//! Determinism hashing of traces (docs/domain.md §5.4), byte-compatible with the Python platform:
//! the per-step hash, the trace signature (exposed as `checksum`) and the HASH_CHAIN run proof
//! (stored as `root_hash`).
//!
//! The Python platform serialises with `json.dumps(x, sort_keys=True)`; [`python_json`]
//! reproduces that text: separators `", "` and `": "`, object keys sorted by code point,
//! non-ASCII and control characters escaped as lower-case `\uXXXX` (surrogate pairs above the
//! BMP, `ensure_ascii`), the short escapes `\" \\ \n \r \t \b \f`, integers in decimal and floats
//! in `repr` form (`1.0`, `0.0001`, `1e-05`, `1e+16`). Not reproduced, because a
//! `serde_json::Value` cannot hold them: `NaN`/`Infinity`, integers outside the i64/u64 range
//! and non-string object keys.

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

/// Python's `repr(float)`: the shortest round-trip digits, positional when the decimal exponent
/// is in `-4..16`, else scientific with a signed, at least two-digit exponent.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // `{:e}` prints the shortest round-trip digits as `d.ddde<exp>`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    // Position of the decimal point relative to the first digit.
    let decpt = exp + 1;
    let n = digits.len() as i32;
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            let zeros = "0".repeat((-decpt) as usize);
            format!("{sign}0.{zeros}{digits}")
        } else if decpt >= n {
            let zeros = "0".repeat((decpt - n) as usize);
            format!("{sign}{digits}{zeros}.0")
        } else {
            let (int, frac) = digits.split_at(decpt as usize);
            format!("{sign}{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{dot}{rest}e{exp_sign}{:02}", exp.abs())
    }
}

fn push_python_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

fn push_python_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&python_float_repr(f));
    }
}

fn push_python_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => push_python_number(out, n),
        Value::String(s) => push_python_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_python_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Python sorts str keys by code point; sorting UTF-8 bytes gives the same order.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_python_string(out, key);
                out.push_str(": ");
                if let Some(v) = map.get(key) {
                    push_python_json(out, v);
                }
            }
            out.push('}');
        }
    }
}

/// The text of Python's `json.dumps(value, sort_keys=True)`.
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    push_python_json(&mut out, value);
    out
}

/// Python's `round(x, 6)`: correctly rounded (ties to even on the exact binary value), which is
/// what Rust's fixed-precision formatting does too.
fn round6(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.6}").parse().unwrap_or(x)
}

/// `_normalize_for_determinism`: every float, at any depth, rounded to 6 decimals.
fn normalize(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .and_then(|f| Number::from_f64(round6(f)))
            .map_or_else(|| value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

/// The step determinism hash (`TraceStep.determinism_hash`): 16 hex characters over
/// step_index, skill_name, params, status, outcome_category, outcome_code and retry_count.
/// Outcome data, timestamps, duration and cost are excluded on purpose.
pub fn step_hash(
    step_index: i32,
    skill_name: &str,
    params: &Value,
    status: &str,
    outcome_category: &str,
    outcome_code: Option<&str>,
    retry_count: i32,
) -> String {
    let params_text = python_json(&normalize(params));
    let mut relevant = Map::new();
    relevant.insert("step_index".into(), Value::from(step_index));
    relevant.insert("skill_name".into(), Value::from(skill_name));
    relevant.insert("params".into(), Value::String(params_text));
    relevant.insert("status".into(), Value::from(status));
    relevant.insert("outcome_category".into(), Value::from(outcome_category));
    relevant.insert(
        "outcome_code".into(),
        outcome_code.map_or(Value::Null, Value::from),
    );
    relevant.insert("retry_count".into(), Value::from(retry_count));
    let canonical = python_json(&Value::Object(relevant));
    let digest = hex::encode(Sha256::digest(canonical.as_bytes()));
    digest[..16].to_owned()
}

/// The trace determinism signature (`TraceRecord.determinism_signature`, exposed as
/// `checksum`): the first 32 hex characters of SHA-256 over the step hashes joined by `:`.
pub fn trace_signature<S: AsRef<str>>(step_hashes: &[S]) -> String {
    let mut hasher = Sha256::new();
    for (i, h) in step_hashes.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(h.as_ref().as_bytes());
    }
    let digest = hex::encode(hasher.finalize());
    digest[..32].to_owned()
}

/// The HASH_CHAIN run proof root: SHA-256 fed the run_id, then `<step_index>:<skill_name>:<status>`
/// for each `(step_index, skill_name, status)` in order (no separator); the full 64-hex digest.
pub fn run_proof_root(run_id: &str, steps: &[(i32, &str, &str)]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(run_id.as_bytes());
    for (index, skill, status) in steps {
        hasher.update(format!("{index}:{skill}:{status}").as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn float_repr_matches_python() {
        // Expected values printed by CPython 3.11 `repr(float)`.
        let cases = [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (123.456, "123.456"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (-2.5, "-2.5"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(x), want, "repr({x})");
        }
    }

    #[test]
    fn json_text_matches_python_dumps() {
        let value = json!({
            "b": [1, 2.0, null, true],
            "a": {"z": "x\"y\\", "é": "ü\n\t"},
            "emoji": "\u{1F600}",
            "ctl": "\u{01}\u{7f}",
        });
        // python3 -c 'import json;print(json.dumps({...}, sort_keys=True))'
        let want = r#"{"a": {"z": "x\"y\\", "\u00e9": "\u00fc\n\t"}, "b": [1, 2.0, null, true], "ctl": "\u0001\u007f", "emoji": "\ud83d\ude00"}"#;
        assert_eq!(python_json(&value), want);
        assert_eq!(python_json(&json!({})), "{}");
        assert_eq!(python_json(&json!([])), "[]");
    }

    #[test]
    fn rounding_matches_python_round() {
        assert_eq!(round6(0.1234565), 0.123456); // binary value is just below the tie
        assert_eq!(round6(2.0000005), 2.000001);
        assert_eq!(round6(-1e-9).to_bits(), (-0.0f64).to_bits());
        let params = json!({"t": 0.30000000000000004, "n": [1e-7, 3]});
        assert_eq!(
            python_json(&normalize(&params)),
            r#"{"n": [0.0, 3], "t": 0.3}"#
        );
    }

    #[test]
    fn step_hash_matches_python() {
        // Reference values printed by CPython 3.11 running the Python platform's
        // `TraceStep.determinism_hash` logic:
        // relevant = {...}; normalise floats; relevant["params"] = json.dumps(params,
        // sort_keys=True); sha256(json.dumps(relevant, sort_keys=True)).hexdigest()[:16]
        let params = json!({"url": "https://example.com", "temperature": 0.7, "retries": 3});
        let h = step_hash(0, "http_call", &params, "success", "SUCCESS", None, 0);
        let canonical = concat!(
            r#"{"outcome_category": "SUCCESS", "outcome_code": null, "#,
            r#""params": "{\"retries\": 3, \"temperature\": 0.7, \"url\": \"https://example.com\"}", "#,
            r#""retry_count": 0, "skill_name": "http_call", "status": "success", "step_index": 0}"#
        );
        let want = &hex::encode(Sha256::digest(canonical.as_bytes()))[..16];
        assert_eq!(h, want);
        assert_eq!(h, "b9dc1040e2dde07c");
        let failed = step_hash(
            3,
            "llm_invoke",
            &json!({}),
            "failure",
            "execution",
            Some("abort"),
            2,
        );
        assert_eq!(failed, "e12e7739234a7efb");
        let tricky = json!({
            "model": "claude-sonnet-4-5",
            "temperature": 0.30000000000000004,
            "prompt": "h\u{e9}llo \u{2603}",
            "stop": ["\n"],
            "x": 1e-7,
            "big": 1e16,
        });
        let h = step_hash(
            2,
            "llm_invoke",
            &tricky,
            "retry",
            "TRANSIENT",
            Some("rate_limited"),
            1,
        );
        assert_eq!(h, "d389aa4f7c49823e");
    }

    #[test]
    fn signature_and_proof_root() {
        let empty: [&str; 0] = [];
        assert_eq!(
            trace_signature(&empty),
            &hex::encode(Sha256::digest(b""))[..32]
        );
        let sig = trace_signature(&["aaaa", "bbbb"]);
        assert_eq!(sig, &hex::encode(Sha256::digest(b"aaaa:bbbb"))[..32]);
        let root = run_proof_root("run_1", &[(0, "a", "success"), (1, "b", "failure")]);
        assert_eq!(
            root,
            hex::encode(Sha256::digest(b"run_10:a:success1:b:failure"))
        );
    }
}
