//! `idempotency_keys`: one row per (tenant, key) of an idempotent write, written in the same
//! transaction as the effect it guards (see `src/idempotency/`): `pending` only inside that
//! transaction, then `completed` with the stored result until `expires_at_ms`. Times are epoch
//! milliseconds, compared in the application.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub idempotency_key: String,
    pub operation: String,
    pub request_hash: String,
    /// pending or completed
    pub status: String,
    /// The stored result (JSON) of a completed key.
    #[sea_orm(column_type = "Text", nullable)]
    pub response: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
