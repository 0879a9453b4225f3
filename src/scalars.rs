//! Scalars shared by every domain. `DateTime` is RFC 3339 in UTC with a `Z` suffix and at most
//! microsecond precision (what PostgreSQL stores), so a value read back equals the value written.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, Utc};

/// A point in time, RFC 3339, always UTC (`2026-11-27T18:55:00.123456Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime(pub chrono::DateTime<Utc>);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        let parsed = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|e| InputValueError::custom(format!("not an RFC 3339 date-time: {e}")))?;
        Ok(DateTime(truncate_to_micros(parsed.with_timezone(&Utc))))
    }

    fn to_value(&self) -> Value {
        Value::String(format_utc(self.0))
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(value: chrono::DateTime<Utc>) -> Self {
        DateTime(value)
    }
}

pub fn format_utc(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Drops sub-microsecond digits: PostgreSQL keeps microseconds, and SQLite must sort and compare
/// exactly what PostgreSQL would.
pub fn truncate_to_micros(at: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    use chrono::{SubsecRound, Timelike};
    let nanos = at.nanosecond() % 1_000_000_000;
    if nanos % 1_000 == 0 {
        at
    } else {
        at.trunc_subsecs(6)
    }
}

/// The current time at the precision every backend stores.
pub fn now() -> chrono::DateTime<Utc> {
    truncate_to_micros(Utc::now())
}
