//! `llm_run_records` (docs/domain.md §2.1): immutable execution record per LLM run (topic
//! LLM_RUNS). Unique per (tenant_id, run_id). UPDATE/DELETE are rejected by a trigger
//! ("llm_run_records is immutable: ...").

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "llm_run_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub trace_id: Option<String>,
    pub provider: String,
    pub model: String,
    pub prompt_hash: Option<String>,
    pub response_hash: Option<String>,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_cents: i32,
    /// SUCCEEDED, FAILED, ABORTED or TIMEOUT
    pub execution_status: String,
    pub started_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    /// API, SDK, SYSTEM, SYNTHETIC or WORKER
    pub source: String,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTimeUtc,
    /// Generated: `input_tokens + output_tokens`. Never written.
    pub total_tokens: i64,
    /// Generated: milliseconds from `started_at` to `completed_at`. Never written.
    pub duration_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
