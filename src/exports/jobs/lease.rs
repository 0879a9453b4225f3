//! Running a job under a lease: claiming the oldest due job, the heartbeat that renews the
//! lease, and the end of an attempt (completed, or failed and retried or given up).
//!
//! A worker owns a running job only while its lease is fresh: every write it makes is
//! conditional on `lease_owner = me`, so a worker that lost its lease (it stalled and another
//! process reclaimed the job) cannot overwrite the new owner's work. Claiming takes the oldest
//! due job: `FOR UPDATE SKIP LOCKED` on PostgreSQL, a conditional `UPDATE` on SQLite.

use std::collections::HashMap;

use chrono::Duration;
use entity::export_jobs::{Column, Entity};
use sea_orm::sea_query::{Cond, Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::events::{append_event, NewEvent};
use super::model::{to_ms, JobSnapshot, JobStage, JobState};
use super::{append_state_row, get_any, StateRow};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::exports::ExportStatus;

/// `state IN (queued, retry_wait) AND next_attempt_ms <= now`, or a running job whose lease
/// expired.
fn due(now_ms: i64) -> Cond {
    Cond::any()
        .add(
            Cond::all()
                .add(Column::State.is_in([JobState::Queued.as_str(), JobState::RetryWait.as_str()]))
                .add(Column::NextAttemptMs.lte(now_ms)),
        )
        .add(
            Cond::all()
                .add(Column::State.eq(JobState::Running.as_str()))
                .add(Column::LeaseExpiresMs.lt(now_ms)),
        )
}

/// The running job `export_id` whose lease `worker` holds.
fn leased_by(export_id: &str, worker: &str) -> Cond {
    Cond::all()
        .add(Column::ExportId.eq(export_id))
        .add(Column::LeaseOwner.eq(worker))
        .add(Column::State.eq(JobState::Running.as_str()))
}

/// For each export id that has a job, the attempt that may still be writing partial files: its
/// current attempt while it is running under a lease that has not expired, else `None` (no
/// attempt of it is live). Export ids without a job are absent. Read by the partial-file sweep
/// after it listed the directory, so an attempt claimed since is seen as live.
pub async fn live_attempts(
    db: &impl ConnectionTrait,
    export_ids: &[String],
) -> AppResult<HashMap<String, Option<i32>>> {
    let mut out = HashMap::new();
    for chunk in export_ids.chunks(500) {
        let rows: Vec<(String, String, i32, Option<i64>)> = Entity::find()
            .select_only()
            .columns([
                Column::ExportId,
                Column::State,
                Column::Attempt,
                Column::LeaseExpiresMs,
            ])
            .filter(Column::ExportId.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?;
        let now_ms = to_ms(crate::scalars::now());
        for (export_id, state, attempt, lease) in rows {
            let live = state == JobState::Running.as_str() && lease.is_some_and(|l| l >= now_ms);
            out.insert(export_id, live.then_some(attempt));
        }
    }
    Ok(out)
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
    let pick = Entity::find()
        .filter(due(now_ms))
        .order_by_asc(Column::NextAttemptMs)
        .order_by_asc(Column::CreatedMs)
        .limit(1);
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    let txn;
    let before = if postgres {
        // The row lock holds the job until this transaction commits; other workers skip it.
        let pick = pick.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        txn = db.begin().await?;
        match pick.one(&txn).await? {
            Some(row) => JobSnapshot::try_from(row)?,
            None => {
                txn.rollback().await?;
                return Ok(None);
            }
        }
    } else {
        // SQLite: read outside the transaction, then let the conditional UPDATE (the
        // transaction's first statement, so it takes the write lock) decide who wins.
        let Some(row) = pick.one(db).await? else {
            return Ok(None);
        };
        txn = db.begin().await?;
        JobSnapshot::try_from(row)?
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
        let failed = Entity::update_many()
            .col_expr(Column::State, Expr::value(JobState::Failed.as_str()))
            .col_expr(Column::Stage, Expr::value(JobStage::Failed.as_str()))
            .col_expr(Column::EtaSeconds, Expr::value(Option::<i64>::None))
            .col_expr(Column::LastError, Expr::value(message.clone()))
            // A dead worker is worth a retry; there is just none left.
            .col_expr(Column::LastErrorRetryable, Expr::value(true))
            .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(Column::LeaseExpiresMs, Expr::value(Option::<i64>::None))
            .col_expr(Column::FinishedMs, Expr::value(now_ms))
            .col_expr(Column::UpdatedMs, Expr::value(now_ms))
            .filter(Column::ExportId.eq(export_id.as_str()))
            .filter(due(now_ms))
            .exec(&txn)
            .await?;
        if failed.rows_affected != 1 {
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
        crate::telemetry::export_job(JobState::Failed.as_str());
        return Ok(Some(Claimed::Exhausted));
    }
    let attempt = before.attempt + 1;
    let started = Entity::update_many()
        .col_expr(Column::State, Expr::value(JobState::Running.as_str()))
        .col_expr(Column::Stage, Expr::value(JobStage::Starting.as_str()))
        .col_expr(Column::Percent, Expr::value(0.0f64))
        .col_expr(Column::EtaSeconds, Expr::value(Option::<i64>::None))
        .col_expr(Column::RowsDone, Expr::value(0i64))
        .col_expr(Column::LeaseOwner, Expr::value(worker))
        .col_expr(
            Column::LeaseExpiresMs,
            Expr::value(now_ms + lease.as_millis() as i64),
        )
        .col_expr(Column::HeartbeatMs, Expr::value(now_ms))
        .col_expr(Column::StartedMs, Expr::value(now_ms))
        .col_expr(Column::UpdatedMs, Expr::value(now_ms))
        .col_expr(Column::Attempt, Expr::col(Column::Attempt).add(1))
        .filter(Column::ExportId.eq(export_id.as_str()))
        .filter(due(now_ms))
        .exec(&txn)
        .await?;
    if started.rows_affected != 1 {
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
    crate::telemetry::export_job(JobState::Running.as_str());
    Ok(Some(Claimed::Job(Box::new(job))))
}

/// The attempt no longer owns the job (its lease expired and another worker took it).
#[derive(Debug)]
pub struct LeaseLost;

/// Hands a running job back when its worker's process shuts down: queued again, due now, its
/// lease cleared, so any process's worker claims it at its next poll instead of waiting out the
/// lease. The interrupted attempt is not counted against the job's attempts (its partial files
/// went with it). Returns whether this worker still held the job.
pub async fn release(db: &DatabaseConnection, job: &JobSnapshot, worker: &str) -> AppResult<bool> {
    let now_ms = to_ms(crate::scalars::now());
    let txn = db.begin().await?;
    let released = Entity::update_many()
        .col_expr(Column::State, Expr::value(JobState::Queued.as_str()))
        .col_expr(Column::Stage, Expr::value(JobStage::Queued.as_str()))
        .col_expr(Column::EtaSeconds, Expr::value(Option::<i64>::None))
        .col_expr(
            Column::Attempt,
            Expr::value(std::cmp::max(job.attempt - 1, 0)),
        )
        .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(Column::LeaseExpiresMs, Expr::value(Option::<i64>::None))
        .col_expr(Column::NextAttemptMs, Expr::value(now_ms))
        .col_expr(Column::UpdatedMs, Expr::value(now_ms))
        .filter(leased_by(&job.export_id, worker))
        .exec(&txn)
        .await?;
    if released.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(false);
    }
    // The event table's closed set of types has no "released": the job is queued to run again,
    // which is what `job_retried` says; the metadata says why.
    append_event(
        &txn,
        &job.tenant_id,
        &job.export_id,
        NewEvent {
            event_type: "job_retried",
            attempt: job.attempt,
            worker: Some(worker),
            error: None,
            metadata: Some(serde_json::json!({
                "released": true,
                "reason": "the worker's process shut down; the attempt is not counted",
            })),
        },
    )
    .await?;
    append_state_row(
        &txn,
        &TenantId::trusted(job.tenant_id.clone()),
        &job.export_id,
        ExportStatus::Pending,
        StateRow::default(),
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

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
    let renewed = Entity::update_many()
        .col_expr(Column::Stage, Expr::value(p.stage.as_str()))
        .col_expr(Column::Percent, Expr::value(p.percent.clamp(0.0, 100.0)))
        .col_expr(Column::EtaSeconds, Expr::value(p.eta_seconds))
        .col_expr(Column::RowsDone, Expr::value(p.rows_done))
        .col_expr(Column::RowsTotal, Expr::value(p.rows_total))
        .col_expr(Column::HeartbeatMs, Expr::value(now_ms))
        .col_expr(
            Column::LeaseExpiresMs,
            Expr::value(now_ms + lease.as_millis() as i64),
        )
        .col_expr(Column::UpdatedMs, Expr::value(now_ms))
        .filter(leased_by(export_id, worker))
        .exec(db)
        .await?;
    Ok(if renewed.rows_affected == 1 {
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
    /// Bundles: the content hash over the members and the completeness JSON.
    pub bundle_sha256: Option<String>,
    pub bundle_completeness: Option<serde_json::Value>,
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
    let completed = Entity::update_many()
        .col_expr(Column::State, Expr::value(JobState::Completed.as_str()))
        .col_expr(Column::Stage, Expr::value(JobStage::Completed.as_str()))
        .col_expr(Column::Percent, Expr::value(100.0f64))
        .col_expr(Column::EtaSeconds, Expr::value(0i64))
        .col_expr(Column::RowsDone, Expr::value(done.row_count))
        .col_expr(Column::LastError, Expr::value(Option::<String>::None))
        .col_expr(
            Column::LastErrorRetryable,
            Expr::value(Option::<bool>::None),
        )
        .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(Column::LeaseExpiresMs, Expr::value(Option::<i64>::None))
        .col_expr(Column::FinishedMs, Expr::value(now_ms))
        .col_expr(
            Column::ArtefactPath,
            Expr::value(done.artefact_path.clone()),
        )
        .col_expr(
            Column::BundleSha256,
            Expr::value(done.bundle_sha256.clone()),
        )
        .col_expr(
            Column::BundleCompleteness,
            Expr::value(done.bundle_completeness.as_ref().map(|c| c.to_string())),
        )
        .col_expr(Column::UpdatedMs, Expr::value(now_ms))
        .filter(leased_by(&job.export_id, worker))
        .exec(txn)
        .await?;
    if completed.rows_affected != 1 {
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
/// job when its attempts are spent or the error is not `retryable` (no retry can cure it: the
/// subject is gone, the request is invalid). Returns whether a retry was scheduled.
pub async fn fail_attempt(
    db: &DatabaseConnection,
    job: &JobSnapshot,
    worker: &str,
    error: &str,
    retryable: bool,
    duration_ms: i64,
) -> AppResult<Result<bool, LeaseLost>> {
    let now = crate::scalars::now();
    let now_ms = to_ms(now);
    let attempt = std::cmp::max(job.attempt, 1) as u32;
    let retry = retryable && job.retry.should_retry(attempt);
    let delay_ms = job.retry.delay_ms(attempt, rand::random::<f64>()) as i64;
    let txn = db.begin().await?;
    let (state, stage) = if retry {
        (JobState::RetryWait, JobStage::Queued)
    } else {
        (JobState::Failed, JobStage::Failed)
    };
    let mut update = Entity::update_many()
        .col_expr(Column::State, Expr::value(state.as_str()))
        .col_expr(Column::Stage, Expr::value(stage.as_str()))
        .col_expr(Column::EtaSeconds, Expr::value(Option::<i64>::None))
        .col_expr(Column::LastError, Expr::value(error))
        .col_expr(Column::LastErrorRetryable, Expr::value(retryable))
        .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(Column::LeaseExpiresMs, Expr::value(Option::<i64>::None))
        .col_expr(Column::UpdatedMs, Expr::value(now_ms));
    update = if retry {
        update.col_expr(Column::NextAttemptMs, Expr::value(now_ms + delay_ms))
    } else {
        update.col_expr(Column::FinishedMs, Expr::value(now_ms))
    };
    let failed = update
        .filter(leased_by(&job.export_id, worker))
        .exec(&txn)
        .await?;
    if failed.rows_affected != 1 {
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
            metadata: Some(serde_json::json!({
                "duration_ms": duration_ms,
                "retryable": retryable,
            })),
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
    } else if !retryable {
        format!(
            "attempt {} of {} failed: {error}; not retryable",
            job.attempt, job.retry.max_attempts
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
    crate::telemetry::export_job(state.as_str());
    Ok(Ok(retry))
}
