//! System records: immutable infrastructure and trust events (topic SYSTEM_LOGS,
//! docs/domain.md §3). A record with no tenant is system-wide and visible to every tenant; a
//! tenant's own records are visible only to it.

pub mod graphql;
pub mod mutation;
pub mod store;
pub mod write;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Declares a closed set stored as text: a GraphQL enum (SCREAMING_CASE values) whose variants
/// map one-to-one to the strings the database CHECK constraint allows.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }
    };
}
pub(crate) use stored_enum;

stored_enum! {
    /// The part of the platform that emitted a system record.
    SystemComponent {
        Worker => "worker",
        Api => "api",
        Scheduler => "scheduler",
        Db => "db",
        Auth => "auth",
        Migration => "migration",
    }
}

stored_enum! {
    /// What happened.
    SystemEventType {
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

stored_enum! {
    /// How serious a system record is.
    SystemRecordSeverity {
        Info => "INFO",
        Warn => "WARN",
        Critical => "CRITICAL",
    }
}

stored_enum! {
    /// What caused a system event.
    SystemRecordCause {
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

/// The list filter, as the store applies it. Each list means "any of"; the time bounds are
/// inclusive. Lists are kept sorted and deduplicated so equal filters bind equal cursors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct SystemFilter {
    pub scope: SystemRecordScope,
    pub component: Option<Vec<SystemComponent>>,
    pub event_type: Option<Vec<SystemEventType>>,
    pub severity: Option<Vec<SystemRecordSeverity>>,
    pub correlation_id: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}
