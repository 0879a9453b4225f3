//! Replay windows (LLM O4, docs/domain.md §7.1): "replay is a query, not storage". A run's
//! window is ±30 s around its inflection point, and its events are the union of the trace's
//! steps, the system records and the tenant's policy/limit audit entries in that window.

pub mod enforce;
pub mod graphql;
pub mod mutation;
pub mod store;

use async_graphql::Enum;
use chrono::{DateTime, Duration, Utc};

use crate::traces::TraceSnapshot;

/// What a replay window needs of a run record.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTimes {
    pub run_id: String,
    pub trace_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Half the width of a replay window.
pub const HALF_WINDOW_SECONDS: i64 = 30;

/// Most events kept per source and window (the earliest ones); more sets `truncated`.
pub const MAX_EVENTS_PER_SOURCE: usize = 1000;

/// Where a replay event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Enum)]
pub enum ReplayEventSource {
    /// A step of the run's trace: action = skill name, outcome = outcome category.
    Llm,
    /// A system record of the tenant or a system-wide one: action = event type, outcome =
    /// severity.
    System,
    /// An audit entry of the tenant about a policy rule or limit: action = event type,
    /// outcome = entity type.
    Policy,
}

/// What the window is centred on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum InflectionSource {
    /// The trace's recorded violation timestamp.
    Violation,
    /// The run record's `completedAt`.
    RunCompleted,
    /// The run record's `startedAt` (the run has no completion time).
    RunStarted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayEvent {
    pub source: ReplayEventSource,
    pub timestamp: DateTime<Utc>,
    pub step_index: Option<i32>,
    pub action: String,
    pub outcome: String,
    /// The id of the underlying step, system record or audit entry.
    pub record_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayWindowSnapshot {
    pub run_id: String,
    /// The trace whose steps were merged; `None` when the run has no live trace.
    pub trace_id: Option<String>,
    pub inflection: DateTime<Utc>,
    pub inflection_source: InflectionSource,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Ordered by timestamp, then source (LLM, SYSTEM, POLICY), step index and record id.
    pub events: Vec<ReplayEvent>,
    pub truncated: bool,
}

/// The inflection point: the trace's violation timestamp when set, else the run record's
/// completion time, else its start.
pub fn inflection(
    run: &RunTimes,
    trace: Option<&TraceSnapshot>,
) -> (DateTime<Utc>, InflectionSource) {
    if let Some(at) = trace
        .and_then(|t| t.violation.as_ref())
        .and_then(|v| v.timestamp)
    {
        return (at, InflectionSource::Violation);
    }
    match run.completed_at {
        Some(at) => (at, InflectionSource::RunCompleted),
        None => (run.started_at, InflectionSource::RunStarted),
    }
}

/// `[inflection - 30 s, inflection + 30 s]`, both ends inclusive.
pub fn window_around(inflection: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let half = Duration::seconds(HALF_WINDOW_SECONDS);
    (inflection - half, inflection + half)
}

/// The trace a run's replay reads: the record's trace id, else `trace_<run_id>`.
pub fn trace_id_for(run: &RunTimes) -> String {
    run.trace_id
        .clone()
        .unwrap_or_else(|| format!("trace_{}", run.run_id))
}

/// Orders a window's events and caps each source; returns whether anything was dropped.
pub fn finish_events(events: &mut Vec<ReplayEvent>) -> bool {
    events.sort_by(|a, b| {
        (a.timestamp, a.source, a.step_index, &a.record_id).cmp(&(
            b.timestamp,
            b.source,
            b.step_index,
            &b.record_id,
        ))
    });
    let mut kept = [0usize; 3];
    let before = events.len();
    events.retain(|e| {
        let slot = &mut kept[e.source as usize];
        *slot += 1;
        *slot <= MAX_EVENTS_PER_SOURCE
    });
    events.len() != before
}
