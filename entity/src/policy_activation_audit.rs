//! `policy_activation_audit` (docs/domain.md §13): one row per activated policy (upsert
//! on the unique `policy_id`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "policy_activation_audit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub policy_id: String,
    pub source_pattern_id: String,
    pub source_recovery_id: Option<String>,
    pub confidence_at_activation: f64,
    pub confidence_version: String,
    pub approval_path: String,
    pub loop_trace_id: Option<String>,
    pub activated_at: DateTimeUtc,
    pub tenant_id: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
