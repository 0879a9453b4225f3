//! `ledger_merkle_nodes`: the RFC 6962 hash of every complete subtree of level ≥ 1 of a
//! tenant's audit ledger (docs/ledger.md); leaves are recomputed from `audit_ledger`.
//! Deterministic facts: append-only.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ledger_merkle_nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// Height above the leaves (≥ 1).
    #[sea_orm(primary_key, auto_increment = false)]
    pub level: i32,
    /// Position among the nodes of its level, from 0.
    #[sea_orm(primary_key, auto_increment = false)]
    pub idx: i64,
    /// The 32-byte SHA-256.
    #[sea_orm(column_type = "Blob")]
    pub hash: Vec<u8>,
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
