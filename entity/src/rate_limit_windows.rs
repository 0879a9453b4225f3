//! `rate_limit_windows`: complexity points charged per bucket (API key) and minute when no Redis
//! is configured (see `src/ratelimit.rs`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "rate_limit_windows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket: String,
    /// Epoch seconds of the window's first second.
    #[sea_orm(primary_key, auto_increment = false)]
    pub window_start: i64,
    pub points: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
