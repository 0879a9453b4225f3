//! Cost intelligence, read side (docs/domain.md §9.1, §9.3, §9.4) and the write primitive that
//! keeps its rollup exact.
//!
//! Every cost panel reads the daily rollup `cost_daily_aggregates`, never the raw
//! `cost_records` (docs/decisions.md D29; BENCHMARKS.md, e_cost). The rollup is maintained on
//! write, in the same transaction as the raw rows ([`rollup::record_costs`]), and can be rebuilt
//! from the raw rows ([`rollup::rebuild_rollups`]). Its design (grains, sentinels, indexes) is
//! described in [`rollup`].
//!
//! Time: every day boundary is a UTC midnight and every rollup `date` a UTC calendar day
//! (docs/decisions.md D29). Periods are day-aligned so that rollups answer them exactly:
//! `LAST_7_DAYS` is `[00:00Z of (today − 6), now]`.

pub mod anomaly_detect;
pub mod compute;
pub mod graphql;
pub mod mutation;
pub mod rollup;
pub mod store;
pub mod write;

use crate::closed_set::closed_set;
use async_graphql::Enum;
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde::Serialize;

pub use rollup::{rebuild_rollups, record_costs, NewCostRecord};

/// The feature tag cost records fall back to when theirs is missing, unknown or inactive.
pub const UNCLASSIFIED: &str = "unclassified";
/// How cost records without a user are rolled up and shown.
pub const ANONYMOUS: &str = "anonymous";

/// A day-aligned reporting period ending now: from 00:00 UTC of the first day to the request's
/// current time. Day-aligned so the daily rollup answers it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CostPeriod {
    /// Since 00:00 UTC today (1 day).
    Today,
    /// Since 00:00 UTC six days ago (7 days, today included).
    #[graphql(name = "LAST_7_DAYS")]
    #[serde(rename = "LAST_7_DAYS")]
    Last7Days,
    /// Since 00:00 UTC 29 days ago (30 days, today included).
    #[graphql(name = "LAST_30_DAYS")]
    #[serde(rename = "LAST_30_DAYS")]
    Last30Days,
}

impl CostPeriod {
    pub fn days(self) -> u32 {
        match self {
            CostPeriod::Today => 1,
            CostPeriod::Last7Days => 7,
            CostPeriod::Last30Days => 30,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            CostPeriod::Today => "Today (UTC)",
            CostPeriod::Last7Days => "Last 7 days (UTC, today included)",
            CostPeriod::Last30Days => "Last 30 days (UTC, today included)",
        }
    }

    /// The period's days as of `now`.
    pub fn window(self, now: DateTime<Utc>) -> DayWindow {
        let today = now.date_naive();
        DayWindow {
            from: today - Days::new(u64::from(self.days() - 1)),
            to: today,
        }
    }
}

/// An inclusive range of UTC calendar days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayWindow {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayWindow {
    /// Number of days in the window (≥ 1 for a valid window).
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// 00:00 UTC of the first day.
    pub fn start(&self) -> DateTime<Utc> {
        midnight(self.from)
    }

    /// Every day of the window, ascending.
    pub fn iter(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }
}

pub fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// The first day of `day`'s month.
pub fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// Sums of one group of cost (a day, a feature, a user, a model, a period).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CostTotals {
    pub cost_cents: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub requests: i64,
}

/// One row of a breakdown: the group key (feature tag, user id or model) and its totals.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTotals {
    pub key: String,
    pub totals: CostTotals,
}

/// A feature tag as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTagSnapshot {
    pub id: String,
    pub tag: String,
    pub display_name: String,
    pub description: Option<String>,
    pub budget_cents: Option<i32>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

closed_set! {
    /// What a budget limits.
    #[derive(Enum, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum CostBudgetType {
        /// The whole tenant.
        Tenant => "tenant",
        /// One feature tag.
        Feature => "feature",
        /// One user.
        User => "user",
    }
}

/// A budget as stored. `entity_id` is `None` for the tenant budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSnapshot {
    pub id: String,
    pub budget_type: CostBudgetType,
    pub entity_id: Option<String>,
    pub daily_limit_cents: Option<i32>,
    pub monthly_limit_cents: Option<i32>,
    pub warn_threshold_pct: i32,
    pub hard_limit_enabled: bool,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Spend against a budget: today's (UTC) and the month's to date.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BudgetSpend {
    pub daily_cents: f64,
    pub monthly_cents: f64,
}

/// A budget with its current spend.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetWithSpend {
    pub budget: BudgetSnapshot,
    pub spend: BudgetSpend,
}

closed_set! {
    /// Kind of cost anomaly (docs/domain.md §9.5).
    #[derive(Enum, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum CostAnomalyType {
        /// Today's spend ≥ 1.4 × the baseline on two consecutive days.
        AbsoluteSpike => "ABSOLUTE_SPIKE",
        /// The tenant's 7-day average ≥ 1.25 × its baseline for three days.
        SustainedDrift => "SUSTAINED_DRIFT",
        /// Spend reached a budget's warning threshold.
        BudgetWarning => "BUDGET_WARNING",
        /// Spend reached a budget's limit.
        BudgetExceeded => "BUDGET_EXCEEDED",
        /// Legacy per-user spike.
        UserSpike => "USER_SPIKE",
        /// Legacy per-feature spike.
        FeatureSpike => "FEATURE_SPIKE",
    }
}

closed_set! {
    /// Severity of a cost anomaly.
    #[derive(Enum, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum CostAnomalySeverity {
        Low => "LOW",
        Medium => "MEDIUM",
        High => "HIGH",
        /// Legacy.
        Critical => "CRITICAL",
    }
}

closed_set! {
    /// What a cost anomaly is about.
    #[derive(Enum, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum CostEntityType {
        Tenant => "tenant",
        User => "user",
        Feature => "feature",
        Model => "model",
    }
}

closed_set! {
    /// The deterministic explanation attached to spikes and drifts (docs/domain.md §9.5 step 4).
    #[derive(Enum, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum CostDerivedCause {
        RetryLoop => "RETRY_LOOP",
        PromptGrowth => "PROMPT_GROWTH",
        FeatureSurge => "FEATURE_SURGE",
        TrafficGrowth => "TRAFFIC_GROWTH",
        Unknown => "UNKNOWN",
    }
}

/// A detected cost anomaly as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalySnapshot {
    pub id: String,
    pub anomaly_type: CostAnomalyType,
    pub severity: CostAnomalySeverity,
    pub entity_type: CostEntityType,
    pub entity_id: Option<String>,
    pub current_value_cents: f64,
    pub expected_value_cents: f64,
    pub deviation_pct: f64,
    pub threshold_pct: f64,
    pub message: String,
    pub incident_id: Option<String>,
    pub action_taken: Option<String>,
    pub resolved: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub metadata: Option<serde_json::Value>,
    pub detected_at: DateTime<Utc>,
    pub derived_cause: Option<CostDerivedCause>,
    pub breach_count: i32,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
}

impl AnomalySnapshot {
    pub fn status(&self) -> CostAnomalyStatus {
        if self.resolved {
            CostAnomalyStatus::Resolved
        } else if self.acknowledged_at.is_some() {
            CostAnomalyStatus::Acknowledged
        } else {
            CostAnomalyStatus::Open
        }
    }
}

/// Where an anomaly is in its workflow: `OPEN → ACKNOWLEDGED → RESOLVED`, or `OPEN → RESOLVED`
/// (docs/domain.md §9.7). Each step is taken once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CostAnomalyStatus {
    /// Detected, nobody has taken it yet.
    Open,
    /// Someone is on it (`acknowledgeCostAnomaly`).
    Acknowledged,
    /// Closed (`resolveCostAnomaly`); detection that finds the condition again opens a new one.
    Resolved,
}

/// The anomaly list filter, as the store applies it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnomalyFilter {
    /// Inclusive lower bound on `detected_at`.
    pub since: Option<DateTime<Utc>>,
    pub include_resolved: bool,
    /// Any of these severities (sorted, de-duplicated).
    pub severity: Option<Vec<CostAnomalySeverity>>,
    /// Any of these types (sorted, de-duplicated).
    pub anomaly_type: Option<Vec<CostAnomalyType>>,
}
