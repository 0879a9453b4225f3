//! `aos_traces` (docs/domain.md §5.1): one row per run trace. `trace_id` is unique per tenant
//! (unique index on (tenant_id, trace_id)): two tenants may each have a trace with the same
//! trace id, so a lookup by trace id must bind the tenant.
//!
//! Trigger-enforced immutability (errors start with `S6_IMMUTABILITY_VIOLATION:`): an
//! UPDATE may only (a) archive (`archived_at` NULL -> value, nothing else changes) or
//! (b) complete a `running` trace: `status` -> completed/failed/aborted, `completed_at`
//! and `metadata` free, `root_hash` / `checksum` only from NULL, everything else
//! unchanged. Update only the columns that change. DELETE only once the (tenant_id,
//! trace_id) is in `aos_traces_archive`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "aos_traces")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub trace_id: String,
    pub run_id: String,
    pub correlation_id: String,
    pub tenant_id: String,
    pub agent_id: Option<String>,
    pub plan_id: Option<String>,
    pub seed: Option<i64>,
    pub frozen_timestamp: Option<String>,
    /// deterministic root hash; NULL until computed at completion
    pub root_hash: Option<String>,
    pub plan_hash: Option<String>,
    pub schema_version: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub plan: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub trace: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub metadata: Option<Json>,
    /// running, completed, failed or aborted
    pub status: String,
    pub started_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub stored_by: Option<String>,
    /// determinism signature; NULL until computed
    pub checksum: Option<String>,
    pub incident_id: Option<String>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub archived_at: Option<DateTimeUtc>,
    pub violation_step_index: Option<i32>,
    pub violation_timestamp: Option<DateTimeUtc>,
    pub violation_policy_id: Option<String>,
    pub violation_reason: Option<String>,
    /// FULL or TRACE_ONLY
    pub replay_mode: Option<String>,
    pub replay_attempt_id: Option<String>,
    pub replay_artifact_version: Option<String>,
    pub trace_completeness_status: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::aos_trace_steps::Entity")]
    Steps,
}

impl Related<super::aos_trace_steps::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Steps.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
