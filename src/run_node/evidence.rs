//! `EvidenceMetadata` (docs/domain.md §2.3): the provenance every depth level of a
//! run carries — who and what it concerns, when it happened and was recorded, and a checksum of
//! the record itself so a copy can be checked against the server.

use async_graphql::{ComplexObject, Context, Enum, SimpleObject};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::loaders::run_loaders;
use crate::audit::{AuditEntityType, AuditEntrySnapshot};
use crate::evidence::reads::{
    ActivityEvidence, EnvironmentEvidence, PolicyDecision, ProviderEvidence,
};
use crate::runs::{LlmRunSnapshot, RunSource};
use crate::scalars::{format_utc, DateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum SourceDomain {
    Activity,
    Policy,
    Incidents,
    Logs,
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum EvidenceOrigin {
    System,
    Human,
    Agent,
    Migration,
    Replay,
}

/// Provenance of a run's evidence, and the evidence rows captured for it (`captureEvidence`),
/// each kind batched across a page of runs.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct EvidenceMetadata {
    pub tenant_id: String,
    pub run_id: String,
    /// The agent that executed the run (from its trace), when known.
    pub agent_id: Option<String>,
    pub trace_id: Option<String>,
    /// When the run happened (its start).
    pub occurred_at: DateTime,
    /// When Logbook recorded it.
    pub recorded_at: DateTime,
    /// Always `UTC`.
    pub timezone: &'static str,
    /// Policy rules named by the run's governance events.
    pub policy_ids: Vec<String>,
    /// Incidents named by the run's governance events.
    pub incident_ids: Vec<String>,
    pub correlation_id: String,
    pub source_domain: SourceDomain,
    pub source_component: &'static str,
    /// SYSTEM for worker- and system-produced records, AGENT for API/SDK ones.
    pub origin: EvidenceOrigin,
    /// sha256 (hex) of the record's canonical JSON (`recordChecksumInput`).
    pub checksum: String,
    /// Records are immutable in the database; always true.
    pub immutable: bool,
}

#[ComplexObject]
impl EvidenceMetadata {
    /// Environment captures (class H), oldest first.
    async fn environment(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<EnvironmentEvidence>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .environment
            .load_one(self.run_id.clone())
            .await?
            .unwrap_or_default())
    }

    /// Activity evidence (class B), in step order.
    async fn activities(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ActivityEvidence>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .activities
            .load_one(self.run_id.clone())
            .await?
            .unwrap_or_default())
    }

    /// Provider evidence (class G), in step order.
    async fn providers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProviderEvidence>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .providers
            .load_one(self.run_id.clone())
            .await?
            .unwrap_or_default())
    }

    /// Policy decisions (class D), in evaluation order.
    async fn policy_decisions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<PolicyDecision>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .policy_decisions
            .load_one(self.run_id.clone())
            .await?
            .unwrap_or_default())
    }
}

/// The JSON the checksum covers: the record's stored fields, keys sorted, no whitespace.
pub fn checksum_input(run: &LlmRunSnapshot) -> String {
    json!({
        "id": run.id, "tenant_id": run.tenant_id, "run_id": run.run_id, "trace_id": run.trace_id,
        "provider": run.provider, "model": run.model, "prompt_hash": run.prompt_hash,
        "response_hash": run.response_hash, "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens, "cost_cents": run.cost_cents,
        "execution_status": run.execution_status.as_str(), "started_at": format_utc(run.started_at),
        "completed_at": run.completed_at.map(format_utc), "source": run.source.as_str(),
        "is_synthetic": run.is_synthetic, "synthetic_scenario_id": run.synthetic_scenario_id,
        "created_at": format_utc(run.created_at),
    })
    .to_string()
}

pub fn metadata(
    run: &LlmRunSnapshot,
    agent_id: Option<String>,
    governance: &[AuditEntrySnapshot],
) -> EvidenceMetadata {
    let ids = |kind: AuditEntityType| {
        let mut ids: Vec<String> = governance
            .iter()
            .filter(|e| e.entity_type == kind)
            .map(|e| e.entity_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let origin = match run.source {
        RunSource::Api | RunSource::Sdk => EvidenceOrigin::Agent,
        RunSource::Worker | RunSource::System | RunSource::Synthetic => EvidenceOrigin::System,
    };
    EvidenceMetadata {
        tenant_id: run.tenant_id.clone(),
        run_id: run.run_id.clone(),
        agent_id,
        trace_id: run.trace_id.clone(),
        occurred_at: run.started_at.into(),
        recorded_at: run.created_at.into(),
        timezone: "UTC",
        policy_ids: ids(AuditEntityType::PolicyRule),
        incident_ids: ids(AuditEntityType::Incident),
        correlation_id: run.run_id.clone(),
        source_domain: SourceDomain::Logs,
        source_component: "LLMRunRecordStore",
        origin,
        checksum: hex::encode(Sha256::digest(checksum_input(run).as_bytes())),
        immutable: true,
    }
}
