//! The tables derived from one tenant's cost records. They all draw from one random stream, so
//! the steps below run, and draw, in a fixed order: changing the order changes the data set.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand_chacha::ChaCha8Rng;

use super::super::runs::MODELS;
use super::super::synth::{self, Stream};
use super::super::writer::Sink;
use super::super::{Plan, TenantPlan};
use super::{midnight_of, Agg, Key, Level, Names};
use crate::error::AppResult;

mod anomalies;
mod baselines;
mod catalog;
mod snapshots;

/// Ids of the baselines (per entity and window, 7 or 30 days), drawn before the anomalies that
/// name them.
type BaselineIds = BTreeMap<(Level, usize, i32), String>;

/// Consecutive triggering days per evaluated entity.
type Streaks = BTreeMap<(Level, usize), i32>;

/// One tenant's derivation: its inputs, the random stream and the sink every table goes to.
struct Derivation<'a> {
    plan: &'a Plan,
    t: &'a TenantPlan,
    names: &'a Names<'a>,
    spend: Spend<'a>,
    rng: ChaCha8Rng,
    sink: &'a mut Sink,
    /// When the tenant's feature tags and budgets were created.
    created: DateTime<Utc>,
}

/// A completed daily snapshot.
struct Snapshot {
    id: String,
    done_at: DateTime<Utc>,
}

/// One group's spend on one day.
struct DayGroup {
    day: NaiveDate,
    level: Level,
    idx: usize,
    agg: Agg,
}

/// What the current baselines, drift trackers and budget alerts refer to: the last daily
/// snapshot, if any, and when it was computed.
struct Latest {
    snapshot_id: Option<String>,
    computed_at: DateTime<Utc>,
}

/// Daily spend per group, as the records aggregated it.
#[derive(Clone, Copy)]
struct Spend<'a> {
    daily: &'a BTreeMap<Key, Agg>,
}

impl Spend<'_> {
    fn on(&self, d: NaiveDate, level: Level, idx: usize) -> Option<Agg> {
        self.daily.get(&(d, level, idx)).copied()
    }

    /// Average daily cost over the `days` days before `d`, days without spend counting as zero;
    /// `None` when none of them had spend.
    fn window_avg(&self, d: NaiveDate, level: Level, idx: usize, days: i64) -> Option<f64> {
        let values: Vec<f64> = (1..=days)
            .filter_map(|back| {
                self.on(d - Duration::days(back), level, idx)
                    .map(|a| a.cost)
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / days as f64)
    }
}

/// Writes the derived tables of tenant `t`.
pub(super) fn derive(
    plan: &Plan,
    t: &TenantPlan,
    names: &Names<'_>,
    daily: &BTreeMap<Key, Agg>,
    hourly: &BTreeMap<DateTime<Utc>, Agg>,
    sink: &mut Sink,
) -> AppResult<()> {
    let mut d = Derivation {
        plan,
        t,
        names,
        spend: Spend { daily },
        rng: plan.keys.rng(Stream::CostExtras, t.index as u64),
        sink,
        created: plan.time.cap(plan.time.start + Duration::hours(2)),
    };
    let feature_budgets = d.feature_tags()?;
    d.daily_aggregates()?;
    let complete = complete_days(plan);
    let entities = entities(t);
    let baseline_ids = d.baseline_ids(&entities);
    let last_snapshot = d.daily_snapshots(&complete, &entities, &baseline_ids)?;
    d.hourly_snapshots(hourly)?;
    let latest = Latest {
        computed_at: last_snapshot
            .as_ref()
            .map_or(plan.time.cap(plan.anchor - Duration::hours(1)), |s| {
                s.done_at
            }),
        snapshot_id: last_snapshot.map(|s| s.id),
    };
    if let Some(&last_day) = complete.last() {
        d.baselines(last_day, &entities, &baseline_ids, &latest)?;
        d.drift(last_day, &baseline_ids, &latest)?;
    }
    d.budgets(&complete, &feature_budgets, &latest)
}

/// Days whose daily snapshot had run by the anchor (computed 00:05-00:15 the next day), oldest
/// first, within the last 30.
fn complete_days(plan: &Plan) -> Vec<NaiveDate> {
    let anchor_day = plan.anchor.date_naive();
    (1..=30)
        .rev()
        .map(|back| anchor_day - Duration::days(back))
        .filter(|d| midnight_of(*d) + Duration::days(1) + Duration::minutes(15) <= plan.anchor)
        .filter(|d| midnight_of(*d) >= plan.time.start)
        .collect()
}

/// The groups snapshots and baselines cover: the tenant, each feature (and unclassified) and
/// each model.
fn entities(t: &TenantPlan) -> Vec<(Level, usize)> {
    std::iter::once((Level::Tenant, 0))
        .chain((0..=t.features.len()).map(|fi| (Level::Feature, fi)))
        .chain((0..MODELS.len()).map(|m| (Level::Model, m)))
        .collect()
}

impl Derivation<'_> {
    fn baseline_ids(&mut self, entities: &[(Level, usize)]) -> BaselineIds {
        entities
            .iter()
            .flat_map(|&(l, idx)| [(l, idx, 7), (l, idx, 30)])
            .map(|key| (key, format!("csb_{}", synth::hex_id(&mut self.rng, 8))))
            .collect()
    }

    /// Per complete day: its snapshot, the aggregate of each group with spend, and for the
    /// tenant and features the anomaly evaluation and what a spike raises. Returns the last
    /// snapshot.
    fn daily_snapshots(
        &mut self,
        complete: &[NaiveDate],
        entities: &[(Level, usize)],
        baseline_ids: &BaselineIds,
    ) -> AppResult<Option<Snapshot>> {
        let mut streaks = Streaks::new();
        let mut last = None;
        for &day in complete {
            let snapshot = self.daily_snapshot(day)?;
            for &(level, idx) in entities {
                let Some(agg) = self.spend.on(day, level, idx) else {
                    continue;
                };
                let group = DayGroup {
                    day,
                    level,
                    idx,
                    agg,
                };
                self.snapshot_aggregate(&snapshot, &group)?;
                if !matches!(level, Level::Tenant | Level::Feature) {
                    continue;
                }
                if let Some(spike) = self.evaluation(&snapshot, &group, &mut streaks)? {
                    self.spike(&snapshot, &group, &spike, baseline_ids)?;
                }
            }
            last = Some(snapshot);
        }
        Ok(last)
    }
}
