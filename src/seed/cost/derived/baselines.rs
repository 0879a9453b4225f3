//! Current baselines and drift tracking, as of the last complete day, and the anomalies and
//! breaches a sustained drift raises.

use chrono::{Duration, NaiveDate};
use rand::Rng;
use serde_json::json;

use super::super::super::synth::{self, b, date, f, i, of, os, s, ts};
use super::super::tables::{X_BASELINES, X_DRIFT};
use super::super::{midnight_of, Level};
use super::anomalies::{AnomalyRow, BreachRow};
use super::{BaselineIds, Derivation, Latest};
use crate::error::AppResult;

/// One `cost_snapshot_baselines` row's statistics over a window of days.
struct WindowStats {
    mean: f64,
    stddev: f64,
    requests: f64,
    max: f64,
    min: f64,
    samples: i32,
}

impl Derivation<'_> {
    /// The current 7- and 30-day baselines of each group with spend in the window, plus the
    /// tenant's superseded 7-day baseline of the day before.
    pub(super) fn baselines(
        &mut self,
        last_day: NaiveDate,
        entities: &[(Level, usize)],
        baseline_ids: &BaselineIds,
        latest: &Latest,
    ) -> AppResult<()> {
        let (plan, computed_at) = (self.plan, latest.computed_at);
        for &(level, idx) in entities {
            let (entity_type, entity_id) = self.names.entity(level, idx);
            for window in [7i64, 30] {
                let Some(stats) = self.window_stats(last_day, level, idx, window) else {
                    continue;
                };
                let id = baseline_ids
                    .get(&(level, idx, window as i32))
                    .cloned()
                    .unwrap_or_default();
                self.sink.push(
                    X_BASELINES,
                    vec![
                        s(id),
                        s(self.t.id.clone()),
                        s(entity_type),
                        s(entity_id.clone()),
                        f(synth::round_to(stats.mean, 6)),
                        of(Some(synth::round_to(stats.stddev, 6))),
                        f(synth::round_to(stats.requests, 3)),
                        of(Some(synth::round_to(stats.max, 6))),
                        of(Some(synth::round_to(stats.min, 6))),
                        i(window as i32),
                        i(stats.samples),
                        ts(computed_at),
                        ts(computed_at + Duration::days(1)),
                        b(true),
                        os(latest.snapshot_id.clone()),
                    ],
                )?;
                if level != Level::Tenant || window != 7 {
                    continue;
                }
                self.sink.push(
                    X_BASELINES,
                    vec![
                        s(format!("csb_{}", synth::hex_id(&mut self.rng, 8))),
                        s(self.t.id.clone()),
                        s("tenant"),
                        s(""),
                        f(synth::round_to(stats.mean * 0.97, 6)),
                        of(Some(synth::round_to(stats.stddev, 6))),
                        f(synth::round_to(stats.requests * 0.98, 3)),
                        of(Some(synth::round_to(stats.max, 6))),
                        of(Some(synth::round_to(stats.min, 6))),
                        i(7),
                        i(stats.samples),
                        ts(plan.time.cap(computed_at - Duration::days(1))),
                        ts(computed_at),
                        b(false),
                        os(None::<String>),
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Statistics of a group's daily cost over the `window` days ending `last_day` (days without
    /// spend count as zero in the averages); `None` when none had spend.
    fn window_stats(
        &self,
        last_day: NaiveDate,
        level: Level,
        idx: usize,
        window: i64,
    ) -> Option<WindowStats> {
        let values: Vec<(f64, i64)> = (0..window)
            .filter_map(|back| self.spend.on(last_day - Duration::days(back), level, idx))
            .map(|a| (a.cost, a.count))
            .collect();
        if values.is_empty() {
            return None;
        }
        let mean = values.iter().map(|v| v.0).sum::<f64>() / window as f64;
        let var = values.iter().map(|v| (v.0 - mean).powi(2)).sum::<f64>() / values.len() as f64;
        Some(WindowStats {
            mean,
            stddev: var.sqrt(),
            requests: values.iter().map(|v| v.1).sum::<i64>() as f64 / window as f64,
            max: values.iter().map(|v| v.0).fold(f64::MIN, f64::max),
            min: values.iter().map(|v| v.0).fold(f64::MAX, f64::min),
            samples: values.len() as i32,
        })
    }

    /// Drift trackers: per feature, the last 7 days against the 7 before, when at least 30%
    /// above; from 50% over three days or more, an anomaly and a breach too.
    pub(super) fn drift(
        &mut self,
        last_day: NaiveDate,
        baseline_ids: &BaselineIds,
        latest: &Latest,
    ) -> AppResult<()> {
        let (plan, spend) = (self.plan, self.spend);
        let avg = |level: Level, idx: usize, from: i64| -> f64 {
            (from..from + 7)
                .filter_map(|back| spend.on(last_day - Duration::days(back), level, idx))
                .map(|a| a.cost)
                .sum::<f64>()
                / 7.0
        };
        for fi in 0..=self.t.features.len() {
            let rolling = avg(Level::Feature, fi, 0);
            let base = avg(Level::Feature, fi, 7);
            if base <= 0.0 {
                continue;
            }
            let drift = (rolling - base) / base * 100.0;
            if drift < 30.0 {
                continue;
            }
            let days = self.rng.random_range(1..=7);
            let first_day = last_day - Duration::days(i64::from(days) - 1);
            let entity = self.names.feature(fi).to_owned();
            self.sink.push(
                X_DRIFT,
                vec![
                    s(format!("dt_{}", synth::hex_id(&mut self.rng, 8))),
                    s(self.t.id.clone()),
                    s("feature"),
                    s(entity.clone()),
                    f(synth::round_to(rolling, 6)),
                    f(synth::round_to(base, 6)),
                    f(synth::round_to(drift, 2)),
                    i(days),
                    date(first_day),
                    date(last_day),
                    b(true),
                    ts(plan
                        .time
                        .cap(midnight_of(first_day) + Duration::days(1) + Duration::minutes(6))),
                    ts(latest.computed_at),
                ],
            )?;
            if drift < 50.0 || days < 3 {
                continue;
            }
            let id = format!("ca_{}", synth::hex_id(&mut self.rng, 8));
            let cause = if synth::chance(&mut self.rng, 0.5) {
                "FEATURE_SURGE"
            } else {
                "TRAFFIC_GROWTH"
            };
            self.anomaly(AnomalyRow {
                id,
                anomaly_type: "SUSTAINED_DRIFT",
                severity: if drift >= 100.0 { "HIGH" } else { "MEDIUM" },
                entity_type: "feature",
                entity_id: Some(entity.clone()),
                current: synth::round_to(rolling, 6),
                expected: synth::round_to(base, 6),
                deviation: synth::round_to(drift, 2),
                threshold: 50.0,
                message: format!(
                    "Spend on {entity} has run {drift:.0}% above its previous 7-day average \
                     for {days} days"
                ),
                incident_id: None,
                action_taken: "notified",
                resolved_at: None,
                metadata: json!({"drift_days": days}),
                detected_at: latest.computed_at,
                snapshot_id: latest.snapshot_id.clone(),
                baseline_id: baseline_ids.get(&(Level::Feature, fi, 7)).cloned(),
                derived_cause: cause,
                breach_count: days,
            })?;
            self.breach(BreachRow {
                entity_type: "feature",
                entity_id: &entity,
                breach_type: "SUSTAINED_DRIFT",
                day: last_day,
                deviation: synth::round_to(drift, 2),
                current: synth::round_to(rolling, 6),
                baseline: synth::round_to(base, 6),
                at: latest.computed_at,
            })?;
        }
        Ok(())
    }
}
