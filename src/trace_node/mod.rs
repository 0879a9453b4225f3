//! The `Trace` node's resolvers. `crate::traces` declares the type and lists it; its fields
//! reach mismatches (`Trace.mismatches`), whose `TraceMismatch.trace` links back, so they live
//! here, above both, as `LlmRun`'s do in `crate::run_node`.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Json, Object, ID};

use crate::auth::{self, Permission};
use crate::error::AppResult;
use crate::ids::{self, NodeKind};
use crate::mismatches::graphql::{MismatchesByTraceLoader, TraceMismatch};
use crate::pagination::{Direction, PageArgs};
use crate::request::loader;
use crate::runs::graphql::LlmRun;
use crate::runs::lookup::run_by_run_id;
use crate::scalars::{BigInt, DateTime};
use crate::state::AppState;
use crate::traces::graphql::TraceLinks;
use crate::traces::graphql::{
    BatchedStepProbe, EdgePageKey, Trace, TraceKey, TraceStep, TraceStepConnection,
    TraceStepSummary, TraceViolation,
};
use crate::traces::store::{self, StepProbe, MAX_STEP_PAGE};
use crate::traces::{ReplayMode, TraceStatus};

/// What a page of traces' nested fields outside the trace domain batch through, one set per
/// request.
struct TraceNodeLoaders {
    mismatches: DataLoader<MismatchesByTraceLoader>,
    mismatch_fields: Arc<TraceLinks>,
}

/// The request's trace-node loaders (checking the caller may read), made on first use.
async fn trace_node_loaders(ctx: &Context<'_>) -> AppResult<Arc<TraceNodeLoaders>> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let db = &ctx.data_unchecked::<AppState>().db;
    let tenant = &principal.tenant_id;
    let mismatch_fields = TraceLinks::of(ctx, tenant)?;
    Ok(crate::request::scope(ctx)?.shared(|_| TraceNodeLoaders {
        mismatches: loader(MismatchesByTraceLoader {
            db: db.clone(),
            tenant: tenant.clone(),
        }),
        mismatch_fields,
    }))
}

#[Object]
impl Trace {
    /// Global object id (for `node`).
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::Trace, &self.snapshot.id)
    }
    /// The trace id (`trace_<run_id>` for runtime traces); unique within the tenant.
    async fn trace_id(&self) -> &str {
        &self.snapshot.trace_id
    }
    /// The run this trace executed, in the caller's tenant.
    async fn llm_run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LlmRun>> {
        Ok(run_by_run_id(ctx, Some(&self.snapshot.run_id)).await?)
    }
    async fn run_id(&self) -> &str {
        &self.snapshot.run_id
    }
    /// Defaults to the run id.
    async fn correlation_id(&self) -> &str {
        &self.snapshot.correlation_id
    }
    async fn agent_id(&self) -> Option<&str> {
        self.snapshot.agent_id.as_deref()
    }
    async fn plan_id(&self) -> Option<&str> {
        self.snapshot.plan_id.as_deref()
    }
    /// Determinism seed (64-bit).
    async fn seed(&self) -> Option<BigInt> {
        self.snapshot.seed.map(BigInt)
    }
    /// Frozen clock value used for deterministic replay.
    async fn frozen_timestamp(&self) -> Option<&str> {
        self.snapshot.frozen_timestamp.as_deref()
    }
    /// Deterministic root hash (HASH_CHAIN run proof); null until computed.
    async fn root_hash(&self) -> Option<&str> {
        self.snapshot.root_hash.as_deref()
    }
    async fn plan_hash(&self) -> Option<&str> {
        self.snapshot.plan_hash.as_deref()
    }
    async fn schema_version(&self) -> &str {
        &self.snapshot.schema_version
    }
    /// The plan (list of step specs).
    async fn plan(&self) -> Json<&serde_json::Value> {
        Json(&self.snapshot.plan)
    }
    /// Completion metadata, e.g. `duration_ms`, `error`, `abort_reason`.
    async fn metadata(&self) -> Option<Json<&serde_json::Value>> {
        self.snapshot.metadata.as_ref().map(Json)
    }
    async fn status(&self) -> TraceStatus {
        self.snapshot.status
    }
    async fn started_at(&self) -> DateTime {
        self.snapshot.started_at.into()
    }
    async fn completed_at(&self) -> Option<DateTime> {
        self.snapshot.completed_at.map(Into::into)
    }
    /// When Logbook recorded the trace (the list order).
    async fn created_at(&self) -> DateTime {
        self.snapshot.created_at.into()
    }
    /// Who stored an SDK trace.
    async fn stored_by(&self) -> Option<&str> {
        self.snapshot.stored_by.as_deref()
    }
    async fn incident_id(&self) -> Option<&str> {
        self.snapshot.incident_id.as_deref()
    }
    async fn is_synthetic(&self) -> bool {
        self.snapshot.is_synthetic
    }
    async fn synthetic_scenario_id(&self) -> Option<&str> {
        self.snapshot.synthetic_scenario_id.as_deref()
    }
    /// The inflection point; null when the trace records none.
    async fn violation(&self) -> Option<TraceViolation> {
        self.snapshot.violation.as_ref().map(Into::into)
    }
    async fn replay_mode(&self) -> Option<ReplayMode> {
        self.snapshot.replay_mode
    }
    async fn replay_attempt_id(&self) -> Option<&str> {
        self.snapshot.replay_attempt_id.as_deref()
    }
    async fn replay_artifact_version(&self) -> Option<&str> {
        self.snapshot.replay_artifact_version.as_deref()
    }
    async fn trace_completeness_status(&self) -> Option<&str> {
        self.snapshot.trace_completeness_status.as_deref()
    }
    /// Steps of the sealed trace, fixed when it completed; null while it runs (see `summary`
    /// for the live count).
    async fn step_count(&self) -> Option<i32> {
        self.snapshot.step_count
    }
    /// Milliseconds from start to completion; null while it runs.
    async fn duration_ms(&self) -> Option<BigInt> {
        self.snapshot.duration_ms.map(BigInt)
    }
    /// The determinism signature (32 hex of SHA-256 over the step hashes joined by `:`): the
    /// stored value when the writer sealed one, otherwise computed from the live steps.
    async fn checksum(&self) -> async_graphql::Result<String> {
        if let Some(stored) = &self.snapshot.checksum {
            return Ok(stored.clone());
        }
        let steps = self
            .loaders
            .all_steps(&TraceKey::of(&self.snapshot))
            .await?;
        Ok(crate::traces::determinism_signature(&steps))
    }
    /// Aggregates over the steps (computed in SQL, batched across traces).
    async fn summary(&self) -> async_graphql::Result<TraceStepSummary> {
        Ok(self
            .loaders
            .summary(&TraceKey::of(&self.snapshot))
            .await?
            .into())
    }
    /// The steps in step order (ascending `stepIndex`), up to 1000 per page.
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    async fn steps(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<TraceStepConnection> {
        let state = ctx.data_unchecked::<AppState>();
        let trace = TraceKey::of(&self.snapshot);
        let trace_id = &self.snapshot.trace_id;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let window = args.window(
            &state.cursors,
            store::step_scope(&self.snapshot.tenant_id, trace_id),
            state.config.limits.page_sizes.default,
            MAX_STEP_PAGE,
            None,
        )?;
        let prefetched = if window.after.is_none() && window.before.is_none() {
            let key = EdgePageKey {
                trace: trace.clone(),
                limit: window.limit,
                backward: window.direction == Direction::Backward,
            };
            let rows = self.loaders.edge_steps.load_one(key).await?;
            Some(rows.map(|r| r.as_ref().clone()).unwrap_or_default())
        } else {
            None
        };
        let probe = Arc::new(BatchedStepProbe {
            inner: StepProbe {
                db: state.db.clone(),
                tenant: trace.tenant.clone(),
                trace_id: trace_id.clone(),
            },
            loaders: self.loaders.clone(),
        });
        let page = store::step_page(
            &state.db,
            &state.cursors,
            &trace.tenant,
            trace_id,
            window,
            prefetched,
            probe,
        )
        .await?
        .map(TraceStep);
        Ok(TraceStepConnection(page))
    }

    /// Replay mismatches reported against this trace, newest first (the whole list with
    /// filters, facets and paging is `traceMismatches(filter: {traceId})`).
    async fn mismatches(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TraceMismatch>> {
        let loaders = trace_node_loaders(ctx).await?;
        let found = loaders
            .mismatches
            .load_one(self.snapshot.trace_id.clone())
            .await?
            .unwrap_or_default();
        Ok(found
            .iter()
            .cloned()
            .map(|m| TraceMismatch::new(m, &loaders.mismatch_fields))
            .collect())
    }
}
