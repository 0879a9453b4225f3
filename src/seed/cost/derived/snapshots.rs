//! Exact daily aggregates, and the daily and hourly snapshots with their aggregates.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::Rng;

use super::super::super::synth::{self, big, date, f, i, of, oi, os, ots, s, ts};
use super::super::tables::{X_DAILY, X_SNAPSHOTS, X_SNAPSHOT_AGGREGATES};
use super::super::{midnight_of, Agg, Level};
use super::{DayGroup, Derivation, Snapshot};
use crate::error::AppResult;

/// One `cost_snapshots` row, its id drawn.
struct SnapshotRow<'a> {
    id: &'a str,
    snapshot_type: &'static str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// `None` when the snapshot completed; the error otherwise.
    error: Option<&'static str>,
    records: Option<i32>,
    computation_ms: i32,
    created_at: DateTime<Utc>,
    completed_at: DateTime<Utc>,
}

/// A snapshot aggregate's comparison with its group's 7- and 30-day averages.
#[derive(Default)]
struct Comparison {
    avg_7d: Option<f64>,
    avg_30d: Option<f64>,
    deviation_7d: Option<f64>,
    deviation_30d: Option<f64>,
}

fn count(agg: &Agg) -> i32 {
    agg.count.min(i64::from(i32::MAX)) as i32
}

impl Derivation<'_> {
    /// One row per day and group (tenant, feature, user, model; '' for the levels not grouped
    /// on).
    pub(super) fn daily_aggregates(&mut self) -> AppResult<()> {
        let daily = self.spend.daily;
        for (&(day, level, idx), agg) in daily {
            let (_, entity) = self.names.entity(level, idx);
            let (feature, user, model) = match level {
                Level::Tenant => ("", "", ""),
                Level::Feature => (entity.as_str(), "", ""),
                Level::User => ("", entity.as_str(), ""),
                Level::Model => ("", "", entity.as_str()),
            };
            self.sink.push(
                X_DAILY,
                vec![
                    s(format!("cda_{}", synth::hex_id(&mut self.rng, 8))),
                    s(self.t.id.clone()),
                    date(day),
                    s(feature),
                    s(user),
                    s(model),
                    f(synth::round_to(agg.cost, 6)),
                    big(agg.input),
                    big(agg.output),
                    i(count(agg)),
                    ts(agg.first),
                    ts(agg.last),
                ],
            )?;
        }
        Ok(())
    }

    /// The daily snapshot of `day`, complete a few minutes after midnight.
    pub(super) fn daily_snapshot(&mut self, day: NaiveDate) -> AppResult<Snapshot> {
        let time = &self.plan.time;
        let start = midnight_of(day);
        let end = start + Duration::days(1);
        let id = format!("cs_{}", synth::hex_id(&mut self.rng, 8));
        let done_at =
            time.cap(end + Duration::minutes(5) + Duration::seconds(self.rng.random_range(0..300)));
        let records = self.spend.on(day, Level::Tenant, 0).map_or(0, |a| a.count);
        let computation_ms = self.rng.random_range(40..2_500);
        self.snapshot(SnapshotRow {
            id: &id,
            snapshot_type: "daily",
            start,
            end,
            error: None,
            records: Some(records.min(i64::from(i32::MAX)) as i32),
            computation_ms,
            created_at: time.cap(end + Duration::minutes(5)),
            completed_at: done_at,
        })?;
        Ok(Snapshot { id, done_at })
    }

    /// A group's aggregate in a daily snapshot, compared with its 7- and 30-day averages.
    pub(super) fn snapshot_aggregate(
        &mut self,
        snapshot: &Snapshot,
        group: &DayGroup,
    ) -> AppResult<()> {
        let &DayGroup {
            day,
            level,
            idx,
            agg,
        } = group;
        let (entity_type, entity_id) = self.names.entity(level, idx);
        let b7 = self.spend.window_avg(day, level, idx, 7);
        let b30 = self.spend.window_avg(day, level, idx, 30);
        let dev = |base: Option<f64>| {
            base.filter(|b| *b > 0.0)
                .map(|b| synth::round_to((agg.cost - b) / b * 100.0, 2))
        };
        let comparison = Comparison {
            avg_7d: b7.map(|v| synth::round_to(v, 6)),
            avg_30d: b30.map(|v| synth::round_to(v, 6)),
            deviation_7d: dev(b7),
            deviation_30d: dev(b30),
        };
        self.aggregate(
            &snapshot.id,
            entity_type,
            entity_id,
            &agg,
            comparison,
            snapshot.done_at,
        )
    }

    /// Hourly snapshots (tenant level only) of the full hours of the last day before the
    /// anchor; a few fail, without an aggregate.
    pub(super) fn hourly_snapshots(
        &mut self,
        hourly: &BTreeMap<DateTime<Utc>, Agg>,
    ) -> AppResult<()> {
        let plan = self.plan;
        for (&hour, agg) in hourly {
            let end = hour + Duration::hours(1);
            if hour < plan.anchor - Duration::hours(24) || end + Duration::minutes(2) > plan.anchor
            {
                continue;
            }
            let id = format!("cs_{}", synth::hex_id(&mut self.rng, 8));
            let failed = synth::chance(&mut self.rng, 0.02);
            let at = plan
                .time
                .cap(end + Duration::seconds(self.rng.random_range(10..110)));
            let computation_ms = self.rng.random_range(5..400);
            self.snapshot(SnapshotRow {
                id: &id,
                snapshot_type: "hourly",
                start: hour,
                end,
                error: failed.then_some("canceling statement due to statement timeout"),
                records: (!failed).then(|| count(agg)),
                computation_ms,
                created_at: at,
                completed_at: at,
            })?;
            if !failed {
                self.aggregate(&id, "tenant", String::new(), agg, Comparison::default(), at)?;
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, row: SnapshotRow<'_>) -> AppResult<()> {
        self.sink.push(
            X_SNAPSHOTS,
            vec![
                s(row.id),
                s(self.t.id.clone()),
                s(row.snapshot_type),
                ts(row.start),
                ts(row.end),
                s(if row.error.is_some() {
                    "failed"
                } else {
                    "complete"
                }),
                i(1),
                oi(row.records),
                oi(Some(row.computation_ms)),
                os(row.error),
                ts(row.created_at),
                ots(Some(row.completed_at)),
            ],
        )
    }

    fn aggregate(
        &mut self,
        snapshot_id: &str,
        entity_type: &str,
        entity_id: String,
        agg: &Agg,
        comparison: Comparison,
        at: DateTime<Utc>,
    ) -> AppResult<()> {
        self.sink.push(
            X_SNAPSHOT_AGGREGATES,
            vec![
                s(format!("csa_{}", synth::hex_id(&mut self.rng, 8))),
                s(snapshot_id),
                s(self.t.id.clone()),
                s(entity_type),
                s(entity_id),
                f(synth::round_to(agg.cost, 6)),
                i(count(agg)),
                big(agg.input),
                big(agg.output),
                of(Some(synth::round_to(agg.cost / agg.count.max(1) as f64, 6))),
                of(Some(synth::round_to(
                    (agg.input + agg.output) as f64 / agg.count.max(1) as f64,
                    2,
                ))),
                of(comparison.avg_7d),
                of(comparison.avg_30d),
                of(comparison.deviation_7d),
                of(comparison.deviation_30d),
                ts(at),
            ],
        )
    }
}
