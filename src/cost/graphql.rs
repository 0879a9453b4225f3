//! GraphQL for cost intelligence: the `cost` root field, a namespace of the tenant's cost panels
//! (docs/domain.md §9.4). Every panel reads the daily rollup; all fields of one `cost` selection
//! share one clock, so they agree on what "today" is.

use std::collections::HashMap;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{Days, NaiveDate, Utc};

use super::compute::{self, CostTrend, Projection, Summary, UserShare};
use super::store::{self, Grain};
use super::{
    month_start, AnomalyFilter, AnomalySnapshot, BudgetWithSpend, CostAnomalySeverity,
    CostAnomalyStatus, CostAnomalyType, CostBudgetType, CostDerivedCause, CostEntityType,
    CostPeriod, CostTotals, DayWindow, FeatureTagSnapshot, GroupTotals,
};
use crate::auth::{self, Permission, TenantId};
use crate::error::AppError;
use crate::pagination::{self, PageRequest};
use crate::scalars::{BigInt, Date, DateTime};
use crate::state::AppState;

/// The longest range `series` answers, in days.
const MAX_SERIES_DAYS: i64 = 366;

fn int(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Where a cost figure comes from and over which period.
#[derive(SimpleObject)]
pub struct CostProvenance {
    /// How rows were combined (`SUM`).
    aggregation: &'static str,
    /// The table read: always the daily rollup `cost_daily_aggregates`, never raw cost records.
    data_source: &'static str,
    computed_at: DateTime,
    period_start: DateTime,
    period_end: DateTime,
    period_description: &'static str,
}

/// Spend of a period with the tenant budget (docs/domain.md §9.4).
pub struct CostSummary {
    period: CostPeriod,
    summary: Summary,
    computed_at: chrono::DateTime<Utc>,
}

#[Object]
impl CostSummary {
    async fn period(&self) -> CostPeriod {
        self.period
    }
    /// 00:00 UTC of the period's first day.
    async fn period_start(&self) -> DateTime {
        self.summary.period_start.into()
    }
    /// When the summary was computed (the period runs up to now).
    async fn period_end(&self) -> DateTime {
        self.summary.period_end.into()
    }
    /// Days in the period (today included).
    async fn days(&self) -> i32 {
        int(self.summary.window.days())
    }
    /// Fractional US cents.
    async fn total_cost_cents(&self) -> f64 {
        self.summary.totals.cost_cents
    }
    async fn total_input_tokens(&self) -> BigInt {
        BigInt(self.summary.totals.input_tokens)
    }
    async fn total_output_tokens(&self) -> BigInt {
        BigInt(self.summary.totals.output_tokens)
    }
    async fn request_count(&self) -> i32 {
        int(self.summary.totals.requests)
    }
    /// Total divided by the period's days.
    async fn daily_avg_cents(&self) -> f64 {
        self.summary.daily_avg_cents
    }
    /// Spend since 00:00 UTC on the 1st of the current month.
    async fn month_to_date_cost_cents(&self) -> f64 {
        self.summary.month_to_date_cents
    }
    /// The tenant budget's daily limit × the period's days; null without a daily limit.
    async fn budget_cents(&self) -> Option<f64> {
        self.summary.budget_cents
    }
    /// Total as a percentage of `budgetCents`; null unless `budgetCents` > 0.
    async fn budget_used_pct(&self) -> Option<f64> {
        self.summary.budget_used_pct
    }
    /// The tenant budget's monthly limit, if any.
    async fn monthly_limit_cents(&self) -> Option<f64> {
        self.summary.monthly_limit_cents
    }
    /// (monthly limit − month-to-date spend) ÷ the period's daily average, 0 once exhausted;
    /// null without a monthly limit or without spend.
    async fn days_remaining_at_current_rate(&self) -> Option<f64> {
        self.summary.days_remaining_at_current_rate
    }
    async fn provenance(&self) -> CostProvenance {
        CostProvenance {
            aggregation: "SUM",
            data_source: "cost_daily_aggregates",
            computed_at: self.computed_at.into(),
            period_start: self.summary.period_start.into(),
            period_end: self.summary.period_end.into(),
            period_description: self.period.describe(),
        }
    }
}

/// Cost of one feature tag over a period.
pub struct FeatureCost {
    row: GroupTotals,
    pct_of_total: f64,
    tag: Option<FeatureTagSnapshot>,
}

#[Object]
impl FeatureCost {
    /// The tag; `unclassified` collects records without a known, active tag.
    async fn feature_tag(&self) -> &str {
        &self.row.key
    }
    /// From the registered feature tag; null when the tag is not registered.
    async fn display_name(&self) -> Option<&str> {
        self.tag.as_ref().map(|t| t.display_name.as_str())
    }
    async fn total_cost_cents(&self) -> f64 {
        self.row.totals.cost_cents
    }
    async fn request_count(&self) -> i32 {
        int(self.row.totals.requests)
    }
    /// Share of the period's total cost, in percent.
    async fn pct_of_total(&self) -> f64 {
        self.pct_of_total
    }
    /// The feature tag's budget, if set.
    async fn budget_cents(&self) -> Option<f64> {
        self.tag
            .as_ref()
            .and_then(|t| t.budget_cents)
            .map(f64::from)
    }
    /// Cost as a percentage of `budgetCents`; null unless the budget is > 0.
    async fn budget_used_pct(&self) -> Option<f64> {
        compute::used_pct(
            self.row.totals.cost_cents,
            self.tag
                .as_ref()
                .and_then(|t| t.budget_cents)
                .map(f64::from),
        )
    }
}

/// Cost of one user over a period.
pub struct UserCost(UserShare);

#[Object]
impl UserCost {
    /// The user id; `anonymous` for records without a user.
    async fn user_id(&self) -> &str {
        &self.0.row.key
    }
    async fn total_cost_cents(&self) -> f64 {
        self.0.row.totals.cost_cents
    }
    async fn request_count(&self) -> i32 {
        int(self.0.row.totals.requests)
    }
    async fn pct_of_total(&self) -> f64 {
        self.0.pct_of_total
    }
    /// Whether the user's cost exceeds twice the mean cost per user of the period.
    async fn is_anomaly(&self) -> bool {
        self.0.is_anomaly
    }
    /// `Spending X.Yx average` for anomalies, else null.
    async fn anomaly_message(&self) -> Option<&str> {
        self.0.anomaly_message.as_deref()
    }
}

/// Cost of one model over a period.
pub struct ModelCost {
    row: GroupTotals,
    pct_of_total: f64,
}

#[Object]
impl ModelCost {
    async fn model(&self) -> &str {
        &self.row.key
    }
    async fn total_input_tokens(&self) -> BigInt {
        BigInt(self.row.totals.input_tokens)
    }
    async fn total_output_tokens(&self) -> BigInt {
        BigInt(self.row.totals.output_tokens)
    }
    async fn total_cost_cents(&self) -> f64 {
        self.row.totals.cost_cents
    }
    async fn request_count(&self) -> i32 {
        int(self.row.totals.requests)
    }
    async fn pct_of_total(&self) -> f64 {
        self.pct_of_total
    }
}

/// Bucket size of a cost series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum CostGranularity {
    /// One point per UTC calendar day.
    Day,
}

/// Cost of one bucket of a series.
pub struct CostSeriesPoint {
    date: NaiveDate,
    totals: CostTotals,
}

#[Object]
impl CostSeriesPoint {
    /// The UTC day.
    async fn date(&self) -> Date {
        Date(self.date)
    }
    async fn total_cost_cents(&self) -> f64 {
        self.totals.cost_cents
    }
    async fn request_count(&self) -> i32 {
        int(self.totals.requests)
    }
    async fn total_input_tokens(&self) -> BigInt {
        BigInt(self.totals.input_tokens)
    }
    async fn total_output_tokens(&self) -> BigInt {
        BigInt(self.totals.output_tokens)
    }
}

/// Daily totals over a range of days; days without cost are present with zeros.
pub struct CostSeries {
    window: DayWindow,
    points: Vec<(NaiveDate, CostTotals)>,
}

#[Object]
impl CostSeries {
    async fn granularity(&self) -> CostGranularity {
        CostGranularity::Day
    }
    /// First day (inclusive).
    async fn from(&self) -> Date {
        Date(self.window.from)
    }
    /// Last day (inclusive).
    async fn to(&self) -> Date {
        Date(self.window.to)
    }
    /// One point per day, ascending.
    async fn points(&self) -> Vec<CostSeriesPoint> {
        self.points
            .iter()
            .map(|(date, totals)| CostSeriesPoint {
                date: *date,
                totals: *totals,
            })
            .collect()
    }
    async fn total_cost_cents(&self) -> f64 {
        self.points.iter().map(|(_, t)| t.cost_cents).sum()
    }
}

/// Projected spend from the recent daily average (docs/domain.md §9.4).
pub struct CostProjection(Projection);

#[Object]
impl CostProjection {
    async fn lookback_days(&self) -> i32 {
        self.0.lookback_days as i32
    }
    async fn forecast_days(&self) -> i32 {
        self.0.forecast_days as i32
    }
    /// First day of the lookback: the `lookbackDays` complete UTC days before today.
    async fn lookback_from(&self) -> Date {
        Date(self.0.lookback.from)
    }
    /// Last day of the lookback (yesterday, UTC).
    async fn lookback_to(&self) -> Date {
        Date(self.0.lookback.to)
    }
    /// Lookback cost ÷ `lookbackDays` (days without cost count as zero).
    async fn current_daily_avg_cents(&self) -> f64 {
        self.0.current_daily_avg_cents
    }
    /// Daily average × `forecastDays`.
    async fn projected_total_cents(&self) -> f64 {
        self.0.projected_total_cents
    }
    /// Daily average × 30.
    async fn monthly_projection_cents(&self) -> f64 {
        self.0.monthly_projection_cents
    }
    /// Spend since 00:00 UTC on the 1st of the current month.
    async fn month_to_date_cost_cents(&self) -> f64 {
        self.0.month_to_date_cents
    }
    /// The tenant budget's monthly limit; null without one or without spend.
    async fn budget_cents(&self) -> Option<f64> {
        self.0.budget_cents
    }
    /// (monthly limit − month-to-date spend) ÷ daily average, 0 once exhausted.
    async fn days_until_budget_exhausted(&self) -> Option<f64> {
        self.0.days_until_budget_exhausted
    }
    /// Second half of the lookback against the first half.
    async fn trend(&self) -> CostTrend {
        self.0.trend
    }
}

/// A detected cost anomaly (docs/domain.md §9.5).
pub struct CostAnomaly(pub(crate) AnomalySnapshot);

#[Object]
impl CostAnomaly {
    /// The anomaly's id (`ca_…`).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn anomaly_type(&self) -> CostAnomalyType {
        self.0.anomaly_type
    }
    async fn severity(&self) -> CostAnomalySeverity {
        self.0.severity
    }
    async fn entity_type(&self) -> CostEntityType {
        self.0.entity_type
    }
    /// The user id, feature tag or model; null for the tenant.
    async fn entity_id(&self) -> Option<&str> {
        self.0.entity_id.as_deref()
    }
    async fn current_value_cents(&self) -> f64 {
        self.0.current_value_cents
    }
    async fn expected_value_cents(&self) -> f64 {
        self.0.expected_value_cents
    }
    /// Deviation from the expected value in percent (budget anomalies: the usage percentage).
    async fn deviation_pct(&self) -> f64 {
        self.0.deviation_pct
    }
    async fn threshold_pct(&self) -> f64 {
        self.0.threshold_pct
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    /// The incident this anomaly was escalated to, if any.
    async fn incident_id(&self) -> Option<&str> {
        self.0.incident_id.as_deref()
    }
    async fn action_taken(&self) -> Option<&str> {
        self.0.action_taken.as_deref()
    }
    /// OPEN, ACKNOWLEDGED or RESOLVED (`acknowledgeCostAnomaly`, `resolveCostAnomaly`).
    async fn status(&self) -> CostAnomalyStatus {
        self.0.status()
    }
    async fn resolved(&self) -> bool {
        self.0.resolved
    }
    async fn resolved_at(&self) -> Option<DateTime> {
        self.0.resolved_at.map(Into::into)
    }
    /// `key:<API key id>` of whoever resolved it.
    async fn resolved_by(&self) -> Option<&str> {
        self.0.resolved_by.as_deref()
    }
    async fn resolution_note(&self) -> Option<&str> {
        self.0.resolution_note.as_deref()
    }
    async fn acknowledged_at(&self) -> Option<DateTime> {
        self.0.acknowledged_at.map(Into::into)
    }
    /// `key:<API key id>` of whoever acknowledged it.
    async fn acknowledged_by(&self) -> Option<&str> {
        self.0.acknowledged_by.as_deref()
    }
    async fn derived_cause(&self) -> Option<CostDerivedCause> {
        self.0.derived_cause
    }
    /// Consecutive breaches that led to the anomaly.
    async fn breach_count(&self) -> i32 {
        self.0.breach_count
    }
    /// Detector details (e.g. baseline, lookback, limit).
    async fn metadata(&self) -> Option<&serde_json::Value> {
        self.0.metadata.as_ref()
    }
    /// When it was detected (the list order).
    async fn detected_at(&self) -> DateTime {
        self.0.detected_at.into()
    }
}

crate::connection_types!(CostAnomalyConnection, CostAnomalyEdge, CostAnomaly);

impl crate::plain::PlainFields for CostAnomaly {}

/// Filters for `cost.anomalies`; the same input drives the list and its `totalCount`.
#[derive(Debug, Clone, Default, InputObject)]
pub struct CostAnomalyFilter {
    /// Inclusive lower bound on `detectedAt`.
    pub since: Option<DateTime>,
    /// Include resolved anomalies (default: unresolved only).
    #[graphql(default)]
    pub include_resolved: bool,
    /// Any of these severities.
    pub severity: Option<Vec<CostAnomalySeverity>>,
    /// Any of these types.
    pub anomaly_type: Option<Vec<CostAnomalyType>>,
}

impl From<CostAnomalyFilter> for AnomalyFilter {
    fn from(f: CostAnomalyFilter) -> Self {
        AnomalyFilter {
            since: f.since.map(|d| d.0),
            include_resolved: f.include_resolved,
            severity: f
                .severity
                .map(|s| crate::pagination::canonical(s, CostAnomalySeverity::as_str)),
            anomaly_type: f
                .anomaly_type
                .map(|t| crate::pagination::canonical(t, CostAnomalyType::as_str)),
        }
    }
}

/// A budget with its current spend.
pub struct CostBudget(pub(crate) BudgetWithSpend);

#[Object]
impl CostBudget {
    /// The budget's id (`cb_…`).
    async fn id(&self) -> ID {
        ID(self.0.budget.id.clone())
    }
    async fn budget_type(&self) -> CostBudgetType {
        self.0.budget.budget_type
    }
    /// The feature tag or user id; null for the tenant budget.
    async fn entity_id(&self) -> Option<&str> {
        self.0.budget.entity_id.as_deref()
    }
    async fn daily_limit_cents(&self) -> Option<f64> {
        self.0.budget.daily_limit_cents.map(f64::from)
    }
    async fn monthly_limit_cents(&self) -> Option<f64> {
        self.0.budget.monthly_limit_cents.map(f64::from)
    }
    /// Usage percentage at which a BUDGET_WARNING is raised.
    async fn warn_threshold_pct(&self) -> i32 {
        self.0.budget.warn_threshold_pct
    }
    /// When true and the budget is active, `recordCost` refuses records that would take the
    /// spend past a limit (`INVALID_TRANSITION`, `extensions.reason` `BUDGET_EXCEEDED`).
    async fn hard_limit_enabled(&self) -> bool {
        self.0.budget.hard_limit_enabled
    }
    /// Inactive budgets are listed only with `budgets(includeInactive: true)`; detection and
    /// hard limits ignore them.
    async fn is_active(&self) -> bool {
        self.0.budget.is_active
    }
    /// Spend since 00:00 UTC today, of the budget's entity.
    async fn current_daily_spend_cents(&self) -> f64 {
        self.0.spend.daily_cents
    }
    /// Spend since 00:00 UTC on the 1st of the month, of the budget's entity.
    async fn current_monthly_spend_cents(&self) -> f64 {
        self.0.spend.monthly_cents
    }
    /// Today's spend as a percentage of the daily limit; null without a positive limit.
    async fn daily_used_pct(&self) -> Option<f64> {
        compute::used_pct(
            self.0.spend.daily_cents,
            self.0.budget.daily_limit_cents.map(f64::from),
        )
    }
    /// Month-to-date spend as a percentage of the monthly limit; null without a positive limit.
    async fn monthly_used_pct(&self) -> Option<f64> {
        compute::used_pct(
            self.0.spend.monthly_cents,
            self.0.budget.monthly_limit_cents.map(f64::from),
        )
    }
    async fn created_at(&self) -> DateTime {
        self.0.budget.created_at.into()
    }
    async fn updated_at(&self) -> DateTime {
        self.0.budget.updated_at.into()
    }
}

crate::connection_types!(CostBudgetConnection, CostBudgetEdge, CostBudget);

impl crate::plain::PlainFields for CostBudget {}

/// A registered feature tag (`namespace.action`) that cost records are attributed to.
pub struct FeatureTag(pub(crate) FeatureTagSnapshot);

#[Object]
impl FeatureTag {
    /// The tag's id (`ft_…`).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn tag(&self) -> &str {
        &self.0.tag
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// The feature's budget, if set.
    async fn budget_cents(&self) -> Option<f64> {
        self.0.budget_cents.map(f64::from)
    }
    /// Inactive tags no longer classify new cost records (they become `unclassified`).
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

crate::connection_types!(FeatureTagConnection, FeatureTagEdge, FeatureTag);

impl crate::plain::PlainFields for FeatureTag {}

/// The cost panels of the key's tenant. Every figure is read from the daily rollup
/// (`cost_daily_aggregates`), and every day is a UTC day.
pub struct CostQuery {
    tenant: TenantId,
    now: chrono::DateTime<Utc>,
}

fn range_arg(name: &str, value: i32) -> Result<u32, AppError> {
    if (1..=30).contains(&value) {
        Ok(value as u32)
    } else {
        Err(AppError::bad_input(
            name,
            format!("`{name}` must be between 1 and 30"),
        ))
    }
}

impl CostQuery {
    async fn day_totals(
        &self,
        ctx: &Context<'_>,
        window: &DayWindow,
    ) -> Result<HashMap<NaiveDate, CostTotals>, AppError> {
        let state = ctx.data_unchecked::<AppState>();
        let rows = store::daily_totals(&state.db, &self.tenant, window).await?;
        Ok(compute::by_day(&rows))
    }

    async fn grain(
        &self,
        ctx: &Context<'_>,
        window: &DayWindow,
        grain: Grain,
    ) -> Result<Vec<GroupTotals>, AppError> {
        let state = ctx.data_unchecked::<AppState>();
        store::grain_totals(&state.db, &self.tenant, window, grain).await
    }

    /// The days a breakdown or series covers: `period`, or the inclusive UTC days `from`..`to`
    /// (at most 366), or `default` when neither is given.
    fn window(
        &self,
        period: Option<CostPeriod>,
        from: Option<Date>,
        to: Option<Date>,
        default: CostPeriod,
    ) -> Result<DayWindow, AppError> {
        match (period, from, to) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(AppError::bad_input(
                "period",
                "give either `period` or `from` and `to`, not both",
            )),
            (Some(p), None, None) => Ok(p.window(self.now)),
            (None, None, None) => Ok(default.window(self.now)),
            (None, Some(_), None) => Err(AppError::bad_input("to", "`to` is required with `from`")),
            (None, None, Some(_)) => {
                Err(AppError::bad_input("from", "`from` is required with `to`"))
            }
            (None, Some(from), Some(to)) => {
                let window = DayWindow {
                    from: from.0,
                    to: to.0,
                };
                if window.to < window.from {
                    return Err(AppError::bad_input("to", "`to` must not be before `from`"));
                }
                if window.days() > MAX_SERIES_DAYS {
                    return Err(AppError::bad_input(
                        "from",
                        format!("a range spans at most {MAX_SERIES_DAYS} days"),
                    ));
                }
                Ok(window)
            }
        }
    }
}

/// The most rows a breakdown's `limit` asks for.
const MAX_BREAKDOWN_LIMIT: i32 = 100;

/// `limit` of a breakdown: 1..=100, or every group when absent.
fn top_k(limit: Option<i32>) -> Result<usize, AppError> {
    match limit {
        None => Ok(usize::MAX),
        Some(n) if (1..=MAX_BREAKDOWN_LIMIT).contains(&n) => Ok(n as usize),
        Some(_) => Err(AppError::bad_input(
            "limit",
            format!("`limit` must be between 1 and {MAX_BREAKDOWN_LIMIT}"),
        )),
    }
}

#[Object]
impl CostQuery {
    /// Totals of the period, the tenant budget and month-to-date comparison.
    async fn summary(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "CostPeriod::Today")] period: CostPeriod,
    ) -> async_graphql::Result<CostSummary> {
        let state = ctx.data_unchecked::<AppState>();
        let window = period.window(self.now);
        let month = month_start(self.now.date_naive());
        let read = DayWindow {
            from: window.from.min(month),
            to: window.to,
        };
        let days = self.day_totals(ctx, &read).await?;
        let budget = store::tenant_budget(&state.db, &self.tenant).await?;
        Ok(CostSummary {
            period,
            summary: compute::summary(window, self.now, &days, budget.as_ref()),
            computed_at: self.now,
        })
    }

    /// Cost per feature tag, largest first (ties by tag): over `period` (default TODAY) or the
    /// inclusive UTC days `from`..`to` (at most 366), the largest `limit` (1..100; default all)
    /// tags. `pctOfTotal` is against every tag's total, not only the listed ones.
    async fn by_feature(
        &self,
        ctx: &Context<'_>,
        period: Option<CostPeriod>,
        from: Option<Date>,
        to: Option<Date>,
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<FeatureCost>> {
        let state = ctx.data_unchecked::<AppState>();
        let window = self.window(period, from, to, CostPeriod::Today)?;
        let keep = top_k(limit)?;
        let mut rows = self.grain(ctx, &window, Grain::Feature).await?;
        let total: f64 = rows.iter().map(|r| r.totals.cost_cents).sum();
        rows.truncate(keep);
        let tags: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        let mut registered = store::feature_tags_by_tag(&state.db, &self.tenant, &tags).await?;
        Ok(rows
            .into_iter()
            .map(|row| FeatureCost {
                pct_of_total: compute::pct_of(row.totals.cost_cents, total),
                tag: registered.remove(&row.key),
                row,
            })
            .collect())
    }

    /// Cost per user, largest first (ties by user id), over `period` (default TODAY) or
    /// `from`..`to`, the largest `limit` (1..100; default all) users. Users above twice the mean
    /// of every user's cost are flagged; shares and the mean count every user, listed or not.
    async fn by_user(
        &self,
        ctx: &Context<'_>,
        period: Option<CostPeriod>,
        from: Option<Date>,
        to: Option<Date>,
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<UserCost>> {
        let window = self.window(period, from, to, CostPeriod::Today)?;
        let keep = top_k(limit)?;
        let rows = self.grain(ctx, &window, Grain::User).await?;
        Ok(compute::user_shares(rows)
            .into_iter()
            .take(keep)
            .map(UserCost)
            .collect())
    }

    /// Cost and tokens per model, largest cost first (ties by model), over `period` (default
    /// TODAY) or `from`..`to`, the largest `limit` (1..100; default all) models; `pctOfTotal` is
    /// against every model's total.
    async fn by_model(
        &self,
        ctx: &Context<'_>,
        period: Option<CostPeriod>,
        from: Option<Date>,
        to: Option<Date>,
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<ModelCost>> {
        let window = self.window(period, from, to, CostPeriod::Today)?;
        let keep = top_k(limit)?;
        let rows = self.grain(ctx, &window, Grain::Model).await?;
        let total: f64 = rows.iter().map(|r| r.totals.cost_cents).sum();
        Ok(rows
            .into_iter()
            .take(keep)
            .map(|row| ModelCost {
                pct_of_total: compute::pct_of(row.totals.cost_cents, total),
                row,
            })
            .collect())
    }

    /// Daily totals, zero-filled. Give either `period` or both `from` and `to` (inclusive UTC
    /// days, at most 366); with neither, the last 30 days.
    async fn series(
        &self,
        ctx: &Context<'_>,
        period: Option<CostPeriod>,
        from: Option<Date>,
        to: Option<Date>,
        #[graphql(default_with = "CostGranularity::Day")] granularity: CostGranularity,
    ) -> async_graphql::Result<CostSeries> {
        let CostGranularity::Day = granularity;
        let window = self.window(period, from, to, CostPeriod::Last30Days)?;
        let days = self.day_totals(ctx, &window).await?;
        Ok(CostSeries {
            points: compute::fill_days(&window, &days),
            window,
        })
    }

    /// The tenant's cost anomalies, most recently detected first (ties broken by id).
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    #[expect(
        clippy::too_many_arguments,
        reason = "the Relay arguments plus filter and asOf"
    )]
    async fn anomalies(
        &self,
        ctx: &Context<'_>,
        filter: Option<CostAnomalyFilter>,
        #[graphql(desc = "Only anomalies detected at or before this instant: a stable snapshot.")]
        as_of: Option<DateTime>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<CostAnomalyConnection> {
        let state = ctx.data_unchecked::<AppState>();
        let filter: AnomalyFilter = filter.unwrap_or_default().into();
        let request = PageRequest::new(first, after, last, before, as_of.map(|d| d.0))
            .sized(crate::pagination::page_sizes(ctx));
        let page = pagination::page::<store::AnomalyList>(
            &state.db,
            &state.cursors,
            &self.tenant,
            &filter,
            &request,
        )
        .await?
        .map(CostAnomaly);
        Ok(CostAnomalyConnection(page))
    }

    /// Projected spend from the average of the `lookbackDays` complete UTC days before today
    /// (1..30, default 7), over `forecastDays` (1..30, default 7) and a 30-day month.
    async fn projection(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 7)] lookback_days: i32,
        #[graphql(default = 7)] forecast_days: i32,
    ) -> async_graphql::Result<CostProjection> {
        let lookback_days = range_arg("lookbackDays", lookback_days)?;
        let forecast_days = range_arg("forecastDays", forecast_days)?;
        let state = ctx.data_unchecked::<AppState>();
        let today = self.now.date_naive();
        let read = DayWindow {
            from: (today - Days::new(u64::from(lookback_days))).min(month_start(today)),
            to: today,
        };
        let days = self.day_totals(ctx, &read).await?;
        let budget = store::tenant_budget(&state.db, &self.tenant).await?;
        Ok(CostProjection(compute::projection(
            today,
            lookback_days,
            forecast_days,
            &days,
            budget.as_ref(),
        )))
    }

    /// The tenant's budgets, newest first, active ones only unless `includeInactive`, each with
    /// today's and month-to-date spend (one statement for the spend of a whole page).
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    async fn budgets(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_inactive: bool,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<CostBudgetConnection> {
        let state = ctx.data_unchecked::<AppState>();
        let request = PageRequest::new(first, after, last, before, None)
            .sized(crate::pagination::page_sizes(ctx));
        let page = store::budget_page(
            &state.db,
            &state.cursors,
            &self.tenant,
            include_inactive,
            &request,
            self.now.date_naive(),
        )
        .await?
        .map(CostBudget);
        Ok(CostBudgetConnection(page))
    }

    /// The tenant's feature tags, newest first; active ones only unless `includeInactive`.
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    async fn feature_tags(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] include_inactive: bool,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<FeatureTagConnection> {
        let state = ctx.data_unchecked::<AppState>();
        let request = PageRequest::new(first, after, last, before, None)
            .sized(crate::pagination::page_sizes(ctx));
        let page = pagination::page::<store::FeatureTagList>(
            &state.db,
            &state.cursors,
            &self.tenant,
            &include_inactive,
            &request,
        )
        .await?
        .map(FeatureTag);
        Ok(FeatureTagConnection(page))
    }
}

#[derive(Default)]
pub struct CostRootQuery;

#[Object]
impl CostRootQuery {
    /// Cost intelligence of the key's tenant (roles VIEWER, OPERATOR, ADMIN): summary,
    /// breakdowns, daily series, anomalies, projection, budgets and feature tags.
    async fn cost(&self, ctx: &Context<'_>) -> async_graphql::Result<CostQuery> {
        let principal = auth::require(ctx, Permission::Read).await?;
        Ok(CostQuery {
            tenant: principal.tenant_id,
            now: crate::scalars::now(),
        })
    }
}
