//! A GraphQL HTTP request as the server reads it before anything runs: the POST body
//! (`serde_json` into `async_graphql::Request`) or the GET query string
//! (`async_graphql::http::parse_query_string`), then the persisted-query extension
//! (`logbook::persisted::parse`). No input panics; the extension never survives parsing; a
//! lookup names a lower-case SHA-256 and carries no text; a registration's hash digests its text.
//!
//! Input: the first byte picks POST (even) or GET (odd), the rest is the body or query string.

#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook::persisted::{self, Persisted};
use sha2::{Digest, Sha256};

fn is_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fuzz_target!(|data: &[u8]| {
    let Some((&method, rest)) = data.split_first() else {
        return;
    };
    let request = if method % 2 == 0 {
        serde_json::from_slice::<async_graphql::Request>(rest).ok()
    } else {
        std::str::from_utf8(rest)
            .ok()
            .and_then(|query| async_graphql::http::parse_query_string(query).ok())
    };
    let Some(mut request) = request else {
        return;
    };
    let outcome = persisted::parse(&mut request);
    assert!(!request.extensions.contains_key("persistedQuery"));
    match outcome {
        Ok(Persisted::Absent) => {}
        Ok(Persisted::Lookup { hash }) => {
            assert!(is_hash(&hash), "{hash}");
            assert!(request.query.is_empty());
        }
        Ok(Persisted::Register { hash }) => {
            assert!(is_hash(&hash), "{hash}");
            assert_eq!(hex::encode(Sha256::digest(request.query.as_bytes())), hash);
        }
        Err(e) => assert_eq!(e.code(), "BAD_USER_INPUT"),
    }
});
