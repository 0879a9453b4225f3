//! Cost writes other than detection (docs/domain.md §9.2, §9.3): recording cost records through the
//! rollup writer, feature tags and budgets. Every statement names the tenant; inputs arrive
//! already checked by the resolvers (`mutation`), so errors here are conflicts or lookups.

use chrono::{DateTime, Utc};
use entity::{cost_budgets, cost_records, feature_tags};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use super::rollup::{new_id, record_costs, NewCostRecord};
use super::store;
use super::{BudgetSnapshot, CostBudgetType, FeatureTagSnapshot, UNCLASSIFIED};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::scalars::now;

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
pub async fn record_cost_batch(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    rows: &[NewCostRecord],
) -> AppResult<Vec<RecordedCost>> {
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
    ids.into_iter()
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
        .collect()
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
