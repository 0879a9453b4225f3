//! `integrity_evidence` (class J, docs/domain.md §8.1): the terminal seal, exactly one per
//! run. The former text[] columns are JSON arrays of strings.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "integrity_evidence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    /// JSON array of strings
    #[sea_orm(column_type = "JsonBinary")]
    pub expected_artifacts: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub expected_artifact_schema: Option<Json>,
    /// JSON array of strings
    #[sea_orm(column_type = "JsonBinary")]
    pub observed_artifacts: Json,
    /// JSON array of strings
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub missing_artifacts: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub missing_reasons: Option<Json>,
    pub integrity_score: f64,
    /// VALID, DEGRADED or FAILED
    pub integrity_status: String,
    pub verification_method: Option<String>,
    pub verification_timestamp: Option<DateTimeUtc>,
    pub divergence_details: Option<String>,
    pub recovery_action: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub coverage_metrics: Option<Json>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
