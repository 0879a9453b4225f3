//! The argument checkers every ingestion mutation runs (`check_id`, `check_text`,
//! `check_synthetic` in src/input.rs): no input panics, a refusal is
//! `BAD_USER_INPUT` naming the field, and what passes really has the promised shape.
//!
//! Input: two bytes of limit, one byte of flags, then the text (lossy UTF-8).

#![no_main]

use libfuzzer_sys::fuzz_target;
use logbook::error::AppError;
use logbook::input::{check_id, check_synthetic, check_text};

fn refused_as_input(result: Result<(), AppError>, field: &str) -> bool {
    match result {
        Ok(()) => false,
        Err(AppError::BadUserInput { field: f, .. }) => {
            assert_eq!(f, field);
            true
        }
        Err(other) => panic!(
            "{field}: refused with {} instead of BAD_USER_INPUT",
            other.code()
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, b, flags, rest @ ..] = data else {
        return;
    };
    let max = usize::from(u16::from_le_bytes([*a, *b]) % 300);
    let text = String::from_utf8_lossy(rest);
    let chars = text.chars().count();

    if !refused_as_input(check_text("input.field", &text, max), "input.field") {
        assert!(
            !text.trim().is_empty() && chars <= max,
            "check_text let {text:?} through"
        );
    }
    if !refused_as_input(check_id("traceId", &text, max), "traceId") {
        assert!(
            !text.trim().is_empty() && chars <= max,
            "check_id let {text:?} through"
        );
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-')),
            "check_id let {text:?} through"
        );
    }

    let synthetic = flags & 1 == 1;
    let scenario = (flags & 2 == 2).then(|| text.to_string());
    let prefix = if flags & 4 == 4 { "steps[0]." } else { "" };
    match check_synthetic(prefix, synthetic, &scenario) {
        Ok(()) => {
            assert_eq!(synthetic, scenario.is_some());
            if let Some(s) = &scenario {
                assert!(!s.trim().is_empty() && s.chars().count() <= 64);
            }
        }
        Err(AppError::BadUserInput { field, .. }) => assert!(field.starts_with(prefix)),
        Err(other) => panic!("check_synthetic refused with {}", other.code()),
    }
});
