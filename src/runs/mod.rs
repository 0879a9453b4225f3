//! LLM run records: one immutable record per run and tenant (docs/domain.md §2). `run_id` is unique
//! per tenant here (the Python platform allowed duplicates and then failed on lookup;
//! docs/decisions.md D4).

pub mod counts;
pub mod cover;
pub mod graphql;
pub mod lookup;
pub mod mutation;
pub mod rollups;
pub mod search;
pub mod store;
pub mod views;
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
    /// `input_tokens + output_tokens`, as the database computes it.
    pub total_tokens: i64,
    /// Milliseconds from start to completion, as the database computes it; `None` while
    /// running.
    pub duration_ms: Option<i64>,
}

/// The list filter, as the store applies it (docs/console.md). Every given condition must hold.
/// Time bounds are inclusive (`created_at >= created_after`, `created_at <= created_before`);
/// so are the numeric ranges. Fields added after the first release are left out of the
/// serialized form when unset, so cursors and stored export jobs made before them stay valid.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_scenario_id: Option<String>,
    /// Any of these providers / none of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_not_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_not_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_not_in: Option<Vec<ExecutionStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_in: Option<Vec<RunSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_not_in: Option<Vec<RunSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_after: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_before: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_after: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_before: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_cents: Option<IntRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<IntRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<IntRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<IntRange>,
    /// Runs without a completion time have no duration and fall outside any duration range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<IntRange>,
    /// Case-insensitive substring of the run id, model, provider, trace id or scenario id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
}

impl RunFilter {
    /// True when the filter names only what the rollups are keyed by (provider, model, status,
    /// source, synthetic) and the creation time, so rollups can answer facets and histograms.
    pub fn on_rollup_keys(&self) -> bool {
        let RunFilter {
            run_id,
            trace_id,
            synthetic_scenario_id,
            started_after,
            started_before,
            completed_after,
            completed_before,
            cost_cents,
            input_tokens,
            output_tokens,
            total_tokens,
            duration_ms,
            search,
            // Rollup keys.
            provider: _,
            model: _,
            status: _,
            source: _,
            is_synthetic: _,
            created_after: _,
            created_before: _,
            provider_in: _,
            provider_not_in: _,
            model_in: _,
            model_not_in: _,
            status_not_in: _,
            source_in: _,
            source_not_in: _,
        } = self;
        run_id.is_none()
            && trace_id.is_none()
            && synthetic_scenario_id.is_none()
            && started_after.is_none()
            && started_before.is_none()
            && completed_after.is_none()
            && completed_before.is_none()
            && cost_cents.is_none()
            && input_tokens.is_none()
            && output_tokens.is_none()
            && total_tokens.is_none()
            && duration_ms.is_none()
            && search.is_none()
    }

    /// The filter's conditions on the rollup keys (provider, model, status, source, synthetic)
    /// alone: what narrows a rollup read, and the row ranges read beside it.
    pub fn rollup_keys(&self) -> RunFilter {
        RunFilter {
            provider: self.provider.clone(),
            model: self.model.clone(),
            status: self.status.clone(),
            source: self.source,
            is_synthetic: self.is_synthetic,
            provider_in: self.provider_in.clone(),
            provider_not_in: self.provider_not_in.clone(),
            model_in: self.model_in.clone(),
            model_not_in: self.model_not_in.clone(),
            status_not_in: self.status_not_in.clone(),
            source_in: self.source_in.clone(),
            source_not_in: self.source_not_in.clone(),
            ..RunFilter::default()
        }
    }

    /// True when the filter names none of the rollup keys: the rollups' totals rows answer it.
    pub fn names_no_rollup_key(&self) -> bool {
        self.rollup_keys() == RunFilter::default()
    }
}

/// Milliseconds from start to completion, rounded half away from zero as the database's
/// generated `duration_ms` column rounds them.
pub fn duration_ms(started: DateTime<Utc>, completed: Option<DateTime<Utc>>) -> Option<i64> {
    let micros = (completed? - started).num_microseconds()?;
    let (ms, rest) = (micros / 1000, micros % 1000);
    Some(if rest >= 500 {
        ms + 1
    } else if rest <= -500 {
        ms - 1
    } else {
        ms
    })
}

pub use crate::list_filters::IntRange;
