//! Cost writes other than detection (docs/domain.md §9.2, §9.3, §9.6, §9.7): recording cost records
//! through the rollup writer (refused past a hard budget), feature tags, budgets and the anomaly
//! workflow. Every statement names the tenant; inputs arrive already checked by the resolvers
//! (`mutation`), so errors here are conflicts, lookups, refused transitions or budgets.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use entity::{cost_anomalies, cost_budgets, cost_records, feature_tags};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use super::rollup::{new_id, record_costs, NewCostRecord};
use super::store;
use super::{
    month_start, AnomalySnapshot, BudgetSnapshot, CostBudgetType, FeatureTagSnapshot, ANONYMOUS,
    UNCLASSIFIED,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::scalars::{format_utc, now};

/// One stored cost record, as `recordCost` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCost {
    pub id: String,
    /// The tag the record was attributed to (`unclassified` when the requested one was missing,
    /// unknown or inactive).
    pub feature_tag: String,
    pub requested_feature_tag: Option<String>,
    pub model: String,
    pub cost_cents: f64,
    pub created_at: DateTime<Utc>,
}

/// Writes a batch of cost records and their rollup deltas in one transaction: all or nothing.
/// A batch that would take the spend of an active hard-limited budget past its limit is refused
/// with [`AppError::BudgetExceeded`], and the caller's transaction rolls back (see
/// [`enforce_hard_budgets`]).
pub async fn record_cost_batch(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    rows: &[NewCostRecord],
) -> AppResult<Vec<RecordedCost>> {
    let hard = lock_hard_budgets(txn, tenant).await?;
    let ids = record_costs(txn, tenant, rows).await?;
    let mut stored: std::collections::HashMap<String, (Option<String>, DateTime<Utc>)> =
        std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let found: Vec<(String, Option<String>, DateTime<Utc>)> = cost_records::Entity::find()
            .select_only()
            .column(cost_records::Column::Id)
            .column(cost_records::Column::FeatureTag)
            .column(cost_records::Column::CreatedAt)
            .filter(cost_records::Column::TenantId.eq(tenant.as_str()))
            .filter(cost_records::Column::Id.is_in(chunk.iter().map(String::as_str)))
            .into_tuple()
            .all(txn)
            .await?;
        stored.extend(found.into_iter().map(|(id, tag, at)| (id, (tag, at))));
    }
    let recorded = ids
        .into_iter()
        .zip(rows)
        .map(|(id, row)| {
            let (tag, created_at) = stored
                .remove(&id)
                .ok_or_else(|| AppError::internal("a recorded cost row was not read back"))?;
            Ok(RecordedCost {
                id,
                feature_tag: tag.unwrap_or_else(|| UNCLASSIFIED.to_owned()),
                requested_feature_tag: row.feature_tag.clone(),
                model: row.model.clone(),
                cost_cents: row.cost_cents,
                created_at,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    if !hard.is_empty() {
        enforce_hard_budgets(txn, tenant, &hard, &recorded, rows, now().date_naive()).await?;
    }
    Ok(recorded)
}

/// The tenant's active budgets whose hard limit is on, locked for the rest of the transaction.
///
/// On PostgreSQL the rows are taken `FOR UPDATE`, in id order, before the batch writes anything:
/// every `recordCost` of a tenant with a hard budget waits here for the one before it to
/// commit, so its spend read after its own writes sees every committed record and no two
/// writers can both pass a limit that only one of them fits under (several server processes
/// share the database, so a process-local lock would not do). Writers then lock the rollup rows
/// in the same order as before. On SQLite the write transaction (`BEGIN IMMEDIATE`) already
/// serialises writers. docs/writes.md, "Hard budgets".
async fn lock_hard_budgets(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
) -> AppResult<Vec<BudgetSnapshot>> {
    use cost_budgets::Column as C;
    let mut select = cost_budgets::Entity::find()
        .filter(C::TenantId.eq(tenant.as_str()))
        .filter(C::IsActive.eq(true))
        .filter(C::HardLimitEnabled.eq(true))
        .order_by_asc(C::Id);
    if txn.get_database_backend() == DbBackend::Postgres {
        select = select.lock_exclusive();
    }
    select
        .all(txn)
        .await?
        .into_iter()
        .map(store::budget_snapshot)
        .collect()
}

/// Cents below which a spend over a limit is float rounding, not an overrun.
const LIMIT_EPSILON_CENTS: f64 = 1e-6;

/// What a batch adds to one budget: its cost today and in the month to date (UTC).
#[derive(Default, Clone, Copy)]
struct BudgetDelta {
    daily: f64,
    monthly: f64,
}

/// Refuses the batch when, with its records written, a hard budget it adds cost to is over its
/// daily or monthly limit. Runs after the writes, in the same transaction and under the locks
/// of [`lock_hard_budgets`], so the spend read from the rollup is the committed spend plus this
/// batch, resolved feature tags included. A budget the batch adds nothing to is not checked (an
/// overrun that predates the batch, e.g. a limit lowered below the spend, refuses only records
/// that would add to it).
async fn enforce_hard_budgets(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    hard: &[BudgetSnapshot],
    recorded: &[RecordedCost],
    rows: &[NewCostRecord],
    today: NaiveDate,
) -> AppResult<()> {
    let month = month_start(today);
    let mut deltas: HashMap<&str, BudgetDelta> = HashMap::new();
    for (stored, row) in recorded.iter().zip(rows) {
        let day = stored.created_at.date_naive();
        if stored.cost_cents <= 0.0 || day < month || day > today {
            continue;
        }
        let user = row
            .user_id
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(ANONYMOUS);
        for budget in hard {
            let applies = match budget.budget_type {
                CostBudgetType::Tenant => true,
                CostBudgetType::Feature => budget.entity_id.as_deref() == Some(&stored.feature_tag),
                CostBudgetType::User => budget.entity_id.as_deref() == Some(user),
            };
            if applies {
                let delta = deltas.entry(budget.id.as_str()).or_default();
                delta.monthly += stored.cost_cents;
                if day == today {
                    delta.daily += stored.cost_cents;
                }
            }
        }
    }
    let touched: Vec<BudgetSnapshot> = hard
        .iter()
        .filter(|b| deltas.contains_key(b.id.as_str()))
        .cloned()
        .collect();
    if touched.is_empty() {
        return Ok(());
    }
    let spend = store::budget_spend(txn, tenant, &touched, today).await?;
    for budget in &touched {
        let delta = deltas.get(budget.id.as_str()).copied().unwrap_or_default();
        let now_spent = spend.get(&budget.id).copied().unwrap_or_default();
        let checks = [
            (
                "DAILY",
                budget.daily_limit_cents,
                delta.daily,
                now_spent.daily_cents,
            ),
            (
                "MONTHLY",
                budget.monthly_limit_cents,
                delta.monthly,
                now_spent.monthly_cents,
            ),
        ];
        for (period, limit, added, total) in checks {
            let Some(limit) = limit.map(f64::from) else {
                continue;
            };
            if added > 0.0 && total > limit + LIMIT_EPSILON_CENTS {
                let entity = budget
                    .entity_id
                    .as_deref()
                    .map(|e| format!(" `{e}`"))
                    .unwrap_or_default();
                return Err(AppError::BudgetExceeded {
                    message: format!(
                        "BUDGET_EXCEEDED: these records would take the {} {}{entity} budget to \
                         {total:.4} cents, past its hard {} limit of {limit} cents; nothing was \
                         recorded",
                        period.to_lowercase(),
                        budget.budget_type.as_str(),
                        period.to_lowercase(),
                    ),
                    budget_id: budget.id.clone(),
                    period,
                    limit_cents: limit,
                    spend_cents: total,
                });
            }
        }
    }
    Ok(())
}

/// A feature tag to create (checked by the resolver).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewFeatureTag {
    pub tag: String,
    pub display_name: String,
    pub description: Option<String>,
    pub budget_cents: Option<i32>,
    pub is_active: bool,
}

pub async fn feature_tag_by_tag(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    tag: &str,
) -> AppResult<Option<FeatureTagSnapshot>> {
    feature_tags::Entity::find()
        .filter(feature_tags::Column::TenantId.eq(tenant.as_str()))
        .filter(feature_tags::Column::Tag.eq(tag))
        .one(db)
        .await?
        .map(store::feature_tag_snapshot)
        .transpose()
}

/// Creates a tag; a tag the tenant already has is `BAD_USER_INPUT` on `input.tag` (the unique
/// key decides, so two concurrent creations cannot both succeed).
pub async fn create_feature_tag(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    new: &NewFeatureTag,
) -> AppResult<FeatureTagSnapshot> {
    let at = now();
    let model = feature_tags::ActiveModel {
        id: Set(new_id("ft_")),
        tenant_id: Set(tenant.as_str().to_owned()),
        tag: Set(new.tag.clone()),
        display_name: Set(new.display_name.clone()),
        description: Set(new.description.clone()),
        budget_cents: Set(new.budget_cents),
        is_active: Set(new.is_active),
        created_at: Set(at),
        updated_at: Set(at),
    };
    let inserted = feature_tags::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([feature_tags::Column::TenantId, feature_tags::Column::Tag])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    if inserted == 0 {
        return Err(AppError::bad_input(
            "input.tag",
            format!("feature tag `{}` already exists", new.tag),
        ));
    }
    feature_tag_by_tag(db, tenant, &new.tag)
        .await?
        .ok_or_else(|| AppError::internal("created feature tag not found"))
}

/// A partial update: `None` leaves a field as it is; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeatureTagChanges {
    pub display_name: Option<String>,
    pub description: Option<Option<String>>,
    pub budget_cents: Option<Option<i32>>,
    pub is_active: Option<bool>,
}

/// Updates the given fields of the tenant's tag; `NOT_FOUND` for a tag it does not have.
pub async fn update_feature_tag(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    tag: &str,
    changes: &FeatureTagChanges,
) -> AppResult<FeatureTagSnapshot> {
    use feature_tags::Column as C;
    let mut update = feature_tags::Entity::update_many()
        .col_expr(C::UpdatedAt, Expr::value(now()))
        .filter(C::TenantId.eq(tenant.as_str()))
        .filter(C::Tag.eq(tag));
    if let Some(name) = &changes.display_name {
        update = update.col_expr(C::DisplayName, Expr::value(name.clone()));
    }
    if let Some(description) = &changes.description {
        update = update.col_expr(C::Description, Expr::value(description.clone()));
    }
    if let Some(budget) = changes.budget_cents {
        update = update.col_expr(C::BudgetCents, Expr::value(budget));
    }
    if let Some(active) = changes.is_active {
        update = update.col_expr(C::IsActive, Expr::value(active));
    }
    if update.exec(db).await?.rows_affected == 0 {
        return Err(AppError::NotFound("FeatureTag"));
    }
    feature_tag_by_tag(db, tenant, tag)
        .await?
        .ok_or(AppError::NotFound("FeatureTag"))
}

/// A budget to create or update (checked by the resolver). `entity_id` is `None` exactly for
/// the tenant budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetUpsert {
    pub budget_type: CostBudgetType,
    pub entity_id: Option<String>,
    pub daily_limit_cents: Option<i32>,
    pub monthly_limit_cents: Option<i32>,
    pub warn_threshold_pct: i32,
    pub hard_limit_enabled: bool,
    /// `None` keeps an existing budget's flag (a new one is active).
    pub is_active: Option<bool>,
}

/// Creates the tenant's budget for (type, entity) or updates its limits, threshold and hard
/// flag — one atomic `INSERT … ON CONFLICT` on the unique (tenant, type, entity) key, where the
/// tenant budget's entity is the `''` sentinel so it is unique too (docs/decisions.md D30).
pub async fn upsert_budget(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    budget: &BudgetUpsert,
) -> AppResult<BudgetSnapshot> {
    use cost_budgets::Column as C;
    let at = now();
    let entity = budget.entity_id.clone().unwrap_or_default();
    let model = cost_budgets::ActiveModel {
        id: Set(new_id("cb_")),
        tenant_id: Set(tenant.as_str().to_owned()),
        budget_type: Set(budget.budget_type.as_str().to_owned()),
        entity_id: Set(entity.clone()),
        daily_limit_cents: Set(budget.daily_limit_cents),
        monthly_limit_cents: Set(budget.monthly_limit_cents),
        warn_threshold_pct: Set(budget.warn_threshold_pct),
        hard_limit_enabled: Set(budget.hard_limit_enabled),
        is_active: Set(budget.is_active.unwrap_or(true)),
        created_at: Set(at),
        updated_at: Set(at),
    };
    let mut update = vec![
        C::DailyLimitCents,
        C::MonthlyLimitCents,
        C::WarnThresholdPct,
        C::HardLimitEnabled,
        C::UpdatedAt,
    ];
    if budget.is_active.is_some() {
        update.push(C::IsActive);
    }
    cost_budgets::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([C::TenantId, C::BudgetType, C::EntityId])
                .update_columns(update)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    let row = cost_budgets::Entity::find()
        .filter(C::TenantId.eq(tenant.as_str()))
        .filter(C::BudgetType.eq(budget.budget_type.as_str()))
        .filter(C::EntityId.eq(entity))
        .one(db)
        .await?
        .ok_or_else(|| AppError::internal("upserted budget not found"))?;
    store::budget_snapshot(row)
}

/// The tenant's budget by id (active or not).
pub async fn budget_by_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<Option<BudgetSnapshot>> {
    cost_budgets::Entity::find()
        .filter(cost_budgets::Column::TenantId.eq(tenant.as_str()))
        .filter(cost_budgets::Column::Id.eq(id))
        .one(db)
        .await?
        .map(store::budget_snapshot)
        .transpose()
}

/// The tenant's anomaly by id, `NOT_FOUND` when it has none (another tenant's included).
async fn anomaly(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<AnomalySnapshot> {
    cost_anomalies::Entity::find()
        .filter(cost_anomalies::Column::TenantId.eq(tenant.as_str()))
        .filter(cost_anomalies::Column::Id.eq(id))
        .one(db)
        .await?
        .map(store::anomaly_snapshot)
        .transpose()?
        .ok_or(AppError::NotFound("CostAnomaly"))
}

/// The tenant's anomaly by id, for a replayed idempotency key.
pub async fn anomaly_by_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<AnomalySnapshot> {
    anomaly(db, tenant, id).await
}

fn by_at(who: Option<&str>, at: Option<DateTime<Utc>>) -> String {
    let who = who.map(|w| format!(" by {w}")).unwrap_or_default();
    let at = at
        .map(|a| format!(" at {}", format_utc(a)))
        .unwrap_or_default();
    format!("{who}{at}")
}

/// `OPEN → ACKNOWLEDGED`, once. The update matches only an open anomaly of the tenant; when it
/// matches nothing, the tenant's row (if any) tells `INVALID_TRANSITION` from `NOT_FOUND`.
pub async fn acknowledge_anomaly(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    id: &str,
    actor: &str,
) -> AppResult<AnomalySnapshot> {
    use cost_anomalies::Column as C;
    let done = cost_anomalies::Entity::update_many()
        .col_expr(C::AcknowledgedAt, Expr::value(now()))
        .col_expr(C::AcknowledgedBy, Expr::value(actor.to_owned()))
        .filter(C::TenantId.eq(tenant.as_str()))
        .filter(C::Id.eq(id))
        .filter(C::Resolved.eq(false))
        .filter(C::AcknowledgedAt.is_null())
        .exec(txn)
        .await?
        .rows_affected;
    let current = anomaly(txn, tenant, id).await?;
    if done == 0 {
        let why = if current.resolved {
            format!(
                "cost anomaly {id} is resolved{}; a resolved anomaly cannot be acknowledged",
                by_at(current.resolved_by.as_deref(), current.resolved_at)
            )
        } else {
            format!(
                "cost anomaly {id} is already acknowledged{}",
                by_at(current.acknowledged_by.as_deref(), current.acknowledged_at)
            )
        };
        return Err(AppError::InvalidTransition(why));
    }
    Ok(current)
}

/// `OPEN | ACKNOWLEDGED → RESOLVED`, once; the first resolver, time and note stay.
pub async fn resolve_anomaly(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    id: &str,
    actor: &str,
    note: Option<&str>,
) -> AppResult<AnomalySnapshot> {
    use cost_anomalies::Column as C;
    let done = cost_anomalies::Entity::update_many()
        .col_expr(C::Resolved, Expr::value(true))
        .col_expr(C::ResolvedAt, Expr::value(now()))
        .col_expr(C::ResolvedBy, Expr::value(actor.to_owned()))
        .col_expr(C::ResolutionNote, Expr::value(note.map(str::to_owned)))
        .filter(C::TenantId.eq(tenant.as_str()))
        .filter(C::Id.eq(id))
        .filter(C::Resolved.eq(false))
        .exec(txn)
        .await?
        .rows_affected;
    let current = anomaly(txn, tenant, id).await?;
    if done == 0 {
        return Err(AppError::InvalidTransition(format!(
            "cost anomaly {id} is already resolved{}",
            by_at(current.resolved_by.as_deref(), current.resolved_at)
        )));
    }
    Ok(current)
}
