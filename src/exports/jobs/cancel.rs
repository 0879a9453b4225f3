//! Cancelling a job (`cancelExport`). The job row is the signal: cancelling sets its state to
//! `cancelled` and clears its lease in the database, so every process sees it. A queued or
//! retry-waiting job is no longer due, so no worker claims it. A running attempt's worker
//! checks [`is_cancelled`] after each batch and stops (its partial files are removed as for
//! any attempt that ends unfinished); even before that check, every write it would make is
//! conditional on its lease of a `running` job, so a cancelled job can never be completed.

use entity::export_jobs::{Column, Entity};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::events::{append_event, NewEvent};
use super::model::{to_ms, JobStage, JobState};
use super::{append_state_row, StateRow};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::exports::ExportStatus;

/// Cancels the tenant's export `export_id` inside `txn` (a write transaction): the job row, a
/// `job_cancelled` event and a `cancelled` lifecycle row, all or nothing. An export of another
/// tenant, or none, is `NOT_FOUND`; one already completed, failed or cancelled is
/// `INVALID_TRANSITION`.
pub async fn cancel(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    export_id: &str,
    cancelled_by: &str,
) -> AppResult<()> {
    if crate::exports::store::get(txn, tenant, export_id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound("LogExport"));
    }
    let job = super::get(txn, tenant, export_id)
        .await?
        .ok_or_else(|| AppError::InvalidTransition("the export has no job to cancel".into()))?;
    if job.state.is_terminal() {
        return Err(AppError::InvalidTransition(format!(
            "the export is already {}",
            job.state.as_str()
        )));
    }
    let now_ms = to_ms(crate::scalars::now());
    // Conditional on the state just read: a worker completing or failing the job in between
    // (PostgreSQL; SQLite's write transaction excludes it) leaves nothing to cancel.
    let cancelled = Entity::update_many()
        .col_expr(Column::State, Expr::value(JobState::Cancelled.as_str()))
        .col_expr(Column::Stage, Expr::value(JobStage::Cancelled.as_str()))
        .col_expr(Column::EtaSeconds, Expr::value(Option::<i64>::None))
        .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(Column::LeaseExpiresMs, Expr::value(Option::<i64>::None))
        .col_expr(Column::FinishedMs, Expr::value(now_ms))
        .col_expr(Column::UpdatedMs, Expr::value(now_ms))
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::ExportId.eq(export_id))
        .filter(Column::State.eq(job.state.as_str()))
        .filter(Column::Attempt.eq(job.attempt))
        .exec(txn)
        .await?;
    if cancelled.rows_affected != 1 {
        return Err(AppError::InvalidTransition(
            "the export changed state while being cancelled; read it again".into(),
        ));
    }
    append_event(
        txn,
        tenant.as_str(),
        export_id,
        NewEvent {
            event_type: "job_cancelled",
            attempt: job.attempt,
            worker: job.lease_owner.as_deref(),
            error: None,
            metadata: Some(serde_json::json!({
                "cancelled_by": cancelled_by,
                "previous_state": job.state.as_str(),
            })),
        },
    )
    .await?;
    append_state_row(
        txn,
        tenant,
        export_id,
        ExportStatus::Cancelled,
        StateRow::default(),
    )
    .await?;
    Ok(())
}

/// Whether the job was cancelled: what a running attempt's worker checks between batches (one
/// primary-key read). A job that no longer exists counts as cancelled.
pub async fn is_cancelled(db: &impl ConnectionTrait, export_id: &str) -> AppResult<bool> {
    let state: Option<String> = Entity::find_by_id(export_id)
        .select_only()
        .column(Column::State)
        .into_tuple()
        .one(db)
        .await?;
    Ok(state.is_none_or(|s| s == JobState::Cancelled.as_str()))
}
