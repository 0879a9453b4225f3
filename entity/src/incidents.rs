//! `incidents` (docs/domain.md §13): the subset of the Incidents domain table read by the
//! export bundles and O-levels.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "incidents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub title: String,
    /// critical, high, medium or low
    pub severity: String,
    /// open, acknowledged or resolved
    pub status: String,
    pub trigger_type: String,
    pub source_run_id: Option<String>,
    pub category: Option<String>,
    pub description: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// ACTIVE, ACKED or RESOLVED
    pub lifecycle_state: String,
    /// LLM_RUN, SYSTEM or HUMAN
    pub cause_type: String,
    pub inflection_step_index: Option<i32>,
    pub inflection_timestamp: Option<DateTimeUtc>,
    pub started_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    pub resolved_by: Option<String>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
