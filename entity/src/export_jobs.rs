//! `export_jobs` (docs/domain.md §10.2): the mutable scheduling state of one export (state, attempt,
//! retry strategy, progress, lease); `log_exports` stays the append-only record of what was
//! exported. Times are epoch milliseconds, compared in the application, so both backends claim
//! and expire leases the same way.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "export_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub export_id: String,
    pub tenant_id: String,
    pub scope: String,
    pub format: String,
    /// The whole request as JSON: subject (filter or bundle ids), format, asOf.
    #[sea_orm(column_type = "Text")]
    pub request: String,
    pub as_of_ms: i64,
    /// queued, running, retry_wait, completed, failed or cancelled
    pub state: String,
    /// queued, starting, running, completing, completed, failed or cancelled
    pub stage: String,
    pub percent: f64,
    pub eta_seconds: Option<i64>,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub attempt: i32,
    pub max_attempts: i32,
    /// fixed, linear, exponential or fibonacci
    pub retry_strategy: String,
    pub base_delay_ms: i64,
    pub max_delay_ms: i64,
    pub jitter_factor: f64,
    pub next_attempt_ms: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Whether a retry could cure the last attempt's error; NULL while none failed.
    pub last_error_retryable: Option<bool>,
    /// The worker whose lease the running attempt holds.
    pub lease_owner: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub heartbeat_ms: Option<i64>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub artefact_path: Option<String>,
    /// A completed bundle's content hash over its members (hex SHA-256).
    pub bundle_sha256: Option<String>,
    /// A completed bundle's completeness, JSON `{"complete": bool, "missing": [...]}`.
    #[sea_orm(column_type = "Text", nullable)]
    pub bundle_completeness: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenant,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
