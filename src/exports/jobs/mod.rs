//! Export jobs: the persisted execution state of an export (`export_jobs`) and its audit trail
//! (`export_job_events`, docs/domain.md §10.2), plus the `log_exports` lifecycle rows each transition
//! appends.
//!
//! A job is `queued` → `running` (claimed under a lease, see [`lease`]) → `completed`, or back
//! to `retry_wait` after a failed attempt (per its retry strategy) and finally `failed` when its
//! attempts are spent or an attempt failed with an error no retry can cure; `cancelled` from
//! any state before those ([`cancel`]). Every transition appends a chained job event
//! ([`events`]).

mod cancel;
mod events;
mod lease;
mod model;

use std::collections::HashMap;

use chrono::Duration;
use entity::export_jobs::{self, Column, Entity};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};
use sha2::{Digest, Sha256};

use super::settings::RetryPolicy;
use super::{ExportFormat, ExportScope, ExportStatus};
use crate::audit::ActorType;
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

pub use cancel::{cancel, is_cancelled};
pub use events::{append_event, event_hash, events, NewEvent};
pub use lease::{
    claim, complete, fail_attempt, heartbeat, live_attempts, release, Claimed, Completion,
    LeaseLost, Progress,
};
pub use model::{from_ms, to_ms, BundleSubject, JobEventSnapshot, JobSnapshot, JobStage, JobState};

/// A tenant's job by export id.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    export_id: &str,
) -> AppResult<Option<JobSnapshot>> {
    Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::ExportId.eq(export_id))
        .one(db)
        .await?
        .map(JobSnapshot::try_from)
        .transpose()
}

/// A tenant's jobs by export id, in one statement (the batch behind `LogExport.job`). Export
/// ids without a job of this tenant are absent from the map.
pub async fn get_many(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    export_ids: &[String],
) -> AppResult<HashMap<String, JobSnapshot>> {
    if export_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::ExportId.is_in(export_ids.iter().map(String::as_str)))
        .all(db)
        .await?
        .into_iter()
        .map(|row| JobSnapshot::try_from(row).map(|job| (job.export_id.clone(), job)))
        .collect()
}

/// A job by export id, whatever its tenant (workers only).
async fn get_any(db: &impl ConnectionTrait, export_id: &str) -> AppResult<Option<JobSnapshot>> {
    Entity::find_by_id(export_id)
        .one(db)
        .await?
        .map(JobSnapshot::try_from)
        .transpose()
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

/// An export request, encoded by the producer of export files (which owns the subject's
/// type): what this domain stores of it and the JSON it keeps for the worker.
pub struct StoredRequest<'a> {
    pub scope: ExportScope,
    pub format: ExportFormat,
    pub as_of: chrono::DateTime<chrono::Utc>,
    /// The list filter (canonical form) of a list scope; bundle scopes have none.
    pub filter: Option<serde_json::Value>,
    pub json: &'a str,
}

/// A new export: its request row, its job and its `job_created` event.
pub struct NewExport<'a> {
    pub export_id: &'a str,
    pub tenant: &'a TenantId,
    /// What to produce, as the producer of export files encoded it.
    pub request: StoredRequest<'a>,
    pub run_id: Option<String>,
    pub requested_by: String,
    pub origin: ActorType,
    pub correlation_id: Option<String>,
    pub retry: RetryPolicy,
}

/// Creates the export in one transaction.
pub async fn create(txn: &DatabaseTransaction, new: NewExport<'_>) -> AppResult<()> {
    let now = crate::scalars::now();
    entity::log_exports::Entity::insert(entity::log_exports::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        export_id: Set(new.export_id.to_owned()),
        tenant_id: Set(new.tenant.as_str().to_owned()),
        scope: Set(new.request.scope.as_str().to_owned()),
        run_id: Set(new.run_id),
        requested_by: Set(new.requested_by),
        format: Set(new.request.format.as_str().to_owned()),
        origin: Set(new.origin.as_str().to_owned()),
        source_component: Set("LogExportService".to_owned()),
        correlation_id: Set(new.correlation_id),
        checksum: Set(None),
        status: Set(ExportStatus::Pending.as_str().to_owned()),
        delivered_at: Set(None),
        filter: Set(new.request.filter),
        row_count: Set(None),
        byte_size: Set(None),
        manifest_sha256: Set(None),
        error: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    let r = new.retry;
    // Columns left out keep their defaults: no ETA, totals, lease or times yet.
    Entity::insert(export_jobs::ActiveModel {
        export_id: Set(new.export_id.to_owned()),
        tenant_id: Set(new.tenant.as_str().to_owned()),
        scope: Set(new.request.scope.as_str().to_owned()),
        format: Set(new.request.format.as_str().to_owned()),
        request: Set(new.request.json.to_owned()),
        as_of_ms: Set(to_ms(new.request.as_of)),
        state: Set(JobState::Queued.as_str().to_owned()),
        stage: Set(JobStage::Queued.as_str().to_owned()),
        percent: Set(0.0),
        rows_done: Set(0),
        attempt: Set(0),
        max_attempts: Set(r.max_attempts as i32),
        retry_strategy: Set(r.strategy.as_str().to_owned()),
        base_delay_ms: Set(r.base_delay.as_millis() as i64),
        max_delay_ms: Set(r.max_delay.as_millis() as i64),
        jitter_factor: Set(r.jitter_factor),
        next_attempt_ms: Set(to_ms(now)),
        created_ms: Set(to_ms(now)),
        updated_ms: Set(to_ms(now)),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await?;
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
                    new.request.json.as_bytes()
                ))[..16],
            })),
        },
    )
    .await?;
    Ok(())
}
