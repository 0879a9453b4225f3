//! The `LlmRun` node's resolvers: its stored fields and the console's depth levels (O2–O5, system
//! records, integrity, mismatches, evidence). They reach traces, audit, system records, exports,
//! mismatches, integrity and replay, which link back to runs (`Trace.llmRun`, ...), so they live
//! here, above all of them, while `crate::runs` declares the type and lists it.

pub mod evidence;
pub mod loaders;

use async_graphql::{Context, Object, ID};

use crate::audit::graphql::AuditEntry;
use crate::exports::graphql::LogExport;
use crate::ids::{self, NodeKind};
use crate::integrity::graphql::IntegrityReportNode;
use crate::mismatches::graphql::TraceMismatch;
use crate::replay::graphql::ReplayWindow;
use crate::runs::graphql::LlmRun;
use crate::runs::{ExecutionStatus, RunSource};
use crate::scalars::{BigInt, DateTime};
use crate::system::graphql::SystemRecord;
use crate::traces::graphql::Trace;

use evidence::EvidenceMetadata;
use loaders::run_loaders;

#[Object]
impl LlmRun {
    /// Global object id (for `node`).
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::LlmRun, &self.0.id)
    }
    /// The record's own id.
    async fn record_id(&self) -> &str {
        &self.0.id
    }
    /// The run this record describes; unique within a tenant.
    async fn run_id(&self) -> &str {
        &self.0.run_id
    }
    async fn trace_id(&self) -> Option<&str> {
        self.0.trace_id.as_deref()
    }
    /// e.g. `anthropic`, `openai`, `stub`, `unknown`.
    async fn provider(&self) -> &str {
        &self.0.provider
    }
    async fn model(&self) -> &str {
        &self.0.model
    }
    /// SHA-256 hex of the prompt, when the producer supplied it.
    async fn prompt_hash(&self) -> Option<&str> {
        self.0.prompt_hash.as_deref()
    }
    /// SHA-256 hex of the response, when the producer supplied it.
    async fn response_hash(&self) -> Option<&str> {
        self.0.response_hash.as_deref()
    }
    async fn input_tokens(&self) -> i32 {
        self.0.input_tokens
    }
    async fn output_tokens(&self) -> i32 {
        self.0.output_tokens
    }
    /// Cost in integer US cents.
    async fn cost_cents(&self) -> i32 {
        self.0.cost_cents
    }
    /// `inputTokens + outputTokens`.
    async fn total_tokens(&self) -> BigInt {
        BigInt(self.0.total_tokens)
    }
    /// Milliseconds from `startedAt` to `completedAt`; null while the run is running.
    async fn duration_ms(&self) -> Option<BigInt> {
        self.0.duration_ms.map(BigInt)
    }
    async fn execution_status(&self) -> ExecutionStatus {
        self.0.execution_status
    }
    async fn started_at(&self) -> DateTime {
        self.0.started_at.into()
    }
    async fn completed_at(&self) -> Option<DateTime> {
        self.0.completed_at.map(Into::into)
    }
    async fn source(&self) -> RunSource {
        self.0.source
    }
    async fn is_synthetic(&self) -> bool {
        self.0.is_synthetic
    }
    async fn synthetic_scenario_id(&self) -> Option<&str> {
        self.0.synthetic_scenario_id.as_deref()
    }
    /// O2: the run's execution trace: the newest live trace recorded for its run id, else the
    /// live trace its `traceId` names (a run that is one call inside a larger trace, as the OTLP
    /// receiver records GenAI spans), if any.
    async fn trace(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Trace>> {
        let loaders = run_loaders(ctx).await?;
        let mut found = loaders.traces.load_one(self.0.run_id.clone()).await?;
        if found.is_none() {
            if let Some(trace_id) = &self.0.trace_id {
                found = loaders
                    .traces_by_trace_id
                    .load_one(trace_id.clone())
                    .await?;
            }
        }
        Ok(found.map(|t| Trace::new(t, &loaders.trace_fields)))
    }

    /// O3: governance events (policy, limit, proposal and incident audit entries) that name this
    /// run, newest first (at most 100; `auditEntries(filter: {runId})` pages all of them).
    async fn governance_events(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AuditEntry>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .governance
            .load_one(self.0.run_id.clone())
            .await?
            .unwrap_or_default())
    }

    /// O4: the ±30 s window around the run's inflection point, merged from its steps, system
    /// records and policy audit rows.
    async fn replay_window(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ReplayWindow>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .replay
            .load_one(self.0.run_id.clone())
            .await?
            .map(ReplayWindow))
    }

    /// O5: exports made of this run.
    async fn exports(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<LogExport>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .exports
            .load_one(self.0.run_id.clone())
            .await?
            .unwrap_or_default())
    }

    /// System records correlated with this run (`correlationId` = run id), the tenant's and
    /// system-wide, newest first (at most 50).
    async fn system_records(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SystemRecord>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .system_records
            .load_one(self.0.run_id.clone())
            .await?
            .unwrap_or_default())
    }

    /// The run's evidence-completeness grade (docs/domain.md §8.3).
    async fn integrity(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<IntegrityReportNode>> {
        let loaders = run_loaders(ctx).await?;
        Ok(loaders
            .integrity
            .load_one(self.0.run_id.clone())
            .await?
            .map(IntegrityReportNode))
    }

    /// Replay mismatches reported against the run's traces, newest first.
    async fn mismatches(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TraceMismatch>> {
        let loaders = run_loaders(ctx).await?;
        let found = loaders
            .mismatches
            .load_one(self.0.run_id.clone())
            .await?
            .unwrap_or_default();
        Ok(found
            .iter()
            .cloned()
            .map(|m| TraceMismatch::new(m, &loaders.mismatch_fields))
            .collect())
    }

    /// Provenance of this run's evidence (docs/domain.md §2.3).
    async fn evidence(&self, ctx: &Context<'_>) -> async_graphql::Result<EvidenceMetadata> {
        let loaders = run_loaders(ctx).await?;
        let key = self.0.run_id.clone();
        let (trace, governance) = futures_util::try_join!(
            async {
                loaders
                    .traces
                    .load_one(key.clone())
                    .await
                    .map_err(async_graphql::Error::from)
            },
            async { loaders.governance.load_one(key.clone()).await },
        )?;
        let governance: Vec<_> = governance
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.0)
            .collect();
        Ok(evidence::metadata(
            &self.0,
            trace.and_then(|t| t.agent_id),
            &governance,
        ))
    }

    /// When Logbook recorded the run (immutable; the list order).
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}
