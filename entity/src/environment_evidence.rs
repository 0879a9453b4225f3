//! `environment_evidence` (class H, docs/domain.md §8.1): exactly one per run.
//! `active_feature_flags` is a JSON array of strings.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "environment_evidence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub sdk_mode: String,
    pub sdk_version: Option<String>,
    pub environment: Option<String>,
    pub telemetry_enabled: Option<bool>,
    pub telemetry_delivery_status: Option<String>,
    pub trace_sampling_rate: Option<f64>,
    pub metrics_enabled: Option<bool>,
    pub client_ip: Option<String>,
    pub client_user_agent: Option<String>,
    pub client_origin: Option<String>,
    /// JSON array of strings
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub active_feature_flags: Option<Json>,
    pub debug_mode: Option<bool>,
    pub dry_run: Option<bool>,
    pub capture_confidence_score: Option<f64>,
    pub firewall_proxy_detected: Option<bool>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
