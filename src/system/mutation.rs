//! `recordSystemRecord`: writes one immutable system record. With a tenant's key (INGEST or
//! ADMIN) the record is the tenant's, always; with a platform key (role `PLATFORM`, no tenant,
//! made only by `logbook keys create --platform`) it is system-wide (`tenant_id` NULL) and every
//! tenant sees it. Nothing a tenant key sends can make a system-wide record: which kind is
//! written follows from the key alone (docs/api.md §2.5).

use async_graphql::{Context, InputObject, Json, Object};
use serde_json::Value;

use super::graphql::SystemRecord;
use super::write::{self, NewSystemRecord};
use super::{store, SystemComponent, SystemEventType, SystemRecordCause, SystemRecordSeverity};
use crate::auth::{self, Permission, Principal, TenantId};
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::idempotency::WriteOnce;
use crate::input::{check_opt, check_text};
use crate::state::AppState;

/// An infrastructure or trust event of the key's tenant.
#[derive(Debug, InputObject)]
pub struct RecordSystemRecordInput {
    pub component: SystemComponent,
    pub event_type: SystemEventType,
    pub severity: SystemRecordSeverity,
    /// One line for humans (redacted before it is stored), at most 4000 characters.
    pub summary: String,
    /// Structured detail, an object (redacted before it is stored).
    pub details: Option<Json<Value>>,
    pub caused_by: Option<SystemRecordCause>,
    /// The run this record belongs to (`correlationId = runId`).
    pub correlation_id: Option<String>,
}

fn parse(input: RecordSystemRecordInput) -> AppResult<NewSystemRecord> {
    check_text("input.summary", &input.summary, 4000)?;
    check_opt("input.correlationId", &input.correlation_id, 64)?;
    let details = input.details.map(|d| d.0);
    if details.as_ref().is_some_and(|d| !d.is_object()) {
        return Err(AppError::bad_input(
            "input.details",
            "input.details must be an object",
        ));
    }
    Ok(NewSystemRecord {
        component: input.component,
        event_type: input.event_type,
        severity: input.severity,
        summary: input.summary,
        details,
        caused_by: input.caused_by,
        correlation_id: input.correlation_id,
    })
}

#[derive(Default)]
pub struct SystemMutation;

#[Object]
impl SystemMutation {
    /// Records a system event: owned by the key's tenant, or system-wide (no tenant, seen by
    /// every tenant) when the key is a platform key.
    async fn record_system_record(
        &self,
        ctx: &Context<'_>,
        input: RecordSystemRecordInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<SystemRecord> {
        let principal = auth::viewer(ctx).await?;
        if principal.is_platform() {
            return record_system_wide(ctx, principal, input, idempotency_key).await;
        }
        let principal = Permission::Ingest.check(principal)?;
        let state = ctx.data_unchecked::<AppState>();
        let new = parse(input)?;
        let tenant = &principal.tenant_id;
        let record = WriteOnce::new(state, tenant, "recordSystemRecord", idempotency_key, &new)?
            .publish(Topic::SystemRecords)
            .run_with_receipt(
                async |txn| write::record_system_record(txn, tenant, new).await,
                |record| record.id.clone(),
                async |id: String| {
                    store::get(&state.db, tenant, &id)
                        .await?
                        .ok_or(AppError::NotFound("SystemRecord"))
                },
            )
            .await?;
        Ok(SystemRecord(record))
    }
}

/// A platform key's write: a system-wide record, its idempotency key claimed under the platform's
/// own scope ([`TenantId::platform`]), so it can neither replay nor conflict with a tenant's key
/// of the same text. No wake-up is published: wake-ups are per tenant, and every tenant's
/// `systemRecordAdded` finds the record on its periodic re-read (`events::TICK`, 2 s).
async fn record_system_wide(
    ctx: &Context<'_>,
    principal: Principal,
    input: RecordSystemRecordInput,
    idempotency_key: Option<String>,
) -> async_graphql::Result<SystemRecord> {
    Permission::RecordSystemWide.check(principal)?;
    let state = ctx.data_unchecked::<AppState>();
    let new = parse(input)?;
    let scope = TenantId::platform();
    let record = WriteOnce::new(state, &scope, "recordSystemRecord", idempotency_key, &new)?
        .run_with_receipt(
            async |txn| write::record_system_wide(txn, new).await,
            |record| record.id.clone(),
            async |id: String| {
                store::get_system_wide(&state.db, &id)
                    .await?
                    .ok_or(AppError::NotFound("SystemRecord"))
            },
        )
        .await?;
    Ok(SystemRecord(record))
}
