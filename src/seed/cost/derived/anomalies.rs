//! Anomaly evaluations of the daily snapshots, the anomalies and breaches they raise, and the
//! incidents high-severity spikes open.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::Rng;
use serde_json::json;

use super::super::super::synth::{self, b, date, f, i, oi, oj, os, ots, s, ts};
use super::super::tables::{X_ANOMALIES, X_BREACHES, X_EVALUATIONS, X_INCIDENTS};
use super::super::Level;
use super::{BaselineIds, DayGroup, Derivation, Snapshot, Streaks};
use crate::error::AppResult;

/// Spend at least this much above the 7-day average triggers an evaluation (percent).
const SPIKE_THRESHOLD_PCT: f64 = 200.0;

/// A triggered evaluation, for the anomaly it raises.
pub(super) struct Spike {
    anomaly_id: String,
    severity: &'static str,
    baseline: f64,
    deviation: f64,
    /// Requests over the 7 days the baseline covers.
    base_requests: i64,
    breach_count: i32,
    evaluated_at: DateTime<Utc>,
}

/// One `cost_anomalies` row.
pub(super) struct AnomalyRow {
    pub id: String,
    pub anomaly_type: &'static str,
    pub severity: &'static str,
    pub entity_type: &'static str,
    pub entity_id: Option<String>,
    pub current: f64,
    pub expected: f64,
    pub deviation: f64,
    pub threshold: f64,
    pub message: String,
    pub incident_id: Option<String>,
    pub action_taken: &'static str,
    /// `Some` for a resolved anomaly.
    pub resolved_at: Option<DateTime<Utc>>,
    pub metadata: serde_json::Value,
    pub detected_at: DateTime<Utc>,
    pub snapshot_id: Option<String>,
    pub baseline_id: Option<String>,
    pub derived_cause: &'static str,
    pub breach_count: i32,
}

/// One `cost_breach_history` row, before its id is drawn.
pub(super) struct BreachRow<'e> {
    pub entity_type: &'static str,
    pub entity_id: &'e str,
    pub breach_type: &'static str,
    pub day: NaiveDate,
    pub deviation: f64,
    pub current: f64,
    pub baseline: f64,
    pub at: DateTime<Utc>,
}

impl Derivation<'_> {
    /// Evaluates a tenant or feature group's day against its 7-day average and records the
    /// evaluation. Returns the spike when it triggered.
    pub(super) fn evaluation(
        &mut self,
        snapshot: &Snapshot,
        group: &DayGroup,
        streaks: &mut Streaks,
    ) -> AppResult<Option<Spike>> {
        let &DayGroup {
            day,
            level,
            idx,
            agg,
        } = group;
        let (entity_type, entity_id) = self.names.entity(level, idx);
        // Like the detector, skip entities too small to judge (under 3 requests a day).
        let base_requests = (1..=7)
            .filter_map(|back| self.spend.on(day - Duration::days(back), level, idx))
            .map(|a| a.count)
            .sum::<i64>();
        let Some(baseline) = self
            .spend
            .window_avg(day, level, idx, 7)
            .filter(|b| *b > 0.0 && base_requests >= 21)
        else {
            return Ok(None);
        };
        let deviation = synth::round_to((agg.cost - baseline) / baseline * 100.0, 2);
        let triggered = deviation >= SPIKE_THRESHOLD_PCT;
        let severity = triggered.then_some(if deviation >= 400.0 {
            "HIGH"
        } else if deviation >= 300.0 {
            "MEDIUM"
        } else {
            "LOW"
        });
        let run_length = streaks.entry((level, idx)).or_insert(0);
        *run_length = if triggered { *run_length + 1 } else { 0 };
        let breach_count = *run_length;
        let anomaly_id = triggered.then(|| format!("ca_{}", synth::hex_id(&mut self.rng, 8)));
        let evaluated_at = self
            .plan
            .time
            .cap(snapshot.done_at + Duration::milliseconds(self.rng.random_range(5..900)));
        self.sink.push(
            X_EVALUATIONS,
            vec![
                s(format!("cae_{}", synth::hex_id(&mut self.rng, 8))),
                s(self.t.id.clone()),
                os(Some(snapshot.id.clone())),
                s(entity_type),
                os((level != Level::Tenant).then(|| entity_id.clone())),
                f(synth::round_to(agg.cost, 6)),
                f(synth::round_to(baseline, 6)),
                f(SPIKE_THRESHOLD_PCT),
                f(deviation),
                b(triggered),
                os(severity),
                os(anomaly_id.clone()),
                os(Some(if triggered {
                    format!("spend {deviation:.0}% above the 7-day average (threshold 200%)")
                } else {
                    "within threshold".to_owned()
                })),
                ts(evaluated_at),
            ],
        )?;
        Ok(anomaly_id
            .zip(severity)
            .map(|(anomaly_id, severity)| Spike {
                anomaly_id,
                severity,
                baseline,
                deviation,
                base_requests,
                breach_count,
                evaluated_at,
            }))
    }

    /// The anomaly and breach a triggered evaluation raises, and the incident a high one opens.
    pub(super) fn spike(
        &mut self,
        snapshot: &Snapshot,
        group: &DayGroup,
        spike: &Spike,
        baseline_ids: &BaselineIds,
    ) -> AppResult<()> {
        let &DayGroup {
            day,
            level,
            idx,
            agg,
        } = group;
        let plan = self.plan;
        let (entity_type, entity_id) = self.names.entity(level, idx);
        let baseline = spike.baseline;
        let count_base = spike.base_requests as f64 / 7.0;
        let count_ratio = agg.count as f64 / count_base.max(1.0);
        let cause = if agg.retries * 5 > agg.count {
            "RETRY_LOOP"
        } else if count_ratio >= 2.0 {
            if level == Level::Feature {
                "FEATURE_SURGE"
            } else {
                "TRAFFIC_GROWTH"
            }
        } else if count_ratio < 1.5 {
            "PROMPT_GROWTH"
        } else {
            "UNKNOWN"
        };
        let label = if level == Level::Tenant {
            "tenant spend".to_owned()
        } else {
            format!("spend on {entity_id}")
        };
        let message = format!(
            "Daily {label} was {:.0}% of its 7-day average ({:.2} vs {:.2} cents)",
            agg.cost / baseline * 100.0,
            agg.cost,
            baseline
        );
        let evaluated_at = spike.evaluated_at;
        let incident =
            (spike.severity == "HIGH").then(|| format!("inc_{}", synth::hex_id(&mut self.rng, 8)));
        let resolved =
            plan.anchor - evaluated_at > Duration::days(2) && synth::chance(&mut self.rng, 0.7);
        let resolved_at = resolved.then(|| {
            plan.time
                .cap(evaluated_at + Duration::hours(self.rng.random_range(2..40)))
        });
        self.anomaly(AnomalyRow {
            id: spike.anomaly_id.clone(),
            anomaly_type: "ABSOLUTE_SPIKE",
            severity: spike.severity,
            entity_type,
            entity_id: (level != Level::Tenant).then(|| entity_id.clone()),
            current: synth::round_to(agg.cost, 6),
            expected: synth::round_to(baseline, 6),
            deviation: spike.deviation,
            threshold: SPIKE_THRESHOLD_PCT,
            message: message.clone(),
            incident_id: incident.clone(),
            action_taken: if incident.is_some() {
                "incident_created"
            } else {
                "notified"
            },
            resolved_at,
            metadata: json!({"date": day.to_string(), "requests": agg.count, "request_ratio": synth::round_to(count_ratio, 3)}),
            detected_at: evaluated_at,
            snapshot_id: Some(snapshot.id.clone()),
            baseline_id: baseline_ids.get(&(level, idx, 7)).cloned(),
            derived_cause: cause,
            breach_count: spike.breach_count.max(1),
        })?;
        self.breach(BreachRow {
            entity_type,
            entity_id: &entity_id,
            breach_type: "ABSOLUTE_SPIKE",
            day,
            deviation: spike.deviation,
            current: synth::round_to(agg.cost, 6),
            baseline: synth::round_to(baseline, 6),
            at: evaluated_at,
        })?;
        match incident {
            Some(incident_id) => self.incident(&incident_id, &message, evaluated_at, resolved_at),
            None => Ok(()),
        }
    }

    pub(super) fn anomaly(&mut self, row: AnomalyRow) -> AppResult<()> {
        self.sink.push(
            X_ANOMALIES,
            vec![
                s(row.id),
                s(self.t.id.clone()),
                s(row.anomaly_type),
                s(row.severity),
                s(row.entity_type),
                os(row.entity_id),
                f(row.current),
                f(row.expected),
                f(row.deviation),
                f(row.threshold),
                s(row.message),
                os(row.incident_id),
                os(Some(row.action_taken)),
                b(row.resolved_at.is_some()),
                ots(row.resolved_at),
                oj(Some(row.metadata)),
                ts(row.detected_at),
                os(row.snapshot_id),
                os(row.baseline_id),
                os(Some(row.derived_cause)),
                i(row.breach_count),
            ],
        )
    }

    pub(super) fn breach(&mut self, row: BreachRow<'_>) -> AppResult<()> {
        self.sink.push(
            X_BREACHES,
            vec![
                s(format!("bh_{}", synth::hex_id(&mut self.rng, 8))),
                s(self.t.id.clone()),
                s(row.entity_type),
                s(row.entity_id),
                s(row.breach_type),
                date(row.day),
                f(row.deviation),
                f(row.current),
                f(row.baseline),
                ts(row.at),
            ],
        )
    }

    /// The incident a high-severity spike opens: acknowledged after four hours unless resolved.
    fn incident(
        &mut self,
        id: &str,
        message: &str,
        at: DateTime<Utc>,
        resolved_at: Option<DateTime<Utc>>,
    ) -> AppResult<()> {
        let (plan, t) = (self.plan, self.t);
        let acked = resolved_at.is_none() && plan.anchor - at > Duration::hours(4);
        let (status, lifecycle) = match (resolved_at, acked) {
            (Some(_), _) => ("resolved", "RESOLVED"),
            (None, true) => ("acknowledged", "ACKED"),
            _ => ("open", "ACTIVE"),
        };
        let updated = resolved_at.unwrap_or_else(|| {
            if acked {
                plan.time
                    .cap(at + Duration::minutes(self.rng.random_range(5..180)))
            } else {
                at
            }
        });
        self.sink.push(
            X_INCIDENTS,
            vec![
                s(id.to_owned()),
                s(t.id.clone()),
                s("Cost spike detected"),
                s("high"),
                s(status),
                s("cost_anomaly"),
                os(None::<String>),
                os(Some("COST_ANOMALY")),
                os(Some(message.to_owned())),
                os(Some("COST_SPIKE")),
                os(None::<String>),
                s(lifecycle),
                s("SYSTEM"),
                oi(None),
                ots(None),
                ts(at),
                ots(resolved_at),
                ots(resolved_at),
                os(resolved_at.map(|_| synth::pick(&mut self.rng, &t.users).clone())),
                b(false),
                os(None::<String>),
                ts(at),
                ts(updated),
            ],
        )
    }
}
