//! Admission (`logbook::admission::Admission::admit`), everything a document passes before
//! async-graphql validates or executes it, with the served schema and the default limits: no
//! document or variables panic, hang or overflow the stack; a refusal carries one of the client
//! codes (never `INTERNAL`); an admitted document parses and, for a caller that may only read
//! receipts, is still admitted when it may read everything.
//!
//! Input: one byte of flags (bit 0: receipts only; bit 1: send an operation name), then the
//! document; after the first NUL byte, the variables as JSON.

#![no_main]

use std::sync::OnceLock;

use async_graphql::Variables;
use libfuzzer_sys::fuzz_target;
use logbook::admission::{Admission, AdmissionLimits, ReadGrant, SchemaIndex};
use logbook::config::Limits;

const CODES: &[&str] = &[
    "BAD_USER_INPUT",
    "FORBIDDEN",
    "PAYLOAD_TOO_LARGE",
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_DEEP",
];

fn admission() -> &'static Admission {
    static ADMISSION: OnceLock<Admission> = OnceLock::new();
    ADMISSION.get_or_init(|| {
        let index = SchemaIndex::from_sdl(&logbook::graphql::sdl()).expect("the SDL parses");
        Admission::new(AdmissionLimits::from_limits(&Limits::default()), index)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (text, variables) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let variables = serde_json::from_slice::<serde_json::Value>(variables)
        .map(Variables::from_json)
        .unwrap_or_default();
    // The name of the first operation, or a name that may not exist.
    let name = (flags & 2 == 2).then(|| {
        async_graphql::parser::parse_query(text)
            .ok()
            .and_then(|d| {
                d.operations
                    .iter()
                    .find_map(|(n, _)| n.map(|n| n.to_string()))
            })
            .unwrap_or_else(|| "Nope".to_owned())
    });
    let grant = if flags & 1 == 1 {
        ReadGrant::ReceiptsOnly { role: "INGEST" }
    } else {
        ReadGrant::Full
    };
    match admission().admit(text, name.as_deref(), &variables, grant) {
        Ok(admitted) => {
            assert!(async_graphql::parser::parse_query(text).is_ok());
            assert!(admitted.document.operations.iter().count() > 0);
            if grant != ReadGrant::Full {
                assert!(admission()
                    .admit(text, name.as_deref(), &variables, ReadGrant::Full)
                    .is_ok());
            }
        }
        Err(e) => assert!(
            CODES.contains(&e.code()),
            "refused with {}: {}",
            e.code(),
            e.message()
        ),
    }
});
