//! `aos_traces_archive` (docs/domain.md §5.6): archived copies of `aos_traces` rows, with
//! exactly the same columns plus `moved_at`; keyed by (tenant_id, trace_id), as trace ids
//! are unique per tenant. No triggers.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "aos_traces_archive")]
pub struct Model {
    pub id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub trace_id: String,
    pub run_id: String,
    pub correlation_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
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
    pub step_count: Option<i32>,
    pub duration_ms: Option<i64>,
    /// when the row was copied into the archive
    pub moved_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
