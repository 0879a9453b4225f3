//! `cost_daily_aggregates` (docs/domain.md §9.1): pre-aggregated daily cost. The group
//! columns use '' (never NULL) for "all" so the unique key works.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_daily_aggregates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub date: Date,
    /// '' = all features
    pub feature_tag: String,
    /// '' = all users
    pub user_id: String,
    /// '' = all models
    pub model: String,
    pub total_cost_cents: f64,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    pub request_count: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
