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
            .map_err(|e| InputValueError::custom(format!("not an RFC 3339 date-time: {e}")))?
            .with_timezone(&Utc);
        // Only instants whose UTC form is itself RFC 3339 (a four-digit year), so every value
        // accepted here is written back in a form that parses again.
        if !(0..=9999).contains(&chrono::Datelike::year(&parsed)) {
            return Err(InputValueError::custom(
                "the date-time falls outside the years 0000-9999 in UTC",
            ));
        }
        Ok(DateTime(truncate_to_micros(parsed)))
    }

    /// Lets validation refuse a bad literal or variable before execution (a request error).
    fn is_valid(value: &Value) -> bool {
        Self::parse(value.clone()).is_ok()
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

/// A calendar date, ISO 8601 (`2026-11-27`). Days of cost data are UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub chrono::NaiveDate);

/// A calendar date, ISO 8601 `YYYY-MM-DD`.
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Date)
            .map_err(|e| InputValueError::custom(format!("not an ISO 8601 date (YYYY-MM-DD): {e}")))
    }

    fn is_valid(value: &Value) -> bool {
        Self::parse(value.clone()).is_ok()
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

/// A 64-bit integer (token totals and other counters that outgrow GraphQL's 32-bit `Int`),
/// serialized as a decimal string; accepted as a string or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BigInt(pub i64);

/// A 64-bit integer as a decimal string (GraphQL `Int` is 32-bit).
#[Scalar(name = "BigInt")]
impl ScalarType for BigInt {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => text
                .parse::<i64>()
                .map(BigInt)
                .map_err(|e| InputValueError::custom(format!("not a 64-bit integer: {e}"))),
            Value::Number(n) => n
                .as_i64()
                .map(BigInt)
                .ok_or_else(|| InputValueError::custom("not a 64-bit integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        Self::parse(value.clone()).is_ok()
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_round_trip_or_are_refused() {
        for text in [
            "2026-11-27T18:55:00.123456Z",
            "2026-11-27T20:55:00+02:00",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let parsed = DateTime::parse(Value::String(text.into())).unwrap();
            let again = DateTime::parse(parsed.to_value()).unwrap();
            assert_eq!(parsed, again, "{text}");
        }
        // Valid RFC 3339 whose UTC instant would print outside four-digit years.
        for text in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+01:00"] {
            assert!(
                DateTime::parse(Value::String(text.into())).is_err(),
                "{text}"
            );
        }
    }
}
