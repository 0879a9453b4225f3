//! Relay global object ids: `base64url("<TypeName>:<record id>")`. Opaque to clients, stable,
//! and carrying the type so `node(id)` can dispatch without a lookup table.

use crate::closed_set::closed_set;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

closed_set! {
    /// The object types `node(id)` can resolve.
    pub enum NodeKind {
        LlmRun => "LlmRun",
        SystemRecord => "SystemRecord",
        AuditEntry => "AuditEntry",
        LogExport => "LogExport",
        Trace => "Trace",
        TraceMismatch => "TraceMismatch",
        Incident => "Incident",
        PolicyActivation => "PolicyActivation",
    }
}

pub fn encode(kind: NodeKind, record_id: &str) -> async_graphql::ID {
    async_graphql::ID(URL_SAFE_NO_PAD.encode(format!("{}:{record_id}", kind.as_str())))
}

/// The longest record id any issued id carries (uuids and client ids are far shorter).
const MAX_RECORD_ID: usize = 128;

/// `None` for anything that is not an id we issued; callers answer `NOT_FOUND`, so a malformed
/// id and a missing object look the same. The decoded part is checked like any other input
/// (length, no control characters such as NUL), since base64 hides it from admission.
pub fn decode(id: &str) -> Option<(NodeKind, String)> {
    if id.len() > 4 * MAX_RECORD_ID {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (kind, record_id) = text.split_once(':')?;
    if record_id.is_empty()
        || record_id.len() > MAX_RECORD_ID
        || record_id.chars().any(char::is_control)
    {
        return None;
    }
    Some((NodeKind::parse(kind)?, record_id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let id = encode(NodeKind::LlmRun, "abc-1");
        assert_eq!(decode(&id), Some((NodeKind::LlmRun, "abc-1".into())));
        assert_eq!(decode("not base64 !"), None);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("Other:1")), None);
        // A NUL hidden in the base64 never reaches the database.
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("Trace:fz-trace-0\0")), None);
        assert_eq!(
            decode(&URL_SAFE_NO_PAD.encode(format!("Trace:{}", "x".repeat(200)))),
            None
        );
    }
}
