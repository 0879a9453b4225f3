//! Writing system records (docs/domain.md §3.2). A tenant key's record is always owned by its
//! tenant ([`record_system_record`]); a system-wide record (no tenant) is written only for a
//! platform key or by the server itself ([`record_system_wide`], `super::lifecycle`). Both go
//! through one insert, so `summary`/`details` are redacted alike before they are stored
//! (docs/decisions.md D26, D27). System records are not chained into the audit ledger, which
//! is per tenant and holds governance actions (docs/domain.md §4).

use entity::system_records;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde::Serialize;
use serde_json::Value;

use super::{
    SystemComponent, SystemEventType, SystemRecordCause, SystemRecordSeverity, SystemRecordSnapshot,
};
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::redaction::{redact_string, redacted};

/// A validated `recordSystemRecord` input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewSystemRecord {
    pub component: SystemComponent,
    pub event_type: SystemEventType,
    pub severity: SystemRecordSeverity,
    pub summary: String,
    pub details: Option<Value>,
    pub caused_by: Option<SystemRecordCause>,
    pub correlation_id: Option<String>,
}

/// A record owned by `tenant`.
pub async fn record_system_record(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    new: NewSystemRecord,
) -> AppResult<SystemRecordSnapshot> {
    insert(db, Some(tenant), new).await
}

/// A system-wide record (`tenant_id` NULL), which every tenant sees.
pub async fn record_system_wide(
    db: &impl ConnectionTrait,
    new: NewSystemRecord,
) -> AppResult<SystemRecordSnapshot> {
    insert(db, None, new).await
}

async fn insert(
    db: &impl ConnectionTrait,
    tenant: Option<&TenantId>,
    new: NewSystemRecord,
) -> AppResult<SystemRecordSnapshot> {
    let mut summary = new.summary;
    redact_string(&mut summary);
    let record = SystemRecordSnapshot {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.map(|t| t.as_str().to_owned()),
        component: new.component,
        event_type: new.event_type,
        severity: new.severity,
        summary,
        details: new.details.map(redacted),
        caused_by: new.caused_by,
        correlation_id: new.correlation_id,
        created_at: crate::scalars::now(),
    };
    let row = system_records::ActiveModel {
        id: Set(record.id.clone()),
        tenant_id: Set(record.tenant_id.clone()),
        component: Set(record.component.as_str().to_owned()),
        event_type: Set(record.event_type.as_str().to_owned()),
        severity: Set(record.severity.as_str().to_owned()),
        summary: Set(record.summary.clone()),
        details: Set(record.details.clone()),
        caused_by: Set(record.caused_by.map(|c| c.as_str().to_owned())),
        correlation_id: Set(record.correlation_id.clone()),
        created_at: Set(record.created_at),
    };
    system_records::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(record)
}
