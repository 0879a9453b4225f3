//! `mismatch_notifications`: the mismatch webhook's outbox, one row per reported mismatch while
//! a webhook URL is configured (see `src/mismatches/webhook.rs`). Times are epoch milliseconds.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "mismatch_notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub mismatch_id: String,
    pub tenant_id: String,
    /// Delivery attempts made so far.
    pub attempts: i32,
    /// When the next attempt is due (also the lease of an attempt in flight).
    pub next_attempt_ms: i64,
    /// When the endpoint accepted it; none while pending (or given up).
    pub delivered_at_ms: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
