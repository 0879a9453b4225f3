//! Execution traces and their steps (docs/domain.md §5).
//!
//! Reads never see archived traces or steps (`archived_at` set, docs/decisions.md D16), and step
//! statuses are kept exactly as stored, unknown ones included (docs/decisions.md D17).

pub mod archive;
pub mod compare;
pub mod graphql;
pub mod hashing;
pub mod list;
pub mod mutation;
pub mod step_list;
pub mod steps;
pub mod store;
pub mod views;
pub mod write;

use crate::closed_set::closed_set;
use crate::list_filters::IntRange;
use async_graphql::Enum;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

closed_set! {
    /// Lifecycle status of a trace (docs/domain.md §5.3): `RUNNING` until completed, failed or aborted.
    #[derive(Enum, Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum TraceStatus {
        Running => "running",
        Completed => "completed",
        Failed => "failed",
        Aborted => "aborted",
    }
}

closed_set! {
    /// How a replayed trace was produced.
    #[derive(Enum, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ReplayMode {
        /// Every step re-executed.
        Full => "FULL",
        /// Only the recorded trace was replayed.
        TraceOnly => "TRACE_ONLY",
    }
}

closed_set! {
    /// What a replay does with a step (docs/domain.md §7.2).
    #[derive(Enum, Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ReplayBehavior {
        /// Always run the step again.
        Execute => "execute",
        /// Do not re-run a step that already executed.
        Skip => "skip",
        /// Re-run and verify the output hash matches the original.
        Check => "check",
    }
}

closed_set! {
    /// Where a step was executed.
    #[derive(Enum, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum StepSource {
        /// Normal execution.
        Engine => "engine",
        /// An external API call.
        External => "external",
        /// A replay execution.
        Replay => "replay",
    }
}

closed_set! {
    /// Log level of a step, derived from its status at insert time (docs/domain.md §5.2).
    #[derive(Enum, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum StepLevel {
        Info => "INFO",
        Warn => "WARN",
        Error => "ERROR",
    }
}

/// The inflection point of a trace: where a policy stopped it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub step_index: Option<i32>,
    pub timestamp: Option<DateTime<Utc>>,
    pub policy_id: Option<String>,
    pub reason: Option<String>,
}

/// A trace as stored (without its steps and its full `trace` document).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSnapshot {
    pub id: String,
    pub trace_id: String,
    pub run_id: String,
    pub correlation_id: String,
    pub tenant_id: String,
    pub agent_id: Option<String>,
    pub plan_id: Option<String>,
    pub seed: Option<i64>,
    pub frozen_timestamp: Option<String>,
    pub root_hash: Option<String>,
    pub plan_hash: Option<String>,
    pub schema_version: String,
    pub plan: Value,
    pub metadata: Option<Value>,
    pub status: TraceStatus,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub stored_by: Option<String>,
    /// The stored determinism signature, when the writer computed it.
    pub checksum: Option<String>,
    pub incident_id: Option<String>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    /// `None` when no violation column is set.
    pub violation: Option<Violation>,
    pub replay_mode: Option<ReplayMode>,
    pub replay_attempt_id: Option<String>,
    pub replay_artifact_version: Option<String>,
    pub trace_completeness_status: Option<String>,
    /// Steps of the sealed trace, fixed when it completed; `None` while it runs.
    pub step_count: Option<i32>,
    /// Milliseconds from start to completion, as the database computes it; `None` while it runs.
    pub duration_ms: Option<i64>,
}

/// One executed step as stored. Immutable.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSnapshot {
    pub id: String,
    pub trace_id: String,
    pub step_index: i32,
    pub skill_id: String,
    pub skill_name: String,
    pub params: Value,
    /// Free text (`success`, `failure`, `retry`, `skipped`, or anything else the writer sent).
    pub status: String,
    pub outcome_category: String,
    pub outcome_code: Option<String>,
    pub outcome_data: Option<Value>,
    pub cost_cents: f64,
    pub duration_ms: f64,
    pub retry_count: i32,
    pub input_hash: Option<String>,
    pub output_hash: Option<String>,
    pub rng_state_before: Option<String>,
    pub idempotency_key: Option<String>,
    pub replay_behavior: ReplayBehavior,
    pub timestamp: DateTime<Utc>,
    pub source: StepSource,
    pub level: StepLevel,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
}

impl StepSnapshot {
    /// The step determinism hash of docs/domain.md §5.4 (16 hex characters).
    pub fn determinism_hash(&self) -> String {
        hashing::step_hash(
            self.step_index,
            &self.skill_name,
            &self.params,
            &self.status,
            &self.outcome_category,
            self.outcome_code.as_deref(),
            self.retry_count,
        )
    }
}

/// The determinism signature of a trace whose steps are given in step order (docs/domain.md §5.4).
pub fn determinism_signature(steps: &[StepSnapshot]) -> String {
    let hashes: Vec<String> = steps.iter().map(StepSnapshot::determinism_hash).collect();
    hashing::trace_signature(&hashes)
}

/// Aggregates over a trace's (non-archived) steps, computed in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TraceSummary {
    pub total_steps: i64,
    /// Steps with status `success`.
    pub success_count: i64,
    /// Steps with status `failure`.
    pub failure_count: i64,
    pub total_cost_cents: f64,
    pub total_duration_ms: f64,
}

/// The list filter, as the store applies it (docs/console.md). Every given condition must hold;
/// time bounds and ranges are inclusive. Fields added after the first release are left out of
/// the serialized form when unset, so cursors and stored export jobs made before them stay
/// valid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct TraceListFilter {
    pub run_id: Option<String>,
    pub agent_id: Option<String>,
    pub status: Option<Vec<TraceStatus>>,
    pub root_hash: Option<String>,
    pub plan_hash: Option<String>,
    pub seed: Option<i64>,
    pub is_synthetic: Option<bool>,
    pub started_after: Option<DateTime<Utc>>,
    pub started_before: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_scenario_id: Option<String>,
    /// Any of these agents / none of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id_not_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_not_in: Option<Vec<TraceStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_after: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_before: Option<DateTime<Utc>>,
    /// Traces still running have no step count or duration and fall outside these ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_count: Option<IntRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<IntRange>,
    /// Case-insensitive substring of the trace's ids or violation reason (`store::TRACE_SEARCH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
}
