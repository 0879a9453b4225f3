//! `activity_evidence` (class B, docs/domain.md §8.1): one per run step with an externally
//! consequential action; unique (run_id, step_index).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "activity_evidence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub step_index: i32,
    pub skill_id: String,
    pub model_name: String,
    pub prompt_fingerprint: String,
    pub prompt_token_length: i32,
    pub prompt_template_id: Option<String>,
    pub prompt_template_version: Option<String>,
    pub response_fingerprint: Option<String>,
    pub response_token_length: Option<i32>,
    pub completion_type: Option<String>,
    pub sensitivity_class: Option<String>,
    pub redaction_status: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub provider_safety_flags: Option<Json>,
    pub evidence_source: String,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
