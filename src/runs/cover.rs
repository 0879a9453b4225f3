//! The cheapest signed cover of a creation-time window by rollup units (UTC months, days,
//! hours) and row ranges, for counts and facets, which only add: a window that ends late in a
//! day is that day minus the minutes after its end, not the hours before it, and one that spans
//! most of a month is the month minus the days outside it. A 30-day window with minutes
//! at its edges reads about ten units instead of 28 days and 46 hours (docs/console.md,
//! "How they stay fast: rollups").
//!
//! The terms of one grain never overlap (each correction lies inside one unit of the grain
//! above it, and different corrections are disjoint), so a reader can sign each rollup row by
//! the term its bucket falls in.

use chrono::{DateTime, Datelike, Duration, DurationRound, Months, NaiveDate, Utc};

/// A rollup grain, coarsest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Month,
    Day,
    Hour,
}

impl Grain {
    /// The next finer grain; `None` below hours (rows).
    fn finer(self) -> Option<Grain> {
        match self {
            Grain::Month => Some(Grain::Day),
            Grain::Day => Some(Grain::Hour),
            Grain::Hour => None,
        }
    }

    /// The `grain` column of keyed rows (`keyed`) or of the totals rows.
    pub fn column_value(self, keyed: bool) -> &'static str {
        match (self, keyed) {
            (Grain::Month, true) => "M",
            (Grain::Day, true) => "D",
            (Grain::Hour, true) => "H",
            (Grain::Month, false) => "m",
            (Grain::Day, false) => "d",
            (Grain::Hour, false) => "h",
        }
    }

    /// The bucket key of the unit starting at `at`.
    pub fn key(self, at: DateTime<Utc>) -> String {
        let format = match self {
            Grain::Month => "%Y-%m",
            Grain::Day => "%Y-%m-%d",
            Grain::Hour => "%Y-%m-%dT%H",
        };
        at.format(format).to_string()
    }

    fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Grain::Month => NaiveDate::from_ymd_opt(at.year(), at.month(), 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map_or(at, |t| t.and_utc()),
            Grain::Day => at.duration_trunc(Duration::days(1)).unwrap_or(at),
            Grain::Hour => at.duration_trunc(Duration::hours(1)).unwrap_or(at),
        }
    }

    /// The start of the unit after the one starting at `at` (a unit start).
    fn step(self, at: DateTime<Utc>, forward: bool) -> DateTime<Utc> {
        match (self, forward) {
            (Grain::Month, true) => at.checked_add_months(Months::new(1)).unwrap_or(at),
            (Grain::Month, false) => at.checked_sub_months(Months::new(1)).unwrap_or(at),
            (Grain::Day, true) => at + Duration::days(1),
            (Grain::Day, false) => at - Duration::days(1),
            (Grain::Hour, true) => at + Duration::hours(1),
            (Grain::Hour, false) => at - Duration::hours(1),
        }
    }

    fn ceil(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let down = self.floor(at);
        if down == at {
            at
        } else {
            self.step(down, true)
        }
    }

    /// Units in `[start, end)`, both unit starts.
    fn count(self, start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
        match self {
            Grain::Month => {
                let months = |t: DateTime<Utc>| i64::from(t.year()) * 12 + i64::from(t.month0());
                (months(end) - months(start)) as f64
            }
            Grain::Day => (end - start).num_days() as f64,
            Grain::Hour => (end - start).num_hours() as f64,
        }
    }

    /// Rollup rows a unit reads, relative to one another and to [`ROWS_PER_HOUR`]: a coarser
    /// unit holds more key combinations than a finer one, not proportionally more (on the bench
    /// data's hot tenant: 28 keyed rows an hour, 106 a day).
    fn unit_cost(self) -> f64 {
        match self {
            Grain::Month => 6.0,
            Grain::Day => 4.0,
            Grain::Hour => 1.0,
        }
    }

    /// What an open side costs: it reaches the tenant's first or last unit, a few years.
    fn open_units(self) -> f64 {
        match self {
            Grain::Month => 36.0,
            Grain::Day => 36.0 * 31.0,
            Grain::Hour => 36.0 * 31.0 * 24.0,
        }
    }
}

/// What reading an hour of runs row by row costs against an hour unit: a busy tenant writes
/// more runs in an hour than an hour has key combinations (127 against 28 on the bench data's
/// hot tenant), and each is read from the table, not only from an index.
const ROWS_PER_HOUR: f64 = 8.0;

/// Consecutive units of one grain, from the unit starting at `first` to the one starting at
/// `last` (`None`: open), counted with `sign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Units {
    pub grain: Grain,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub sign: i64,
}

impl Units {
    /// The bucket keys of the first and last units.
    pub fn keys(&self) -> (Option<String>, Option<String>) {
        let key = |at: Option<DateTime<Utc>>| at.map(|t| self.grain.key(t));
        (key(self.first), key(self.last))
    }
}

/// Runs with `start ≤ created_at < end`, counted with `sign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub sign: i64,
}

/// A window as signed terms: each run in the window is counted once, every other run zero
/// times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cover {
    pub units: Vec<Units>,
    pub rows: Vec<Rows>,
    cost: f64,
}

impl Cover {
    /// The cheapest cover of `[start, end)` (either side open).
    pub fn of(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Cover {
        if let (Some(s), Some(e)) = (start, end) {
            if s >= e {
                return Cover::default();
            }
        }
        best(start, end, Some(Grain::Month)).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty() && self.rows.is_empty()
    }

    fn negated(mut self) -> Cover {
        self.units.iter_mut().for_each(|u| u.sign = -u.sign);
        self.rows.iter_mut().for_each(|r| r.sign = -r.sign);
        self
    }

    fn add(&mut self, other: Cover) {
        self.units.extend(other.units);
        self.rows.extend(other.rows);
        self.cost += other.cost;
    }
}

/// The unit starts nearest `at` (itself when it is one); an open side stays open.
fn candidates(grain: Grain, at: Option<DateTime<Utc>>) -> Vec<Option<DateTime<Utc>>> {
    match at {
        None => vec![None],
        Some(t) => {
            let (down, up) = (grain.floor(t), grain.ceil(t));
            if down == up {
                vec![Some(down)]
            } else {
                vec![Some(down), Some(up)]
            }
        }
    }
}

/// The cheapest cover of `[start, end)` by units of `grain` and finer (rows when `None`), or
/// `None` when these cannot cover it (rows cannot cover an open side).
fn best(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    grain: Option<Grain>,
) -> Option<Cover> {
    let Some(grain) = grain else {
        let (start, end) = (start?, end?);
        let hours = (end - start).num_microseconds()? as f64 / 3.6e9;
        return Some(Cover {
            units: Vec::new(),
            rows: vec![Rows {
                start,
                end,
                sign: 1,
            }],
            cost: hours * ROWS_PER_HOUR,
        });
    };
    let mut choice = best(start, end, grain.finer());
    for unit_start in candidates(grain, start) {
        for unit_end in candidates(grain, end) {
            if let (Some(s), Some(e)) = (unit_start, unit_end) {
                if s >= e {
                    continue;
                }
            }
            let units = match (unit_start, unit_end) {
                (Some(s), Some(e)) => grain.count(s, e),
                (Some(_), None) | (None, Some(_)) => grain.open_units(),
                (None, None) => 2.0 * grain.open_units(),
            };
            let mut cover = Cover {
                units: vec![Units {
                    grain,
                    first: unit_start,
                    last: unit_end.map(|e| grain.step(e, false)),
                    sign: 1,
                }],
                rows: Vec::new(),
                cost: units * grain.unit_cost(),
            };
            // The differences at each edge, each inside one unit of this grain.
            let mut possible = true;
            for (from, to) in [(start, unit_start), (end, unit_end)] {
                let (Some(exact), Some(rounded)) = (from, to) else {
                    continue;
                };
                if exact == rounded {
                    continue;
                }
                let (low, high) = (exact.min(rounded), exact.max(rounded));
                let Some(part) = best(Some(low), Some(high), grain.finer()) else {
                    possible = false;
                    break;
                };
                // At the start, rounding down takes in too much (subtract), up too little
                // (add); at the end the other way round.
                let takes_in_too_much = (from == start) == (rounded < exact);
                cover.add(if takes_in_too_much {
                    part.negated()
                } else {
                    part
                });
            }
            if possible && choice.as_ref().is_none_or(|c| cover.cost < c.cost) {
                choice = Some(cover);
            }
        }
    }
    choice
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, d, h, min, 0).unwrap()
    }

    /// How many times the cover counts a run created at `t`.
    fn weight(cover: &Cover, t: DateTime<Utc>) -> i64 {
        let mut n = 0;
        for u in &cover.units {
            let (first, last) = u.keys();
            let key = u.grain.key(u.grain.floor(t));
            let after_first = first.is_none_or(|f| key >= f);
            let before_last = last.is_none_or(|l| key <= l);
            if after_first && before_last {
                n += u.sign;
            }
        }
        for r in &cover.rows {
            if r.start <= t && t < r.end {
                n += r.sign;
            }
        }
        n
    }

    /// Every instant counts once inside the window and never outside it, probed at the
    /// window's edges, every unit boundary near them and a spread of instants.
    fn assert_exact(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) {
        let cover = Cover::of(start, end);
        let mut probes = Vec::new();
        let span_start = start.unwrap_or(at(1, 1, 0, 0)) - Duration::days(70);
        let span_end = end.unwrap_or(at(12, 1, 0, 0)) + Duration::days(70);
        let mut t = span_start;
        while t < span_end {
            probes.push(t);
            t += Duration::minutes(37);
        }
        for edge in [start, end].into_iter().flatten() {
            for g in [Grain::Month, Grain::Day, Grain::Hour] {
                let (down, up) = (g.floor(edge), g.ceil(edge));
                for p in [down, up, edge] {
                    for d in [-1, 0, 1] {
                        probes.push(p + Duration::microseconds(d));
                    }
                }
            }
        }
        for t in probes {
            let inside = start.is_none_or(|s| s <= t) && end.is_none_or(|e| t < e);
            assert_eq!(
                weight(&cover, t),
                i64::from(inside),
                "{t} in [{start:?}, {end:?}): {cover:?}"
            );
        }
    }

    #[test]
    fn covers_are_exact() {
        let windows = [
            (Some(at(10, 28, 0, 17)), Some(at(11, 26, 23, 41))),
            (Some(at(10, 1, 0, 0)), Some(at(11, 20, 10, 20))),
            (Some(at(11, 3, 10, 30)), Some(at(11, 7, 9, 15))),
            (Some(at(11, 3, 10, 5)), Some(at(11, 3, 10, 50))),
            (Some(at(11, 30, 22, 59)), Some(at(12, 1, 1, 1))),
            (Some(at(2, 27, 23, 0)), Some(at(3, 2, 0, 0))),
            (Some(at(1, 31, 12, 0)), Some(at(6, 1, 12, 0))),
            (None, Some(at(11, 3, 10, 5))),
            (Some(at(11, 3, 10, 5)), None),
            (None, None),
        ];
        for (start, end) in windows {
            assert_exact(start, end);
        }
        assert!(Cover::of(Some(at(5, 1, 0, 0)), Some(at(5, 1, 0, 0))).is_empty());
    }

    #[test]
    fn a_month_long_window_reads_few_units() {
        // The bench's 30-day window: 28 days and 46 hours added, before.
        let cover = Cover::of(Some(at(10, 28, 0, 17)), Some(at(11, 26, 23, 41)));
        let units: f64 = cover
            .units
            .iter()
            .map(|u| match (u.first, u.last) {
                (Some(f), Some(l)) if u.grain == Grain::Day => (l - f).num_days() as f64 + 1.0,
                _ => 1.0,
            })
            .sum();
        assert!(units <= 12.0, "{cover:?}");
        // Its partial hours: the 17 and 19 minutes outside the window, subtracted.
        let minutes: i64 = cover
            .rows
            .iter()
            .map(|r| (r.end - r.start).num_minutes())
            .sum();
        assert_eq!(minutes, 36, "{cover:?}");
        assert!(cover.rows.iter().all(|r| r.sign == -1));
    }

    #[test]
    fn a_few_minutes_read_rows_and_most_of_an_hour_the_hour() {
        let cover = Cover::of(Some(at(11, 3, 10, 5)), Some(at(11, 3, 10, 12)));
        assert!(cover.units.is_empty());
        assert_eq!(cover.rows.len(), 1);
        // 45 minutes: the hour less its first 5 and last 10 minutes.
        let cover = Cover::of(Some(at(11, 3, 10, 5)), Some(at(11, 3, 10, 50)));
        assert_eq!(cover.units.len(), 1);
        assert_eq!(cover.units[0].grain, Grain::Hour);
        assert_eq!(
            cover.rows.iter().map(|r| r.sign).collect::<Vec<_>>(),
            [-1, -1]
        );
    }
}
