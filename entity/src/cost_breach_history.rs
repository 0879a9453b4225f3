//! `cost_breach_history` (docs/domain.md §9.1): one breach row per entity per day per type.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_breach_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// tenant, user, feature or model
    pub entity_type: String,
    /// '' for tenant-level
    pub entity_id: String,
    /// ABSOLUTE_SPIKE or SUSTAINED_DRIFT
    pub breach_type: String,
    pub breach_date: Date,
    pub deviation_pct: f64,
    pub current_value_cents: f64,
    pub baseline_value_cents: f64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
