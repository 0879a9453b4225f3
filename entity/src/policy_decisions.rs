//! `policy_decisions` (class D, docs/domain.md §8.1): many per run. The former text[]
//! columns are JSON arrays of strings.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "policy_decisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub policy_type: String,
    pub policy_rule_id: Option<String>,
    pub policy_version: Option<i32>,
    /// GRANTED, DENIED or PENDING_APPROVAL
    pub decision: String,
    pub decision_reason: Option<String>,
    pub decision_confidence: Option<f64>,
    /// JSON array of strings
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub policies_evaluated: Option<Json>,
    pub policy_results: Option<String>,
    /// JSON array of strings
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub evaluation_order: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub thresholds_used: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub customer_guardrail_result: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub provider_moderation_result: Option<Json>,
    /// JSON array of strings
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub decision_reason_codes: Option<Json>,
    pub approval_request_id: Option<String>,
    pub required_approval_level: Option<i32>,
    pub current_approval_level: Option<i32>,
    pub evaluated_by: Option<String>,
    pub evaluated_at: DateTimeUtc,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
