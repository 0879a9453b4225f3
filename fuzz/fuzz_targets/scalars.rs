//! The custom scalars (`DateTime`, `Date`, `BigInt`) as async-graphql parses input values:
//! any value is accepted or refused without a panic, and what is accepted reads back — the value
//! the server prints is a value it accepts, and parses to the same thing.
//!
//! Input: the first byte picks the shape; below 0xC0 the rest is a string (the usual case),
//! otherwise the rest builds an arbitrary value (numbers, lists, objects, enums).

#![no_main]

use async_graphql::indexmap::IndexMap;
use async_graphql::{Name, Number, ScalarType, Value};
use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use logbook::scalars::{BigInt, Date, DateTime};

fn value(u: &mut Unstructured<'_>, depth: usize) -> Result<Value> {
    let last = if depth >= 4 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=last)? {
        0 => Value::Null,
        1 => Value::Number(match u.int_in_range(0..=2)? {
            0 => Number::from(i64::arbitrary(u)?),
            1 => Number::from(u64::arbitrary(u)?),
            _ => Number::from_f64(f64::arbitrary(u)?).unwrap_or_else(|| Number::from(0)),
        }),
        2 => Value::String(String::arbitrary(u)?),
        3 => Value::Boolean(bool::arbitrary(u)?),
        4 => Value::Enum(Name::new(<&str>::arbitrary(u)?)),
        5 => {
            let n = u.int_in_range(0..=4)?;
            Value::List((0..n).map(|_| value(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut object = IndexMap::new();
            for _ in 0..n {
                object.insert(Name::new(<&str>::arbitrary(u)?), value(u, depth + 1)?);
            }
            Value::Object(object)
        }
    })
}

/// Parses `v`; when accepted, printing and parsing again must give the same value.
fn round_trip<T: ScalarType + PartialEq + std::fmt::Debug>(v: &Value) -> Option<T> {
    let parsed = T::parse(v.clone()).ok()?;
    let printed = parsed.to_value();
    match T::parse(printed.clone()) {
        Ok(again) => assert_eq!(again, parsed, "{v:?} printed as {printed:?}"),
        Err(e) => panic!("{v:?} is accepted but its printed form {printed:?} is refused: {e:?}"),
    }
    Some(parsed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let input = if shape < 0xC0 {
        Value::String(String::from_utf8_lossy(rest).into_owned())
    } else {
        match value(&mut Unstructured::new(rest), 0) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    if let Some(at) = round_trip::<DateTime>(&input) {
        // At most microsecond precision: what PostgreSQL stores.
        assert_eq!(at.0.timestamp_subsec_nanos() % 1_000, 0, "{input:?}");
    }
    round_trip::<Date>(&input);
    if let Some(n) = round_trip::<BigInt>(&input) {
        if let Value::String(text) = &input {
            assert_eq!(text.parse::<i64>().ok(), Some(n.0));
        }
    }
});
