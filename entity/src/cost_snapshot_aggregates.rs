//! `cost_snapshot_aggregates` (docs/domain.md §9.1): per-entity aggregates of a snapshot.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cost_snapshot_aggregates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub snapshot_id: String,
    pub tenant_id: String,
    /// tenant, user, feature or model
    pub entity_type: String,
    /// '' for the tenant-level aggregate
    pub entity_id: String,
    pub total_cost_cents: f64,
    pub request_count: i32,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
    pub avg_cost_per_request_cents: Option<f64>,
    pub avg_tokens_per_request: Option<f64>,
    pub baseline_7d_avg_cents: Option<f64>,
    pub baseline_30d_avg_cents: Option<f64>,
    pub deviation_from_7d_pct: Option<f64>,
    pub deviation_from_30d_pct: Option<f64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::cost_snapshots::Entity",
        from = "Column::SnapshotId",
        to = "super::cost_snapshots::Column::Id",
        on_delete = "Cascade"
    )]
    Snapshot,
}

impl Related<super::cost_snapshots::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Snapshot.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
