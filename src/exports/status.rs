//! GraphQL view of an export's job: execution state, progress stage and percent, ETA,
//! attempts and retry schedule, lease, and the job's audit trail (docs/domain.md §10.2).

use async_graphql::{Json, Object};

use super::jobs::{JobEventSnapshot, JobSnapshot, JobStage, JobState};
use super::settings::RetryStrategy;
use crate::scalars::{BigInt, DateTime};

/// How an export is being produced.
pub struct ExportJob(pub JobSnapshot);

#[Object]
impl ExportJob {
    async fn state(&self) -> JobState {
        self.0.state
    }
    /// Progress stage (queued, starting, running, completing, completed, failed, cancelled).
    async fn stage(&self) -> JobStage {
        self.0.stage
    }
    /// 0–100.
    async fn percent(&self) -> f64 {
        self.0.percent
    }
    /// Estimated seconds left: `(100 − percent) / (percent / elapsed)`; null before progress.
    async fn eta_seconds(&self) -> Option<i32> {
        self.0
            .eta_seconds
            .map(|s| s.clamp(0, i64::from(i32::MAX)) as i32)
    }
    /// Rows written by the current (or last) attempt.
    async fn rows_written(&self) -> BigInt {
        BigInt(self.0.rows_done)
    }
    /// Rows the export will hold, once counted.
    async fn rows_total(&self) -> Option<BigInt> {
        self.0.rows_total.map(BigInt)
    }
    /// The current or last attempt, from 1 (0 before the first).
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    async fn max_attempts(&self) -> i32 {
        self.0.retry.max_attempts as i32
    }
    async fn retry_strategy(&self) -> RetryStrategy {
        self.0.retry.strategy
    }
    /// When the next attempt is due (while waiting to retry).
    async fn next_attempt_at(&self) -> Option<DateTime> {
        (self.0.state == JobState::RetryWait).then(|| self.0.next_attempt_at.into())
    }
    /// Why the last attempt failed.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// Whether a retry could cure `lastError`: true for I/O and database errors (retried per
    /// the retry policy), false when the subject no longer exists or the request is invalid
    /// (the job fails at once, whatever attempts remain). Null while no attempt failed.
    async fn last_error_retryable(&self) -> Option<bool> {
        self.0.last_error_retryable
    }
    /// The watermark: only rows recorded at or before it are exported.
    async fn as_of(&self) -> DateTime {
        self.0.as_of.into()
    }
    /// The worker holding the job (while running).
    async fn lease_owner(&self) -> Option<&str> {
        self.0.lease_owner.as_deref()
    }
    /// When the worker's lease runs out unless it heartbeats; another process reclaims the job
    /// after it.
    async fn lease_expires_at(&self) -> Option<DateTime> {
        self.0.lease_expires_at.map(Into::into)
    }
    async fn heartbeat_at(&self) -> Option<DateTime> {
        self.0.heartbeat_at.map(Into::into)
    }
    /// When the current (or last) attempt started.
    async fn started_at(&self) -> Option<DateTime> {
        self.0.started_at.map(Into::into)
    }
    async fn finished_at(&self) -> Option<DateTime> {
        self.0.finished_at.map(Into::into)
    }
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
    /// The job's audit trail, oldest first, hash-chained.
    async fn events(
        &self,
        ctx: &async_graphql::Context<'_>,
    ) -> async_graphql::Result<Vec<ExportJobEvent>> {
        let state = ctx.data_unchecked::<crate::state::AppState>();
        let tenant = crate::auth::TenantId::trusted(self.0.tenant_id.clone());
        Ok(super::jobs::events(&state.db, &tenant, &self.0.export_id)
            .await?
            .into_iter()
            .map(ExportJobEvent)
            .collect())
    }
}

/// One entry of a job's audit trail.
pub struct ExportJobEvent(pub JobEventSnapshot);

#[Object]
impl ExportJobEvent {
    async fn event_id(&self) -> &str {
        &self.0.id
    }
    async fn seq(&self) -> i32 {
        self.0.seq as i32
    }
    /// job_created, job_started, job_failed, job_retried, job_reclaimed, job_completed,
    /// job_cancelled. A `job_failed` event's metadata says `retryable`.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    async fn worker(&self) -> Option<&str> {
        self.0.worker.as_deref()
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn metadata(&self) -> Option<Json<&serde_json::Value>> {
        self.0.metadata.as_ref().map(Json)
    }
    async fn previous_event_hash(&self) -> Option<&str> {
        self.0.previous_event_hash.as_deref()
    }
    /// First 32 hex of sha256(`eventId|eventType|exportId|tenantId|timestamp|previousEventHash`).
    async fn integrity_hash(&self) -> &str {
        &self.0.integrity_hash
    }
    async fn recorded_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}
