//! Incidents (docs/domain.md §13): what a failed or blocked run opened, with its lifecycle, the
//! audit entries about it and the cost anomalies escalated to it. The platform (and the seed)
//! write them; here only cost anomaly escalation opens one (`store::open`, docs/domain.md §9.5).

pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::closed_set::closed_set;

closed_set! {
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum IncidentSeverity {
        Critical => "critical",
        High => "high",
        Medium => "medium",
        Low => "low",
    }
}

closed_set! {
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum IncidentStatus {
        Open => "open",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
    }
}

closed_set! {
    /// Where the incident stands in its lifecycle.
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum IncidentLifecycle {
        Active => "ACTIVE",
        Acked => "ACKED",
        Resolved => "RESOLVED",
    }
}

closed_set! {
    /// What caused the incident.
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum IncidentCause {
        LlmRun => "LLM_RUN",
        System => "SYSTEM",
        Human => "HUMAN",
    }
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentSnapshot {
    pub id: String,
    pub tenant_id: String,
    pub title: String,
    pub severity: IncidentSeverity,
    pub status: IncidentStatus,
    pub trigger_type: String,
    pub source_run_id: Option<String>,
    pub category: Option<String>,
    pub description: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub lifecycle_state: IncidentLifecycle,
    pub cause_type: IncidentCause,
    pub inflection_step_index: Option<i32>,
    pub inflection_timestamp: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The list filter, as the store applies it: every given condition must hold; time bounds are
/// inclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentFilter {
    pub severity: Option<Vec<IncidentSeverity>>,
    pub status: Option<Vec<IncidentStatus>>,
    pub lifecycle_state: Option<Vec<IncidentLifecycle>>,
    pub cause_type: Option<IncidentCause>,
    pub trigger_type: Option<String>,
    pub category: Option<String>,
    pub source_run_id: Option<String>,
    pub is_synthetic: Option<bool>,
    pub started_after: Option<DateTime<Utc>>,
    pub started_before: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}
