//! `provider_evidence` (class G, docs/domain.md §8.1): unique (run_id, step_index).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "provider_evidence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub step_index: i32,
    pub provider_name: String,
    pub provider_request_id: Option<String>,
    pub model_name: String,
    pub model_version: Option<String>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
    pub cache_read_tokens: Option<i32>,
    pub cache_creation_tokens: Option<i32>,
    pub total_tokens: Option<i32>,
    pub api_version: Option<String>,
    pub endpoint: Option<String>,
    pub provider_latency_ms: Option<i32>,
    pub provider_http_status: Option<i32>,
    pub provider_error_code: Option<String>,
    pub provider_retry_count: Option<i32>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub provider_safety_signals: Option<Json>,
    pub requested_at: DateTimeUtc,
    pub responded_at: Option<DateTimeUtc>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
