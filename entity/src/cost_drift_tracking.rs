//! `cost_drift_tracking` (docs/domain.md §9.1): one sustained-drift tracker per entity.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_drift_tracking")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// tenant, user, feature or model
    pub entity_type: String,
    /// '' for tenant-level
    pub entity_id: String,
    pub rolling_7d_avg_cents: f64,
    pub baseline_7d_avg_cents: f64,
    pub drift_pct: f64,
    pub drift_days_count: i32,
    pub first_drift_date: Date,
    pub last_check_date: Date,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
