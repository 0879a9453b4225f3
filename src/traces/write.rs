//! Trace ingestion (docs/domain.md §5.3, §5.4; docs/decisions.md D14, D15, D17): start a trace,
//! append steps (insert-only, first write wins), and seal it by completion or abort.
//!
//! - Every payload is redacted ([`crate::redaction`]) before it is written.
//! - Steps are written only while the trace is `running`; a finished trace is sealed: at
//!   completion or abort the determinism signature (`checksum`) and the HASH_CHAIN run proof
//!   (`root_hash`) are computed from the stored steps in the same transaction, so the seal always
//!   describes exactly the steps that exist.
//! - Steps of a synthetic trace are synthetic, with the trace's scenario id
//!   (docs/decisions.md D17).
//! - Concurrency: on PostgreSQL, `recordSteps` holds a share lock on the trace row and a
//!   completion an exclusive one, so a batch never lands after the seal was computed; on SQLite
//!   both run in `BEGIN IMMEDIATE` transactions (one writer at a time). A writer that records
//!   and seals in one transaction (OTLP) locks the row exclusively once and holds it
//!   ([`LockedTrace`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::aos_trace_steps::{self, Column as S, Entity as Steps};
use entity::aos_traces::{self, Column as T, Entity as Traces};
use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, FromQueryResult, NotSet, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
    TryInsertResult, Unchanged,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::hashing::{run_proof_root, step_hash, trace_signature};
use super::store::{self, step_snapshot, trace_snapshot};
use super::{
    ReplayBehavior, ReplayMode, StepLevel, StepSnapshot, StepSource, TraceSnapshot, TraceStatus,
    Violation,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::redaction::{redact_value, redacted, redacted_text};

/// Most steps one `recordSteps` call may carry.
pub const MAX_STEPS_PER_BATCH: usize = 1000;

/// Most rows one statement inserts or looks up: a step has about 25 columns, so a thousand
/// rows stay well under the bind-parameter limits (PostgreSQL 65 535, SQLite 32 766) whatever
/// the size of a batch.
pub const ROWS_PER_STATEMENT: usize = 1000;

/// Schema version of traces started through the API (runtime-started traces in the Python
/// platform).
const SCHEMA_VERSION: &str = "1.0";

/// A validated `startTrace` input. Defaults that depend on the clock or on randomness (start
/// time, a generated trace id) are applied when writing, so equal inputs fingerprint equally
/// for idempotency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTrace {
    pub trace_id: Option<String>,
    pub run_id: Option<String>,
    pub correlation_id: Option<String>,
    pub agent_id: Option<String>,
    pub plan_id: Option<String>,
    pub seed: Option<i64>,
    pub frozen_timestamp: Option<String>,
    pub plan_hash: Option<String>,
    pub plan: Value,
    pub incident_id: Option<String>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub replay_mode: Option<ReplayMode>,
    pub replay_attempt_id: Option<String>,
    pub replay_artifact_version: Option<String>,
    pub trace_completeness_status: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
}

/// A validated step of a `recordSteps` batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewStep {
    pub step_index: i32,
    pub skill_id: Option<String>,
    pub skill_name: String,
    pub params: Value,
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
    pub source: StepSource,
    pub timestamp: Option<DateTime<Utc>>,
}

/// What a `recordSteps` call did: which step indexes it wrote and which were already stored
/// (those keep their first version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepsRecorded {
    pub trace_id: String,
    pub inserted: Vec<i32>,
    pub already_present: Vec<i32>,
}

/// How a running trace ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// `completed` or `failed`; `metadata` replaces the stored metadata when given.
    Complete {
        status: TraceStatus,
        metadata: Option<Value>,
        violation: Option<Violation>,
    },
    /// `aborted`, with `metadata.abort_reason`.
    Abort {
        reason: String,
        violation: Option<Violation>,
    },
}

impl Finish {
    fn violation(&self) -> Option<&Violation> {
        match self {
            Finish::Complete { violation, .. } | Finish::Abort { violation, .. } => {
                violation.as_ref()
            }
        }
    }
}

/// The step level of a status, case-insensitive (docs/domain.md §5.2).
pub fn level_for_status(status: &str) -> StepLevel {
    match status.to_ascii_lowercase().as_str() {
        "failure" | "error" => StepLevel::Error,
        "retry" | "retrying" => StepLevel::Warn,
        _ => StepLevel::Info,
    }
}

/// The trace id a start without an explicit one gets: `trace_<run_id>` (runtime rule), or
/// `trace_` + 16 random hex when there is no run id either (SDK rule).
pub fn derived_trace_id(run_id: Option<&str>) -> String {
    match run_id {
        Some(run) => format!("trace_{run}"),
        None => {
            let mut bytes = [0u8; 8];
            rand::rng().fill_bytes(&mut bytes);
            format!("trace_{}", hex::encode(bytes))
        }
    }
}

/// Starts a trace (status `running`). Starting a trace id the tenant already has returns that
/// trace unchanged (idempotent start, first truth wins). Trace ids are unique per tenant: another
/// tenant's trace with the same id is invisible here, exactly like an unused id. Only the
/// tenant's own trace id whose trace was soft-archived (`archived_at` set, still in
/// `aos_traces`) is refused as `BAD_USER_INPUT`.
pub async fn start_trace(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    stored_by: Option<&str>,
    new: NewTrace,
) -> AppResult<TraceSnapshot> {
    let (row, trace_id, field) = trace_row(tenant, stored_by, new);
    match insert_trace(txn, row).await? {
        Some(model) => trace_snapshot(model),
        None => store::get_by_trace_id(txn, tenant, &trace_id)
            .await?
            .ok_or_else(|| archived(field, &trace_id)),
    }
}

/// Inserts the trace row and returns it, or `None` when the tenant already has the trace id.
async fn insert_trace(
    txn: &DatabaseTransaction,
    row: aos_traces::ActiveModel,
) -> AppResult<Option<aos_traces::Model>> {
    let inserted = Traces::insert(row)
        .on_conflict_do_nothing_on([T::TenantId, T::TraceId])
        .exec_with_returning(txn)
        .await;
    // With RETURNING, SeaORM reports the row a conflict left out as not found.
    match inserted {
        Ok(TryInsertResult::Inserted(model)) => Ok(Some(model)),
        Ok(_) | Err(DbErr::RecordNotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A trace row this transaction inserted or locked `FOR UPDATE`. A writer that records a
/// trace's steps and then seals it in one transaction (the OTLP receiver, `crate::otlp::store`)
/// holds it, so neither step re-reads or re-locks the row.
#[derive(Debug)]
pub struct LockedTrace(aos_traces::Model);

impl LockedTrace {
    pub fn is_running(&self) -> bool {
        self.0.status == TraceStatus::Running.as_str()
    }

    pub fn status(&self) -> &str {
        &self.0.status
    }
}

/// The tenant's live trace `trace_id`, locked `FOR UPDATE` until the transaction ends (SQLite's
/// `BEGIN IMMEDIATE` already excludes other writers); `None` when there is none.
pub async fn lock_trace(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    trace_id: &str,
) -> AppResult<Option<LockedTrace>> {
    Ok(find_locked(txn, tenant, trace_id, true)
        .await?
        .map(LockedTrace))
}

/// The tenant's live traces among `trace_ids`, locked `FOR UPDATE` like [`lock_trace`], by
/// trace id, in one statement.
pub async fn lock_traces(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    trace_ids: &[&str],
) -> AppResult<HashMap<String, LockedTrace>> {
    let mut locked = HashMap::new();
    for chunk in trace_ids.chunks(ROWS_PER_STATEMENT) {
        let rows = store::visible(tenant)
            .filter(T::TraceId.is_in(chunk.iter().copied()))
            .lock_exclusive()
            .all(txn)
            .await?;
        locked.extend(
            rows.into_iter()
                .map(|m| (m.trace_id.clone(), LockedTrace(m))),
        );
    }
    Ok(locked)
}

/// A trace [`start_locked_traces`] holds: inserted now, or the tenant's live trace of that id
/// that another writer started first (locked `FOR UPDATE`).
#[derive(Debug)]
pub enum StartedTrace {
    New(LockedTrace),
    Existing(LockedTrace),
}

/// Starts the traces like [`start_trace`], in one multi-row insert, and returns each locked, in
/// the order given. A trace id the tenant already has live is locked instead
/// ([`StartedTrace::Existing`]); an archived one is refused the same way as by `start_trace`,
/// for that trace only.
pub async fn start_locked_traces(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    stored_by: Option<&str>,
    new: Vec<NewTrace>,
) -> AppResult<Vec<AppResult<StartedTrace>>> {
    let rows: Vec<_> = new
        .into_iter()
        .map(|n| trace_row(tenant, stored_by, n))
        .collect();
    let mut inserted: HashMap<String, aos_traces::Model> = HashMap::new();
    let mut rest = rows.iter().map(|(row, _, _)| row.clone()).peekable();
    while rest.peek().is_some() {
        // A trace row has about 35 columns: a quarter of the rows keeps SQLite under its limit.
        let chunk: Vec<_> = rest.by_ref().take(ROWS_PER_STATEMENT / 4).collect();
        let result = Traces::insert_many(chunk)
            .on_conflict_do_nothing_on([T::TenantId, T::TraceId])
            .exec_with_returning_many(txn)
            .await;
        // With RETURNING, SeaORM reports a statement whose every row a conflict left out as
        // not found.
        match result {
            Ok(TryInsertResult::Inserted(models)) => {
                inserted.extend(models.into_iter().map(|m| (m.trace_id.clone(), m)))
            }
            Ok(_) | Err(DbErr::RecordNotFound(_)) | Err(DbErr::RecordNotInserted) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (_, trace_id, field) in rows {
        out.push(match inserted.remove(&trace_id) {
            Some(model) => Ok(StartedTrace::New(LockedTrace(model))),
            None => match lock_trace(txn, tenant, &trace_id).await? {
                Some(trace) => Ok(StartedTrace::Existing(trace)),
                None => Err(archived(field, &trace_id)),
            },
        });
    }
    Ok(out)
}

/// The row a start inserts, its trace id, and the input field that named the id (for the
/// archived refusal).
fn trace_row(
    tenant: &TenantId,
    stored_by: Option<&str>,
    new: NewTrace,
) -> (aos_traces::ActiveModel, String, &'static str) {
    let field = if new.trace_id.is_some() {
        "input.traceId"
    } else {
        "input.runId"
    };
    let trace_id = new
        .trace_id
        .clone()
        .unwrap_or_else(|| derived_trace_id(new.run_id.as_deref()));
    let run_id = new.run_id.clone().unwrap_or_else(|| trace_id.clone());
    let now = crate::scalars::now();
    let row = aos_traces::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        trace_id: Set(trace_id.clone()),
        correlation_id: Set(new.correlation_id.clone().unwrap_or_else(|| run_id.clone())),
        run_id: Set(run_id),
        tenant_id: Set(tenant.as_str().to_owned()),
        agent_id: Set(new.agent_id),
        plan_id: Set(new.plan_id),
        seed: Set(Some(new.seed.unwrap_or(42))),
        frozen_timestamp: Set(new.frozen_timestamp),
        root_hash: Set(None),
        plan_hash: Set(new.plan_hash),
        schema_version: Set(SCHEMA_VERSION.to_owned()),
        plan: Set(redacted(new.plan)),
        trace: Set(json!({"steps": []})),
        metadata: Set(None),
        status: Set(TraceStatus::Running.as_str().to_owned()),
        started_at: Set(new.started_at.unwrap_or(now)),
        completed_at: Set(None),
        created_at: Set(now),
        stored_by: Set(stored_by.map(str::to_owned)),
        checksum: Set(None),
        incident_id: Set(new.incident_id),
        is_synthetic: Set(new.is_synthetic),
        synthetic_scenario_id: Set(new.synthetic_scenario_id),
        archived_at: Set(None),
        violation_step_index: Set(None),
        violation_timestamp: Set(None),
        violation_policy_id: Set(None),
        violation_reason: Set(None),
        replay_mode: Set(new.replay_mode.map(|m| m.as_str().to_owned())),
        replay_attempt_id: Set(new.replay_attempt_id),
        replay_artifact_version: Set(new.replay_artifact_version),
        trace_completeness_status: Set(new.trace_completeness_status),
        // Set when the trace is sealed; generated.
        step_count: Set(None),
        duration_ms: NotSet,
    };
    (row, trace_id, field)
}

fn archived(field: &str, trace_id: &str) -> AppError {
    AppError::bad_input(field, format!("trace id {trace_id} is archived"))
}

/// The tenant's live trace, locked for the rest of the transaction (share or exclusive).
async fn locked_trace(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    trace_id: &str,
    exclusive: bool,
) -> AppResult<aos_traces::Model> {
    find_locked(txn, tenant, trace_id, exclusive)
        .await?
        .ok_or(AppError::NotFound("Trace"))
}

async fn find_locked(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    trace_id: &str,
    exclusive: bool,
) -> AppResult<Option<aos_traces::Model>> {
    let select = store::visible(tenant).filter(T::TraceId.eq(trace_id));
    let select = if exclusive {
        select.lock_exclusive()
    } else {
        select.lock_shared()
    };
    Ok(select.one(txn).await?)
}

fn not_running(trace: &aos_traces::Model, action: &str) -> AppError {
    AppError::InvalidTransition(format!(
        "trace {} is {}: only a running trace can {action}",
        trace.trace_id, trace.status
    ))
}

fn step_row(
    trace: &aos_traces::Model,
    step: NewStep,
    now: DateTime<Utc>,
) -> aos_trace_steps::ActiveModel {
    let mut params = step.params;
    redact_value(&mut params);
    let outcome_data = step.outcome_data.map(redacted);
    aos_trace_steps::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        trace_id: Set(trace.trace_id.clone()),
        tenant_id: Set(trace.tenant_id.clone()),
        step_index: Set(step.step_index),
        skill_id: Set(step.skill_id.unwrap_or_else(|| step.skill_name.clone())),
        level: Set(level_for_status(&step.status).as_str().to_owned()),
        skill_name: Set(step.skill_name),
        params: Set(params),
        status: Set(step.status),
        outcome_category: Set(step.outcome_category),
        outcome_code: Set(step.outcome_code),
        outcome_data: Set(outcome_data),
        cost_cents: Set(step.cost_cents),
        duration_ms: Set(step.duration_ms),
        retry_count: Set(step.retry_count),
        input_hash: Set(step.input_hash),
        output_hash: Set(step.output_hash),
        rng_state_before: Set(step.rng_state_before),
        idempotency_key: Set(step.idempotency_key),
        replay_behavior: Set(step.replay_behavior.as_str().to_owned()),
        timestamp: Set(step.timestamp.unwrap_or(now)),
        source: Set(step.source.as_str().to_owned()),
        is_synthetic: Set(trace.is_synthetic),
        synthetic_scenario_id: Set(trace.synthetic_scenario_id.clone()),
        archived_at: Set(None),
    }
}

/// Appends a batch of steps to a running trace in one transaction and one multi-row
/// `INSERT … ON CONFLICT DO NOTHING RETURNING step_index`: a step index already stored keeps its
/// first version and is reported as already present. The batch is validated by the caller
/// (unique indexes, at most [`MAX_STEPS_PER_BATCH`]).
pub async fn record_steps(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    trace_id: &str,
    steps: Vec<NewStep>,
) -> AppResult<StepsRecorded> {
    // Share-locked, which appending steps needs; it is not handed on to a seal.
    let trace = LockedTrace(locked_trace(txn, tenant, trace_id, false).await?);
    record_locked_steps(txn, vec![(&trace, steps)])
        .await?
        .pop()
        .ok_or_else(|| AppError::internal("a batch of steps recorded no result"))
}

/// [`record_steps`] into traces this transaction already holds, in multi-row inserts across the
/// traces (at most [`ROWS_PER_STATEMENT`] rows each); one [`StepsRecorded`] per trace, in the
/// order given.
pub async fn record_locked_steps(
    txn: &DatabaseTransaction,
    batches: Vec<(&LockedTrace, Vec<NewStep>)>,
) -> AppResult<Vec<StepsRecorded>> {
    for (trace, _) in &batches {
        if !trace.is_running() {
            return Err(not_running(&trace.0, "record steps"));
        }
    }
    let now = crate::scalars::now();
    let mut recorded = Vec::with_capacity(batches.len());
    let mut rows = Vec::new();
    for (trace, steps) in batches {
        let mut requested: Vec<i32> = steps.iter().map(|s| s.step_index).collect();
        requested.sort_unstable();
        recorded.push((trace.0.trace_id.clone(), requested));
        rows.extend(steps.into_iter().map(|step| step_row(&trace.0, step, now)));
    }
    let mut inserted: HashMap<String, Vec<i32>> = HashMap::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
        for (trace_id, index) in insert_step_rows(txn, chunk).await? {
            inserted.entry(trace_id).or_default().push(index);
        }
    }
    Ok(recorded
        .into_iter()
        .map(|(trace_id, requested)| {
            let inserted = inserted.remove(&trace_id).unwrap_or_default();
            steps_recorded(trace_id, requested, inserted)
        })
        .collect())
}

/// Inserts step rows, a stored `(tenant, trace, step index)` keeping its first version, and
/// returns the `(trace id, step index)` of each row written.
async fn insert_step_rows(
    txn: &DatabaseTransaction,
    rows: Vec<aos_trace_steps::ActiveModel>,
) -> AppResult<Vec<(String, i32)>> {
    let returned = if txn.get_database_backend() == DbBackend::Postgres {
        crate::db::insert_rows_as_json(
            txn,
            rows,
            "ON CONFLICT (tenant_id, trace_id, step_index) DO NOTHING RETURNING trace_id, step_index",
        )
        .await?
    } else {
        let mut insert = Steps::insert_many(rows)
            .on_conflict(
                OnConflict::columns([S::TenantId, S::TraceId, S::StepIndex])
                    .do_nothing()
                    .to_owned(),
            )
            .into_query();
        insert
            .returning(sea_orm::sea_query::Query::returning().columns([S::TraceId, S::StepIndex]));
        txn.query_all(&insert).await?
    };
    returned
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "trace_id")?,
                row.try_get::<i32>("", "step_index")?,
            ))
        })
        .collect()
}

/// What writing `requested` step indexes of a trace did, `inserted` being those written.
fn steps_recorded(trace_id: String, requested: Vec<i32>, mut inserted: Vec<i32>) -> StepsRecorded {
    inserted.sort_unstable();
    let already_present = requested
        .into_iter()
        .filter(|i| inserted.binary_search(i).is_err())
        .collect();
    StepsRecorded {
        trace_id,
        inserted,
        already_present,
    }
}

/// Ends a running trace and seals it: status, `completed_at`, metadata, and the determinism
/// signature (`checksum`) and run-proof root (`root_hash`, only when there are steps: the run
/// proof of an empty trace is unsupported, docs/domain.md §5.4) over the stored steps, all in one
/// transaction. A trace that is not running: `INVALID_TRANSITION`.
pub async fn finish_trace(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    trace_id: &str,
    finish: Finish,
) -> AppResult<TraceSnapshot> {
    let trace = locked_trace(txn, tenant, trace_id, true).await?;
    seal(txn, trace, finish).await
}

/// [`finish_trace`] of a trace this transaction already holds.
pub async fn finish_locked_trace(
    txn: &DatabaseTransaction,
    trace: LockedTrace,
    finish: Finish,
) -> AppResult<TraceSnapshot> {
    seal(txn, trace.0, finish).await
}

/// [`finish_locked_trace`] of several traces: their steps are read in one statement, then each
/// trace is sealed.
pub async fn finish_locked_traces(
    txn: &DatabaseTransaction,
    traces: Vec<(LockedTrace, Finish)>,
) -> AppResult<()> {
    let Some((first, _)) = traces.first() else {
        return Ok(());
    };
    let tenant = first.0.tenant_id.clone();
    let ids: Vec<&str> = traces.iter().map(|(t, _)| t.0.trace_id.as_str()).collect();
    let mut steps: HashMap<String, Vec<SealedStep>> = HashMap::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let rows = sealed_steps_query(&tenant)
            .filter(S::TraceId.is_in(chunk.iter().copied()))
            .into_model::<SealedStep>()
            .all(txn)
            .await?;
        for step in rows {
            steps.entry(step.trace_id.clone()).or_default().push(step);
        }
    }
    for (trace, finish) in traces {
        debug_assert_eq!(trace.0.tenant_id, tenant);
        let of_trace = steps.remove(&trace.0.trace_id).unwrap_or_default();
        seal_with_steps(txn, trace.0, finish, of_trace).await?;
    }
    Ok(())
}

async fn seal(
    txn: &DatabaseTransaction,
    trace: aos_traces::Model,
    finish: Finish,
) -> AppResult<TraceSnapshot> {
    let steps = sealed_steps_query(&trace.tenant_id)
        .filter(S::TraceId.eq(trace.trace_id.as_str()))
        .into_model::<SealedStep>()
        .all(txn)
        .await?;
    seal_with_steps(txn, trace, finish, steps).await
}

/// Seals `trace` over `steps`, its live steps in step order.
async fn seal_with_steps(
    txn: &DatabaseTransaction,
    trace: aos_traces::Model,
    finish: Finish,
    steps: Vec<SealedStep>,
) -> AppResult<TraceSnapshot> {
    let action = match &finish {
        Finish::Complete { .. } => "be completed",
        Finish::Abort { .. } => "be aborted",
    };
    if trace.status != TraceStatus::Running.as_str() {
        return Err(not_running(&trace, action));
    }
    let hashes: Vec<String> = steps.iter().map(SealedStep::determinism_hash).collect();
    let checksum = trace_signature(&hashes);
    let chain: Vec<(i32, &str, &str)> = steps
        .iter()
        .map(|s| (s.step_index, s.skill_name.as_str(), s.status.as_str()))
        .collect();
    let root_hash = (!chain.is_empty()).then(|| run_proof_root(&trace.run_id, &chain));

    let mut update = <aos_traces::ActiveModel as ActiveModelTrait>::default();
    update.id = Unchanged(trace.id.clone());
    update.completed_at = Set(Some(crate::scalars::now()));
    update.checksum = Set(Some(checksum));
    update.step_count = Set(Some(
        i32::try_from(steps.len()).map_err(AppError::internal)?,
    ));
    if root_hash.is_some() {
        update.root_hash = Set(root_hash);
    }
    if let Some(violation) = finish.violation() {
        let violation = recorded_violation(violation, &steps)?;
        update.violation_step_index = Set(violation.step_index);
        update.violation_timestamp = Set(violation.timestamp);
        update.violation_policy_id = Set(violation.policy_id);
        update.violation_reason = Set(violation.reason);
    }
    match finish {
        Finish::Complete {
            status, metadata, ..
        } => {
            update.status = Set(status.as_str().to_owned());
            if let Some(metadata) = metadata {
                update.metadata = Set(Some(redacted(metadata)));
            }
        }
        Finish::Abort { reason, .. } => {
            update.status = Set(TraceStatus::Aborted.as_str().to_owned());
            let mut metadata = match trace.metadata.clone() {
                Some(Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            let reason = redacted_text(Some(reason)).unwrap_or_default();
            metadata.insert("abort_reason".into(), Value::String(reason));
            update.metadata = Set(Some(Value::Object(metadata)));
        }
    }
    // The row is locked and was running; the trigger re-checks the transition anyway.
    let updated = Traces::update(update).exec(txn).await?;
    trace_snapshot(updated)
}

/// What sealing reads of a live step: the fields of its determinism hash and of the run-proof
/// chain, and its time (a violation's default). Only these columns are read: at a seal that
/// ends a large trace, decoding whole steps (outcome data, keys, hashes) cost more than hashing.
#[derive(FromQueryResult)]
struct SealedStep {
    trace_id: String,
    step_index: i32,
    skill_name: String,
    params: Value,
    status: String,
    outcome_category: String,
    outcome_code: Option<String>,
    retry_count: i32,
    timestamp: DateTime<Utc>,
}

impl SealedStep {
    /// The same hash as [`StepSnapshot::determinism_hash`], over the same stored fields.
    fn determinism_hash(&self) -> String {
        step_hash(
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

/// The tenant's live steps as sealing reads them, in trace and step order; the caller picks the
/// traces.
fn sealed_steps_query(tenant: &str) -> sea_orm::Select<Steps> {
    Steps::find()
        .select_only()
        .columns([
            S::TraceId,
            S::StepIndex,
            S::SkillName,
            S::Params,
            S::Status,
            S::OutcomeCategory,
            S::OutcomeCode,
            S::RetryCount,
            S::Timestamp,
        ])
        .filter(S::TenantId.eq(tenant))
        .filter(S::ArchivedAt.is_null())
        .order_by_asc(S::TraceId)
        .order_by_asc(S::StepIndex)
}

/// The violation as stored: its step must be one of the trace's live steps, and its time is
/// that step's when the writer gave none; the reason is redacted like every producer's text.
fn recorded_violation(violation: &Violation, steps: &[SealedStep]) -> AppResult<Violation> {
    let mut timestamp = violation.timestamp;
    if let Some(index) = violation.step_index {
        let step = steps
            .iter()
            .find(|s| s.step_index == index)
            .ok_or_else(|| {
                AppError::bad_input(
                    "violation.stepIndex",
                    format!("the trace has no step {index}"),
                )
            })?;
        timestamp = timestamp.or(Some(step.timestamp));
    }
    Ok(Violation {
        step_index: violation.step_index,
        timestamp,
        policy_id: violation.policy_id.clone(),
        reason: redacted_text(violation.reason.clone()),
    })
}

/// The stored versions of these steps of the tenant's trace, in step order.
pub async fn steps_by_index(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_id: &str,
    indexes: &[i32],
) -> AppResult<Vec<StepSnapshot>> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    Steps::find()
        .filter(S::TenantId.eq(tenant.as_str()))
        .filter(S::TraceId.eq(trace_id))
        .filter(S::StepIndex.is_in(indexes.iter().copied()))
        .filter(S::ArchivedAt.is_null())
        .order_by_asc(S::StepIndex)
        .all(db)
        .await?
        .into_iter()
        .map(step_snapshot)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_status() {
        assert_eq!(level_for_status("failure"), StepLevel::Error);
        assert_eq!(level_for_status("ERROR"), StepLevel::Error);
        assert_eq!(level_for_status("retry"), StepLevel::Warn);
        assert_eq!(level_for_status("Retrying"), StepLevel::Warn);
        assert_eq!(level_for_status("success"), StepLevel::Info);
        assert_eq!(level_for_status("skipped"), StepLevel::Info);
        assert_eq!(level_for_status("whatever"), StepLevel::Info);
    }

    #[test]
    fn trace_ids_follow_the_domain() {
        assert_eq!(derived_trace_id(Some("run-1")), "trace_run-1");
        let generated = derived_trace_id(None);
        assert_eq!(generated.len(), "trace_".len() + 16);
        assert!(generated.starts_with("trace_"));
    }
}
