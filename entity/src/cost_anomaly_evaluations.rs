//! `cost_anomaly_evaluations` (docs/domain.md §9.1): audit of every anomaly evaluation.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_anomaly_evaluations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub snapshot_id: Option<String>,
    /// tenant, user, feature or model
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub current_value_cents: f64,
    pub baseline_value_cents: f64,
    pub threshold_pct: f64,
    pub deviation_pct: f64,
    pub triggered: bool,
    pub severity_computed: Option<String>,
    pub anomaly_id: Option<String>,
    pub evaluation_reason: Option<String>,
    pub evaluated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
