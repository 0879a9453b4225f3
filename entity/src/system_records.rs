//! `system_records` (docs/domain.md §3.1): immutable system events (topic SYSTEM_LOGS).
//! `tenant_id` NULL = system-wide, visible to every tenant. Immutable (trigger).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "system_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: Option<String>,
    /// worker, api, scheduler, db, auth or migration
    pub component: String,
    /// STARTUP, SHUTDOWN, RESTART, DEPLOY, MIGRATION, AUTH_CHANGE, CONFIG_CHANGE, ERROR or
    /// HEALTH_CHECK
    pub event_type: String,
    /// INFO, WARN or CRITICAL
    pub severity: String,
    pub summary: String,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub details: Option<Json>,
    /// SYSTEM, HUMAN or AUTOMATION
    pub caused_by: Option<String>,
    /// run id for run-correlated records
    pub correlation_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
