//! Export jobs: the persisted execution state of an export (`export_jobs`) and its audit trail
//! (`export_job_events`, DOMAIN 3.14), plus the `log_exports` lifecycle rows each transition
//! appends.
//!
//! A job is `queued` → `running` (claimed under a lease) → `completed`, or back to
//! `retry_wait` after a failed attempt (per its retry strategy) and finally `failed` when its
//! attempts are spent. A worker owns a running job only while its lease is fresh: every write it
//! makes is conditional on `lease_owner = me`, so a worker that lost its lease (it stalled and
//! another process reclaimed the job) cannot overwrite the new owner's work. Claiming takes the
//! oldest due job: `FOR UPDATE SKIP LOCKED` on PostgreSQL, a conditional `UPDATE` on SQLite.
//! Job events are chained per job: `integrity_hash` = first 32 hex of sha256 of
//! `event_id|event_type|job_id|tenant_id|timestamp|previous_event_hash` (3.14, with the chain per
//! job rather than one per process, 5 #17).

use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::sea_query::{Alias, Cond, Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, QueryResult, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::settings::{RetryPolicy, RetryStrategy};
use super::{ExportFormat, ExportScope, ExportStatus};
use crate::audit::{ActorType, AuditFilter};
use crate::auth::TenantId;
use crate::closed_set::closed_set;
use crate::error::{AppError, AppResult};
use crate::runs::RunFilter;
use crate::system::SystemFilter;
use crate::traces::TraceListFilter;

const JOBS: &str = "export_jobs";
const EVENTS: &str = "export_job_events";

/// What an export contains: a filtered list (as of a watermark) or one bundle subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum ExportSubject {
    LlmRuns { filter: RunFilter },
    SystemRecords { filter: SystemFilter },
    Audit { filter: AuditFilter },
    Traces { filter: TraceListFilter },
    RunBundle { run_id: String },
    TraceBundle { trace_id: String },
    IncidentBundle { incident_id: String },
    Compliance { incident_id: String },
}

impl ExportSubject {
    pub fn scope(&self) -> ExportScope {
        match self {
            Self::LlmRuns { .. } => ExportScope::LlmRuns,
            Self::SystemRecords { .. } => ExportScope::SystemRecords,
            Self::Audit { .. } => ExportScope::Audit,
            Self::Traces { .. } => ExportScope::Traces,
            Self::RunBundle { .. } => ExportScope::RunBundle,
            Self::TraceBundle { .. } => ExportScope::TraceBundle,
            Self::IncidentBundle { .. } => ExportScope::IncidentBundle,
            Self::Compliance { .. } => ExportScope::Compliance,
        }
    }

    /// The list filter (canonical form) of a list scope, as JSON; bundle subjects have none.
    pub fn filter_json(&self) -> Option<serde_json::Value> {
        match self {
            Self::LlmRuns { filter } => serde_json::to_value(filter).ok(),
            Self::SystemRecords { filter } => serde_json::to_value(filter).ok(),
            Self::Audit { filter } => serde_json::to_value(filter).ok(),
            Self::Traces { filter } => serde_json::to_value(filter).ok(),
            _ => None,
        }
    }
}

/// Everything a worker needs to produce the export, fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRequest {
    pub subject: ExportSubject,
    pub format: ExportFormat,
    /// Only rows recorded at or before this instant are exported.
    pub as_of: DateTime<Utc>,
}

closed_set! {
    /// Where a job is in its execution.
    #[derive(async_graphql::Enum)]
    pub enum JobState {
        /// Waiting for its first attempt.
        Queued => "queued",
        /// Claimed by a worker.
        Running => "running",
        /// An attempt failed; the next one is due at `nextAttemptAt`.
        RetryWait => "retry_wait",
        Completed => "completed",
        /// Every attempt failed.
        Failed => "failed",
    }
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

closed_set! {
    /// Progress stage (DOMAIN 3.14).
    #[derive(async_graphql::Enum)]
    pub enum JobStage {
        Queued => "queued",
        Starting => "starting",
        Running => "running",
        Completing => "completing",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

/// One `export_jobs` row.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    pub export_id: String,
    pub tenant_id: String,
    pub scope: ExportScope,
    pub format: ExportFormat,
    pub request: ExportRequest,
    pub state: JobState,
    pub stage: JobStage,
    pub percent: f64,
    pub eta_seconds: Option<i64>,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub attempt: i32,
    pub retry: RetryPolicy,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub artefact_path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One `export_job_events` row.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEventSnapshot {
    pub id: String,
    pub seq: i64,
    pub event_type: String,
    pub attempt: i32,
    pub worker: Option<String>,
    pub error: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub previous_event_hash: Option<String>,
    pub integrity_hash: String,
    pub created_at: DateTime<Utc>,
}

pub fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

const JOB_COLUMNS: &[&str] = &[
    "export_id",
    "tenant_id",
    "scope",
    "format",
    "request",
    "state",
    "stage",
    "percent",
    "eta_seconds",
    "rows_done",
    "rows_total",
    "attempt",
    "max_attempts",
    "retry_strategy",
    "base_delay_ms",
    "max_delay_ms",
    "jitter_factor",
    "next_attempt_ms",
    "last_error",
    "lease_owner",
    "lease_expires_ms",
    "heartbeat_ms",
    "started_ms",
    "finished_ms",
    "artefact_path",
    "created_ms",
    "updated_ms",
];

fn job_from_row(row: &QueryResult) -> AppResult<JobSnapshot> {
    let bad = |what: &str| AppError::internal(format!("export job row has a bad {what}"));
    let text: String = row.try_get("", "request")?;
    let request: ExportRequest =
        serde_json::from_str(&text).map_err(|e| bad(&format!("request ({e})")))?;
    let scope: String = row.try_get("", "scope")?;
    let format: String = row.try_get("", "format")?;
    let state: String = row.try_get("", "state")?;
    let stage: String = row.try_get("", "stage")?;
    let strategy: String = row.try_get("", "retry_strategy")?;
    let opt_ms = |name: &str| -> AppResult<Option<DateTime<Utc>>> {
        Ok(row.try_get::<Option<i64>>("", name)?.map(from_ms))
    };
    Ok(JobSnapshot {
        export_id: row.try_get("", "export_id")?,
        tenant_id: row.try_get("", "tenant_id")?,
        scope: ExportScope::parse(&scope).ok_or_else(|| bad("scope"))?,
        format: ExportFormat::parse(&format).ok_or_else(|| bad("format"))?,
        request,
        state: JobState::parse(&state).ok_or_else(|| bad("state"))?,
        stage: JobStage::parse(&stage).ok_or_else(|| bad("stage"))?,
        percent: row.try_get("", "percent")?,
        eta_seconds: row.try_get("", "eta_seconds")?,
        rows_done: row.try_get("", "rows_done")?,
        rows_total: row.try_get("", "rows_total")?,
        attempt: row.try_get("", "attempt")?,
        retry: RetryPolicy {
            max_attempts: std::cmp::max(row.try_get::<i32>("", "max_attempts")?, 1) as u32,
            strategy: RetryStrategy::parse(&strategy).ok_or_else(|| bad("retry strategy"))?,
            base_delay: std::time::Duration::from_millis(std::cmp::max(
                row.try_get::<i64>("", "base_delay_ms")?,
                0,
            ) as u64),
            max_delay: std::time::Duration::from_millis(std::cmp::max(
                row.try_get::<i64>("", "max_delay_ms")?,
                0,
            ) as u64),
            jitter_factor: row.try_get("", "jitter_factor")?,
        },
        next_attempt_at: from_ms(row.try_get("", "next_attempt_ms")?),
        last_error: row.try_get("", "last_error")?,
        lease_owner: row.try_get("", "lease_owner")?,
        lease_expires_at: opt_ms("lease_expires_ms")?,
        heartbeat_at: opt_ms("heartbeat_ms")?,
        started_at: opt_ms("started_ms")?,
        finished_at: opt_ms("finished_ms")?,
        artefact_path: row.try_get("", "artefact_path")?,
        created_at: from_ms(row.try_get("", "created_ms")?),
        updated_at: from_ms(row.try_get("", "updated_ms")?),
    })
}

fn select_jobs() -> sea_orm::sea_query::SelectStatement {
    let mut q = Query::select();
    q.from(Alias::new(JOBS));
    for c in JOB_COLUMNS {
        q.column(Alias::new(*c));
    }
    q
}

/// A tenant's job by export id.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    export_id: &str,
) -> AppResult<Option<JobSnapshot>> {
    let mut q = select_jobs();
    q.and_where(Expr::col(Alias::new("tenant_id")).eq(tenant.as_str()))
        .and_where(Expr::col(Alias::new("export_id")).eq(export_id));
    db.query_one(&q)
        .await?
        .as_ref()
        .map(job_from_row)
        .transpose()
}

/// A tenant's jobs by export id, in one statement (the batch behind `LogExport.job`). Export
/// ids without a job of this tenant are absent from the map.
pub async fn get_many(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    export_ids: &[String],
) -> AppResult<std::collections::HashMap<String, JobSnapshot>> {
    if export_ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let mut q = select_jobs();
    q.and_where(Expr::col(Alias::new("tenant_id")).eq(tenant.as_str()))
        .and_where(Expr::col(Alias::new("export_id")).is_in(export_ids.iter().map(String::as_str)));
    db.query_all(&q)
        .await?
        .iter()
        .map(|row| job_from_row(row).map(|job| (job.export_id.clone(), job)))
        .collect()
}

/// A job by export id, whatever its tenant (workers only).
async fn get_any(db: &impl ConnectionTrait, export_id: &str) -> AppResult<Option<JobSnapshot>> {
    let mut q = select_jobs();
    q.and_where(Expr::col(Alias::new("export_id")).eq(export_id));
    db.query_one(&q)
        .await?
        .as_ref()
        .map(job_from_row)
        .transpose()
}

/// For each export id that has a job, the attempt that may still be writing partial files: its
/// current attempt while it is running under a lease that has not expired, else `None` (no
/// attempt of it is live). Export ids without a job are absent. Read by the partial-file sweep
/// after it listed the directory, so an attempt claimed since is seen as live.
pub async fn live_attempts(
    db: &impl ConnectionTrait,
    export_ids: &[String],
) -> AppResult<std::collections::HashMap<String, Option<i32>>> {
    let mut out = std::collections::HashMap::new();
    for chunk in export_ids.chunks(500) {
        let q = Query::select()
            .columns(["export_id", "state", "attempt", "lease_expires_ms"].map(Alias::new))
            .from(Alias::new(JOBS))
            .and_where(Expr::col(Alias::new("export_id")).is_in(chunk.iter().cloned()))
            .to_owned();
        let rows = db.query_all(&q).await?;
        let now_ms = to_ms(crate::scalars::now());
        for row in rows {
            let state: String = row.try_get("", "state")?;
            let attempt: i32 = row.try_get("", "attempt")?;
            let lease: Option<i64> = row.try_get("", "lease_expires_ms")?;
            let live = state == JobState::Running.as_str() && lease.is_some_and(|l| l >= now_ms);
            out.insert(row.try_get("", "export_id")?, live.then_some(attempt));
        }
    }
    Ok(out)
}

/// The job's audit trail, oldest first.
pub async fn events(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    export_id: &str,
) -> AppResult<Vec<JobEventSnapshot>> {
    let q = Query::select()
        .columns(
            [
                "id",
                "seq",
                "event_type",
                "attempt",
                "worker",
                "error",
                "metadata",
                "previous_event_hash",
                "integrity_hash",
                "created_ms",
            ]
            .map(Alias::new),
        )
        .from(Alias::new(EVENTS))
        .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant.as_str()))
        .and_where(Expr::col(Alias::new("export_id")).eq(export_id))
        .order_by(Alias::new("seq"), Order::Asc)
        .to_owned();
    db.query_all(&q)
        .await?
        .iter()
        .map(|row| {
            let metadata: Option<String> = row.try_get("", "metadata")?;
            Ok(JobEventSnapshot {
                id: row.try_get("", "id")?,
                seq: row.try_get("", "seq")?,
                event_type: row.try_get("", "event_type")?,
                attempt: row.try_get("", "attempt")?,
                worker: row.try_get("", "worker")?,
                error: row.try_get("", "error")?,
                metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
                previous_event_hash: row.try_get("", "previous_event_hash")?,
                integrity_hash: row.try_get("", "integrity_hash")?,
                created_at: from_ms(row.try_get("", "created_ms")?),
            })
        })
        .collect()
}

/// The 3.14 integrity hash of a job event.
pub fn event_hash(
    event_id: &str,
    event_type: &str,
    job_id: &str,
    tenant_id: &str,
    timestamp: &str,
    previous: Option<&str>,
) -> String {
    let text = format!(
        "{event_id}|{event_type}|{job_id}|{tenant_id}|{timestamp}|{}",
        previous.unwrap_or("")
    );
    hex::encode(Sha256::digest(text.as_bytes()))[..32].to_owned()
}

/// What one job event records.
pub struct NewEvent<'a> {
    pub event_type: &'static str,
    pub attempt: i32,
    pub worker: Option<&'a str>,
    pub error: Option<&'a str>,
    pub metadata: Option<serde_json::Value>,
}

/// Appends an event to the job's chain (inside the caller's transaction).
pub async fn append_event(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    export_id: &str,
    event: NewEvent<'_>,
) -> AppResult<()> {
    let last = Query::select()
        .columns([Alias::new("seq"), Alias::new("integrity_hash")])
        .from(Alias::new(EVENTS))
        .and_where(Expr::col(Alias::new("export_id")).eq(export_id))
        .order_by(Alias::new("seq"), Order::Desc)
        .limit(1)
        .to_owned();
    let (seq, previous): (i64, Option<String>) = match conn.query_one(&last).await? {
        Some(row) => (
            row.try_get::<i64>("", "seq")? + 1,
            Some(row.try_get("", "integrity_hash")?),
        ),
        None => (1, None),
    };
    // Millisecond precision: the stored time is what the hash covers.
    let now = from_ms(to_ms(crate::scalars::now()));
    let id = format!(
        "job-audit-{}-{seq}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let hash = event_hash(
        &id,
        event.event_type,
        export_id,
        tenant_id,
        &crate::scalars::format_utc(now),
        previous.as_deref(),
    );
    let insert = Query::insert()
        .into_table(Alias::new(EVENTS))
        .columns(
            [
                "id",
                "export_id",
                "tenant_id",
                "seq",
                "event_type",
                "attempt",
                "worker",
                "error",
                "metadata",
                "previous_event_hash",
                "integrity_hash",
                "created_ms",
            ]
            .map(Alias::new),
        )
        .values_panic([
            id.into(),
            export_id.into(),
            tenant_id.into(),
            seq.into(),
            event.event_type.into(),
            event.attempt.into(),
            event.worker.map(str::to_owned).into(),
            event.error.map(str::to_owned).into(),
            event.metadata.map(|m| m.to_string()).into(),
            previous.into(),
            hash.into(),
            to_ms(now).into(),
        ])
        .to_owned();
    conn.execute(&insert).await?;
    Ok(())
}

/// Appends one lifecycle row to `log_exports`, copying the request row's identity. Its time is
/// strictly after the export's previous row, so the history order is the lifecycle order.
#[derive(Default)]
pub struct StateRow {
    pub checksum: Option<String>,
    pub row_count: Option<i64>,
    pub byte_size: Option<i64>,
    pub manifest_sha256: Option<String>,
    pub error: Option<String>,
}

pub async fn append_state_row(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    export_id: &str,
    status: ExportStatus,
    row: StateRow,
) -> AppResult<()> {
    let export = super::store::get(conn, tenant, export_id)
        .await?
        .ok_or_else(|| AppError::internal(format!("export {export_id} has no request row")))?;
    let request = &export.request;
    let created_at = std::cmp::max(
        crate::scalars::now(),
        export.latest().created_at + Duration::microseconds(1),
    );
    entity::log_exports::Entity::insert(entity::log_exports::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        export_id: Set(export_id.to_owned()),
        tenant_id: Set(tenant.as_str().to_owned()),
        scope: Set(request.scope.as_str().to_owned()),
        run_id: Set(request.run_id.clone()),
        requested_by: Set(request.requested_by.clone()),
        format: Set(request.format.as_str().to_owned()),
        origin: Set(request.origin.as_str().to_owned()),
        source_component: Set(WORKER_COMPONENT.to_owned()),
        correlation_id: Set(request.correlation_id.clone()),
        checksum: Set(row.checksum),
        status: Set(status.as_str().to_owned()),
        delivered_at: Set(None),
        filter: Set(None),
        row_count: Set(row.row_count),
        byte_size: Set(row.byte_size),
        manifest_sha256: Set(row.manifest_sha256),
        error: Set(row.error),
        created_at: Set(created_at),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// `source_component` of the rows the workers append.
pub const WORKER_COMPONENT: &str = "LogbookExportWorker";

/// A new export: its request row, its job and its `job_created` event.
pub struct NewExport<'a> {
    pub export_id: &'a str,
    pub tenant: &'a TenantId,
    pub request: &'a ExportRequest,
    pub run_id: Option<String>,
    pub requested_by: String,
    pub origin: ActorType,
    pub correlation_id: Option<String>,
    pub retry: RetryPolicy,
}

/// Creates the export in one transaction.
pub async fn create(txn: &DatabaseTransaction, new: NewExport<'_>) -> AppResult<()> {
    let now = crate::scalars::now();
    let request_json = serde_json::to_string(new.request)
        .map_err(|e| AppError::internal(format!("export request: {e}")))?;
    entity::log_exports::Entity::insert(entity::log_exports::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        export_id: Set(new.export_id.to_owned()),
        tenant_id: Set(new.tenant.as_str().to_owned()),
        scope: Set(new.request.subject.scope().as_str().to_owned()),
        run_id: Set(new.run_id),
        requested_by: Set(new.requested_by),
        format: Set(new.request.format.as_str().to_owned()),
        origin: Set(new.origin.as_str().to_owned()),
        source_component: Set("LogExportService".to_owned()),
        correlation_id: Set(new.correlation_id),
        checksum: Set(None),
        status: Set(ExportStatus::Pending.as_str().to_owned()),
        delivered_at: Set(None),
        filter: Set(new.request.subject.filter_json()),
        row_count: Set(None),
        byte_size: Set(None),
        manifest_sha256: Set(None),
        error: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    let r = new.retry;
    let insert = Query::insert()
        .into_table(Alias::new(JOBS))
        .columns(
            [
                "export_id",
                "tenant_id",
                "scope",
                "format",
                "request",
                "as_of_ms",
                "state",
                "stage",
                "percent",
                "rows_done",
                "attempt",
                "max_attempts",
                "retry_strategy",
                "base_delay_ms",
                "max_delay_ms",
                "jitter_factor",
                "next_attempt_ms",
                "created_ms",
                "updated_ms",
            ]
            .map(Alias::new),
        )
        .values_panic([
            new.export_id.into(),
            new.tenant.as_str().into(),
            new.request.subject.scope().as_str().into(),
            new.request.format.as_str().into(),
            request_json.into(),
            to_ms(new.request.as_of).into(),
            JobState::Queued.as_str().into(),
            JobStage::Queued.as_str().into(),
            0.0f64.into(),
            0i64.into(),
            0i32.into(),
            (r.max_attempts as i32).into(),
            r.strategy.as_str().into(),
            (r.base_delay.as_millis() as i64).into(),
            (r.max_delay.as_millis() as i64).into(),
            r.jitter_factor.into(),
            to_ms(now).into(),
            to_ms(now).into(),
            to_ms(now).into(),
        ])
        .to_owned();
    txn.execute(&insert).await?;
    append_event(
        txn,
        new.tenant.as_str(),
        new.export_id,
        NewEvent {
            event_type: "job_created",
            attempt: 0,
            worker: None,
            error: None,
            metadata: Some(serde_json::json!({
                "handler": "export",
                "payload_hash": &hex::encode(Sha256::digest(
                    serde_json::to_string(new.request).unwrap_or_default().as_bytes()
                ))[..16],
            })),
        },
    )
    .await?;
    Ok(())
}

/// `state IN (queued, retry_wait) AND next_attempt_ms <= now`, or a running job whose lease
/// expired.
fn due(now_ms: i64) -> Cond {
    Cond::any()
        .add(
            Cond::all()
                .add(Expr::col(Alias::new("state")).is_in(["queued", "retry_wait"]))
                .add(Expr::col(Alias::new("next_attempt_ms")).lte(now_ms)),
        )
        .add(
            Cond::all()
                .add(Expr::col(Alias::new("state")).eq("running"))
                .add(Expr::col(Alias::new("lease_expires_ms")).lt(now_ms)),
        )
}

/// The outcome of a claim.
pub enum Claimed {
    /// This worker now runs attempt `job.attempt` of the job.
    Job(Box<JobSnapshot>),
    /// A dead worker's job had no attempts left and was failed.
    Exhausted,
}

/// Claims the oldest due job for `worker`, or `None` when nothing is due.
pub async fn claim(
    db: &DatabaseConnection,
    worker: &str,
    lease: std::time::Duration,
) -> AppResult<Option<Claimed>> {
    let now_ms = to_ms(crate::scalars::now());
    let mut pick = select_jobs();
    pick.cond_where(due(now_ms))
        .order_by(Alias::new("next_attempt_ms"), Order::Asc)
        .order_by(Alias::new("created_ms"), Order::Asc)
        .limit(1);
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    let txn;
    let before = if postgres {
        // The row lock holds the job until this transaction commits; other workers skip it.
        pick.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        txn = db.begin().await?;
        match txn.query_one(&pick).await? {
            Some(row) => job_from_row(&row)?,
            None => {
                txn.rollback().await?;
                return Ok(None);
            }
        }
    } else {
        // SQLite: read outside the transaction, then let the conditional UPDATE (the
        // transaction's first statement, so it takes the write lock) decide who wins.
        let Some(row) = db.query_one(&pick).await? else {
            return Ok(None);
        };
        txn = db.begin().await?;
        job_from_row(&row)?
    };
    let export_id = before.export_id.clone();
    let tenant = TenantId::trusted(before.tenant_id.clone());
    let reclaimed = before.state == JobState::Running;
    if reclaimed && before.attempt as u32 >= before.retry.max_attempts {
        // The last attempt's worker died: the job is out of attempts.
        let message = format!(
            "attempt {} was interrupted (worker {} stopped heartbeating) and no attempts remain",
            before.attempt,
            before.lease_owner.as_deref().unwrap_or("?")
        );
        let update = Query::update()
            .table(Alias::new(JOBS))
            .values([
                (Alias::new("state"), JobState::Failed.as_str().into()),
                (Alias::new("stage"), JobStage::Failed.as_str().into()),
                (Alias::new("eta_seconds"), Option::<i64>::None.into()),
                (Alias::new("last_error"), message.clone().into()),
                (Alias::new("lease_owner"), Option::<String>::None.into()),
                (Alias::new("lease_expires_ms"), Option::<i64>::None.into()),
                (Alias::new("finished_ms"), now_ms.into()),
                (Alias::new("updated_ms"), now_ms.into()),
            ])
            .and_where(Expr::col(Alias::new("export_id")).eq(export_id.as_str()))
            .cond_where(due(now_ms))
            .to_owned();
        if txn.execute(&update).await?.rows_affected() != 1 {
            txn.rollback().await?;
            return Ok(None);
        }
        append_event(
            &txn,
            &before.tenant_id,
            &export_id,
            NewEvent {
                event_type: "job_failed",
                attempt: before.attempt,
                worker: before.lease_owner.as_deref(),
                error: Some(&message),
                metadata: None,
            },
        )
        .await?;
        append_state_row(
            &txn,
            &tenant,
            &export_id,
            ExportStatus::Failed,
            StateRow {
                error: Some(message),
                ..StateRow::default()
            },
        )
        .await?;
        txn.commit().await?;
        return Ok(Some(Claimed::Exhausted));
    }
    let attempt = before.attempt + 1;
    let update = Query::update()
        .table(Alias::new(JOBS))
        .values([
            (Alias::new("state"), JobState::Running.as_str().into()),
            (Alias::new("stage"), JobStage::Starting.as_str().into()),
            (Alias::new("percent"), 0.0f64.into()),
            (Alias::new("eta_seconds"), Option::<i64>::None.into()),
            (Alias::new("rows_done"), 0i64.into()),
            (Alias::new("lease_owner"), worker.into()),
            (
                Alias::new("lease_expires_ms"),
                (now_ms + lease.as_millis() as i64).into(),
            ),
            (Alias::new("heartbeat_ms"), now_ms.into()),
            (Alias::new("started_ms"), now_ms.into()),
            (Alias::new("updated_ms"), now_ms.into()),
        ])
        .value(
            Alias::new("attempt"),
            Expr::col(Alias::new("attempt")).add(1),
        )
        .and_where(Expr::col(Alias::new("export_id")).eq(export_id.as_str()))
        .cond_where(due(now_ms))
        .to_owned();
    if txn.execute(&update).await?.rows_affected() != 1 {
        // Another worker won the race (SQLite).
        txn.rollback().await?;
        return Ok(None);
    }
    if reclaimed {
        append_event(
            &txn,
            &before.tenant_id,
            &export_id,
            NewEvent {
                event_type: "job_reclaimed",
                attempt: before.attempt,
                worker: Some(worker),
                error: Some("the previous worker's lease expired"),
                metadata: Some(serde_json::json!({
                    "previous_worker": before.lease_owner,
                    "lease_expired_at": before.lease_expires_at.map(crate::scalars::format_utc),
                })),
            },
        )
        .await?;
    }
    append_event(
        &txn,
        &before.tenant_id,
        &export_id,
        NewEvent {
            event_type: "job_started",
            attempt,
            worker: Some(worker),
            error: None,
            metadata: Some(serde_json::json!({ "handler": "export" })),
        },
    )
    .await?;
    append_state_row(
        &txn,
        &tenant,
        &export_id,
        ExportStatus::Running,
        StateRow::default(),
    )
    .await?;
    let job = get_any(&txn, &export_id)
        .await?
        .ok_or_else(|| AppError::internal("claimed job vanished"))?;
    txn.commit().await?;
    Ok(Some(Claimed::Job(Box::new(job))))
}

/// The attempt no longer owns the job (its lease expired and another worker took it).
#[derive(Debug)]
pub struct LeaseLost;

/// Progress of a running attempt; also renews the lease (the heartbeat).
pub struct Progress {
    pub stage: JobStage,
    pub percent: f64,
    pub eta_seconds: Option<i64>,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
}

pub async fn heartbeat(
    db: &impl ConnectionTrait,
    export_id: &str,
    worker: &str,
    lease: std::time::Duration,
    p: &Progress,
) -> AppResult<Result<(), LeaseLost>> {
    let now_ms = to_ms(crate::scalars::now());
    let update = Query::update()
        .table(Alias::new(JOBS))
        .values([
            (Alias::new("stage"), p.stage.as_str().into()),
            (Alias::new("percent"), p.percent.clamp(0.0, 100.0).into()),
            (Alias::new("eta_seconds"), p.eta_seconds.into()),
            (Alias::new("rows_done"), p.rows_done.into()),
            (Alias::new("rows_total"), p.rows_total.into()),
            (Alias::new("heartbeat_ms"), now_ms.into()),
            (
                Alias::new("lease_expires_ms"),
                (now_ms + lease.as_millis() as i64).into(),
            ),
            (Alias::new("updated_ms"), now_ms.into()),
        ])
        .and_where(Expr::col(Alias::new("export_id")).eq(export_id))
        .and_where(Expr::col(Alias::new("lease_owner")).eq(worker))
        .and_where(Expr::col(Alias::new("state")).eq("running"))
        .to_owned();
    Ok(if db.execute(&update).await?.rows_affected() == 1 {
        Ok(())
    } else {
        Err(LeaseLost)
    })
}

/// What a completed attempt produced.
pub struct Completion {
    pub checksum: String,
    pub row_count: i64,
    pub byte_size: i64,
    pub manifest_sha256: String,
    pub artefact_path: String,
    pub duration_ms: i64,
}

/// Marks the job completed (if this worker still owns it), in `txn`: the caller has already
/// anchored the manifest in the ledger inside the same transaction.
pub async fn complete(
    txn: &impl ConnectionTrait,
    job: &JobSnapshot,
    worker: &str,
    done: &Completion,
) -> AppResult<Result<(), LeaseLost>> {
    let now_ms = to_ms(crate::scalars::now());
    let update = Query::update()
        .table(Alias::new(JOBS))
        .values([
            (Alias::new("state"), JobState::Completed.as_str().into()),
            (Alias::new("stage"), JobStage::Completed.as_str().into()),
            (Alias::new("percent"), 100.0f64.into()),
            (Alias::new("eta_seconds"), 0i64.into()),
            (Alias::new("rows_done"), done.row_count.into()),
            (Alias::new("last_error"), Option::<String>::None.into()),
            (Alias::new("lease_owner"), Option::<String>::None.into()),
            (Alias::new("lease_expires_ms"), Option::<i64>::None.into()),
            (Alias::new("finished_ms"), now_ms.into()),
            (
                Alias::new("artefact_path"),
                done.artefact_path.clone().into(),
            ),
            (Alias::new("updated_ms"), now_ms.into()),
        ])
        .and_where(Expr::col(Alias::new("export_id")).eq(job.export_id.as_str()))
        .and_where(Expr::col(Alias::new("lease_owner")).eq(worker))
        .and_where(Expr::col(Alias::new("state")).eq("running"))
        .to_owned();
    if txn.execute(&update).await?.rows_affected() != 1 {
        return Ok(Err(LeaseLost));
    }
    append_event(
        txn,
        &job.tenant_id,
        &job.export_id,
        NewEvent {
            event_type: "job_completed",
            attempt: job.attempt,
            worker: Some(worker),
            error: None,
            metadata: Some(serde_json::json!({
                "duration_ms": done.duration_ms,
                "result_hash": &done.checksum[..std::cmp::min(16, done.checksum.len())],
                "manifest_sha256": done.manifest_sha256,
                "rows": done.row_count,
            })),
        },
    )
    .await?;
    append_state_row(
        txn,
        &TenantId::trusted(job.tenant_id.clone()),
        &job.export_id,
        ExportStatus::Completed,
        StateRow {
            checksum: Some(done.checksum.clone()),
            row_count: Some(done.row_count),
            byte_size: Some(done.byte_size),
            manifest_sha256: Some(done.manifest_sha256.clone()),
            error: None,
        },
    )
    .await?;
    Ok(Ok(()))
}

/// Records a failed attempt: schedules the next one per the job's retry policy, or fails the
/// job when its attempts are spent. Returns whether a retry was scheduled.
pub async fn fail_attempt(
    db: &DatabaseConnection,
    job: &JobSnapshot,
    worker: &str,
    error: &str,
    duration_ms: i64,
) -> AppResult<Result<bool, LeaseLost>> {
    let now = crate::scalars::now();
    let now_ms = to_ms(now);
    let attempt = std::cmp::max(job.attempt, 1) as u32;
    let retry = job.retry.should_retry(attempt);
    let delay_ms = job.retry.delay_ms(attempt, rand::random::<f64>()) as i64;
    let txn = db.begin().await?;
    let (state, stage) = if retry {
        (JobState::RetryWait, JobStage::Queued)
    } else {
        (JobState::Failed, JobStage::Failed)
    };
    let mut values = vec![
        (Alias::new("state"), state.as_str().into()),
        (Alias::new("stage"), stage.as_str().into()),
        (Alias::new("eta_seconds"), Option::<i64>::None.into()),
        (Alias::new("last_error"), error.into()),
        (Alias::new("lease_owner"), Option::<String>::None.into()),
        (Alias::new("lease_expires_ms"), Option::<i64>::None.into()),
        (Alias::new("updated_ms"), now_ms.into()),
    ];
    if retry {
        values.push((Alias::new("next_attempt_ms"), (now_ms + delay_ms).into()));
    } else {
        values.push((Alias::new("finished_ms"), now_ms.into()));
    }
    let update = Query::update()
        .table(Alias::new(JOBS))
        .values(values)
        .and_where(Expr::col(Alias::new("export_id")).eq(job.export_id.as_str()))
        .and_where(Expr::col(Alias::new("lease_owner")).eq(worker))
        .and_where(Expr::col(Alias::new("state")).eq("running"))
        .to_owned();
    if txn.execute(&update).await?.rows_affected() != 1 {
        txn.rollback().await?;
        return Ok(Err(LeaseLost));
    }
    append_event(
        &txn,
        &job.tenant_id,
        &job.export_id,
        NewEvent {
            event_type: "job_failed",
            attempt: job.attempt,
            worker: Some(worker),
            error: Some(error),
            metadata: Some(serde_json::json!({ "duration_ms": duration_ms })),
        },
    )
    .await?;
    let next_at = now + Duration::milliseconds(delay_ms);
    if retry {
        append_event(
            &txn,
            &job.tenant_id,
            &job.export_id,
            NewEvent {
                event_type: "job_retried",
                attempt: job.attempt,
                worker: Some(worker),
                error: Some(error),
                metadata: Some(serde_json::json!({
                    "delay_seconds": delay_ms as f64 / 1000.0,
                    "strategy": job.retry.strategy.as_str(),
                    "next_attempt_at": crate::scalars::format_utc(next_at),
                    "will_retry": true,
                })),
            },
        )
        .await?;
    }
    let message = if retry {
        format!(
            "attempt {} of {} failed: {error}; retrying at {}",
            job.attempt,
            job.retry.max_attempts,
            crate::scalars::format_utc(next_at)
        )
    } else {
        format!(
            "attempt {} of {} failed: {error}; no attempts remain",
            job.attempt, job.retry.max_attempts
        )
    };
    append_state_row(
        &txn,
        &TenantId::trusted(job.tenant_id.clone()),
        &job.export_id,
        if retry {
            ExportStatus::Pending
        } else {
            ExportStatus::Failed
        },
        StateRow {
            error: Some(message),
            ..StateRow::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(retry))
}
