//! `llm_run_day_counts`: LLM runs per tenant and UTC day (`YYYY-MM-DD`), maintained by triggers
//! on `llm_run_records` (see `src/runs/counts.rs`). On PostgreSQL a (tenant, day) may have several
//! rows, signed deltas that add up to the count, so read them with `SUM(runs)`, never by key.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "llm_run_day_counts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: String,
    pub runs: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
