//! What the tenant configured: feature tags and budgets, and the alert a budget raises.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use rand::Rng;
use serde_json::json;

use super::super::super::synth::{self, b, i, oi, os, s, ts};
use super::super::tables::{X_BUDGETS, X_FEATURE_TAGS};
use super::super::{Level, FEATURES};
use super::anomalies::AnomalyRow;
use super::{Derivation, Latest};
use crate::error::AppResult;

/// One `feature_tags` row's own values.
struct FeatureTagRow {
    tag: &'static str,
    display: &'static str,
    description: &'static str,
    budget: Option<i32>,
    active: bool,
}

impl Derivation<'_> {
    /// The tenant's feature tags, plus one retired tag no record uses any more. Returns the
    /// monthly budgets (cents) of the first three features, by feature index.
    pub(super) fn feature_tags(&mut self) -> AppResult<BTreeMap<usize, i32>> {
        let (plan, t, created) = (self.plan, self.t, self.created);
        let mut feature_budgets = BTreeMap::new();
        for (k, &fi) in t.features.iter().enumerate() {
            let (tag, display, description) = FEATURES[fi];
            let budget = (k < 3).then(|| self.rng.random_range(20..400) * 1_000);
            if let Some(cents) = budget {
                feature_budgets.insert(k, cents);
            }
            let updated = plan
                .time
                .cap(created + Duration::days(self.rng.random_range(0..60)));
            // The id is drawn after `updated`: the draws' order makes the seed's output.
            let id = format!("ft_{}", synth::hex_id(&mut self.rng, 8));
            let row = FeatureTagRow {
                tag,
                display,
                description,
                budget,
                active: true,
            };
            self.push_feature_tag(id, row, updated)?;
        }
        if let Some((tag, display, description)) = FEATURES
            .iter()
            .enumerate()
            .find(|(fi, _)| !t.features.contains(fi))
            .map(|(_, f)| *f)
        {
            let id = format!("ft_{}", synth::hex_id(&mut self.rng, 8));
            let updated = plan
                .time
                .cap(created + Duration::days(self.rng.random_range(1..30)));
            let row = FeatureTagRow {
                tag,
                display,
                description,
                budget: None,
                active: false,
            };
            self.push_feature_tag(id, row, updated)?;
        }
        Ok(feature_budgets)
    }

    fn push_feature_tag(
        &mut self,
        id: String,
        row: FeatureTagRow,
        updated: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<()> {
        self.sink.push(
            X_FEATURE_TAGS,
            vec![
                s(id),
                s(self.t.id.clone()),
                s(row.tag),
                s(row.display),
                os(Some(row.description)),
                oi(row.budget),
                b(row.active),
                ts(self.created),
                ts(updated),
            ],
        )
    }

    /// Budgets for the tenant, its budgeted features and its first two users, sized around the
    /// spend of the complete days; the tenant's raises an alert when that spend reaches its
    /// warning threshold.
    pub(super) fn budgets(
        &mut self,
        complete: &[NaiveDate],
        feature_budgets: &BTreeMap<usize, i32>,
        latest: &Latest,
    ) -> AppResult<()> {
        let (plan, t, created) = (self.plan, self.t, self.created);
        let spend = self.spend;
        let last30 = |level: Level, idx: usize| -> f64 {
            complete
                .iter()
                .filter_map(|d| spend.on(*d, level, idx))
                .map(|a| a.cost)
                .sum()
        };
        let mut budget_rows = vec![("tenant", String::new(), last30(Level::Tenant, 0))];
        for (&k, _) in feature_budgets.iter().take(3) {
            budget_rows.push((
                "feature",
                self.names.feature(k).to_owned(),
                last30(Level::Feature, k),
            ));
        }
        for u in 0..t.users.len().min(2) {
            budget_rows.push(("user", t.users[u].clone(), last30(Level::User, u)));
        }
        for (kind, entity, spend) in budget_rows {
            let factor = self.rng.random_range(0.9..1.4);
            let monthly = ((spend * factor).round() as i64).clamp(100, i64::from(i32::MAX)) as i32;
            let warn = *synth::pick(&mut self.rng, &[75, 80, 80, 90]);
            let hard = synth::chance(&mut self.rng, 0.3);
            let updated = plan
                .time
                .cap(created + Duration::days(self.rng.random_range(0..80)));
            self.sink.push(
                X_BUDGETS,
                vec![
                    s(format!("cb_{}", synth::hex_id(&mut self.rng, 8))),
                    s(t.id.clone()),
                    s(kind),
                    s(entity.clone()),
                    oi(Some((monthly / 25).max(10))),
                    oi(Some(monthly)),
                    i(warn),
                    b(hard),
                    b(true),
                    ts(created),
                    ts(updated),
                ],
            )?;
            if kind == "tenant" && spend > 0.0 {
                self.budget_alert(spend, monthly, warn, hard, latest)?;
            }
        }
        Ok(())
    }

    /// The tenant budget's warning or breach, when the spend has reached its threshold.
    fn budget_alert(
        &mut self,
        spend: f64,
        monthly: i32,
        warn: i32,
        hard: bool,
        latest: &Latest,
    ) -> AppResult<()> {
        let used = spend / f64::from(monthly) * 100.0;
        if used < f64::from(warn) {
            return Ok(());
        }
        let exceeded = used >= 100.0;
        let id = format!("ca_{}", synth::hex_id(&mut self.rng, 8));
        self.anomaly(AnomalyRow {
            id,
            anomaly_type: if exceeded {
                "BUDGET_EXCEEDED"
            } else {
                "BUDGET_WARNING"
            },
            severity: if exceeded { "HIGH" } else { "MEDIUM" },
            entity_type: "tenant",
            entity_id: None,
            current: synth::round_to(spend, 6),
            expected: f64::from(monthly),
            deviation: synth::round_to(used - 100.0, 2),
            threshold: f64::from(warn),
            message: format!("30-day spend is {used:.0}% of the monthly budget of {monthly} cents"),
            incident_id: None,
            action_taken: if hard && exceeded {
                "hard_limit_enforced"
            } else {
                "budget_alert_sent"
            },
            resolved_at: None,
            metadata: json!({"budget_used_pct": synth::round_to(used, 2)}),
            detected_at: latest.computed_at,
            snapshot_id: latest.snapshot_id.clone(),
            baseline_id: None,
            derived_cause: "UNKNOWN",
            breach_count: 1,
        })
    }
}
