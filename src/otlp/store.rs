//! Writes a request's spans in one transaction (one per 64 traces, see the route's
//! `TRACES_PER_TRANSACTION`): per trace, the trace (started on its first span), the new spans'
//! steps, LLM run records and exception system records, the root span (`otlp_root_spans`), and
//! the seal once the root span is the last to end.
//!
//! Traces the request starts are written together, one statement per kind of row for all of
//! them (docs/otlp.md, "Throughput"); a trace stored before (a later batch of it, or a retry) is
//! written on its own, under a savepoint, so a refusal of its spans leaves the others'.
//!
//! Exactly once under retries and across processes: the transaction first takes a lock on
//! (tenant, trace) for every trace of the request — PostgreSQL advisory transaction locks, taken
//! in one order; SQLite's single writer already serialises — then keeps only the spans not
//! stored yet: a child span is stored when a step of the trace has its idempotency key
//! `otel:<trace>:<span>`, a root span when `otlp_root_spans` holds it. A trace that does not
//! exist yet has stored neither, so its spans are not looked up. Step indexes are allocated
//! under the same lock, after the trace's highest one.

use std::collections::HashSet;

use chrono::Utc;
use entity::aos_trace_steps::{Column as S, Entity as Steps};
use entity::otlp_root_spans::{self, Column as O, Entity as Roots};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, QueryFilter, QuerySelect, Statement, TransactionTrait,
};
use serde_json::{json, Value};

use super::mapping::{SpanRecord, TraceBatch};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::runs::write::NewLlmRun;
use crate::runs::{ExecutionStatus, RunSource};
use crate::system::write::NewSystemRecord;
use crate::system::{SystemComponent, SystemEventType, SystemRecordCause, SystemRecordSeverity};
use crate::traces::write::{
    Finish, LockedTrace, NewStep, NewTrace, StartedTrace, ROWS_PER_STATEMENT,
};
use crate::traces::{ReplayBehavior, StepSource, TraceStatus};

/// What storing one trace's spans did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stored {
    /// Spans stored now.
    pub new_spans: u64,
    /// Spans stored by an earlier delivery (a retry): accepted, nothing written.
    pub duplicates: u64,
    /// Spans refused (their trace is already sealed), with why.
    pub rejected: u64,
    pub reason: Option<String>,
    pub steps: u64,
    /// Run records of the trace's new GenAI spans (one whose run id another writer stored
    /// first keeps that record).
    pub runs: u64,
    pub system_records: u64,
    pub started: bool,
    pub sealed: bool,
}

/// `rows` in runs of at most [`ROWS_PER_STATEMENT`].
fn chunked<T>(mut rows: Vec<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    while rows.len() > ROWS_PER_STATEMENT {
        let rest = rows.split_off(ROWS_PER_STATEMENT);
        chunks.push(std::mem::replace(&mut rows, rest));
    }
    if !rows.is_empty() {
        chunks.push(rows);
    }
    chunks
}

/// The idempotency key of the step a child span becomes.
fn step_key(trace_id: &str, span_id: &str) -> String {
    format!("otel:{trace_id}:{span_id}")
}

/// Stores `batches`, traces of a request (one batch per trace, distinct trace ids), for
/// `tenant` (see the module doc). One result per batch, in order: an error there (an archived
/// trace id) refused that trace's spans only; an error of the whole call wrote nothing. Each
/// trace holds an advisory lock until the commit, so the caller bounds the batches per call.
pub async fn store_request(
    db: &DatabaseConnection,
    tenant: &TenantId,
    batches: &[TraceBatch],
) -> AppResult<Vec<AppResult<Stored>>> {
    // BEGIN IMMEDIATE on SQLite: this transaction reads, then writes.
    let txn = crate::idempotency::begin_write(db).await?;
    crate::db::reuse_plans(&txn).await?;
    let ids: Vec<&str> = batches.iter().map(|b| b.trace_id.as_str()).collect();
    advisory_lock_traces(&txn, tenant, &ids).await?;
    let mut existing = crate::traces::write::lock_traces(&txn, tenant, &ids).await?;
    let mut results: Vec<Option<AppResult<Stored>>> = batches.iter().map(|_| None).collect();

    // Traces the request starts: every span is fresh but for repeats within the request.
    let mut starting = Vec::new();
    let mut news = Vec::new();
    for (at, batch) in batches.iter().enumerate() {
        if existing.contains_key(&batch.trace_id) {
            continue;
        }
        let fresh = fresh_spans(batch, &StoredBefore::default());
        if fresh.is_empty() {
            results[at] = Some(Ok(Stored::default()));
            continue;
        }
        let started_at = fresh.iter().map(|s| s.start).min();
        news.push(new_trace(
            &batch.trace_id,
            batch.service.clone(),
            started_at,
        ));
        starting.push((at, fresh));
    }
    let started =
        crate::traces::write::start_locked_traces(&txn, tenant, Some("otlp"), news).await?;
    let mut plans = Vec::new();
    for ((at, fresh), started) in starting.into_iter().zip(started) {
        match started {
            Ok(StartedTrace::New(trace)) => {
                let batch = &batches[at];
                let seal = root_ended_last(&txn, tenant, batch, &fresh, true).await?;
                plans.push((
                    at,
                    plan(
                        tenant,
                        batch,
                        trace,
                        fresh,
                        &StoredBefore::default(),
                        true,
                        None,
                        seal,
                    ),
                ));
            }
            // Another writer started it after this transaction looked: stored like any trace
            // that existed.
            Ok(StartedTrace::Existing(trace)) => {
                existing.insert(batches[at].trace_id.clone(), trace);
            }
            Err(err) => results[at] = Some(Err(err)),
        }
    }
    let (ats, plans): (Vec<usize>, Vec<Plan>) = plans.into_iter().unzip();
    for (at, stored) in ats.into_iter().zip(write(&txn, tenant, plans).await?) {
        results[at] = Some(Ok(stored));
    }

    for (at, batch) in batches.iter().enumerate() {
        let Some(trace) = existing.remove(&batch.trace_id) else {
            continue;
        };
        let savepoint = txn.begin().await?;
        match store_existing(&savepoint, tenant, batch, trace).await {
            Ok(stored) => {
                savepoint.commit().await?;
                results[at] = Some(Ok(stored));
            }
            Err(err @ AppError::BadUserInput { .. }) => {
                savepoint.rollback().await?;
                results[at] = Some(Err(err));
            }
            Err(err) => return Err(err),
        }
    }
    txn.commit().await?;
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Ok(Stored::default())))
        .collect())
}

/// The spans of `batch` that `before` does not hold, each span id once.
fn fresh_spans<'a>(batch: &'a TraceBatch, before: &StoredBefore) -> Vec<&'a SpanRecord> {
    let mut seen = HashSet::new();
    batch
        .spans
        .iter()
        .filter(|s| !before.holds(s) && seen.insert(s.span_id.as_str()))
        .collect()
}

/// Stores `batch` into `trace`, a trace stored before this request.
async fn store_existing(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    batch: &TraceBatch,
    trace: LockedTrace,
) -> AppResult<Stored> {
    let before = StoredBefore::read(txn, tenant, batch).await?;
    let fresh = fresh_spans(batch, &before);
    let duplicates = (batch.spans.len() - fresh.len()) as u64;
    if fresh.is_empty() {
        return Ok(Stored {
            duplicates,
            ..Stored::default()
        });
    }
    if !trace.is_running() {
        return Ok(Stored {
            duplicates,
            rejected: fresh.len() as u64,
            reason: Some(format!(
                "trace {} is already sealed ({}); its late spans are refused",
                batch.trace_id,
                trace.status()
            )),
            ..Stored::default()
        });
    }
    let seal = root_ended_last(txn, tenant, batch, &fresh, false).await?;
    let highest: Option<i32> = Steps::find()
        .select_only()
        .expr(Func::max(Expr::col(S::StepIndex)))
        .filter(S::TenantId.eq(tenant.as_str()))
        .filter(S::TraceId.eq(batch.trace_id.as_str()))
        .into_tuple::<Option<i32>>()
        .one(txn)
        .await?
        .flatten();
    let plan = plan(tenant, batch, trace, fresh, &before, false, highest, seal);
    Ok(write(txn, tenant, vec![plan])
        .await?
        .pop()
        .unwrap_or_default())
}

/// What to write for one trace's fresh spans.
struct Plan {
    trace: LockedTrace,
    trace_id: String,
    roots: Vec<otlp_root_spans::ActiveModel>,
    /// No root arrives now, but the trace's stored root is open: the quiet period counts from
    /// this arrival.
    touch_open_root: bool,
    steps: Vec<NewStep>,
    runs: Vec<NewLlmRun>,
    records: Vec<NewSystemRecord>,
    /// How the trace ends now, if it does; and whether an open root of an earlier delivery
    /// must be closed with it.
    seal: Option<Finish>,
    close_open_root: bool,
    stored: Stored,
}

/// The rows `fresh`, the spans of `batch` not stored yet, become in `trace`; steps are numbered
/// after `highest`, the trace's highest step index so far. `seal`: the root arrives now and
/// ended last.
#[allow(clippy::too_many_arguments)]
fn plan(
    tenant: &TenantId,
    batch: &TraceBatch,
    trace: LockedTrace,
    fresh: Vec<&SpanRecord>,
    before: &StoredBefore,
    started: bool,
    highest: Option<i32>,
    seal: bool,
) -> Plan {
    let mut next = highest.map_or(0, |h| h + 1);
    let received_at_ms = Utc::now().timestamp_millis();
    let mut roots = Vec::new();
    let mut steps = Vec::new();
    for span in &fresh {
        if span.is_root {
            roots.push(otlp_root_spans::ActiveModel {
                tenant_id: Set(tenant.as_str().to_owned()),
                trace_id: Set(batch.trace_id.clone()),
                span_id: Set(span.span_id.clone()),
                failed: Set(span.failed),
                // A root sealed now is closed from the start: the quiet-period sealer skips it.
                open: Set(!seal),
                end_unix_nano: Set(span.end_unix_nano),
                received_at_ms: Set(received_at_ms),
            });
        } else {
            steps.push(step_of(&batch.trace_id, span, next));
            next += 1;
        }
    }
    let runs = fresh
        .iter()
        .filter_map(|span| run_of(&batch.trace_id, span))
        .collect();
    let records = fresh
        .iter()
        .flat_map(|span| system_records_of(&batch.trace_id, batch.service.as_deref(), span))
        .collect();
    let root = fresh.iter().find(|s| s.is_root);
    Plan {
        trace,
        trace_id: batch.trace_id.clone(),
        touch_open_root: roots.is_empty() && before.open_root,
        roots,
        steps,
        runs,
        records,
        seal: root.filter(|_| seal).map(|r| finish_of(r.failed)),
        close_open_root: before.open_root,
        stored: Stored {
            new_spans: fresh.len() as u64,
            duplicates: (batch.spans.len() - fresh.len()) as u64,
            started,
            ..Stored::default()
        },
    }
}

/// Writes `plans`, one statement per kind of row for all of them (in chunks of
/// [`ROWS_PER_STATEMENT`] rows), and returns what each stored, in order.
async fn write(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    plans: Vec<Plan>,
) -> AppResult<Vec<Stored>> {
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let mut roots = Vec::new();
    let mut runs = Vec::new();
    let mut seals = Vec::new();
    let mut out = Vec::with_capacity(plans.len());
    let mut plans = plans;
    for plan in &mut plans {
        roots.append(&mut plan.roots);
        plan.stored.runs = plan.runs.len() as u64;
        runs.append(&mut plan.runs);
    }
    for chunk in chunked(roots) {
        Roots::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    let received_at_ms = Utc::now().timestamp_millis();
    for plan in plans.iter().filter(|p| p.touch_open_root) {
        Roots::update_many()
            .col_expr(O::ReceivedAtMs, Expr::value(received_at_ms))
            .filter(O::TenantId.eq(tenant.as_str()))
            .filter(O::TraceId.eq(plan.trace_id.as_str()))
            .filter(O::Open.eq(true))
            .exec(txn)
            .await?;
    }
    let steps: Vec<Vec<NewStep>> = plans
        .iter_mut()
        .map(|p| std::mem::take(&mut p.steps))
        .collect();
    let step_batches = plans.iter().map(|p| &p.trace).zip(steps).collect();
    let recorded = crate::traces::write::record_locked_steps(txn, step_batches).await?;
    for chunk in chunked(runs) {
        crate::runs::write::record_runs(txn, tenant, chunk).await?;
    }
    for (plan, recorded) in plans.iter_mut().zip(recorded) {
        plan.stored.steps = recorded.inserted.len() as u64;
        for record in std::mem::take(&mut plan.records) {
            crate::system::write::record_system_record(txn, tenant, record).await?;
            plan.stored.system_records += 1;
        }
    }
    let mut closing = Vec::new();
    for plan in plans {
        let mut stored = plan.stored;
        if let Some(finish) = plan.seal {
            if plan.close_open_root {
                closing.push(plan.trace_id.clone());
            }
            seals.push((plan.trace, finish));
            stored.sealed = true;
        }
        out.push(stored);
    }
    crate::traces::write::finish_locked_traces(txn, seals).await?;
    for trace_id in closing {
        close_root(txn, tenant, &trace_id).await?;
    }
    Ok(out)
}

/// Which of a batch's spans an existing trace holds already, and whether its root is open.
#[derive(Default)]
struct StoredBefore {
    /// Span ids of the batch stored before: roots by their row, children by their step.
    span_ids: HashSet<String>,
    /// The trace has a root span and is not sealed yet.
    open_root: bool,
}

impl StoredBefore {
    async fn read(
        txn: &DatabaseTransaction,
        tenant: &TenantId,
        batch: &TraceBatch,
    ) -> AppResult<Self> {
        let roots: Vec<(String, bool)> = Roots::find()
            .select_only()
            .columns([O::SpanId, O::Open])
            .filter(O::TenantId.eq(tenant.as_str()))
            .filter(O::TraceId.eq(batch.trace_id.as_str()))
            .into_tuple()
            .all(txn)
            .await?;
        let open_root = roots.iter().any(|(_, open)| *open);
        let sent: HashSet<&str> = batch
            .spans
            .iter()
            .filter(|s| s.is_root)
            .map(|s| s.span_id.as_str())
            .collect();
        let mut span_ids: HashSet<String> = roots
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| sent.contains(id.as_str()))
            .collect();
        let children: Vec<String> = batch
            .spans
            .iter()
            .filter(|s| !s.is_root)
            .map(|s| step_key(&batch.trace_id, &s.span_id))
            .collect();
        let prefix = step_key(&batch.trace_id, "");
        for chunk in children.chunks(ROWS_PER_STATEMENT) {
            let keys: Vec<Option<String>> = Steps::find()
                .select_only()
                .column(S::IdempotencyKey)
                .filter(S::TenantId.eq(tenant.as_str()))
                .filter(S::TraceId.eq(batch.trace_id.as_str()))
                .filter(S::IdempotencyKey.is_in(chunk))
                .into_tuple()
                .all(txn)
                .await?;
            span_ids.extend(
                keys.into_iter()
                    .flatten()
                    .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)),
            );
        }
        Ok(Self {
            span_ids,
            open_root,
        })
    }

    fn holds(&self, span: &SpanRecord) -> bool {
        self.span_ids.contains(&span.span_id)
    }
}

/// Whether the trace is sealed now: the batch's root span is among `fresh`, its spans not
/// stored yet, and ends no earlier than every other span of the trace, the fresh ones and the
/// steps stored before (none when the batch `started` the trace; a stored step's end is its
/// start plus its duration, to the microsecond). Decided before anything is written, so the
/// root's row is stored closed rather than updated (docs/otlp.md, "Sealing").
async fn root_ended_last(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    batch: &TraceBatch,
    fresh: &[&SpanRecord],
    started: bool,
) -> AppResult<bool> {
    let Some(root) = fresh.iter().find(|s| s.is_root) else {
        return Ok(false);
    };
    if fresh
        .iter()
        .any(|s| !s.is_root && s.end_unix_nano > root.end_unix_nano)
    {
        return Ok(false);
    }
    if started {
        return Ok(true);
    }
    let stored: Vec<(chrono::DateTime<Utc>, f64)> = Steps::find()
        .select_only()
        .columns([S::Timestamp, S::DurationMs])
        .filter(S::TenantId.eq(tenant.as_str()))
        .filter(S::TraceId.eq(batch.trace_id.as_str()))
        .into_tuple()
        .all(txn)
        .await?;
    let root_end_us = root.end_unix_nano / 1000;
    let later_child = stored.iter().any(|(start, duration_ms)| {
        start.timestamp_micros() + (duration_ms * 1000.0).round() as i64 > root_end_us
    });
    Ok(!later_child)
}

/// How a trace ends: completed, or failed when its root span failed.
fn finish_of(root_failed: bool) -> Finish {
    let status = if root_failed {
        TraceStatus::Failed
    } else {
        TraceStatus::Completed
    };
    Finish::Complete {
        status,
        metadata: None,
        violation: None,
    }
}

/// Marks the trace's root span as sealed, so the quiet-period sealer no longer looks at it.
async fn close_root(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_id: &str,
) -> AppResult<()> {
    Roots::update_many()
        .col_expr(O::Open, Expr::value(false))
        .filter(O::TenantId.eq(tenant.as_str()))
        .filter(O::TraceId.eq(trace_id))
        .filter(O::Open.eq(true))
        .exec(conn)
        .await?;
    Ok(())
}

/// Most traces one round of [`seal_quiet_traces`] seals.
const SEAL_BATCH: u64 = 200;

/// Seals the traces whose root span has arrived and which received no span for `quiet`: the
/// case where a child ended after the root, so the root's arrival could not seal it. Each trace
/// is sealed in its own transaction under the trace's lock, so processes sweeping at once never
/// seal one twice. Returns the tenants of the traces sealed (for wake-ups), one per trace.
pub async fn seal_quiet_traces(
    db: &DatabaseConnection,
    quiet: std::time::Duration,
) -> AppResult<Vec<TenantId>> {
    let cutoff = Utc::now().timestamp_millis() - i64::try_from(quiet.as_millis()).unwrap_or(0);
    let roots: Vec<(String, String, bool)> = Roots::find()
        .select_only()
        .columns([O::TenantId, O::TraceId, O::Failed])
        .filter(O::Open.eq(true))
        .filter(O::ReceivedAtMs.lt(cutoff))
        .limit(SEAL_BATCH)
        .into_tuple()
        .all(db)
        .await?;
    let mut sealed = Vec::new();
    for (tenant, trace_id, failed) in roots {
        let tenant = TenantId::trusted(tenant);
        let txn = crate::idempotency::begin_write(db).await?;
        advisory_lock_traces(&txn, &tenant, &[trace_id.as_str()]).await?;
        // A span that arrived since the sweep read the root moved its `received_at_ms`.
        let newest: Option<i64> = Roots::find()
            .select_only()
            .expr(Func::max(Expr::col(O::ReceivedAtMs)))
            .filter(O::TenantId.eq(tenant.as_str()))
            .filter(O::TraceId.eq(trace_id.as_str()))
            .filter(O::Open.eq(true))
            .into_tuple::<Option<i64>>()
            .one(&txn)
            .await?
            .flatten();
        if newest.is_some_and(|n| n >= cutoff) {
            txn.rollback().await?;
            continue;
        }
        if let Some(trace) = crate::traces::write::lock_trace(&txn, &tenant, &trace_id).await? {
            if trace.is_running() {
                crate::traces::write::finish_locked_trace(&txn, trace, finish_of(failed)).await?;
                sealed.push(tenant.clone());
            }
        }
        // Sealed now, or already sealed (or archived) some other way: either way done.
        close_root(&txn, &tenant, &trace_id).await?;
        txn.commit().await?;
    }
    Ok(sealed)
}

/// The (tenant, trace) locks every writer of a trace's spans takes first: PostgreSQL advisory
/// transaction locks, taken in the order of their keys so two requests sharing traces never
/// wait on each other in a cycle; SQLite's single writer serialises already.
async fn advisory_lock_traces(
    txn: &sea_orm::DatabaseTransaction,
    tenant: &TenantId,
    trace_ids: &[&str],
) -> AppResult<()> {
    if txn.get_database_backend() == DbBackend::Postgres && !trace_ids.is_empty() {
        let keys: Vec<String> = trace_ids
            .iter()
            .map(|t| format!("otlp/{}/{t}", tenant.as_str()))
            .collect();
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext(k) AS h \
             FROM jsonb_array_elements_text($1::jsonb) AS k ORDER BY h) AS keys",
            [serde_json::to_string(&keys)
                .map_err(AppError::internal)?
                .into()],
        ))
        .await?;
    }
    Ok(())
}

fn new_trace(
    trace_id: &str,
    service: Option<String>,
    started_at: Option<chrono::DateTime<Utc>>,
) -> NewTrace {
    NewTrace {
        trace_id: Some(trace_id.to_owned()),
        run_id: Some(trace_id.to_owned()),
        correlation_id: Some(trace_id.to_owned()),
        agent_id: service.map(|s| s.chars().take(64).collect()),
        plan_id: None,
        seed: None,
        frozen_timestamp: None,
        plan_hash: None,
        plan: json!([]),
        incident_id: None,
        is_synthetic: false,
        synthetic_scenario_id: None,
        replay_mode: None,
        replay_attempt_id: None,
        replay_artifact_version: None,
        trace_completeness_status: None,
        started_at,
    }
}

/// The step a child span becomes; params are its attributes (redacted when written).
fn step_of(trace_id: &str, span: &SpanRecord, step_index: i32) -> NewStep {
    let mut outcome = json!({ "span_id": span.span_id });
    if let Some(message) = &span.status_message {
        outcome["status_message"] = Value::String(message.clone());
    }
    if let Some(llm) = &span.llm {
        outcome["model"] = Value::String(llm.model.clone());
        outcome["input_tokens"] = llm.input_tokens.into();
        outcome["output_tokens"] = llm.output_tokens.into();
    }
    NewStep {
        step_index,
        skill_id: None,
        skill_name: span.name.clone(),
        params: Value::Object(span.attributes.clone()),
        status: if span.failed { "failure" } else { "success" }.to_owned(),
        outcome_category: if span.failed { "FAILURE" } else { "SUCCESS" }.to_owned(),
        outcome_code: None,
        outcome_data: Some(outcome),
        cost_cents: span.llm.as_ref().and_then(|l| l.cost_cents).unwrap_or(0.0),
        duration_ms: span.duration_ms(),
        retry_count: 0,
        input_hash: None,
        output_hash: None,
        rng_state_before: None,
        idempotency_key: Some(step_key(trace_id, &span.span_id)),
        replay_behavior: ReplayBehavior::Execute,
        source: StepSource::External,
        timestamp: Some(span.start),
    }
}

/// The LLM run record of a GenAI span: run id `<trace id>-<span id>`.
fn run_of(trace_id: &str, span: &SpanRecord) -> Option<NewLlmRun> {
    let llm = span.llm.as_ref()?;
    let clamp = |t: i64| i32::try_from(t).unwrap_or(i32::MAX);
    Some(NewLlmRun {
        run_id: format!("{trace_id}-{}", span.span_id),
        trace_id: Some(trace_id.to_owned()),
        provider: llm.provider.clone(),
        model: llm.model.clone(),
        prompt_hash: None,
        response_hash: None,
        input_tokens: clamp(llm.input_tokens),
        output_tokens: clamp(llm.output_tokens),
        // Run records keep whole cents; the step keeps the exact figure.
        cost_cents: llm
            .cost_cents
            .map_or(0, |c| c.round().min(f64::from(i32::MAX)) as i32),
        execution_status: if span.failed {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Succeeded
        },
        started_at: span.start,
        completed_at: Some(span.end),
        source: RunSource::Sdk,
        is_synthetic: false,
        synthetic_scenario_id: None,
    })
}

/// One ERROR system record per `exception` event (summary and details redacted when written).
fn system_records_of(
    trace_id: &str,
    service: Option<&str>,
    span: &SpanRecord,
) -> Vec<NewSystemRecord> {
    span.exceptions
        .iter()
        .map(|e| {
            let what = [e.exception_type.as_deref(), e.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let summary = format!(
                "{}{} in span {}",
                service.map(|s| format!("{s}: ")).unwrap_or_default(),
                if what.is_empty() { "exception" } else { &what },
                span.name
            );
            NewSystemRecord {
                component: SystemComponent::Worker,
                event_type: SystemEventType::Error,
                severity: SystemRecordSeverity::Warn,
                summary: summary.chars().take(4000).collect(),
                details: Some(json!({
                    "trace_id": trace_id,
                    "span_id": span.span_id,
                    "span_name": span.name,
                    "at": crate::scalars::format_utc(e.at),
                    "attributes": e.attributes,
                })),
                caused_by: Some(SystemRecordCause::Automation),
                correlation_id: Some(trace_id.to_owned()),
            }
        })
        .collect()
}

/// `AppError` for a request body that is not an OTLP export request.
pub fn bad_body(message: impl Into<String>) -> AppError {
    AppError::bad_input("body", message)
}
