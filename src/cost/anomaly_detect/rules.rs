//! The detection rules: pure functions of an entity's daily history (`docs/domain.md` §9.5).

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use crate::cost::{CostAnomalySeverity, CostDerivedCause};

pub const ABSOLUTE_SPIKE_THRESHOLD: f64 = 1.40;
pub const CONSECUTIVE_INTERVALS_REQUIRED: usize = 2;
pub const SUSTAINED_DRIFT_THRESHOLD: f64 = 1.25;
pub const DRIFT_DAYS_REQUIRED: usize = 3;
/// Spike baseline: days [d − 14, d − 2).
pub(super) const SPIKE_LOOKBACK_DAYS: u64 = 14;
pub(super) const SPIKE_GAP_DAYS: u64 = 2;
/// Breach streaks are counted within the last 7 days.
pub(super) const STREAK_WINDOW_DAYS: usize = 7;
/// Drift streaks are counted back at most this many days.
pub(super) const MAX_DRIFT_STREAK: usize = 30;
/// Rollup history read: the longest drift streak plus the drift baseline's reach (28 days).
pub(super) const HISTORY_DAYS: u64 = MAX_DRIFT_STREAK as u64 + 28;

/// One day of one entity.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayCost {
    pub cost_cents: f64,
    pub input_tokens: i64,
    pub requests: i64,
}

/// Daily history of one entity; days without a rollup row are absent ("no data").
pub type History = BTreeMap<NaiveDate, DayCost>;

pub(super) fn back(day: NaiveDate, n: u64) -> NaiveDate {
    day - Days::new(n)
}

fn cost_on(history: &History, day: NaiveDate) -> f64 {
    history.get(&day).map_or(0.0, |d| d.cost_cents)
}

/// Sum of cost over [from, to] and the number of days with data.
fn sum_days(history: &History, from: NaiveDate, to: NaiveDate) -> (f64, usize) {
    history
        .range(from..=to)
        .fold((0.0, 0), |(sum, n), (_, d)| (sum + d.cost_cents, n + 1))
}

/// A day compared with its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub day: NaiveDate,
    pub current: f64,
    pub baseline: f64,
    pub ratio: f64,
}

impl Evaluation {
    pub fn deviation_pct(&self) -> f64 {
        (self.ratio - 1.0) * 100.0
    }
}

/// Day `day`'s spend against the average of the days with data in [day − 14, day − 2); `None`
/// without a positive baseline.
pub fn spike_on(history: &History, day: NaiveDate) -> Option<Evaluation> {
    let (sum, n) = sum_days(
        history,
        back(day, SPIKE_LOOKBACK_DAYS),
        back(day, SPIKE_GAP_DAYS + 1),
    );
    let baseline = if n == 0 { 0.0 } else { sum / n as f64 };
    (baseline > 0.0).then(|| {
        let current = cost_on(history, day);
        Evaluation {
            day,
            current,
            baseline,
            ratio: current / baseline,
        }
    })
}

/// The 7-day rolling average ending `day` against the average of the days with data in
/// [day − 28, day − 8]; `None` without a positive baseline.
pub fn drift_on(history: &History, day: NaiveDate) -> Option<Evaluation> {
    let (rolling, _) = sum_days(history, back(day, 6), day);
    let (sum, n) = sum_days(history, back(day, 28), back(day, 8));
    let baseline = if n == 0 { 0.0 } else { sum / n as f64 };
    (baseline > 0.0).then(|| Evaluation {
        day,
        current: rolling / 7.0,
        baseline,
        ratio: rolling / 7.0 / baseline,
    })
}

/// Consecutive days ending `today` (at most `max`) on which `eval` breaches `threshold`, and the
/// breaching evaluations among the last `window` days (newest first).
pub(super) fn streak(
    history: &History,
    today: NaiveDate,
    threshold: f64,
    max: usize,
    window: usize,
    eval: fn(&History, NaiveDate) -> Option<Evaluation>,
) -> (usize, Vec<Evaluation>) {
    let mut count = 0;
    let mut broken = false;
    let mut breaches = Vec::new();
    for n in 0..max.max(window) {
        let day = back(today, n as u64);
        let hit = eval(history, day).filter(|e| e.ratio >= threshold);
        if !broken && n < max {
            if hit.is_some() {
                count += 1;
            } else {
                broken = true;
            }
        }
        if n < window {
            breaches.extend(hit);
        }
    }
    (count, breaches)
}

/// Severity band of a deviation in percent: < 25 LOW, [25, 40) MEDIUM, ≥ 40 HIGH.
pub fn severity(deviation_pct: f64) -> CostAnomalySeverity {
    if deviation_pct >= 40.0 {
        CostAnomalySeverity::High
    } else if deviation_pct >= 25.0 {
        CostAnomalySeverity::Medium
    } else {
        CostAnomalySeverity::Low
    }
}

/// Today's and yesterday's requests and retries of one entity (from raw rows; the rollup has no
/// retry counts).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetryCounts {
    pub today: (i64, i64),
    pub yesterday: (i64, i64),
}

fn ratio(today: f64, yesterday: f64) -> Option<f64> {
    (yesterday > 0.0).then(|| today / yesterday)
}

/// The deterministic cause of a spike or drift (3.13 step 4), first match wins. Ratios against a
/// zero yesterday are skipped.
pub fn derived_cause(
    history: &History,
    today: NaiveDate,
    retries: RetryCounts,
    top_feature_share: Option<f64>,
) -> CostDerivedCause {
    let now = history.get(&today).copied().unwrap_or_default();
    let before = history.get(&back(today, 1)).copied().unwrap_or_default();
    let rate = |(requests, retries): (i64, i64)| {
        if requests > 0 {
            retries as f64 / requests as f64
        } else {
            0.0
        }
    };
    let avg_input = |d: DayCost| {
        if d.requests > 0 {
            d.input_tokens as f64 / d.requests as f64
        } else {
            0.0
        }
    };
    if ratio(rate(retries.today), rate(retries.yesterday)).is_some_and(|r| r > 1.5) {
        CostDerivedCause::RetryLoop
    } else if ratio(avg_input(now), avg_input(before)).is_some_and(|r| r > 1.3) {
        CostDerivedCause::PromptGrowth
    } else if top_feature_share.is_some_and(|s| s > 0.6) {
        CostDerivedCause::FeatureSurge
    } else if ratio(now.requests as f64, before.requests as f64).is_some_and(|r| r > 1.3) {
        CostDerivedCause::TrafficGrowth
    } else {
        CostDerivedCause::Unknown
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::cost::anomaly_detect) fn day(n: u64) -> NaiveDate {
        back(NaiveDate::from_ymd_opt(2026, 11, 27).expect("date"), n)
    }

    pub(in crate::cost::anomaly_detect) fn history(days: &[(u64, f64)]) -> History {
        days.iter()
            .map(|(n, c)| {
                (
                    day(*n),
                    DayCost {
                        cost_cents: *c,
                        input_tokens: 10,
                        requests: 1,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn spike_needs_two_consecutive_breaches() {
        // baseline 100/day on days 3..=12 ago; 300 yesterday and today.
        let mut days: Vec<(u64, f64)> = (3..=12).map(|n| (n, 100.0)).collect();
        days.push((0, 300.0));
        let one_day = history(&days);
        let (count, _) = streak(&one_day, day(0), 1.4, 7, 7, spike_on);
        assert_eq!(count, 1);
        days.push((1, 300.0));
        let two_days = history(&days);
        let (count, breaches) = streak(&two_days, day(0), 1.4, 7, 7, spike_on);
        assert_eq!(count, 2);
        assert_eq!(breaches.len(), 2);
        assert_eq!(breaches[0].ratio, 3.0);
    }

    #[test]
    fn drift_streak_is_the_datas_not_the_runs() {
        // 100/day for 40 days, then 200/day for the last 10: the rolling average has exceeded
        // 1.25 × baseline for several days, however often detection ran.
        let days: Vec<(u64, f64)> = (0..50)
            .map(|n| (n, if n < 10 { 200.0 } else { 100.0 }))
            .collect();
        let h = history(&days);
        let (count, hits) = streak(&h, day(0), 1.25, 30, 1, drift_on);
        assert!(count >= 3, "{count}");
        assert_eq!(hits.len(), 1);
        assert_eq!(streak(&h, day(0), 1.25, 30, 1, drift_on).0, count);
    }

    #[test]
    fn severity_bands() {
        assert_eq!(severity(10.0), CostAnomalySeverity::Low);
        assert_eq!(severity(25.0), CostAnomalySeverity::Medium);
        assert_eq!(severity(40.0), CostAnomalySeverity::High);
    }

    #[test]
    fn derived_cause_first_match() {
        let mut h = history(&[(1, 10.0), (0, 10.0)]);
        assert_eq!(
            derived_cause(&h, day(0), RetryCounts::default(), None),
            CostDerivedCause::Unknown
        );
        let retries = RetryCounts {
            today: (10, 5),
            yesterday: (10, 1),
        };
        assert_eq!(
            derived_cause(&h, day(0), retries, None),
            CostDerivedCause::RetryLoop
        );
        h.insert(
            day(0),
            DayCost {
                cost_cents: 10.0,
                input_tokens: 100,
                requests: 1,
            },
        );
        assert_eq!(
            derived_cause(&h, day(0), RetryCounts::default(), Some(0.9)),
            CostDerivedCause::PromptGrowth
        );
    }
}
