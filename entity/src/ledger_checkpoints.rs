//! `ledger_checkpoints`: every signed checkpoint (tenant, tree size, root hash, time) issued over
//! a tenant's audit ledger, with the public key that signed it. Append-only.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ledger_checkpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub tree_size: i64,
    /// Lower-case hex of the RFC 6962 root hash.
    pub root_hash: String,
    /// Lower-case hex of the ed25519 public key.
    pub public_key: String,
    /// Standard base64 of the ed25519 signature.
    pub signature: String,
    /// When the checkpoint was issued (part of the signed message).
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
