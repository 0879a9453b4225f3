//! `cost_budgets` (docs/domain.md §9.1). Unique per (tenant_id, budget_type, entity_id);
//! `entity_id` is '' for tenant budgets (CHECK-enforced), never NULL.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_budgets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// tenant, feature or user
    pub budget_type: String,
    /// '' for budget_type = tenant, else the feature tag or user id
    pub entity_id: String,
    pub daily_limit_cents: Option<i32>,
    pub monthly_limit_cents: Option<i32>,
    pub warn_threshold_pct: i32,
    pub hard_limit_enabled: bool,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
