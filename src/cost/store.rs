//! SQL for the cost read side. Every query is scoped to one tenant in the SQL itself and reads
//! the rollup `cost_daily_aggregates` (never the raw `cost_records`), the budgets, the feature
//! tags or the anomalies. The `''` grain predicates are written as literals so both planners can
//! use the partial per-grain indexes (see `rollup`).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use entity::{cost_anomalies, cost_budgets, cost_daily_aggregates as cda, feature_tags};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use super::{
    AnomalyFilter, AnomalySnapshot, BudgetSnapshot, BudgetSpend, BudgetWithSpend,
    CostAnomalySeverity, CostAnomalyType, CostBudgetType, CostDerivedCause, CostEntityType,
    CostTotals, DayWindow, FeatureTagSnapshot, GroupTotals,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::pagination::{self, CursorCodec, Listed, Page, PageRequest, Position};

/// A grouping of the rollup that the breakdowns read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Feature,
    User,
    Model,
}

impl Grain {
    /// The group column and the literal predicates selecting the grain's rows.
    fn parts(self) -> (cda::Column, &'static str) {
        match self {
            Grain::Feature => (
                cda::Column::FeatureTag,
                "user_id = '' AND model = '' AND feature_tag <> ''",
            ),
            Grain::User => (
                cda::Column::UserId,
                "feature_tag = '' AND model = '' AND user_id <> ''",
            ),
            Grain::Model => (
                cda::Column::Model,
                "feature_tag = '' AND user_id = '' AND model <> ''",
            ),
        }
    }
}

/// Rows of the day-total grain.
const TOTAL_GRAIN: &str = "feature_tag = '' AND user_id = '' AND model = ''";

fn sum_cost() -> Expr {
    Expr::cust("CAST(SUM(total_cost_cents) AS DOUBLE PRECISION)")
}

fn sum_big(col: &str) -> Expr {
    Expr::cust(format!("CAST(SUM({col}) AS BIGINT)"))
}

fn in_window(tenant: &TenantId, window: &DayWindow) -> Select<cda::Entity> {
    cda::Entity::find()
        .filter(cda::Column::TenantId.eq(tenant.as_str()))
        .filter(cda::Column::Date.gte(window.from))
        .filter(cda::Column::Date.lte(window.to))
}

type SumRow = (f64, i64, i64, i64);

fn totals((cost_cents, input_tokens, output_tokens, requests): SumRow) -> CostTotals {
    CostTotals {
        cost_cents,
        input_tokens,
        output_tokens,
        requests,
    }
}

/// Totals per group of `grain` over the window, largest cost first (ties by key).
pub async fn grain_totals(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    window: &DayWindow,
    grain: Grain,
) -> AppResult<Vec<GroupTotals>> {
    let (column, predicate) = grain.parts();
    let rows: Vec<(String, f64, i64, i64, i64)> = in_window(tenant, window)
        .filter(Expr::cust(predicate))
        .select_only()
        .column(column)
        .expr(sum_cost())
        .expr(sum_big("total_input_tokens"))
        .expr(sum_big("total_output_tokens"))
        .expr(sum_big("request_count"))
        .group_by(column)
        .into_tuple()
        .all(db)
        .await?;
    let mut out: Vec<GroupTotals> = rows
        .into_iter()
        .map(|(key, c, i, o, r)| GroupTotals {
            key,
            totals: totals((c, i, o, r)),
        })
        .collect();
    out.sort_by(|a, b| {
        b.totals
            .cost_cents
            .total_cmp(&a.totals.cost_cents)
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(out)
}

/// The tenant's day totals over the window, ascending; days without cost are absent.
pub async fn daily_totals(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    window: &DayWindow,
) -> AppResult<Vec<(NaiveDate, CostTotals)>> {
    let rows: Vec<(NaiveDate, f64, i64, i64, i32)> = in_window(tenant, window)
        .filter(Expr::cust(TOTAL_GRAIN))
        .select_only()
        .column(cda::Column::Date)
        .column(cda::Column::TotalCostCents)
        .column(cda::Column::TotalInputTokens)
        .column(cda::Column::TotalOutputTokens)
        .column(cda::Column::RequestCount)
        .order_by_asc(cda::Column::Date)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(day, c, i, o, r)| (day, totals((c, i, o, i64::from(r)))))
        .collect())
}

pub(crate) fn budget_snapshot(m: cost_budgets::Model) -> AppResult<BudgetSnapshot> {
    let budget_type = CostBudgetType::parse(&m.budget_type).ok_or_else(|| {
        AppError::internal(format!(
            "budget {} has unknown type {}",
            m.id, m.budget_type
        ))
    })?;
    Ok(BudgetSnapshot {
        id: m.id,
        budget_type,
        entity_id: (budget_type != CostBudgetType::Tenant).then_some(m.entity_id),
        daily_limit_cents: m.daily_limit_cents,
        monthly_limit_cents: m.monthly_limit_cents,
        warn_threshold_pct: m.warn_threshold_pct,
        hard_limit_enabled: m.hard_limit_enabled,
        is_active: m.is_active,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// The tenant's active tenant-level budget, if any.
pub async fn tenant_budget(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
) -> AppResult<Option<BudgetSnapshot>> {
    cost_budgets::Entity::find()
        .filter(cost_budgets::Column::TenantId.eq(tenant.as_str()))
        .filter(cost_budgets::Column::BudgetType.eq("tenant"))
        .filter(cost_budgets::Column::EntityId.eq(""))
        .filter(cost_budgets::Column::IsActive.eq(true))
        .one(db)
        .await?
        .map(budget_snapshot)
        .transpose()
}

/// Today's and month-to-date spend of each budget, in ONE statement over the rollup whatever
/// the number of budgets (docs/decisions.md D33): the tenant grain for tenant budgets, the feature
/// and user grains for the others. Keyed by budget id.
pub async fn budget_spend(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    budgets: &[BudgetSnapshot],
    today: NaiveDate,
) -> AppResult<HashMap<String, BudgetSpend>> {
    if budgets.is_empty() {
        return Ok(HashMap::new());
    }
    let entities = |kind: CostBudgetType| -> BTreeSet<&str> {
        budgets
            .iter()
            .filter(|b| b.budget_type == kind)
            .filter_map(|b| b.entity_id.as_deref())
            .collect()
    };
    let features = entities(CostBudgetType::Feature);
    let users = entities(CostBudgetType::User);
    let mut grains = Condition::any();
    if budgets
        .iter()
        .any(|b| b.budget_type == CostBudgetType::Tenant)
    {
        grains = grains.add(Expr::cust("feature_tag = '' AND user_id = ''"));
    }
    if !features.is_empty() {
        grains = grains.add(
            Condition::all()
                .add(Expr::cust("user_id = ''"))
                .add(cda::Column::FeatureTag.is_in(features.iter().copied())),
        );
    }
    if !users.is_empty() {
        grains = grains.add(
            Condition::all()
                .add(Expr::cust("feature_tag = ''"))
                .add(cda::Column::UserId.is_in(users.iter().copied())),
        );
    }
    let month = DayWindow {
        from: super::month_start(today),
        to: today,
    };
    let rows: Vec<(String, String, f64, f64)> = in_window(tenant, &month)
        .filter(Expr::cust("model = ''"))
        .filter(grains)
        .select_only()
        .column(cda::Column::FeatureTag)
        .column(cda::Column::UserId)
        // The day is a formatted date, inlined as a literal.
        .expr(Expr::cust(format!(
            "CAST(SUM(CASE WHEN date = '{}' THEN total_cost_cents ELSE 0.0 END) \
             AS DOUBLE PRECISION)",
            today.format("%Y-%m-%d")
        )))
        .expr(sum_cost())
        .group_by(cda::Column::FeatureTag)
        .group_by(cda::Column::UserId)
        .into_tuple()
        .all(db)
        .await?;
    let by_group: HashMap<(String, String), BudgetSpend> = rows
        .into_iter()
        .map(|(feature, user, daily, monthly)| {
            (
                (feature, user),
                BudgetSpend {
                    daily_cents: daily,
                    monthly_cents: monthly,
                },
            )
        })
        .collect();
    Ok(budgets
        .iter()
        .map(|b| {
            let entity = b.entity_id.clone().unwrap_or_default();
            let group = match b.budget_type {
                CostBudgetType::Tenant => (String::new(), String::new()),
                CostBudgetType::Feature => (entity, String::new()),
                CostBudgetType::User => (String::new(), entity),
            };
            (
                b.id.clone(),
                by_group.get(&group).copied().unwrap_or_default(),
            )
        })
        .collect())
}

/// The tenant's budgets, newest first; inactive ones only when the filter says so
/// (`cost.budgets`).
pub struct BudgetList;

impl Listed for BudgetList {
    type Entity = cost_budgets::Entity;
    /// Whether inactive budgets are listed too.
    type Filter = bool;
    type Row = BudgetSnapshot;
    const NAME: &'static str = "cost.budgets";
    const ORDER: (cost_budgets::Column, cost_budgets::Column) =
        (cost_budgets::Column::CreatedAt, cost_budgets::Column::Id);
    const ROW: fn(cost_budgets::Model) -> AppResult<BudgetSnapshot> = budget_snapshot;
    const POSITION: fn(&BudgetSnapshot) -> Position = |b| Position::of(b.created_at, &b.id);

    fn select(
        tenant: &TenantId,
        include_inactive: &bool,
        _: Option<DateTime<Utc>>,
    ) -> Select<cost_budgets::Entity> {
        let select =
            cost_budgets::Entity::find().filter(cost_budgets::Column::TenantId.eq(tenant.as_str()));
        if *include_inactive {
            select
        } else {
            select.filter(cost_budgets::Column::IsActive.eq(true))
        }
    }
}

/// One page of the tenant's budgets (inactive ones too when `include_inactive`), newest first,
/// each with its current spend (one statement for the page, one for all its budgets' spend).
pub async fn budget_page(
    db: &DatabaseConnection,
    codec: &CursorCodec,
    tenant: &TenantId,
    include_inactive: bool,
    request: &PageRequest,
    today: NaiveDate,
) -> AppResult<Page<BudgetWithSpend>> {
    let page =
        pagination::page::<BudgetList>(db, codec, tenant, &include_inactive, request).await?;
    let budgets: Vec<BudgetSnapshot> = page.edges.iter().map(|(_, b)| b.clone()).collect();
    let spend = budget_spend(db, tenant, &budgets, today).await?;
    Ok(page.map(|budget| {
        let spend = spend.get(&budget.id).copied().unwrap_or_default();
        BudgetWithSpend { budget, spend }
    }))
}

pub(crate) fn feature_tag_snapshot(m: feature_tags::Model) -> AppResult<FeatureTagSnapshot> {
    Ok(FeatureTagSnapshot {
        id: m.id,
        tag: m.tag,
        display_name: m.display_name,
        description: m.description,
        budget_cents: m.budget_cents,
        is_active: m.is_active,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// The tenant's feature tags among `tags` (active or not), by tag.
pub async fn feature_tags_by_tag(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    tags: &[&str],
) -> AppResult<HashMap<String, FeatureTagSnapshot>> {
    if tags.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = feature_tags::Entity::find()
        .filter(feature_tags::Column::TenantId.eq(tenant.as_str()))
        .filter(feature_tags::Column::Tag.is_in(tags.iter().copied()))
        .all(db)
        .await?;
    rows.into_iter()
        .map(|m| feature_tag_snapshot(m).map(|s| (s.tag.clone(), s)))
        .collect()
}

/// The tenant's feature tags, newest first; inactive ones only when the filter says so
/// (`cost.featureTags`).
pub struct FeatureTagList;

impl Listed for FeatureTagList {
    type Entity = feature_tags::Entity;
    /// Whether inactive tags are listed too.
    type Filter = bool;
    type Row = FeatureTagSnapshot;
    const NAME: &'static str = "cost.featureTags";
    const ORDER: (feature_tags::Column, feature_tags::Column) =
        (feature_tags::Column::CreatedAt, feature_tags::Column::Id);
    const ROW: fn(feature_tags::Model) -> AppResult<FeatureTagSnapshot> = feature_tag_snapshot;
    const POSITION: fn(&FeatureTagSnapshot) -> Position = |t| Position::of(t.created_at, &t.id);

    fn select(
        tenant: &TenantId,
        include_inactive: &bool,
        _: Option<DateTime<Utc>>,
    ) -> Select<feature_tags::Entity> {
        let select =
            feature_tags::Entity::find().filter(feature_tags::Column::TenantId.eq(tenant.as_str()));
        if *include_inactive {
            select
        } else {
            select.filter(feature_tags::Column::IsActive.eq(true))
        }
    }
}

pub(crate) fn anomaly_snapshot(m: cost_anomalies::Model) -> AppResult<AnomalySnapshot> {
    let bad = |what: &str, value: &str| {
        AppError::internal(format!("cost anomaly {} has unknown {what} {value}", m.id))
    };
    let anomaly_type =
        CostAnomalyType::parse(&m.anomaly_type).ok_or_else(|| bad("type", &m.anomaly_type))?;
    let severity =
        CostAnomalySeverity::parse(&m.severity).ok_or_else(|| bad("severity", &m.severity))?;
    let entity_type =
        CostEntityType::parse(&m.entity_type).ok_or_else(|| bad("entity type", &m.entity_type))?;
    let derived_cause = match m.derived_cause.as_deref() {
        Some(c) => Some(CostDerivedCause::parse(c).ok_or_else(|| bad("derived cause", c))?),
        None => None,
    };
    Ok(AnomalySnapshot {
        id: m.id,
        anomaly_type,
        severity,
        entity_type,
        entity_id: m.entity_id,
        current_value_cents: m.current_value_cents,
        expected_value_cents: m.expected_value_cents,
        deviation_pct: m.deviation_pct,
        threshold_pct: m.threshold_pct,
        message: m.message,
        incident_id: m.incident_id,
        action_taken: m.action_taken,
        resolved: m.resolved,
        resolved_at: m.resolved_at,
        metadata: m.metadata,
        detected_at: m.detected_at,
        derived_cause,
        breach_count: m.breach_count,
        acknowledged_at: m.acknowledged_at,
        acknowledged_by: m.acknowledged_by,
        resolved_by: m.resolved_by,
        resolution_note: m.resolution_note,
    })
}

/// The tenant's anomalies matching a filter, most recently detected first (`cost.anomalies`).
pub struct AnomalyList;

impl Listed for AnomalyList {
    type Entity = cost_anomalies::Entity;
    type Filter = AnomalyFilter;
    type Row = AnomalySnapshot;
    const NAME: &'static str = "cost.anomalies";
    const ORDER: (cost_anomalies::Column, cost_anomalies::Column) = (
        cost_anomalies::Column::DetectedAt,
        cost_anomalies::Column::Id,
    );
    const ROW: fn(cost_anomalies::Model) -> AppResult<AnomalySnapshot> = anomaly_snapshot;
    const POSITION: fn(&AnomalySnapshot) -> Position = |a| Position::of(a.detected_at, &a.id);

    fn select(
        tenant: &TenantId,
        filter: &AnomalyFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<cost_anomalies::Entity> {
        use cost_anomalies::Column as C;
        let mut select = cost_anomalies::Entity::find().filter(C::TenantId.eq(tenant.as_str()));
        if !filter.include_resolved {
            select = select.filter(C::Resolved.eq(false));
        }
        if let Some(since) = filter.since {
            select = select.filter(C::DetectedAt.gte(since));
        }
        if let Some(severities) = &filter.severity {
            select = select.filter(C::Severity.is_in(severities.iter().map(|s| s.as_str())));
        }
        if let Some(types) = &filter.anomaly_type {
            select = select.filter(C::AnomalyType.is_in(types.iter().map(|t| t.as_str())));
        }
        select
    }
}

/// The tenant's cost anomalies escalated to each of these incidents, newest detection first, in
/// one statement.
pub async fn anomalies_for_incidents(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    incident_ids: &[String],
) -> AppResult<HashMap<String, Vec<AnomalySnapshot>>> {
    use cost_anomalies::Column as A;
    let mut out: HashMap<String, Vec<AnomalySnapshot>> = HashMap::new();
    if incident_ids.is_empty() {
        return Ok(out);
    }
    let rows = cost_anomalies::Entity::find()
        .filter(A::TenantId.eq(tenant.as_str()))
        .filter(A::IncidentId.is_in(incident_ids.iter().map(String::as_str)))
        .order_by_desc(A::DetectedAt)
        .order_by_desc(A::Id)
        .all(db)
        .await?;
    for row in rows {
        let anomaly = anomaly_snapshot(row)?;
        if let Some(incident) = anomaly.incident_id.clone() {
            out.entry(incident).or_default().push(anomaly);
        }
    }
    Ok(out)
}
