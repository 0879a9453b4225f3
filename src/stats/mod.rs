//! Facets, numeric aggregates and time histograms: the shapes a list's connection answers them
//! in, and the bucket arithmetic of histograms (docs/console.md). Domains compute the numbers;
//! this module only knows times, counts and values.

pub mod sql;

use std::str::FromStr;

use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::error::{AppError, AppResult};
use crate::plain::{value, PlainField, PlainFields, PlainRows};
use crate::scalars::{self, BigInt};

/// The most buckets one histogram may have (a day by the minute, 30 days by the hour).
pub const MAX_BUCKETS: usize = 2_000;
/// Facet values returned per field when the client names no limit, and the most it may ask.
pub const DEFAULT_FACET_VALUES: i32 = 20;
pub const MAX_FACET_VALUES: i32 = 100;

/// One value of a facet and how many rows of the filtered set have it.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
pub struct FacetValue {
    pub value: String,
    pub count: BigInt,
}

/// A facet's values, most frequent first (ties by value), cut at `limit`; `otherCount` is the
/// rows whose value was cut.
pub fn top_values(mut counts: Vec<(String, i64)>, limit: i32) -> (Vec<FacetValue>, i64) {
    counts.retain(|(_, n)| *n != 0);
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let cut = counts.split_off(std::cmp::min(counts.len(), limit as usize));
    let other = cut.iter().map(|(_, n)| n).sum();
    let values = counts
        .into_iter()
        .map(|(value, n)| FacetValue {
            value,
            count: BigInt(n),
        })
        .collect();
    (values, other)
}

/// A GraphQL enum value's name (`POLICY_RULE_CREATED`), for facets over columns that store
/// another spelling.
pub fn enum_name<T: async_graphql::InputType>(value: &T) -> String {
    match value.to_value() {
        async_graphql::Value::Enum(name) => name.to_string(),
        other => other.to_string(),
    }
}

/// Checks a `facets(fields)` argument: 1 to `max` fields.
pub fn check_facet_fields(count: usize, max: usize) -> AppResult<()> {
    if count == 0 || count > max {
        return Err(AppError::bad_input(
            "fields",
            format!("name 1 to {max} facet fields"),
        ));
    }
    Ok(())
}

/// Checks a `facets(fields, limit)` call (1 to `max` fields, `limit` in range) and returns the
/// limit.
pub fn facet_args<F>(fields: &[F], limit: Option<i32>, max: usize) -> AppResult<i32> {
    let limit = facet_limit(limit)?;
    check_facet_fields(fields.len(), max)?;
    Ok(limit)
}

/// A facet of a field some rows may have no value for.
pub struct FacetParts {
    /// The values cut at the limit (as [`top_values`]).
    pub values: Vec<FacetValue>,
    /// The rows whose value was cut.
    pub other_count: BigInt,
    /// The rows without a value.
    pub missing_count: BigInt,
}

/// Each field's facet from its (value → count, rows without a value), built into the list's own
/// facet type by `make`.
pub fn facets_of<F, T>(
    fields: Vec<F>,
    counts: Vec<(Vec<(String, i64)>, i64)>,
    limit: i32,
    make: impl Fn(F, FacetParts) -> T,
) -> Vec<T> {
    fields
        .into_iter()
        .zip(counts)
        .map(|(field, (counts, missing))| {
            let (values, other) = top_values(counts, limit);
            let parts = FacetParts {
                values,
                other_count: BigInt(other),
                missing_count: BigInt(missing),
            };
            make(field, parts)
        })
        .collect()
}

/// Checks a facet `limit` argument.
pub fn facet_limit(limit: Option<i32>) -> AppResult<i32> {
    let limit = limit.unwrap_or(DEFAULT_FACET_VALUES);
    if !(1..=MAX_FACET_VALUES).contains(&limit) {
        return Err(AppError::bad_input(
            "limit",
            format!("`limit` must be between 1 and {MAX_FACET_VALUES}"),
        ));
    }
    Ok(limit)
}

/// Count, sum, mean, extremes and nearest-rank percentiles of one numeric field over the rows
/// that have it (NULLs are not counted).
#[derive(Debug, Clone, PartialEq, SimpleObject)]
pub struct NumericStats {
    pub count: BigInt,
    pub sum: Option<BigInt>,
    pub avg: Option<f64>,
    pub min: Option<BigInt>,
    pub max: Option<BigInt>,
    /// The smallest value with at least half of the values at or below it.
    pub p50: Option<BigInt>,
    /// The smallest value with at least 95 % of the values at or below it.
    pub p95: Option<BigInt>,
}

/// [`NumericStats`] of a field stored as a fractional number (a step's duration or cost), in
/// the stored doubles: sums and means carry the double arithmetic's rounding, the extremes and
/// percentiles are stored values.
#[derive(Debug, Clone, PartialEq, SimpleObject)]
pub struct FractionalStats {
    pub count: BigInt,
    pub sum: Option<f64>,
    pub avg: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The smallest value with at least half of the values at or below it.
    pub p50: Option<f64>,
    /// The smallest value with at least 95 % of the values at or below it.
    pub p95: Option<f64>,
}

/// The 1-based rank of the nearest-rank percentile `p` of `n` values, computed as PostgreSQL's
/// `percentile_disc` does (`ceil(p × n)` in double precision), so both backends agree.
pub fn nearest_rank(p: f64, n: i64) -> i64 {
    std::cmp::max(1, (p * n as f64).ceil() as i64)
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramInterval {
    Minute,
    Hour,
    Day,
}

/// One bucket: rows with `start ≤ time < end`.
#[derive(Debug, Clone, PartialEq, SimpleObject)]
pub struct HistogramBucket {
    pub start: scalars::DateTime,
    pub end: scalars::DateTime,
    pub count: BigInt,
    /// The bucket's summed cost in cents, where the list has a cost.
    pub cost_cents: Option<BigInt>,
}

/// A histogram's buckets: up to [`MAX_BUCKETS`] objects of three or four scalars, answered in
/// one pass rather than a future per field (`crate::plain`).
pub type Histogram = PlainRows<HistogramBucket>;

impl PlainFields for HistogramBucket {
    fn plain_field(name: &str) -> Option<PlainField<Self>> {
        let read: PlainField<Self> = match name {
            "start" => |b| value::scalar(&b.start),
            "end" => |b| value::scalar(&b.end),
            "count" => |b| value::scalar(&b.count),
            "costCents" => |b| value::optional_scalar(b.cost_cents.as_ref()),
            _ => return None,
        };
        Some(read)
    }
}

/// The boundaries of a histogram over `[from, to)`: buckets aligned to the interval in the
/// time zone, the first starting at `from` and the last ending at `to` (the edge buckets may be
/// shorter than the interval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    /// `bounds[i]..bounds[i + 1]` is bucket `i`; at least two bounds.
    pub bounds: Vec<DateTime<Utc>>,
}

impl Buckets {
    pub fn new(
        interval: HistogramInterval,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        time_zone: Option<&str>,
    ) -> AppResult<Self> {
        if from >= to {
            return Err(AppError::bad_input("to", "`to` must be later than `from`"));
        }
        let zone = match time_zone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                AppError::bad_input("timeZone", format!("`{name}` is not an IANA time zone"))
            })?,
        };
        let mut bounds = vec![from];
        let mut at = floor(interval, zone, from);
        loop {
            at = next(interval, zone, at);
            if at >= to {
                break;
            }
            bounds.push(at);
            if bounds.len() > MAX_BUCKETS {
                return Err(AppError::bad_input(
                    "interval",
                    format!("the histogram would have more than {MAX_BUCKETS} buckets"),
                ));
            }
        }
        bounds.push(to);
        Ok(Buckets { bounds })
    }

    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn from(&self) -> DateTime<Utc> {
        self.bounds[0]
    }

    pub fn to(&self) -> DateTime<Utc> {
        self.bounds[self.bounds.len() - 1]
    }

    /// The bucket holding `at`, if any.
    pub fn index_of(&self, at: DateTime<Utc>) -> Option<usize> {
        if at < self.from() || at >= self.to() {
            return None;
        }
        Some(self.bounds.partition_point(|b| *b <= at) - 1)
    }

    /// True when every boundary inside the range falls on a whole UTC hour, so an hour of data
    /// lies in one bucket.
    pub fn inner_bounds_on_hours(&self) -> bool {
        self.bounds[1..self.bounds.len() - 1]
            .iter()
            .all(|b| b.minute() == 0 && b.second() == 0 && b.nanosecond() == 0)
    }

    /// Zero-filled buckets with the given per-bucket (count, cost).
    /// The buckets of a histogram that counts rows only (`costCents` null).
    pub fn finish_counts(&self, counts: &[i64]) -> Histogram {
        let totals: Vec<(i64, i64)> = counts.iter().map(|&n| (n, 0)).collect();
        self.finish(&totals, false)
    }

    pub fn finish(&self, totals: &[(i64, i64)], with_cost: bool) -> Histogram {
        let buckets = self
            .bounds
            .windows(2)
            .zip(totals)
            .map(|(edge, (count, cost))| HistogramBucket {
                start: edge[0].into(),
                end: edge[1].into(),
                count: BigInt(*count),
                cost_cents: with_cost.then_some(BigInt(*cost)),
            })
            .collect();
        PlainRows(buckets)
    }
}

/// The UTC instant a time key names: `YYYY-MM-DDTHH` (an hour) or `YYYY-MM-DDTHH:MM` (a
/// minute), as the rollups and the grouped histogram rows spell them. Read by hand: a 30-day
/// hourly chart reads 720 keys, and chrono's format-string parser cost more per key than the
/// rest of the bucket's work.
pub fn key_start(key: &str) -> Option<DateTime<Utc>> {
    let b = key.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let minute = match b.len() {
        13 => 0,
        16 if b[13] == b':' => number(14..16)?,
        _ => return None,
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let date =
        chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    Some(date.and_hms_opt(number(11..13)?, minute, 0)?.and_utc())
}

/// The start of the interval holding `at`, in the zone.
fn floor(interval: HistogramInterval, zone: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
    let local = at.with_timezone(&zone).naive_local();
    let truncated = match interval {
        HistogramInterval::Minute => local.date().and_hms_opt(local.hour(), local.minute(), 0),
        HistogramInterval::Hour => local.date().and_hms_opt(local.hour(), 0, 0),
        HistogramInterval::Day => Some(local.date().and_time(NaiveTime::MIN)),
    }
    .unwrap_or(local);
    to_utc(zone, truncated).min(at)
}

/// The start of the interval after the one starting at `at`.
fn next(interval: HistogramInterval, zone: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
    match interval {
        HistogramInterval::Minute => at + Duration::minutes(1),
        HistogramInterval::Hour => at + Duration::hours(1),
        HistogramInterval::Day => {
            let day = at.with_timezone(&zone).date_naive();
            match day.succ_opt() {
                Some(next) => {
                    to_utc(zone, next.and_time(NaiveTime::MIN)).max(at + Duration::hours(1))
                }
                None => at + Duration::days(1),
            }
        }
    }
}

/// A local time in the zone as UTC: the earlier instant when the clock repeats, the first
/// instant after the gap when it skips.
fn to_utc(zone: Tz, local: chrono::NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..4 {
        if let Some(at) = zone.from_local_datetime(&probe).earliest() {
            return at.with_timezone(&Utc);
        }
        probe += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_keys_parse_as_chrono_would() {
        use chrono::NaiveDateTime;
        let chrono_reads = |key: &str| {
            let minute = if key.len() == 13 {
                format!("{key}:00")
            } else {
                key.to_owned()
            };
            NaiveDateTime::parse_from_str(&minute, "%Y-%m-%dT%H:%M")
                .ok()
                .map(|t| t.and_utc())
        };
        for key in [
            "2026-11-27T00",
            "2026-11-27T23",
            "2024-02-29T12:59",
            "2026-01-01T00:00",
            "1999-12-31T23:59",
        ] {
            assert_eq!(super::key_start(key), chrono_reads(key), "{key}");
            assert!(super::key_start(key).is_some(), "{key}");
        }
        for bad in [
            "",
            "2026-11-27",
            "2026-11-27T24",
            "2026-02-30T01",
            "2026-11-27T1a",
            "2026-11-27 10",
            "2026-11-27T10:60",
            "2026-11-27T10-00",
            "2026/11/27T10",
            "2026-11-27T10:0",
            "+026-11-27T10",
        ] {
            assert_eq!(super::key_start(bad), None, "{bad}");
        }
    }

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn hours_in_utc_are_zero_filled_and_clipped_to_the_range() {
        let b = Buckets::new(
            HistogramInterval::Hour,
            at("2026-11-03T10:30:00Z"),
            at("2026-11-03T13:00:00Z"),
            None,
        )
        .unwrap();
        assert_eq!(
            b.bounds,
            vec![
                at("2026-11-03T10:30:00Z"),
                at("2026-11-03T11:00:00Z"),
                at("2026-11-03T12:00:00Z"),
                at("2026-11-03T13:00:00Z"),
            ]
        );
        assert!(b.inner_bounds_on_hours());
        assert_eq!(b.index_of(at("2026-11-03T10:59:59Z")), Some(0));
        assert_eq!(b.index_of(at("2026-11-03T12:00:00Z")), Some(2));
        assert_eq!(b.index_of(at("2026-11-03T13:00:00Z")), None);
    }

    #[test]
    fn days_follow_the_zone_across_a_clock_change() {
        // Berlin leaves summer time on 2026-10-25: that day has 25 hours.
        let b = Buckets::new(
            HistogramInterval::Day,
            at("2026-10-23T22:00:00Z"),
            at("2026-10-26T23:00:00Z"),
            Some("Europe/Berlin"),
        )
        .unwrap();
        assert_eq!(
            b.bounds,
            vec![
                at("2026-10-23T22:00:00Z"),
                at("2026-10-24T22:00:00Z"),
                at("2026-10-25T23:00:00Z"),
                at("2026-10-26T23:00:00Z"),
            ]
        );
    }

    #[test]
    fn half_hour_zones_are_not_on_utc_hours() {
        let b = Buckets::new(
            HistogramInterval::Hour,
            at("2026-11-03T00:00:00Z"),
            at("2026-11-03T03:00:00Z"),
            Some("Asia/Kolkata"),
        )
        .unwrap();
        assert_eq!(b.bounds[1], at("2026-11-03T00:30:00Z"));
        assert!(!b.inner_bounds_on_hours());
    }

    #[test]
    fn bad_ranges_zones_and_sizes_are_refused() {
        let (from, to) = (at("2026-11-03T00:00:00Z"), at("2026-12-03T00:00:00Z"));
        let code = |r: AppResult<Buckets>| r.unwrap_err().code();
        assert_eq!(
            code(Buckets::new(HistogramInterval::Hour, to, from, None)),
            "BAD_USER_INPUT"
        );
        assert_eq!(
            code(Buckets::new(
                HistogramInterval::Hour,
                from,
                to,
                Some("Mars/Base")
            )),
            "BAD_USER_INPUT"
        );
        assert_eq!(
            code(Buckets::new(HistogramInterval::Minute, from, to, None)),
            "BAD_USER_INPUT"
        );
        assert_eq!(
            Buckets::new(HistogramInterval::Hour, from, to, None)
                .unwrap()
                .len(),
            720
        );
    }

    #[test]
    fn facets_keep_the_most_frequent_and_count_the_rest() {
        let (values, other) = top_values(
            vec![
                ("b".into(), 5),
                ("a".into(), 5),
                ("c".into(), 1),
                ("d".into(), 0),
            ],
            2,
        );
        let names: Vec<_> = values.iter().map(|v| v.value.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(other, 1);
    }

    #[test]
    fn nearest_rank_matches_percentile_disc() {
        assert_eq!(nearest_rank(0.5, 1), 1);
        assert_eq!(nearest_rank(0.5, 4), 2);
        assert_eq!(nearest_rank(0.95, 20), 19);
        assert_eq!(nearest_rank(0.95, 21), 20);
    }
}
