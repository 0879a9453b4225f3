//! Opaque tokens a client hands back: list cursors (`CursorCodec`) and global node ids.
//! Arbitrary text never panics and is only ever `BAD_CURSOR` (or `None` for ids); a cursor we
//! issued decodes to exactly the position it was made from, and only in its own scope (tenant,
//! list, order, filter, snapshot), under its own key, unaltered.

#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use logbook::ids::{self, NodeKind};
use logbook::pagination::{CursorCodec, Position, Scope};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    key: &'a [u8],
    tenant: &'a str,
    other_tenant: &'a str,
    list: &'a str,
    order: &'a str,
    filter: Option<&'a str>,
    as_of: Option<i64>,
    other_list: &'a str,
    micros: i64,
    id: &'a str,
    cursor: &'a str,
    raw: &'a [u8],
    flip: usize,
    kind: u8,
}

const KINDS: [NodeKind; 6] = [
    NodeKind::LlmRun,
    NodeKind::SystemRecord,
    NodeKind::AuditEntry,
    NodeKind::LogExport,
    NodeKind::Trace,
    NodeKind::TraceMismatch,
];

fuzz_target!(|input: Input<'_>| {
    let codec = CursorCodec::new(input.key);
    let as_of = input.as_of.and_then(|m| Utc.timestamp_micros(m).single());
    let scope = Scope::new(input.tenant, input.list, input.order, &input.filter, as_of);

    // Whatever a client sends.
    let lossy = String::from_utf8_lossy(input.raw);
    for text in [input.cursor, lossy.as_ref()] {
        match codec.decode(scope, text) {
            // Only a genuine cursor decodes, and then it is exactly what we would issue.
            Ok(position) => assert_eq!(codec.encode(scope, &position), text),
            Err(e) => assert_eq!(e.code(), "BAD_CURSOR"),
        }
        if let Some((kind, record)) = ids::decode(text) {
            assert!(!record.is_empty());
            assert_eq!(ids::encode(kind, &record).0, text);
        }
    }

    // What we issue: any key (a time in microseconds, or the value of an integer sort column).
    {
        let position = Position::keyed(input.micros, input.id);
        let cursor = codec.encode(scope, &position);
        let decoded = codec.decode(scope, &cursor);
        if input.id.len() <= usize::from(u16::MAX) {
            assert_eq!(decoded.ok().as_ref(), Some(&position), "round trip");
        } else {
            assert!(decoded.is_err(), "an id too long to encode must not decode");
        }
        let other = Scope::new(
            input.other_tenant,
            input.list,
            input.order,
            &input.filter,
            as_of,
        );
        if other != scope {
            assert!(
                codec.decode(other, &cursor).is_err(),
                "another tenant's cursor"
            );
        }
        let other = Scope::new(
            input.tenant,
            input.other_list,
            input.order,
            &input.filter,
            as_of,
        );
        if other != scope {
            assert!(
                codec.decode(other, &cursor).is_err(),
                "another list's cursor"
            );
        }
        let mut other_key = input.key.to_vec();
        other_key.push(b'x');
        assert!(
            CursorCodec::new(&other_key).decode(scope, &cursor).is_err(),
            "another server's cursor"
        );
        let mut altered = cursor.into_bytes();
        let at = input.flip % altered.len();
        altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("base64 is ASCII");
        assert!(codec.decode(scope, &altered).is_err(), "an altered cursor");
    }

    let kind = KINDS[usize::from(input.kind) % KINDS.len()];
    let id = ids::encode(kind, input.id);
    // Ids the server issues (non-empty, at most 128 bytes, no control characters) come back;
    // anything else decodes to nothing, like a missing object.
    let issuable =
        !input.id.is_empty() && input.id.len() <= 128 && !input.id.chars().any(char::is_control);
    let expected = issuable.then(|| (kind, input.id.to_owned()));
    assert_eq!(ids::decode(&id), expected, "node id round trip");
});
