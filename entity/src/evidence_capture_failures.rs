//! `evidence_capture_failures` (docs/domain.md §8.1): first failure per
//! (run_id, evidence_type, failure_reason) (inserts ignore conflicts).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "evidence_capture_failures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub evidence_type: String,
    pub failure_reason: String,
    pub error_message: Option<String>,
    /// transient, permanent or superseded
    pub resolution: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
