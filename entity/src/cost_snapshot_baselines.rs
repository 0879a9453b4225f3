//! `cost_snapshot_baselines` (docs/domain.md §9.1): rolling baselines. At most one row with
//! `is_current = true` per (tenant_id, entity_type, entity_id, window_days).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_snapshot_baselines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// tenant, user, feature or model
    pub entity_type: String,
    /// '' for the tenant-level baseline
    pub entity_id: String,
    pub avg_daily_cost_cents: f64,
    pub stddev_daily_cost_cents: Option<f64>,
    pub avg_daily_requests: f64,
    pub max_daily_cost_cents: Option<f64>,
    pub min_daily_cost_cents: Option<f64>,
    pub window_days: i32,
    pub samples_count: i32,
    pub computed_at: DateTimeUtc,
    pub valid_until: DateTimeUtc,
    pub is_current: bool,
    pub last_snapshot_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
