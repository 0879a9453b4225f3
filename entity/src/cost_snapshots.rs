//! `cost_snapshots` (docs/domain.md §9.1): snapshot barrier between ingestion and anomaly
//! detection (pending -> computing -> complete | failed).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_snapshots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// hourly or daily
    pub snapshot_type: String,
    pub period_start: DateTimeUtc,
    pub period_end: DateTimeUtc,
    /// pending, computing, complete or failed
    pub status: String,
    pub version: i32,
    pub records_processed: Option<i32>,
    pub computation_ms: Option<i32>,
    pub error_message: Option<String>,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::cost_snapshot_aggregates::Entity")]
    Aggregates,
}

impl Related<super::cost_snapshot_aggregates::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Aggregates.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
