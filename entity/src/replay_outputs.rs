//! `replay_outputs` (docs/domain.md §7.2): the output last recorded under a (tenant, step idempotency
//! key) when no Redis is configured (see `src/replay/enforce.rs`), valid until `expires_at_ms`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "replay_outputs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub replay_key: String,
    pub step_index: i32,
    pub output_hash: String,
    /// The output as JSON text.
    #[sea_orm(column_type = "Text")]
    pub output: String,
    pub stored_at_ms: i64,
    pub expires_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
