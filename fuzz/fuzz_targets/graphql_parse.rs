//! The GraphQL document parser the server runs on every request
//! (`async_graphql::parser::parse_query`): no document up to 4 KB panics or hangs.
//!
//! Nesting is capped at `MAX_NESTING` brackets: deeper documents overflow the parser's stack
//! (a known defect, refused before parsing once the server checks document text first; see
//! docs/fuzzing.md), and a stack overflow would stop this target at its first deep input.

#![no_main]

use libfuzzer_sys::fuzz_target;

const MAX_LEN: usize = 4096;
const MAX_NESTING: usize = 64;

/// The deepest bracket nesting of `text`, counting brackets inside strings too (an upper bound).
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_LEN {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if nesting(text) > MAX_NESTING {
        return;
    }
    // Refusing is fine; panicking, hanging or exhausting memory is not.
    let _ = async_graphql::parser::parse_query(text);
});
