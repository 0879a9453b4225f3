//! `api_keys`: hashed API keys of a tenant (`role` ∈ {VIEWER, OPERATOR, INGEST, ADMIN}), or of
//! the platform (`role` PLATFORM, no tenant).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Null exactly for a PLATFORM key (a CHECK says so).
    pub tenant_id: Option<String>,
    /// SHA-256 hex of the key; unique
    pub key_sha256: String,
    /// VIEWER, OPERATOR, INGEST, ADMIN or PLATFORM
    pub role: String,
    /// HUMAN, SYSTEM or AGENT: who uses the key (a platform key: SYSTEM).
    pub actor_type: String,
    pub label: Option<String>,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    /// After this instant the key is refused, like a revoked one.
    pub expires_at: Option<DateTimeUtc>,
    /// When a server process last saw the key used (updated at most once a minute per process).
    pub last_used_at: Option<DateTimeUtc>,
    /// Complexity points per minute; null: the server's default; 0: unlimited.
    pub rate_limit_per_minute: Option<i64>,
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
