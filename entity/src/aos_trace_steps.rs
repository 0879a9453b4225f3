//! `aos_trace_steps` (docs/domain.md §5.2): one row per executed step. A step belongs to the trace
//! (tenant_id, trace_id): trace ids are unique per tenant, so every read or write of steps by
//! trace id binds the tenant too. Append-only (first truth wins on (tenant_id, trace_id,
//! step_index)); UPDATE may only archive; DELETE only via the cascade from a deleted trace
//! (`S6_IMMUTABILITY_VIOLATION:` otherwise).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "aos_trace_steps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub trace_id: String,
    pub step_index: i32,
    pub skill_id: String,
    pub skill_name: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub params: Json,
    /// success, failure, retry, skipped (free text)
    pub status: String,
    pub outcome_category: String,
    pub outcome_code: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub outcome_data: Option<Json>,
    pub cost_cents: f64,
    pub duration_ms: f64,
    pub retry_count: i32,
    pub input_hash: Option<String>,
    pub output_hash: Option<String>,
    pub rng_state_before: Option<String>,
    pub idempotency_key: Option<String>,
    /// execute, skip or check
    pub replay_behavior: String,
    pub timestamp: DateTimeUtc,
    /// engine, external or replay
    pub source: String,
    /// INFO, WARN or ERROR
    pub level: String,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub archived_at: Option<DateTimeUtc>,
    /// The trace's tenant (the last column: added after the others).
    pub tenant_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::aos_traces::Entity",
        from = "(Column::TenantId, Column::TraceId)",
        to = "(super::aos_traces::Column::TenantId, super::aos_traces::Column::TraceId)",
        on_delete = "Cascade"
    )]
    Trace,
}

impl Related<super::aos_traces::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Trace.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
