//! System records: immutable infrastructure and trust events (topic SYSTEM_LOGS,
//! docs/domain.md §3). A record with no tenant is system-wide and visible to every tenant; a
//! tenant's own records are visible only to it. System-wide records come from platform keys
//! (`mutation`) and from the server itself (`lifecycle`).

pub mod graphql;
pub mod lifecycle;
pub mod mutation;
pub mod store;
pub mod views;
pub mod write;

use crate::closed_set::closed_set;
use chrono::{DateTime, Utc};
use serde::Serialize;

closed_set! {
    /// The part of the platform that emitted a system record.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum SystemComponent {
        Worker => "worker",
        Api => "api",
        Scheduler => "scheduler",
        Db => "db",
        Auth => "auth",
        Migration => "migration",
    }
}

closed_set! {
    /// What happened.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum SystemEventType {
        Startup => "STARTUP",
        Shutdown => "SHUTDOWN",
        Restart => "RESTART",
        Deploy => "DEPLOY",
        Migration => "MIGRATION",
        AuthChange => "AUTH_CHANGE",
        ConfigChange => "CONFIG_CHANGE",
        Error => "ERROR",
        HealthCheck => "HEALTH_CHECK",
    }
}

closed_set! {
    /// How serious a system record is.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum SystemRecordSeverity {
        Info => "INFO",
        Warn => "WARN",
        Critical => "CRITICAL",
    }
}

closed_set! {
    /// What caused a system event.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum SystemRecordCause {
        System => "SYSTEM",
        Human => "HUMAN",
        Automation => "AUTOMATION",
    }
}

/// Which system records a list shows: the tenant's own, the system-wide ones, or both.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SystemRecordScope {
    /// The tenant's records and the system-wide records.
    #[default]
    All,
    /// Only records that belong to the tenant.
    TenantOnly,
    /// Only system-wide records (no tenant).
    SystemWideOnly,
}

/// A system record as stored. Immutable.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemRecordSnapshot {
    pub id: String,
    /// `None`: a system-wide record.
    pub tenant_id: Option<String>,
    pub component: SystemComponent,
    pub event_type: SystemEventType,
    pub severity: SystemRecordSeverity,
    pub summary: String,
    pub details: Option<serde_json::Value>,
    pub caused_by: Option<SystemRecordCause>,
    pub correlation_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The list filter, as the store applies it. Each plain list means "any of", each `_not_in`
/// list "none of"; the time bounds are inclusive. Lists are kept sorted and deduplicated so
/// equal filters bind equal cursors. Fields added after the first release are skipped when
/// absent, so export jobs stored before them still read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct SystemFilter {
    pub scope: SystemRecordScope,
    pub component: Option<Vec<SystemComponent>>,
    pub event_type: Option<Vec<SystemEventType>>,
    pub severity: Option<Vec<SystemRecordSeverity>>,
    pub correlation_id: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_not_in: Option<Vec<SystemComponent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_not_in: Option<Vec<SystemEventType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_not_in: Option<Vec<SystemRecordSeverity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<Vec<SystemRecordCause>>,
    /// Records without a cause are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by_not_in: Option<Vec<SystemRecordCause>>,
    /// A substring of the record id, summary or correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Words of the summary and details (all must occur).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Vec<crate::list_filters::Word>>,
}
