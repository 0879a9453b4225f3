//! `audit_ledger` (docs/domain.md §4.1): append-only governance action log (topic AUDIT),
//! hash-chained per tenant: `seq` is gapless from 1, `prev_hash` is the previous
//! entry's `entry_hash`. Immutable (trigger).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_ledger")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    /// per-tenant gapless sequence, starting at 1
    pub seq: i64,
    /// one of the 18 canonical events of docs/domain.md §4.2
    pub event_type: String,
    /// POLICY_RULE, POLICY_PROPOSAL, LIMIT, INCIDENT or SIGNAL
    pub entity_type: String,
    /// for SIGNAL entities, the signal fingerprint
    pub entity_id: String,
    /// HUMAN, SYSTEM or AGENT
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action_reason: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub before_state: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub after_state: Option<Json>,
    pub run_id: Option<String>,
    pub correlation_id: Option<String>,
    pub prev_hash: String,
    pub entry_hash: String,
    pub hash_version: i32,
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
