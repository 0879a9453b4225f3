//! `cost_anomalies` (docs/domain.md §9.1): detected cost anomalies.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_anomalies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// ABSOLUTE_SPIKE, SUSTAINED_DRIFT, BUDGET_WARNING, BUDGET_EXCEEDED (legacy USER_SPIKE,
    /// FEATURE_SPIKE)
    pub anomaly_type: String,
    /// LOW, MEDIUM, HIGH (legacy CRITICAL)
    pub severity: String,
    /// user, feature, model or tenant
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub current_value_cents: f64,
    pub expected_value_cents: f64,
    pub deviation_pct: f64,
    pub threshold_pct: f64,
    pub message: String,
    pub incident_id: Option<String>,
    pub action_taken: Option<String>,
    pub resolved: bool,
    pub resolved_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub metadata: Option<Json>,
    pub detected_at: DateTimeUtc,
    pub snapshot_id: Option<String>,
    pub baseline_id: Option<String>,
    /// RETRY_LOOP, PROMPT_GROWTH, FEATURE_SURGE, TRAFFIC_GROWTH or UNKNOWN
    pub derived_cause: Option<String>,
    pub breach_count: i32,
    /// Set by `acknowledgeCostAnomaly`; an unresolved anomaly with it is ACKNOWLEDGED.
    pub acknowledged_at: Option<DateTimeUtc>,
    /// `key:<api key id>` of the acknowledger.
    pub acknowledged_by: Option<String>,
    /// `key:<api key id>` of the resolver.
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
