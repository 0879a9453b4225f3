//! A job's audit trail (`export_job_events`): chained per job, `integrity_hash` = first 32 hex
//! of sha256 of `event_id|event_type|job_id|tenant_id|timestamp|previous_event_hash` (docs/domain.md §10.2,
//! with the chain per job rather than one per process, docs/decisions.md D12).

use entity::export_job_events::{ActiveModel, Column, Entity};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sha2::{Digest, Sha256};

use super::model::{from_ms, to_ms, JobEventSnapshot};
use crate::auth::TenantId;
use crate::error::AppResult;

/// The job's audit trail, oldest first.
pub async fn events(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    export_id: &str,
) -> AppResult<Vec<JobEventSnapshot>> {
    Ok(Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::ExportId.eq(export_id))
        .order_by_asc(Column::Seq)
        .all(db)
        .await?
        .into_iter()
        .map(JobEventSnapshot::from)
        .collect())
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
    let last: Option<(i64, String)> = Entity::find()
        .select_only()
        .columns([Column::Seq, Column::IntegrityHash])
        .filter(Column::ExportId.eq(export_id))
        .order_by_desc(Column::Seq)
        .limit(1)
        .into_tuple()
        .one(conn)
        .await?;
    let (seq, previous) = match last {
        Some((seq, hash)) => (seq + 1, Some(hash)),
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
    Entity::insert(ActiveModel {
        id: Set(id),
        export_id: Set(export_id.to_owned()),
        tenant_id: Set(tenant_id.to_owned()),
        seq: Set(seq),
        event_type: Set(event.event_type.to_owned()),
        attempt: Set(event.attempt),
        worker: Set(event.worker.map(str::to_owned)),
        error: Set(event.error.map(str::to_owned)),
        metadata: Set(event.metadata.map(|m| m.to_string())),
        previous_event_hash: Set(previous),
        integrity_hash: Set(hash),
        created_ms: Set(to_ms(now)),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
