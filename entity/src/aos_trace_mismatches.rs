//! `aos_trace_mismatches` (docs/domain.md §6.1): operator-reported replay mismatches. Mutable.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "aos_trace_mismatches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub trace_id: String,
    pub tenant_id: String,
    pub reported_by: Option<String>,
    pub step_index: Option<i32>,
    pub reason: String,
    pub expected_hash: Option<String>,
    pub actual_hash: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    pub notification_sent: bool,
    pub issue_url: Option<String>,
    pub resolved: bool,
    pub resolved_at: Option<DateTimeUtc>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
