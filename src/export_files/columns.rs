//! The column sets of the list scopes: which fields an export row carries, in which order.
//! Names and renderings are those of the GraphQL node of the same list (`LlmRun`,
//! `SystemRecord`, `AuditEntry`, `Trace`; the trace's `violation` object is flattened). A
//! change of a set bumps [`COLUMN_SET_VERSION`], which every manifest records.

use async_graphql::resolver_utils::EnumType;

use super::formats::{CellSink, ExportRow};
use crate::audit::AuditEntrySnapshot;
use crate::runs::LlmRunSnapshot;
use crate::system::SystemRecordSnapshot;
use crate::traces::TraceSnapshot;

/// Version of the column sets below.
pub const COLUMN_SET_VERSION: u32 = 1;

/// The GraphQL name of an enum value.
pub fn gql_name<T: EnumType>(value: T) -> &'static str {
    T::items()
        .iter()
        .find(|item| item.value == value)
        .map_or("", |item| item.name)
}

impl ExportRow for LlmRunSnapshot {
    fn columns() -> &'static [&'static str] {
        &[
            "recordId",
            "runId",
            "traceId",
            "provider",
            "model",
            "promptHash",
            "responseHash",
            "inputTokens",
            "outputTokens",
            "costCents",
            "executionStatus",
            "startedAt",
            "completedAt",
            "source",
            "isSynthetic",
            "syntheticScenarioId",
            "createdAt",
        ]
    }

    fn write(&self, out: &mut dyn CellSink) {
        out.str(&self.id);
        out.str(&self.run_id);
        out.opt_str(self.trace_id.as_deref());
        out.str(&self.provider);
        out.str(&self.model);
        out.opt_str(self.prompt_hash.as_deref());
        out.opt_str(self.response_hash.as_deref());
        out.int(self.input_tokens.into());
        out.int(self.output_tokens.into());
        out.int(self.cost_cents.into());
        out.str(gql_name(self.execution_status));
        out.time(self.started_at);
        out.opt_time(self.completed_at);
        out.str(gql_name(self.source));
        out.bool(self.is_synthetic);
        out.opt_str(self.synthetic_scenario_id.as_deref());
        out.time(self.created_at);
    }
}

impl ExportRow for SystemRecordSnapshot {
    fn columns() -> &'static [&'static str] {
        &[
            "recordId",
            "tenantId",
            "isSystemWide",
            "component",
            "eventType",
            "severity",
            "summary",
            "details",
            "causedBy",
            "correlationId",
            "createdAt",
        ]
    }

    fn write(&self, out: &mut dyn CellSink) {
        out.str(&self.id);
        out.opt_str(self.tenant_id.as_deref());
        out.bool(self.tenant_id.is_none());
        out.str(gql_name(self.component));
        out.str(gql_name(self.event_type));
        out.str(gql_name(self.severity));
        out.str(&self.summary);
        out.opt_json(self.details.as_ref());
        out.opt_str(self.caused_by.map(gql_name));
        out.opt_str(self.correlation_id.as_deref());
        out.time(self.created_at);
    }
}

impl ExportRow for AuditEntrySnapshot {
    fn columns() -> &'static [&'static str] {
        &[
            "recordId",
            "seq",
            "eventType",
            "entityType",
            "entityId",
            "actorType",
            "actorId",
            "actionReason",
            "beforeState",
            "afterState",
            "correlationId",
            "runId",
            "prevHash",
            "entryHash",
            "createdAt",
        ]
    }

    fn write(&self, out: &mut dyn CellSink) {
        out.str(&self.id);
        out.int(self.seq);
        out.str(gql_name(self.event_type));
        out.str(gql_name(self.entity_type));
        out.str(&self.entity_id);
        out.str(gql_name(self.actor_type));
        out.opt_str(self.actor_id.as_deref());
        out.opt_str(self.action_reason.as_deref());
        out.opt_json(self.before_state.as_ref());
        out.opt_json(self.after_state.as_ref());
        out.opt_str(self.correlation_id.as_deref());
        out.opt_str(self.run_id.as_deref());
        out.str(&self.prev_hash);
        out.str(&self.entry_hash);
        out.time(self.created_at);
    }
}

impl ExportRow for TraceSnapshot {
    fn columns() -> &'static [&'static str] {
        &[
            "recordId",
            "traceId",
            "runId",
            "correlationId",
            "agentId",
            "planId",
            "seed",
            "frozenTimestamp",
            "rootHash",
            "planHash",
            "schemaVersion",
            "plan",
            "metadata",
            "status",
            "startedAt",
            "completedAt",
            "createdAt",
            "storedBy",
            "incidentId",
            "isSynthetic",
            "syntheticScenarioId",
            "violationStepIndex",
            "violationTimestamp",
            "violationPolicyId",
            "violationReason",
            "replayMode",
            "replayAttemptId",
            "replayArtifactVersion",
            "traceCompletenessStatus",
        ]
    }

    fn write(&self, out: &mut dyn CellSink) {
        out.str(&self.id);
        out.str(&self.trace_id);
        out.str(&self.run_id);
        out.str(&self.correlation_id);
        out.opt_str(self.agent_id.as_deref());
        out.opt_str(self.plan_id.as_deref());
        // BigInt: a decimal string, as GraphQL serves it.
        out.opt_str(self.seed.map(|s| s.to_string()).as_deref());
        out.opt_str(self.frozen_timestamp.as_deref());
        out.opt_str(self.root_hash.as_deref());
        out.opt_str(self.plan_hash.as_deref());
        out.str(&self.schema_version);
        out.json(&self.plan);
        out.opt_json(self.metadata.as_ref());
        out.str(gql_name(self.status));
        out.time(self.started_at);
        out.opt_time(self.completed_at);
        out.time(self.created_at);
        out.opt_str(self.stored_by.as_deref());
        out.opt_str(self.incident_id.as_deref());
        out.bool(self.is_synthetic);
        out.opt_str(self.synthetic_scenario_id.as_deref());
        let v = self.violation.as_ref();
        out.opt_int(v.and_then(|v| v.step_index).map(i64::from));
        out.opt_time(v.and_then(|v| v.timestamp));
        out.opt_str(v.and_then(|v| v.policy_id.as_deref()));
        out.opt_str(v.and_then(|v| v.reason.as_deref()));
        out.opt_str(self.replay_mode.map(gql_name));
        out.opt_str(self.replay_attempt_id.as_deref());
        out.opt_str(self.replay_artifact_version.as_deref());
        out.opt_str(self.trace_completeness_status.as_deref());
    }
}
