//! `llm_run_rollups`: LLM runs, cost and tokens per tenant, UTC hour (`grain` `H`, bucket
//! `YYYY-MM-DDTHH`) and UTC day (`D`, `YYYY-MM-DD`), and (provider, model, status, source,
//! synthetic), kept by triggers on `llm_run_records` (see `src/runs/rollups.rs`). On PostgreSQL
//! a key may have several rows, signed deltas that add up, so always read them with `SUM`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "llm_run_rollups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub grain: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub model: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub execution_status: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub is_synthetic: bool,
    pub runs: i64,
    pub cost_cents: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
