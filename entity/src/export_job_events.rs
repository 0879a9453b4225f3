//! `export_job_events` (docs/domain.md §10.2): the append-only audit trail of an export job, hash-chained
//! per job (`previous_event_hash` → `integrity_hash`). `seq` numbers a job's events from 1.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "export_job_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub export_id: String,
    pub tenant_id: String,
    pub seq: i64,
    /// job_created, job_started, job_progress, job_completed, job_failed, job_retried,
    /// job_reclaimed or job_dead_lettered
    pub event_type: String,
    pub attempt: i32,
    pub worker: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// JSON text.
    #[sea_orm(column_type = "Text", nullable)]
    pub metadata: Option<String>,
    pub previous_event_hash: Option<String>,
    pub integrity_hash: String,
    pub created_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
