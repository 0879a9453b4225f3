//! SQL for replay windows: a constant number of statements for any number of runs (the run
//! records, their traces, then one statement per event source with one time range per run).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::aos_trace_steps::{Column as S, Entity as Steps};
use entity::audit_ledger::{Column as A, Entity as Audit};
use entity::llm_run_records::{Column as R, Entity as Runs};
use entity::system_records::{Column as Sys, Entity as SystemRecords};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{
    finish_events, inflection, trace_id_for, window_around, ReplayEvent, ReplayEventSource,
    ReplayWindowSnapshot, RunTimes, MAX_EVENTS_PER_SOURCE,
};
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::traces::store::traces_by_trace_ids;

/// Audit entity types whose entries are replay events.
const POLICY_ENTITY_TYPES: [&str; 2] = ["POLICY_RULE", "LIMIT"];

/// The tenant's run records for these run ids (the times a window needs).
async fn run_times(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<Vec<RunTimes>> {
    type Row = (String, Option<String>, DateTime<Utc>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = Runs::find()
        .filter(R::TenantId.eq(tenant.as_str()))
        .filter(R::RunId.is_in(run_ids.iter().map(String::as_str)))
        .select_only()
        .column(R::RunId)
        .column(R::TraceId)
        .column(R::StartedAt)
        .column(R::CompletedAt)
        .order_by_desc(R::CreatedAt)
        .order_by_desc(R::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .filter(|(run_id, ..)| seen.insert(run_id.clone()))
        .map(|(run_id, trace_id, started_at, completed_at)| RunTimes {
            run_id,
            trace_id,
            started_at,
            completed_at,
        })
        .collect())
}

/// Any of the time ranges, on `column`.
fn in_any_range<C: ColumnTrait>(column: C, ranges: &[(DateTime<Utc>, DateTime<Utc>)]) -> Condition {
    ranges.iter().fold(Condition::any(), |any, (start, end)| {
        any.add(column.between(*start, *end))
    })
}

/// Replay windows of the tenant's runs, keyed by run id; runs without a record are absent.
pub async fn replay_windows_for_runs(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, ReplayWindowSnapshot>> {
    if run_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let runs = run_times(db, tenant, run_ids).await?;
    if runs.is_empty() {
        return Ok(HashMap::new());
    }
    let wanted: Vec<String> = runs.iter().map(trace_id_for).collect();
    let traces = traces_by_trace_ids(db, tenant, &wanted).await?;

    let mut windows: Vec<ReplayWindowSnapshot> = runs
        .iter()
        .map(|run| {
            let trace = traces.get(&trace_id_for(run));
            let (at, source) = inflection(run, trace);
            let (start, end) = window_around(at);
            ReplayWindowSnapshot {
                run_id: run.run_id.clone(),
                trace_id: trace.map(|t| t.trace_id.clone()),
                inflection: at,
                inflection_source: source,
                window_start: start,
                window_end: end,
                events: Vec::new(),
                truncated: false,
            }
        })
        .collect();
    let ranges: Vec<(DateTime<Utc>, DateTime<Utc>)> = windows
        .iter()
        .map(|w| (w.window_start, w.window_end))
        .collect();
    // A bound on what one statement may return: each window keeps at most
    // MAX_EVENTS_PER_SOURCE per source. Hitting it marks every window as possibly truncated.
    let cap = (MAX_EVENTS_PER_SOURCE * windows.len() + 1) as u64;
    let mut capped = false;

    // LLM: the steps of each window's trace inside that window.
    let step_ranges = windows
        .iter()
        .filter_map(|w| {
            w.trace_id.as_ref().map(|t| {
                Condition::all()
                    .add(S::TraceId.eq(t.as_str()))
                    .add(S::Timestamp.between(w.window_start, w.window_end))
            })
        })
        .fold(Condition::any(), Condition::add);
    let mut step_events: Vec<(String, ReplayEvent)> = Vec::new();
    if !step_ranges.is_empty() {
        type StepRow = (String, String, i32, String, String, DateTime<Utc>);
        let rows: Vec<StepRow> = Steps::find()
            .filter(S::TenantId.eq(tenant.as_str()))
            .filter(S::ArchivedAt.is_null())
            .filter(step_ranges)
            .select_only()
            .column(S::Id)
            .column(S::TraceId)
            .column(S::StepIndex)
            .column(S::SkillName)
            .column(S::OutcomeCategory)
            .column(S::Timestamp)
            .order_by_asc(S::Timestamp)
            .order_by_asc(S::Id)
            .limit(cap)
            .into_tuple()
            .all(db)
            .await?;
        capped |= rows.len() as u64 >= cap;
        step_events = rows
            .into_iter()
            .map(|(id, trace_id, index, skill, outcome, at)| {
                (
                    trace_id,
                    ReplayEvent {
                        source: ReplayEventSource::Llm,
                        timestamp: at,
                        step_index: Some(index),
                        action: skill,
                        outcome,
                        record_id: id,
                    },
                )
            })
            .collect();
    }

    // SYSTEM: the tenant's and system-wide records.
    type SystemRow = (String, String, String, DateTime<Utc>);
    let system: Vec<SystemRow> = SystemRecords::find()
        .filter(
            Condition::any()
                .add(Sys::TenantId.eq(tenant.as_str()))
                .add(Sys::TenantId.is_null()),
        )
        .filter(in_any_range(Sys::CreatedAt, &ranges))
        .select_only()
        .column(Sys::Id)
        .column(Sys::EventType)
        .column(Sys::Severity)
        .column(Sys::CreatedAt)
        .order_by_asc(Sys::CreatedAt)
        .order_by_asc(Sys::Id)
        .limit(cap)
        .into_tuple()
        .all(db)
        .await?;
    capped |= system.len() as u64 >= cap;

    // POLICY: the tenant's audit entries about policy rules and limits.
    type AuditRow = (String, String, String, DateTime<Utc>);
    let policy: Vec<AuditRow> = Audit::find()
        .filter(A::TenantId.eq(tenant.as_str()))
        .filter(A::EntityType.is_in(POLICY_ENTITY_TYPES))
        .filter(in_any_range(A::CreatedAt, &ranges))
        .select_only()
        .column(A::Id)
        .column(A::EventType)
        .column(A::EntityType)
        .column(A::CreatedAt)
        .order_by_asc(A::CreatedAt)
        .order_by_asc(A::Id)
        .limit(cap)
        .into_tuple()
        .all(db)
        .await?;
    capped |= policy.len() as u64 >= cap;

    for window in &mut windows {
        let inside = |at: &DateTime<Utc>| *at >= window.window_start && *at <= window.window_end;
        if let Some(trace_id) = &window.trace_id {
            window.events.extend(
                step_events
                    .iter()
                    .filter(|(t, e)| t == trace_id && inside(&e.timestamp))
                    .map(|(_, e)| e.clone()),
            );
        }
        for (id, event_type, severity, at) in &system {
            if inside(at) {
                window.events.push(ReplayEvent {
                    source: ReplayEventSource::System,
                    timestamp: *at,
                    step_index: None,
                    action: event_type.clone(),
                    outcome: severity.clone(),
                    record_id: id.clone(),
                });
            }
        }
        for (id, event_type, entity_type, at) in &policy {
            if inside(at) {
                window.events.push(ReplayEvent {
                    source: ReplayEventSource::Policy,
                    timestamp: *at,
                    step_index: None,
                    action: event_type.clone(),
                    outcome: entity_type.clone(),
                    record_id: id.clone(),
                });
            }
        }
        let dropped = finish_events(&mut window.events);
        window.truncated = dropped || capped;
    }
    Ok(windows.into_iter().map(|w| (w.run_id.clone(), w)).collect())
}
