//! Cost anomaly detection (docs/domain.md §9.5), run by `detectCostAnomalies` over the daily
//! rollup.
//!
//! Each run evaluates one tenant on the current UTC day and writes, in one transaction held under
//! a per-tenant lock (so concurrent runs serialise):
//! - `cost_breach_history`: one row per (entity, type, day) that breached, upserted;
//! - `cost_drift_tracking`: the tenant's drift tracker, upserted on its unique key (re-activation
//!   no longer collides, docs/decisions.md D30);
//! - `cost_anomalies`: an unresolved anomaly of the same (type, entity) detected since today's
//!   midnight is updated in place, otherwise a row is inserted — re-running a day never
//!   duplicates.
//!
//! Deliberate change from the Python platform: streaks (consecutive spike days, drift days) are
//! computed from the rollup's daily history, not from which days the detector happened to run.
//! A re-run on the same day therefore gives the same count (the Python platform reset the drift
//! counter to 1; docs/decisions.md D30), and a day on which nobody ran the detector still counts.
//!
//! Escalation to incidents is not done (docs/decisions.md D31): Logbook has no incidents writer;
//! HIGH anomalies are stored and listed for an operator to act on.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Days, NaiveDate, Utc};
use entity::{cost_anomalies, cost_budgets, cost_daily_aggregates as cda};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Set, Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::rollup::new_id;
use super::store;
use super::{
    midnight, BudgetSnapshot, CostAnomalySeverity, CostAnomalyType, CostBudgetType,
    CostDerivedCause, CostEntityType, ANONYMOUS, UNCLASSIFIED,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

pub const ABSOLUTE_SPIKE_THRESHOLD: f64 = 1.40;
pub const CONSECUTIVE_INTERVALS_REQUIRED: usize = 2;
pub const SUSTAINED_DRIFT_THRESHOLD: f64 = 1.25;
pub const DRIFT_DAYS_REQUIRED: usize = 3;
/// Spike baseline: days [d − 14, d − 2).
const SPIKE_LOOKBACK_DAYS: u64 = 14;
const SPIKE_GAP_DAYS: u64 = 2;
/// Breach streaks are counted within the last 7 days.
const STREAK_WINDOW_DAYS: usize = 7;
/// Drift streaks are counted back at most this many days.
const MAX_DRIFT_STREAK: usize = 30;
/// Rollup history read: the longest drift streak plus the drift baseline's reach (28 days).
const HISTORY_DAYS: u64 = MAX_DRIFT_STREAK as u64 + 28;

/// One day of one entity.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayCost {
    pub cost_cents: f64,
    pub input_tokens: i64,
    pub requests: i64,
}

/// Daily history of one entity; days without a rollup row are absent ("no data").
pub type History = BTreeMap<NaiveDate, DayCost>;

fn back(day: NaiveDate, n: u64) -> NaiveDate {
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
fn streak(
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

/// The deterministic cause of a spike or drift (docs/domain.md §9.5 step 4), first match wins.
/// Ratios against a zero yesterday are skipped.
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

/// Budget anomalies (docs/domain.md §9.5 step 3). When a budget's daily and monthly checks both
/// raise the same type, the higher usage is kept (they share one dedup key).
pub fn detect_budgets(
    budgets: &[(BudgetSnapshot, super::BudgetSpend)],
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

/// The result of one run, stored for idempotent replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionOutcome {
    pub day: NaiveDate,
    /// Anomalies created or updated by the run, in detection order.
    pub anomaly_ids: Vec<String>,
    pub created: usize,
    pub updated: usize,
    pub entities_evaluated: usize,
    pub budgets_evaluated: usize,
}

fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

/// Serialises detection runs of one tenant: a transaction-scoped advisory lock on PostgreSQL;
/// on SQLite, taking the write lock up front.
async fn lock_tenant(txn: &impl ConnectionTrait, tenant: &TenantId) -> AppResult<()> {
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [format!("cost_detect:{}", tenant.as_str()).into()],
        ))
        .await?;
    } else {
        txn.execute_unprepared("UPDATE cost_anomalies SET id = id WHERE 0")
            .await?;
    }
    Ok(())
}

/// Per-entity histories from the rollup's tenant, feature and user grains.
async fn read_histories(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    today: NaiveDate,
) -> AppResult<(Vec<EntityHistory>, Option<f64>)> {
    let rows: Vec<(NaiveDate, String, String, f64, i64, i32)> = cda::Entity::find()
        .select_only()
        .column(cda::Column::Date)
        .column(cda::Column::FeatureTag)
        .column(cda::Column::UserId)
        .column(cda::Column::TotalCostCents)
        .column(cda::Column::TotalInputTokens)
        .column(cda::Column::RequestCount)
        .filter(cda::Column::TenantId.eq(tenant.as_str()))
        .filter(cda::Column::Date.gte(back(today, HISTORY_DAYS)))
        .filter(cda::Column::Date.lte(today))
        .filter(Expr::cust("model = ''"))
        .into_tuple()
        .all(txn)
        .await?;
    let mut by_entity: BTreeMap<(u8, String), EntityHistory> = BTreeMap::new();
    let mut today_features: Vec<f64> = Vec::new();
    let mut today_total = 0.0;
    for (day, feature, user, cost, input, requests) in rows {
        let (order, entity_type, id) = match (feature.is_empty(), user.is_empty()) {
            (true, true) => (0, CostEntityType::Tenant, None),
            (false, true) => (1, CostEntityType::Feature, Some(feature)),
            (true, false) => (2, CostEntityType::User, Some(user)),
            (false, false) => continue,
        };
        if day == today {
            match entity_type {
                CostEntityType::Tenant => today_total = cost,
                CostEntityType::Feature => today_features.push(cost),
                _ => {}
            }
        }
        by_entity
            .entry((order, id.clone().unwrap_or_default()))
            .or_insert_with(|| EntityHistory {
                entity_type,
                entity_id: id,
                history: History::new(),
            })
            .history
            .insert(
                day,
                DayCost {
                    cost_cents: cost,
                    input_tokens: input,
                    requests: i64::from(requests),
                },
            );
    }
    let top_share = today_features
        .into_iter()
        .reduce(f64::max)
        .filter(|_| today_total > 0.0)
        .map(|top| top / today_total);
    Ok((by_entity.into_values().collect(), top_share))
}

/// Requests and retries of today and yesterday per entity, from the raw rows of those two days
/// (an index range on (tenant_id, created_at)).
async fn read_retries(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    today: NaiveDate,
) -> AppResult<HashMap<(&'static str, String), RetryCounts>> {
    let backend = txn.get_database_backend();
    let p = |n| placeholder(backend, n);
    let sql = format!(
        "SELECT feature_tag, user_id, \
         CASE WHEN created_at >= {today} THEN 1 ELSE 0 END AS is_today, \
         CAST(COUNT(*) AS BIGINT), \
         CAST(SUM(CASE WHEN is_retry THEN 1 ELSE 0 END) AS BIGINT) \
         FROM cost_records WHERE tenant_id = {tenant} AND created_at >= {from} \
         AND created_at < {to} GROUP BY feature_tag, user_id, 3",
        today = p(1),
        tenant = p(2),
        from = p(3),
        to = p(4),
    );
    let start_today: DateTime<Utc> = midnight(today);
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                start_today.into(),
                tenant.as_str().into(),
                midnight(back(today, 1)).into(),
                midnight(today + Days::new(1)).into(),
            ],
        ))
        .await?;
    let mut out: HashMap<(&'static str, String), RetryCounts> = HashMap::new();
    for row in rows {
        let feature: Option<String> = row.try_get_by_index(0)?;
        let user: Option<String> = row.try_get_by_index(1)?;
        let is_today: i32 = row.try_get_by_index(2)?;
        let requests: i64 = row.try_get_by_index(3)?;
        let retries: i64 = row.try_get_by_index(4)?;
        let feature = feature
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| UNCLASSIFIED.to_owned());
        let user = user
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| ANONYMOUS.to_owned());
        for key in [
            (CostEntityType::Tenant.as_str(), tenant.as_str().to_owned()),
            (CostEntityType::Feature.as_str(), feature.clone()),
            (CostEntityType::User.as_str(), user.clone()),
        ] {
            let entry = out.entry(key).or_default();
            let slot = if is_today == 1 {
                &mut entry.today
            } else {
                &mut entry.yesterday
            };
            slot.0 += requests;
            slot.1 += retries;
        }
    }
    Ok(out)
}

async fn active_budgets(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    today: NaiveDate,
) -> AppResult<Vec<(BudgetSnapshot, super::BudgetSpend)>> {
    let budgets: Vec<BudgetSnapshot> = cost_budgets::Entity::find()
        .filter(cost_budgets::Column::TenantId.eq(tenant.as_str()))
        .filter(cost_budgets::Column::IsActive.eq(true))
        .all(txn)
        .await?
        .into_iter()
        .map(store::budget_snapshot)
        .collect::<AppResult<_>>()?;
    let spend = store::budget_spend(txn, tenant, &budgets, today).await?;
    Ok(budgets
        .into_iter()
        .map(|b| {
            let s = spend.get(&b.id).copied().unwrap_or_default();
            (b, s)
        })
        .collect())
}

/// Upserts breach rows (one per entity, type and day).
async fn record_breaches(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    breaches: &[(CostEntityType, Option<String>, CostAnomalyType, Evaluation)],
    at: DateTime<Utc>,
) -> AppResult<()> {
    let backend = txn.get_database_backend();
    let p = |n| placeholder(backend, n);
    for (kind, id, breach, eval) in breaches {
        let sql = format!(
            "INSERT INTO cost_breach_history (id, tenant_id, entity_type, entity_id, breach_type, \
             breach_date, deviation_pct, current_value_cents, baseline_value_cents, created_at) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}) \
             ON CONFLICT (tenant_id, entity_type, entity_id, breach_type, breach_date) DO UPDATE \
             SET deviation_pct = excluded.deviation_pct, \
             current_value_cents = excluded.current_value_cents, \
             baseline_value_cents = excluded.baseline_value_cents",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10)
        );
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                new_id("bh_").into(),
                tenant.as_str().into(),
                kind.as_str().into(),
                id.clone().unwrap_or_default().into(),
                breach.as_str().into(),
                eval.day.into(),
                eval.deviation_pct().into(),
                eval.current.into(),
                eval.baseline.into(),
                at.into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// The tenant's drift tracker: upserted while drifting (the streak is the data's, so a re-run
/// on the same day keeps it), marked inactive otherwise.
async fn track_drift(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    today: NaiveDate,
    drift: Option<(Evaluation, usize)>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let backend = txn.get_database_backend();
    let p = |n| placeholder(backend, n);
    let statement = match drift {
        Some((eval, days)) => {
            let first = back(today, days.saturating_sub(1) as u64);
            Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO cost_drift_tracking (id, tenant_id, entity_type, entity_id, \
                     rolling_7d_avg_cents, baseline_7d_avg_cents, drift_pct, drift_days_count, \
                     first_drift_date, last_check_date, is_active, created_at, updated_at) \
                     VALUES ({}, {}, 'tenant', '', {}, {}, {}, {}, {}, {}, {}, {}, {}) \
                     ON CONFLICT (tenant_id, entity_type, entity_id) DO UPDATE SET \
                     rolling_7d_avg_cents = excluded.rolling_7d_avg_cents, \
                     baseline_7d_avg_cents = excluded.baseline_7d_avg_cents, \
                     drift_pct = excluded.drift_pct, \
                     drift_days_count = excluded.drift_days_count, \
                     first_drift_date = excluded.first_drift_date, \
                     last_check_date = excluded.last_check_date, \
                     is_active = excluded.is_active, updated_at = excluded.updated_at",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6),
                    p(7),
                    p(8),
                    p(9),
                    p(10),
                    p(11)
                ),
                [
                    new_id("dt_").into(),
                    tenant.as_str().into(),
                    eval.current.into(),
                    eval.baseline.into(),
                    eval.deviation_pct().into(),
                    i32::try_from(days).unwrap_or(i32::MAX).into(),
                    first.into(),
                    today.into(),
                    true.into(),
                    at.into(),
                    at.into(),
                ],
            )
        }
        None => Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE cost_drift_tracking SET is_active = {}, last_check_date = {}, \
                 updated_at = {} WHERE tenant_id = {} AND entity_type = 'tenant' \
                 AND entity_id = ''",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            [
                false.into(),
                today.into(),
                at.into(),
                tenant.as_str().into(),
            ],
        ),
    };
    txn.execute_raw(statement).await?;
    Ok(())
}

/// Updates today's unresolved anomaly with the same (type, entity) or inserts one.
async fn persist(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    candidates: &[Candidate],
    at: DateTime<Utc>,
) -> AppResult<(Vec<String>, usize, usize)> {
    use cost_anomalies::Column as C;
    let existing: Vec<(String, String, String, Option<String>)> = cost_anomalies::Entity::find()
        .select_only()
        .column(C::Id)
        .column(C::AnomalyType)
        .column(C::EntityType)
        .column(C::EntityId)
        .filter(C::TenantId.eq(tenant.as_str()))
        .filter(C::Resolved.eq(false))
        .filter(C::DetectedAt.gte(midnight(at.date_naive())))
        .into_tuple()
        .all(txn)
        .await?;
    let mut today: HashMap<(String, String, Option<String>), String> = HashMap::new();
    for (id, kind, entity_type, entity_id) in existing {
        today.entry((kind, entity_type, entity_id)).or_insert(id);
    }
    let (mut ids, mut created, mut updated) = (Vec::new(), 0, 0);
    for c in candidates {
        let key = (
            c.anomaly_type.as_str().to_owned(),
            c.entity_type.as_str().to_owned(),
            c.entity_id.clone(),
        );
        let cause = c.derived_cause.map(|d| d.as_str().to_owned());
        if let Some(id) = today.get(&key) {
            cost_anomalies::Entity::update_many()
                .col_expr(C::CurrentValueCents, Expr::value(c.current))
                .col_expr(C::ExpectedValueCents, Expr::value(c.expected))
                .col_expr(C::DeviationPct, Expr::value(c.deviation_pct))
                .col_expr(C::Severity, Expr::value(c.severity.as_str()))
                .col_expr(C::Message, Expr::value(c.message.clone()))
                .col_expr(C::BreachCount, Expr::value(c.breach_count))
                .col_expr(C::DerivedCause, Expr::value(cause))
                .col_expr(C::Metadata, Expr::value(c.metadata.clone()))
                .filter(C::TenantId.eq(tenant.as_str()))
                .filter(C::Id.eq(id.as_str()))
                .exec(txn)
                .await?;
            ids.push(id.clone());
            updated += 1;
            continue;
        }
        let id = new_id("ca_");
        cost_anomalies::Entity::insert(cost_anomalies::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.as_str().to_owned()),
            anomaly_type: Set(c.anomaly_type.as_str().to_owned()),
            severity: Set(c.severity.as_str().to_owned()),
            entity_type: Set(c.entity_type.as_str().to_owned()),
            entity_id: Set(c.entity_id.clone()),
            current_value_cents: Set(c.current),
            expected_value_cents: Set(c.expected),
            deviation_pct: Set(c.deviation_pct),
            threshold_pct: Set(if c.anomaly_type == CostAnomalyType::AbsoluteSpike {
                140.0
            } else {
                125.0
            }),
            message: Set(c.message.clone()),
            incident_id: Set(None),
            action_taken: Set(None),
            resolved: Set(false),
            resolved_at: Set(None),
            metadata: Set(Some(c.metadata.clone())),
            detected_at: Set(at),
            snapshot_id: Set(None),
            baseline_id: Set(None),
            derived_cause: Set(cause),
            breach_count: Set(c.breach_count),
        })
        .exec_without_returning(txn)
        .await?;
        today.insert(key, id.clone());
        ids.push(id);
        created += 1;
    }
    Ok((ids, created, updated))
}

/// Runs detection for the tenant on `at`'s UTC day, in one transaction.
pub async fn detect(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    at: DateTime<Utc>,
) -> AppResult<DetectionOutcome> {
    let today = at.date_naive();
    lock_tenant(txn, tenant).await?;
    let (entities, top_share) = read_histories(txn, tenant, today).await?;
    let retries = read_retries(txn, tenant, today).await?;
    let budgets = active_budgets(txn, tenant, today).await?;
    let mut found = detect_trends(tenant, today, &entities, &retries, top_share);
    found.candidates.extend(detect_budgets(&budgets, today));
    record_breaches(txn, tenant, &found.breaches, at).await?;
    track_drift(txn, tenant, today, found.drift, at).await?;
    let (anomaly_ids, created, updated) = persist(txn, tenant, &found.candidates, at).await?;
    Ok(DetectionOutcome {
        day: today,
        anomaly_ids,
        created,
        updated,
        entities_evaluated: found.entities_evaluated,
        budgets_evaluated: budgets.len(),
    })
}

/// The tenant's anomalies with these ids, in the given order.
pub async fn anomalies_by_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: &[String],
) -> AppResult<Vec<super::AnomalySnapshot>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = cost_anomalies::Entity::find()
        .filter(cost_anomalies::Column::TenantId.eq(tenant.as_str()))
        .filter(cost_anomalies::Column::Id.is_in(ids.iter().map(String::as_str)))
        .all(db)
        .await?;
    let mut by_id: HashMap<String, super::AnomalySnapshot> = rows
        .into_iter()
        .map(|m| store::anomaly_snapshot(m).map(|a| (a.id.clone(), a)))
        .collect::<AppResult<_>>()?;
    ids.iter()
        .map(|id| {
            by_id
                .remove(id)
                .ok_or_else(|| AppError::internal(format!("anomaly {id} vanished")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u64) -> NaiveDate {
        back(NaiveDate::from_ymd_opt(2026, 11, 27).expect("date"), n)
    }

    fn history(days: &[(u64, f64)]) -> History {
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
        let found = detect_trends(
            &TenantId::trusted("t"),
            day(0),
            &[EntityHistory {
                entity_type: CostEntityType::Tenant,
                entity_id: None,
                history: two_days,
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
