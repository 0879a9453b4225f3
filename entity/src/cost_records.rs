//! `cost_records` (docs/domain.md §9.1): raw cost metering, append-only by convention.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub user_id: Option<String>,
    pub feature_tag: Option<String>,
    pub request_id: Option<String>,
    pub workflow_id: Option<String>,
    pub skill_id: Option<String>,
    pub model: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    /// fractional cents, never truncated
    pub cost_cents: f64,
    pub is_retry: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
