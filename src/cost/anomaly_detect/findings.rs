//! What a run finds, from the histories and budgets alone: spike and drift candidates with their
//! breaches, and budget candidates.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::rules::{
    derived_cause, drift_on, severity, spike_on, streak, Evaluation, History, RetryCounts,
    ABSOLUTE_SPIKE_THRESHOLD, CONSECUTIVE_INTERVALS_REQUIRED, DRIFT_DAYS_REQUIRED,
    MAX_DRIFT_STREAK, SPIKE_LOOKBACK_DAYS, STREAK_WINDOW_DAYS, SUSTAINED_DRIFT_THRESHOLD,
};
use crate::auth::TenantId;
use crate::cost::{
    BudgetSnapshot, BudgetSpend, CostAnomalySeverity, CostAnomalyType, CostBudgetType,
    CostDerivedCause, CostEntityType,
};

/// An anomaly found by a run, before persistence.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub anomaly_type: CostAnomalyType,
    pub severity: CostAnomalySeverity,
    pub entity_type: CostEntityType,
    pub entity_id: Option<String>,
    pub current: f64,
    pub expected: f64,
    pub deviation_pct: f64,
    pub message: String,
    pub metadata: Value,
    pub derived_cause: Option<CostDerivedCause>,
    pub breach_count: i32,
}

impl Candidate {
    fn key(&self) -> (CostAnomalyType, CostEntityType, Option<String>) {
        (self.anomaly_type, self.entity_type, self.entity_id.clone())
    }
}

/// One entity's daily history, as read from its rollup grain.
#[derive(Debug, Clone)]
pub struct EntityHistory {
    pub entity_type: CostEntityType,
    /// `None` for the tenant.
    pub entity_id: Option<String>,
    pub history: History,
}

fn title(kind: CostEntityType) -> &'static str {
    match kind {
        CostEntityType::Tenant => "Tenant",
        CostEntityType::User => "User",
        CostEntityType::Feature => "Feature",
        CostEntityType::Model => "Model",
    }
}

/// What a run wrote besides anomalies, for the breach and drift tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    pub candidates: Vec<Candidate>,
    /// (entity type, entity id, breach type, evaluation).
    pub breaches: Vec<(CostEntityType, Option<String>, CostAnomalyType, Evaluation)>,
    /// The tenant's drift today, with its streak, when drifting.
    pub drift: Option<(Evaluation, usize)>,
    pub entities_evaluated: usize,
}

/// Spikes (tenant, features, users) and the tenant's drift, from the histories alone.
pub fn detect_trends(
    tenant: &TenantId,
    today: NaiveDate,
    entities: &[EntityHistory],
    retries: &HashMap<(&'static str, String), RetryCounts>,
    top_feature_share: Option<f64>,
) -> Findings {
    let mut found = Findings::default();
    for e in entities {
        found.entities_evaluated += 1;
        let name = e.entity_id.as_deref().unwrap_or(tenant.as_str());
        let retry = retries
            .get(&(e.entity_type.as_str(), name.to_owned()))
            .copied()
            .unwrap_or_default();
        let share = (e.entity_type == CostEntityType::Tenant)
            .then_some(top_feature_share)
            .flatten();
        let (count, breaches) = streak(
            &e.history,
            today,
            ABSOLUTE_SPIKE_THRESHOLD,
            STREAK_WINDOW_DAYS,
            STREAK_WINDOW_DAYS,
            spike_on,
        );
        for b in &breaches {
            found.breaches.push((
                e.entity_type,
                e.entity_id.clone(),
                CostAnomalyType::AbsoluteSpike,
                *b,
            ));
        }
        if count >= CONSECUTIVE_INTERVALS_REQUIRED {
            if let Some(now) = breaches.first().filter(|b| b.day == today) {
                let deviation = now.deviation_pct();
                found.candidates.push(Candidate {
                    anomaly_type: CostAnomalyType::AbsoluteSpike,
                    severity: severity(deviation),
                    entity_type: e.entity_type,
                    entity_id: e.entity_id.clone(),
                    current: now.current,
                    expected: now.baseline,
                    deviation_pct: deviation,
                    message: format!(
                        "{} {name} spending {deviation:.0}% above baseline for {count} \
                         consecutive day(s)",
                        title(e.entity_type)
                    ),
                    metadata: json!({
                        "lookback_days": SPIKE_LOOKBACK_DAYS,
                        "baseline_daily_avg": now.baseline,
                        "consecutive_breaches": count,
                        "day": today,
                    }),
                    derived_cause: Some(derived_cause(&e.history, today, retry, share)),
                    breach_count: i32::try_from(count).unwrap_or(i32::MAX),
                });
            }
        }
        if e.entity_type != CostEntityType::Tenant {
            continue;
        }
        let (days, drifts) = streak(
            &e.history,
            today,
            SUSTAINED_DRIFT_THRESHOLD,
            MAX_DRIFT_STREAK,
            1,
            drift_on,
        );
        let Some(now) = drifts.first().copied() else {
            continue;
        };
        found.drift = Some((now, days));
        found
            .breaches
            .push((e.entity_type, None, CostAnomalyType::SustainedDrift, now));
        if days >= DRIFT_DAYS_REQUIRED {
            let deviation = now.deviation_pct();
            found.candidates.push(Candidate {
                anomaly_type: CostAnomalyType::SustainedDrift,
                severity: severity(deviation),
                entity_type: CostEntityType::Tenant,
                entity_id: None,
                current: now.current,
                expected: now.baseline,
                deviation_pct: deviation,
                message: format!(
                    "Sustained drift detected: {deviation:.0}% above baseline for {days} days"
                ),
                metadata: json!({
                    "rolling_7d_avg": now.current,
                    "baseline_avg": now.baseline,
                    "drift_days": days,
                    "day": today,
                }),
                derived_cause: Some(derived_cause(&e.history, today, retry, share)),
                breach_count: i32::try_from(days).unwrap_or(i32::MAX),
            });
        }
    }
    found
}

/// Budget anomalies (3.13 step 3). When a budget's daily and monthly checks both raise the same
/// type, the higher usage is kept (they share one dedup key).
pub fn detect_budgets(
    budgets: &[(BudgetSnapshot, BudgetSpend)],
    today: NaiveDate,
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for (budget, spend) in budgets {
        let (entity_type, label) = match budget.budget_type {
            CostBudgetType::Tenant => (CostEntityType::Tenant, "tenant".to_owned()),
            CostBudgetType::Feature => (
                CostEntityType::Feature,
                format!("feature '{}'", budget.entity_id.as_deref().unwrap_or("")),
            ),
            CostBudgetType::User => (
                CostEntityType::User,
                format!("user '{}'", budget.entity_id.as_deref().unwrap_or("")),
            ),
        };
        let checks = [
            (
                "daily",
                "Daily",
                budget.daily_limit_cents,
                spend.daily_cents,
            ),
            (
                "monthly",
                "Monthly",
                budget.monthly_limit_cents,
                spend.monthly_cents,
            ),
        ];
        for (period, title, limit, spent) in checks {
            let Some(limit) = limit.filter(|l| *l > 0) else {
                continue;
            };
            let usage = spent / f64::from(limit) * 100.0;
            let warn = f64::from(budget.warn_threshold_pct);
            let (anomaly_type, severity, message, metadata) = if usage >= 100.0 {
                (
                    CostAnomalyType::BudgetExceeded,
                    CostAnomalySeverity::High,
                    format!("{title} budget EXCEEDED for {label}: {usage:.0}%"),
                    json!({ "period": period, "limit_cents": limit, "day": today }),
                )
            } else if usage >= warn {
                (
                    CostAnomalyType::BudgetWarning,
                    if usage < 90.0 {
                        CostAnomalySeverity::Medium
                    } else {
                        CostAnomalySeverity::High
                    },
                    format!(
                        "{title} budget warning for {label}: {usage:.0}% (threshold {}%)",
                        budget.warn_threshold_pct
                    ),
                    json!({
                        "period": period,
                        "limit_cents": limit,
                        "warn_threshold_pct": budget.warn_threshold_pct,
                        "day": today,
                    }),
                )
            } else {
                continue;
            };
            let candidate = Candidate {
                anomaly_type,
                severity,
                entity_type,
                entity_id: budget.entity_id.clone(),
                current: spent,
                expected: f64::from(limit),
                deviation_pct: usage,
                message,
                metadata,
                derived_cause: None,
                breach_count: 1,
            };
            match out.iter_mut().find(|c| c.key() == candidate.key()) {
                Some(existing) if existing.deviation_pct < usage => *existing = candidate,
                Some(_) => {}
                None => out.push(candidate),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::rules::tests::{day, history};
    use super::*;

    #[test]
    fn a_second_spike_day_raises_a_candidate() {
        // baseline 100/day on days 3..=12 ago; 300 yesterday and today.
        let mut days: Vec<(u64, f64)> = (3..=12).map(|n| (n, 100.0)).collect();
        days.push((0, 300.0));
        days.push((1, 300.0));
        let found = detect_trends(
            &TenantId::trusted("t"),
            day(0),
            &[EntityHistory {
                entity_type: CostEntityType::Tenant,
                entity_id: None,
                history: history(&days),
            }],
            &HashMap::new(),
            None,
        );
        let spike = &found.candidates[0];
        assert_eq!(spike.anomaly_type, CostAnomalyType::AbsoluteSpike);
        assert_eq!(spike.severity, CostAnomalySeverity::High);
        assert_eq!(
            spike.message,
            "Tenant t spending 200% above baseline for 2 consecutive day(s)"
        );
    }
}
