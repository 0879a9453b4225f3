//! LLM run records: one immutable record per run and tenant (docs/domain.md §2). `run_id` is unique
//! per tenant here (the Python platform allowed duplicates and then failed on lookup;
//! docs/decisions.md D4).

pub mod counts;
pub mod evidence;
pub mod graphql;
pub mod loaders;
pub mod mutation;
pub mod store;
pub mod write;

use crate::closed_set::closed_set;
use async_graphql::Enum;
use chrono::{DateTime, Utc};
use serde::Serialize;

closed_set! {
    #[derive(Enum, Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ExecutionStatus {
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Aborted => "ABORTED",
        Timeout => "TIMEOUT",
    }
}

closed_set! {
    /// Who produced the record.
    #[derive(Enum, Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum RunSource {
        Api => "API",
        Sdk => "SDK",
        System => "SYSTEM",
        Synthetic => "SYNTHETIC",
        Worker => "WORKER",
    }
}

/// An LLM run record as stored. Immutable.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRunSnapshot {
    pub id: String,
    pub tenant_id: String,
    pub run_id: String,
    pub trace_id: Option<String>,
    pub provider: String,
    pub model: String,
    pub prompt_hash: Option<String>,
    pub response_hash: Option<String>,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_cents: i32,
    pub execution_status: ExecutionStatus,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub source: RunSource,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The list filter, as the store applies it. Equality on each given field; the time bounds are
/// inclusive (`created_at >= created_after`, `created_at <= created_before`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RunFilter {
    pub run_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: Option<Vec<ExecutionStatus>>,
    pub source: Option<RunSource>,
    pub is_synthetic: Option<bool>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}
