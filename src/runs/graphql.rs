//! GraphQL for LLM runs: the `LlmRun` node, `llmRuns` (a keyset-paged connection) and `llmRun`.

use async_graphql::{Context, InputObject, Object, ID};

use super::{store, ExecutionStatus, LlmRunSnapshot, RunFilter, RunSource};
use crate::audit::graphql::AuditEntry;
use crate::auth::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::exports::graphql::LogExport;
use crate::ids::{self, NodeKind};
use crate::integrity::graphql::IntegrityReportNode;
use crate::mismatches::graphql::TraceMismatch;
use crate::pagination::canonical;
use crate::plain::{value, PlainField, PlainFields};
use crate::replay::graphql::ReplayWindow;
use crate::scalars::DateTime;
use crate::state::AppState;
use crate::system::graphql::SystemRecord;
use crate::traces::graphql::Trace;

use super::evidence::EvidenceMetadata;
use super::loaders::run_loaders;

/// One LLM run's immutable execution record (topic LLM_RUNS, depth O1).
pub struct LlmRun(pub LlmRunSnapshot);

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
    /// O2: the run's execution trace (its newest live trace), if one was recorded.
    async fn trace(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Trace>> {
        let loaders = run_loaders(ctx).await?;
        let found = loaders.traces.load_one(self.0.run_id.clone()).await?;
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
        Ok(super::evidence::metadata(
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

crate::connection_types!(LlmRunConnection, LlmRunEdge, LlmRun from LlmRunSnapshot);

/// The stored columns, read as the resolvers above read them.
impl PlainFields for LlmRun {
    fn plain_field(name: &str) -> Option<PlainField<Self>> {
        let read: PlainField<Self> = match name {
            "id" => |r| value::scalar(&ids::encode(NodeKind::LlmRun, &r.0.id)),
            "recordId" => |r| value::text(&r.0.id),
            "runId" => |r| value::text(&r.0.run_id),
            "traceId" => |r| value::optional_text(r.0.trace_id.as_deref()),
            "provider" => |r| value::text(&r.0.provider),
            "model" => |r| value::text(&r.0.model),
            "promptHash" => |r| value::optional_text(r.0.prompt_hash.as_deref()),
            "responseHash" => |r| value::optional_text(r.0.response_hash.as_deref()),
            "inputTokens" => |r| value::scalar(&r.0.input_tokens),
            "outputTokens" => |r| value::scalar(&r.0.output_tokens),
            "costCents" => |r| value::scalar(&r.0.cost_cents),
            "executionStatus" => |r| value::enumeration(r.0.execution_status),
            "startedAt" => |r| value::scalar(&DateTime::from(r.0.started_at)),
            "completedAt" => {
                |r| value::optional_scalar(r.0.completed_at.map(DateTime::from).as_ref())
            }
            "source" => |r| value::enumeration(r.0.source),
            "isSynthetic" => |r| value::scalar(&r.0.is_synthetic),
            "syntheticScenarioId" => |r| value::optional_text(r.0.synthetic_scenario_id.as_deref()),
            "createdAt" => |r| value::scalar(&DateTime::from(r.0.created_at)),
            _ => return None,
        };
        Some(read)
    }
}

/// Filters for `llmRuns`; the same input drives the list and its `totalCount`.
#[derive(Debug, Clone, Default, InputObject)]
pub struct LlmRunFilter {
    pub run_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Any of these statuses.
    pub status: Option<Vec<ExecutionStatus>>,
    pub source: Option<RunSource>,
    pub is_synthetic: Option<bool>,
    /// Inclusive lower bound on `createdAt`.
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `createdAt`.
    pub created_before: Option<DateTime>,
}

impl From<LlmRunFilter> for RunFilter {
    fn from(f: LlmRunFilter) -> Self {
        RunFilter {
            run_id: f.run_id,
            provider: f.provider,
            model: f.model,
            status: f.status.map(|s| canonical(s, ExecutionStatus::as_str)),
            source: f.source,
            is_synthetic: f.is_synthetic,
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
        }
    }
}

/// Fetches a run by its record id for `node(id)`, tenant-scoped.
pub async fn node(ctx: &Context<'_>, record_id: &str) -> AppResult<LlmRun> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    store::get_by_id(&state.db, &principal.tenant_id, record_id)
        .await?
        .map(LlmRun)
        .ok_or(AppError::NotFound("LlmRun"))
}

crate::list_field!(
    /// The tenant's LLM run records, newest first (ties broken by id).
    LlmRunsField.llm_runs(LlmRunFilter) -> LlmRunConnection = store::RunList
);

/// The runs' root fields, in schema order.
#[derive(async_graphql::MergedObject, Default)]
pub struct RunQuery(LlmRunsField, RunLookupQuery);

#[derive(Default)]
pub struct RunLookupQuery;

#[Object]
impl RunLookupQuery {
    /// The tenant's record for one run.
    async fn llm_run(
        &self,
        ctx: &Context<'_>,
        run_id: String,
    ) -> async_graphql::Result<Option<LlmRun>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let run = store::get_by_run_id(&state.db, &principal.tenant_id, &run_id).await?;
        Ok(Some(run.map(LlmRun).ok_or(AppError::NotFound("LlmRun"))?))
    }
}
