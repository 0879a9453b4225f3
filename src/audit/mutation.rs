//! `recordAuditEvent`: appends one governance event to the tenant's hash-chained ledger
//! (docs/domain.md §4.2). Thin: check the role, validate the input against the event's rules,
//! append through the idempotency store, announce the new entry to subscribers.

use async_graphql::{Context, InputObject, Json, Object};
use serde::Serialize;
use serde_json::Value;

use super::append::NewAuditEntry;
use super::graphql::AuditEntry;
use super::group::{Appended, OPERATION};
use super::{store, ActorType, AuditEntityType, AuditEventType};
use crate::auth::{self, Permission};
use crate::error::AppError;
use crate::events::Topic;
use crate::idempotency::Keyed;
use crate::state::AppState;

/// One governance event. Each event type is about exactly one entity type, and carries the
/// state snapshots its kind calls for: create, approve, reject, acknowledge, close, breach,
/// grant, activate and signal events carry `afterState` only; modify, update, resolve, revoke
/// and deactivate events carry `beforeState` and `afterState`; a retirement carries
/// `beforeState` only. HUMAN and AGENT actors must be named by `actorId`. Events that lift or
/// bypass a control (LimitOverrideGranted, EmergencyOverrideActivated, IncidentManuallyClosed,
/// SignalSuppressed, PolicyRuleRetired) require an `actionReason`.
#[derive(Debug, Clone, InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordAuditEventInput {
    pub event_type: AuditEventType,
    /// Must be the event's entity type (e.g. LIMIT for LimitBreached; POLICY_RULE for the
    /// emergency override events).
    pub entity_type: AuditEntityType,
    /// The entity's id (at most 64 characters); for SIGNAL, the signal fingerprint.
    pub entity_id: String,
    pub actor_type: ActorType,
    /// Who acted; required for HUMAN and AGENT actors.
    pub actor_id: Option<String>,
    /// The actor's justification.
    pub action_reason: Option<String>,
    /// A JSON object: the entity's state before the change.
    pub before_state: Option<Json<Value>>,
    /// A JSON object: the entity's state after the change, or the event's payload (for
    /// SignalSuppressed, `suppressed_until` is an RFC 3339 timestamp or null).
    pub after_state: Option<Json<Value>>,
    /// The run the event concerns; when omitted, the states' `run_id` or `source_run_id`.
    pub run_id: Option<String>,
    /// Ties entries of one operation together.
    pub correlation_id: Option<String>,
}

#[derive(Default)]
pub struct AuditMutation;

#[Object]
impl AuditMutation {
    /// Appends a governance event to the tenant's audit ledger and returns the new entry, with
    /// its `seq` and hashes. Roles INGEST, ADMIN. Entries can never be changed or deleted.
    async fn record_audit_event(
        &self,
        ctx: &Context<'_>,
        input: RecordAuditEventInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<AuditEntry> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        // Redacted before validation, so the limits hold for what is stored.
        let entry = NewAuditEntry {
            tenant_id: principal.tenant_id.clone(),
            event_type: input.event_type,
            entity_type: input.entity_type,
            entity_id: input.entity_id.clone(),
            actor_type: input.actor_type,
            actor_id: input.actor_id.clone(),
            reason: input.action_reason.clone(),
            before_state: input.before_state.as_ref().map(|j| j.0.clone()),
            after_state: input.after_state.as_ref().map(|j| j.0.clone()),
            run_id: input.run_id.clone(),
            correlation_id: input.correlation_id.clone(),
        }
        .redacted();
        if entry.event_type.server_only() {
            return Err(AppError::bad_input(
                "input.eventType",
                format!(
                    "{} entries are written by the server itself (when an export completes)",
                    entry.event_type.as_str()
                ),
            )
            .into());
        }
        entry.validate("input")?;
        // The key is claimed in the append's own (group) transaction; a duplicate gets the id
        // of the entry the first request appended.
        let keyed = Keyed::optional(OPERATION, idempotency_key, &input)?;
        let appends = ctx.data_unchecked::<std::sync::Arc<super::group::AppendQueue>>();
        match appends.append(&state.db, entry, keyed).await? {
            Appended::New(snapshot) => {
                state
                    .events
                    .publish(Topic::AuditEntries, &principal.tenant_id)
                    .await;
                Ok(AuditEntry(*snapshot))
            }
            Appended::Replayed(id) => {
                let snapshot = store::get(&state.db, &principal.tenant_id, &id)
                    .await?
                    .ok_or_else(|| AppError::internal(format!("audit entry {id} vanished")))?;
                Ok(AuditEntry(snapshot))
            }
        }
    }
}
