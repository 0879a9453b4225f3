//! A checkpoint a client saved earlier and now trusts (`logbook ledger verify
//! --trusted-checkpoint FILE`, docs/ledger.md): read from the JSON the `ledger { checkpoint }`
//! GraphQL field returns (camelCase, optionally still inside its `data` / `ledger` envelope),
//! from a checkpoint sink file, or from the last line of an export file (snake_case), then
//! checked on its own: signature, key and the message it signs.
//!
//! Checking the current ledger against it is `verify` (online) and `export` (offline).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::signing::{self, normalize_public_key};
use super::CheckpointSnapshot;

/// The first object, depth first, that looks like a signed checkpoint.
fn find_checkpoint(value: &Value) -> Option<&serde_json::Map<String, Value>> {
    match value {
        Value::Object(map) => {
            let has_size = map.contains_key("treeSize") || map.contains_key("tree_size");
            if has_size && map.contains_key("signature") {
                return Some(map);
            }
            map.values().find_map(find_checkpoint)
        }
        Value::Array(items) => items.iter().find_map(find_checkpoint),
        _ => None,
    }
}

fn field<'a>(
    map: &'a serde_json::Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<&'a Value> {
    map.get(camel)
        .or_else(|| map.get(snake))
        .filter(|v| !v.is_null())
}

fn text(
    map: &serde_json::Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Result<Option<String>, String> {
    match field(map, camel, snake) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{camel}` must be a string, not {other}")),
    }
}

/// Parses a saved checkpoint. `tenant` (the `--tenant` being verified) fills in the tenant when
/// the JSON does not carry it (the GraphQL type has no tenant field; its `signedMessage` does).
pub fn parse(text_in: &str, tenant: Option<&str>) -> Result<CheckpointSnapshot, String> {
    let value: Value = match serde_json::from_str(text_in) {
        Ok(v) => v,
        // An export file: its checkpoint is the last non-empty line.
        Err(whole) => text_in
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| format!("not JSON: {whole}"))?,
    };
    let map = find_checkpoint(&value)
        .ok_or("no signed checkpoint in it (an object with treeSize and signature)")?;
    if let Some(algorithm) = text(map, "algorithm", "algorithm")? {
        if !algorithm.eq_ignore_ascii_case(signing::ALGORITHM) {
            return Err(format!("algorithm {algorithm} is not ed25519"));
        }
    }
    let tree_size = match field(map, "treeSize", "tree_size") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => None,
    }
    .filter(|n| *n >= 1)
    .ok_or("treeSize must be a positive integer")?;
    let root_hash = text(map, "rootHash", "root_hash")?
        .filter(|h| super::store::parse_hash(h).is_some())
        .ok_or("rootHash must be 64 hex digits")?
        .to_ascii_lowercase();
    let issued_at: DateTime<Utc> = text(map, "issuedAt", "issued_at")?
        .ok_or("issuedAt is missing")
        .and_then(|t| {
            DateTime::parse_from_rfc3339(&t).map_err(|_| "issuedAt is not an RFC 3339 time")
        })?
        .with_timezone(&Utc);
    let signature = text(map, "signature", "signature")?.ok_or("signature is missing")?;
    let public_key = text(map, "publicKey", "public_key")?
        .map(|k| normalize_public_key(&k))
        .transpose()?
        .unwrap_or_default();
    let signed_message = text(map, "signedMessage", "signed_message")?;
    let message_tenant = match &signed_message {
        Some(m) => Some(
            serde_json::from_str::<Value>(m)
                .ok()
                .and_then(|v| v.get(1).and_then(Value::as_str).map(str::to_owned))
                .ok_or("signedMessage is not the documented JSON array")?,
        ),
        None => None,
    };
    let named = text(map, "tenantId", "tenant_id")?;
    let tenant_id = match (named, message_tenant, tenant) {
        (Some(a), Some(b), _) if a != b => {
            return Err(format!(
                "it names tenant {a} but its signedMessage tenant {b}"
            ))
        }
        (Some(a), _, _) | (None, Some(a), _) => a,
        (None, None, Some(t)) => t.to_owned(),
        (None, None, None) => return Err("it names no tenant: pass --tenant".into()),
    };
    let checkpoint = CheckpointSnapshot {
        id: String::new(),
        tenant_id,
        tree_size,
        root_hash,
        public_key,
        signature,
        issued_at,
    };
    if let Some(m) = signed_message {
        if m != checkpoint.signed_message() {
            return Err(format!(
                "its signedMessage {m} is not the message its fields make, {}",
                checkpoint.signed_message()
            ));
        }
    }
    Ok(checkpoint)
}

/// Reads and parses a saved checkpoint file.
pub fn read(path: &std::path::Path, tenant: Option<&str>) -> Result<CheckpointSnapshot, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the trusted checkpoint {}: {e}", path.display()))?;
    parse(&text, tenant).map_err(|e| format!("the trusted checkpoint {}: {e}", path.display()))
}

/// Checks a trusted checkpoint on its own: signed by `pinned_key` (hex) when given, else by
/// the key it names, and the signature verifies. Fills in the key from `pinned_key` when the
/// saved JSON did not carry one.
pub fn check_signature(
    checkpoint: &mut CheckpointSnapshot,
    pinned_key: Option<&str>,
) -> Result<(), String> {
    if let Some(pinned) = pinned_key {
        if checkpoint.public_key.is_empty() {
            checkpoint.public_key = pinned.to_owned();
        } else if !checkpoint.public_key.eq_ignore_ascii_case(pinned) {
            return Err(format!(
                "BAD_SIGNATURE: the trusted checkpoint is signed by key {}, not by the trusted \
                 key {pinned}",
                checkpoint.public_key
            ));
        }
    }
    if checkpoint.public_key.is_empty() {
        return Err(
            "BAD_SIGNATURE: the trusted checkpoint names no public key: pass --public-key".into(),
        );
    }
    checkpoint.verify_signature().map_err(|why| {
        format!(
            "BAD_SIGNATURE: the trusted checkpoint of size {}: {why}",
            checkpoint.tree_size
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::signing::LedgerKey;

    fn signed() -> (CheckpointSnapshot, LedgerKey) {
        let key = LedgerKey::parse(&"07".repeat(32)).expect("key");
        let mut c = CheckpointSnapshot {
            id: String::new(),
            tenant_id: "acme".into(),
            tree_size: 5,
            root_hash: "ab".repeat(32),
            public_key: key.public_key_hex(),
            signature: String::new(),
            issued_at: crate::scalars::now(),
        };
        c.signature = key.sign(c.signed_message().as_bytes());
        (c, key)
    }

    #[test]
    fn reads_the_graphql_shape_and_the_sink_shape() {
        let (c, _) = signed();
        let graphql = serde_json::json!({"data": {"ledger": {"checkpoint": {
            "treeSize": "5", "rootHash": c.root_hash, "issuedAt": crate::scalars::format_utc(c.issued_at),
            "algorithm": "ED25519", "publicKey": c.public_key, "signature": c.signature,
            "signedMessage": c.signed_message(),
        }}}});
        let mut parsed = parse(&graphql.to_string(), None).expect("graphql shape");
        assert_eq!(parsed, c);
        assert!(check_signature(&mut parsed, Some(&c.public_key)).is_ok());
        assert!(check_signature(&mut parsed.clone(), Some(&"11".repeat(32))).is_err());
        let sink = crate::ledger::sink::document(&c);
        assert_eq!(parse(&sink, Some("other")).expect("sink shape"), c);
        // Without signedMessage or tenant_id, the tenant comes from --tenant; a wrong one fails
        // the signature.
        let bare = serde_json::json!({"treeSize": 5, "rootHash": c.root_hash,
            "issuedAt": crate::scalars::format_utc(c.issued_at), "signature": c.signature});
        let mut other = parse(&bare.to_string(), Some("globex")).expect("bare");
        assert!(check_signature(&mut other, Some(&c.public_key)).is_err());
        let mut same = parse(&bare.to_string(), Some("acme")).expect("bare");
        assert!(check_signature(&mut same, Some(&c.public_key)).is_ok());
        assert!(parse(&bare.to_string(), None).is_err());
        let forged = sink.replace("\"tree_size\":5", "\"tree_size\":6");
        assert_ne!(forged, sink);
        assert!(
            parse(&forged, None).is_err(),
            "signedMessage no longer matches"
        );
    }
}
