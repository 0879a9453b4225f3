//! `log_exports` (docs/domain.md §10.1): append-only export records. Rows are immutable, so
//! an export's lifecycle is several rows sharing `export_id`, one per state.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "log_exports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// the export job id shared by its lifecycle rows
    pub export_id: String,
    pub tenant_id: String,
    /// llm_runs, system_records, audit, traces, run_bundle, trace_bundle, incident_bundle or
    /// compliance
    pub scope: String,
    pub run_id: Option<String>,
    pub requested_by: String,
    /// json, ndjson, csv or zip
    pub format: String,
    /// SYSTEM, HUMAN or AGENT
    pub origin: String,
    pub source_component: String,
    pub correlation_id: Option<String>,
    pub checksum: Option<String>,
    /// pending, running, completed or failed
    pub status: String,
    pub delivered_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub filter: Option<Json>,
    pub row_count: Option<i64>,
    pub byte_size: Option<i64>,
    pub manifest_sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
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
