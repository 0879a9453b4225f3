//! GraphQL for traces: the `Trace` node with its batched `summary`, `checksum` and keyset-paged
//! `steps`, the `traces` list, the lookups by trace id, run id and root hash, and
//! `compareTraces`. Also the DataLoaders other domains use to hang traces off their nodes.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{Context, Json, Object, SimpleObject};
use sea_orm::DatabaseConnection;

use super::compare::{self, FieldDifference, Parity, TraceComparison as Comparison};
use super::store::{self, StepProbe};
use super::{
    ReplayBehavior, StepLevel, StepSnapshot, StepSource, TraceSnapshot, TraceSummary, Violation,
};
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::pagination::{ListProbe, Position};
use crate::plain::{value, PlainField, PlainFields};
use crate::scalars::DateTime;
use crate::state::AppState;

/// A loader failure, shared by every caller of one batch (DataLoader errors must be `Clone`).
/// Converted back into an [`AppError`] where the resolver awaits it, so `INTERNAL` errors carry
/// the request id.
#[derive(Debug, Clone)]
pub struct LoadError(Arc<AppError>);

impl From<AppError> for LoadError {
    fn from(err: AppError) -> Self {
        LoadError(Arc::new(err))
    }
}

impl From<LoadError> for AppError {
    fn from(err: LoadError) -> Self {
        err.0.as_ref().clone()
    }
}

impl From<LoadError> for async_graphql::Error {
    fn from(err: LoadError) -> Self {
        AppError::from(err).into()
    }
}

/// A trace as the step loaders key it: trace ids are unique per tenant, not globally.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceKey {
    pub tenant: TenantId,
    pub trace_id: String,
}

impl TraceKey {
    pub fn of(trace: &TraceSnapshot) -> Self {
        TraceKey {
            tenant: TenantId::trusted(trace.tenant_id.clone()),
            trace_id: trace.trace_id.clone(),
        }
    }
}

/// The keys' trace ids per tenant (one tenant per response in practice): one statement each.
fn by_tenant<'a>(
    keys: impl IntoIterator<Item = &'a TraceKey>,
) -> HashMap<&'a TenantId, Vec<String>> {
    let mut out: HashMap<&TenantId, Vec<String>> = HashMap::new();
    for key in keys {
        out.entry(&key.tenant)
            .or_default()
            .push(key.trace_id.clone());
    }
    for ids in out.values_mut() {
        ids.sort();
        ids.dedup();
    }
    out
}

/// Step aggregates per trace.
pub struct TraceSummaryLoader {
    pub db: DatabaseConnection,
}

impl Loader<TraceKey> for TraceSummaryLoader {
    type Value = TraceSummary;
    type Error = LoadError;

    async fn load(&self, keys: &[TraceKey]) -> Result<HashMap<TraceKey, TraceSummary>, LoadError> {
        let mut out = HashMap::new();
        for (tenant, ids) in by_tenant(keys) {
            for (trace_id, summary) in store::summaries_for_traces(&self.db, tenant, &ids).await? {
                let key = TraceKey {
                    tenant: tenant.clone(),
                    trace_id,
                };
                out.insert(key, summary);
            }
        }
        Ok(out)
    }
}

/// Every live step per trace, in step order.
pub struct TraceStepsLoader {
    pub db: DatabaseConnection,
}

impl Loader<TraceKey> for TraceStepsLoader {
    type Value = Arc<Vec<StepSnapshot>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[TraceKey],
    ) -> Result<HashMap<TraceKey, Arc<Vec<StepSnapshot>>>, LoadError> {
        let mut out = HashMap::new();
        for (tenant, ids) in by_tenant(keys) {
            for (trace_id, steps) in store::steps_for_traces(&self.db, tenant, &ids).await? {
                let key = TraceKey {
                    tenant: tenant.clone(),
                    trace_id,
                };
                out.insert(key, Arc::new(steps));
            }
        }
        Ok(out)
    }
}

/// The first (or, `backward`, the last) page of one trace's steps, without cursors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgePageKey {
    pub trace: TraceKey,
    pub limit: u64,
    pub backward: bool,
}

/// Edge pages of many traces' steps: at most one statement per direction (and tenant) for any
/// number of traces (`ROW_NUMBER()` per trace).
pub struct EdgeStepsLoader {
    pub db: DatabaseConnection,
}

impl Loader<EdgePageKey> for EdgeStepsLoader {
    type Value = Arc<Vec<StepSnapshot>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[EdgePageKey],
    ) -> Result<HashMap<EdgePageKey, Arc<Vec<StepSnapshot>>>, LoadError> {
        let mut out = HashMap::new();
        for backward in [false, true] {
            let wanted: Vec<&EdgePageKey> =
                keys.iter().filter(|k| k.backward == backward).collect();
            let Some(limit) = wanted.iter().map(|k| k.limit).max() else {
                continue;
            };
            for (tenant, ids) in by_tenant(wanted.iter().map(|k| &k.trace)) {
                let rows =
                    store::edge_steps_for_traces(&self.db, tenant, &ids, limit, backward).await?;
                for key in wanted.iter().filter(|k| &k.trace.tenant == tenant) {
                    let steps = rows
                        .get(&key.trace.trace_id)
                        .map(|all| all.iter().take(key.limit as usize + 1).cloned().collect())
                        .unwrap_or_default();
                    out.insert((*key).clone(), Arc::new(steps));
                }
            }
        }
        Ok(out)
    }
}

/// The tenant's newest live trace per run id.
pub struct TraceByRunLoader {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
}

impl Loader<String> for TraceByRunLoader {
    type Value = TraceSnapshot;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, TraceSnapshot>, LoadError> {
        Ok(store::traces_for_runs(&self.db, &self.tenant, keys).await?)
    }
}

/// The tenant's live trace per trace id.
pub struct TraceByTraceIdLoader {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
}

impl Loader<String> for TraceByTraceIdLoader {
    type Value = TraceSnapshot;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, TraceSnapshot>, LoadError> {
        Ok(store::traces_by_trace_ids(&self.db, &self.tenant, keys).await?)
    }
}

/// The loaders behind a `Trace`'s nested fields. Share one across all traces of a response
/// (a page, a run's nested trace) so their nested fields batch; summaries and full step lists
/// are cached for the response (a summary serves both `summary` and `steps.totalCount`).
pub struct TraceLoaders {
    pub db: DatabaseConnection,
    pub summaries: DataLoader<TraceSummaryLoader, HashMapCache>,
    pub steps: DataLoader<TraceStepsLoader, HashMapCache>,
    pub edge_steps: DataLoader<EdgeStepsLoader>,
}

impl TraceLoaders {
    /// Fresh loaders, for a mutation's result (a later mutation of the same request must not
    /// see this one's cached summary).
    pub fn new(db: &DatabaseConnection) -> Arc<Self> {
        Arc::new(Self::build(db))
    }

    /// The request's shared loaders, for reads.
    pub fn of(ctx: &Context<'_>) -> AppResult<Arc<Self>> {
        let db = &ctx.data_unchecked::<AppState>().db;
        Ok(crate::request::scope(ctx)?.shared(|_| Self::build(db)))
    }

    fn build(db: &DatabaseConnection) -> Self {
        TraceLoaders {
            db: db.clone(),
            summaries: crate::request::cached_loader(TraceSummaryLoader { db: db.clone() }),
            steps: crate::request::cached_loader(TraceStepsLoader { db: db.clone() }),
            edge_steps: crate::request::loader(EdgeStepsLoader { db: db.clone() }),
        }
    }

    pub async fn summary(&self, trace: &TraceKey) -> AppResult<TraceSummary> {
        Ok(self
            .summaries
            .load_one(trace.clone())
            .await?
            .unwrap_or_default())
    }

    pub async fn all_steps(&self, trace: &TraceKey) -> AppResult<Arc<Vec<StepSnapshot>>> {
        Ok(self
            .steps
            .load_one(trace.clone())
            .await?
            .unwrap_or_default())
    }
}

/// What a link to a trace by its trace id needs (`TraceMismatch.trace`, `TraceStep.trace`):
/// the trace loader in the tenant and the loaders of the trace's own fields. Share one across a
/// response.
pub struct TraceLinks {
    pub traces: DataLoader<TraceByTraceIdLoader>,
    pub trace_fields: Arc<TraceLoaders>,
}

impl TraceLinks {
    /// Fresh loaders, for a mutation's result.
    pub fn new(db: &DatabaseConnection, tenant: &TenantId) -> Arc<Self> {
        Arc::new(Self::build(db, tenant, TraceLoaders::new(db)))
    }

    /// The request's shared loaders, for reads (`tenant` is the request's).
    pub fn of(ctx: &Context<'_>, tenant: &TenantId) -> AppResult<Arc<Self>> {
        let db = &ctx.data_unchecked::<AppState>().db;
        let trace_fields = TraceLoaders::of(ctx)?;
        Ok(crate::request::scope(ctx)?.shared(|_| Self::build(db, tenant, trace_fields)))
    }

    fn build(db: &DatabaseConnection, tenant: &TenantId, trace_fields: Arc<TraceLoaders>) -> Self {
        TraceLinks {
            traces: crate::request::loader(TraceByTraceIdLoader {
                db: db.clone(),
                tenant: tenant.clone(),
            }),
            trace_fields,
        }
    }
}

/// Counts steps through the batched summary; probes the far side per trace.
pub(crate) struct BatchedStepProbe {
    pub(crate) inner: StepProbe,
    pub(crate) loaders: Arc<TraceLoaders>,
}

#[async_trait::async_trait]
impl ListProbe for BatchedStepProbe {
    async fn count(&self) -> AppResult<i64> {
        let key = TraceKey {
            tenant: self.inner.tenant.clone(),
            trace_id: self.inner.trace_id.clone(),
        };
        Ok(self.loaders.summary(&key).await?.total_steps)
    }

    async fn exists_beyond(&self, at: &Position, newer: bool) -> AppResult<bool> {
        self.inner.exists_beyond(at, newer).await
    }
}

/// One executed step of a trace. Immutable.
pub struct TraceStep(pub StepSnapshot);

#[Object]
impl TraceStep {
    /// The trace this step belongs to.
    async fn trace_id(&self) -> &str {
        &self.0.trace_id
    }
    /// The step's trace (batched across the response, in the caller's tenant).
    async fn trace(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Trace>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let links = TraceLinks::of(ctx, &principal.tenant_id)?;
        let found = links.traces.load_one(self.0.trace_id.clone()).await?;
        Ok(found.map(|t| Trace::new(t, &links.trace_fields)))
    }
    /// Position in the trace, unique per trace; the list order.
    async fn step_index(&self) -> i32 {
        self.0.step_index
    }
    async fn skill_id(&self) -> &str {
        &self.0.skill_id
    }
    async fn skill_name(&self) -> &str {
        &self.0.skill_name
    }
    /// The step's (redacted) parameters.
    async fn params(&self) -> Json<&serde_json::Value> {
        Json(&self.0.params)
    }
    /// As recorded: usually `success`, `failure`, `retry` or `skipped`; other values are kept
    /// verbatim.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// e.g. `SUCCESS`, `TRANSIENT`, `PERMANENT`, `execution`.
    async fn outcome_category(&self) -> &str {
        &self.0.outcome_category
    }
    /// e.g. `abort`.
    async fn outcome_code(&self) -> Option<&str> {
        self.0.outcome_code.as_deref()
    }
    /// The (redacted) result, or `{error: ...}`.
    async fn outcome_data(&self) -> Option<Json<&serde_json::Value>> {
        self.0.outcome_data.as_ref().map(Json)
    }
    /// Cost in US cents (fractional).
    async fn cost_cents(&self) -> f64 {
        self.0.cost_cents
    }
    async fn duration_ms(&self) -> f64 {
        self.0.duration_ms
    }
    async fn retry_count(&self) -> i32 {
        self.0.retry_count
    }
    async fn input_hash(&self) -> Option<&str> {
        self.0.input_hash.as_deref()
    }
    /// Output hash a replay in `CHECK` mode verifies against.
    async fn output_hash(&self) -> Option<&str> {
        self.0.output_hash.as_deref()
    }
    async fn rng_state_before(&self) -> Option<&str> {
        self.0.rng_state_before.as_deref()
    }
    async fn idempotency_key(&self) -> Option<&str> {
        self.0.idempotency_key.as_deref()
    }
    async fn replay_behavior(&self) -> ReplayBehavior {
        self.0.replay_behavior
    }
    /// When the step was recorded.
    async fn timestamp(&self) -> DateTime {
        self.0.timestamp.into()
    }
    async fn source(&self) -> StepSource {
        self.0.source
    }
    /// Derived from the status: failure/error → `ERROR`, retry/retrying → `WARN`, else `INFO`.
    async fn level(&self) -> StepLevel {
        self.0.level
    }
    async fn is_synthetic(&self) -> bool {
        self.0.is_synthetic
    }
    async fn synthetic_scenario_id(&self) -> Option<&str> {
        self.0.synthetic_scenario_id.as_deref()
    }
    /// The step determinism hash (16 hex): SHA-256 over index, skill, params, status,
    /// outcome category and code, and retry count.
    async fn determinism_hash(&self) -> String {
        self.0.determinism_hash()
    }
}

crate::connection_types!(TraceStepConnection, TraceStepEdge, TraceStep);

/// The stored columns, read as the resolvers above read them.
impl PlainFields for TraceStep {
    fn plain_field(name: &str) -> Option<PlainField<Self>> {
        let read: PlainField<Self> = match name {
            "traceId" => |s| value::text(&s.0.trace_id),
            "stepIndex" => |s| value::scalar(&s.0.step_index),
            "skillId" => |s| value::text(&s.0.skill_id),
            "skillName" => |s| value::text(&s.0.skill_name),
            "params" => |s| value::json(&s.0.params),
            "status" => |s| value::text(&s.0.status),
            "outcomeCategory" => |s| value::text(&s.0.outcome_category),
            "outcomeCode" => |s| value::optional_text(s.0.outcome_code.as_deref()),
            "outcomeData" => |s| value::optional_json(s.0.outcome_data.as_ref()),
            "costCents" => |s| value::scalar(&s.0.cost_cents),
            "durationMs" => |s| value::scalar(&s.0.duration_ms),
            "retryCount" => |s| value::scalar(&s.0.retry_count),
            "inputHash" => |s| value::optional_text(s.0.input_hash.as_deref()),
            "outputHash" => |s| value::optional_text(s.0.output_hash.as_deref()),
            "rngStateBefore" => |s| value::optional_text(s.0.rng_state_before.as_deref()),
            "idempotencyKey" => |s| value::optional_text(s.0.idempotency_key.as_deref()),
            "replayBehavior" => |s| value::enumeration(s.0.replay_behavior),
            "timestamp" => |s| value::scalar(&DateTime::from(s.0.timestamp)),
            "source" => |s| value::enumeration(s.0.source),
            "level" => |s| value::enumeration(s.0.level),
            "isSynthetic" => |s| value::scalar(&s.0.is_synthetic),
            "syntheticScenarioId" => |s| value::optional_text(s.0.synthetic_scenario_id.as_deref()),
            _ => return None,
        };
        Some(read)
    }
}

/// Where a policy stopped the trace (its inflection point).
#[derive(SimpleObject)]
pub struct TraceViolation {
    pub step_index: Option<i32>,
    pub timestamp: Option<DateTime>,
    pub policy_id: Option<String>,
    pub reason: Option<String>,
}

impl From<&Violation> for TraceViolation {
    fn from(v: &Violation) -> Self {
        TraceViolation {
            step_index: v.step_index,
            timestamp: v.timestamp.map(Into::into),
            policy_id: v.policy_id.clone(),
            reason: v.reason.clone(),
        }
    }
}

/// Aggregates over a trace's steps.
#[derive(SimpleObject)]
pub struct TraceStepSummary {
    /// Number of steps.
    pub total_steps: i32,
    /// Steps with status `success`.
    pub success_count: i32,
    /// Steps with status `failure`.
    pub failure_count: i32,
    /// Sum of the steps' cost, US cents.
    pub total_cost_cents: f64,
    pub total_duration_ms: f64,
}

impl From<TraceSummary> for TraceStepSummary {
    fn from(s: TraceSummary) -> Self {
        let int = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        TraceStepSummary {
            total_steps: int(s.total_steps),
            success_count: int(s.success_count),
            failure_count: int(s.failure_count),
            total_cost_cents: s.total_cost_cents,
            total_duration_ms: s.total_duration_ms,
        }
    }
}

/// One run's execution trace (topic LLM_RUNS, depth O2). Immutable once completed. Its
/// resolvers are in `crate::trace_node`, above the domains it links to (mismatches).
pub struct Trace {
    pub snapshot: Arc<TraceSnapshot>,
    pub(crate) loaders: Arc<TraceLoaders>,
}

impl Trace {
    /// `loaders` should be shared by every trace of one response so nested fields batch.
    pub fn new(snapshot: TraceSnapshot, loaders: &Arc<TraceLoaders>) -> Self {
        Trace {
            snapshot: Arc::new(snapshot),
            loaders: loaders.clone(),
        }
    }
}

impl crate::plain::PlainFields for Trace {}

/// One field that differs between two traces.
#[derive(SimpleObject)]
pub struct TraceFieldDifference {
    /// `root_hash`, `seed`, `frozen_timestamp`, `step_count`, `step[i].skill_name` or
    /// `step[i].outcome_category` (`i` is the position in step order).
    pub field: String,
    pub left: Option<String>,
    pub right: Option<String>,
}

impl From<FieldDifference> for TraceFieldDifference {
    fn from(d: FieldDifference) -> Self {
        TraceFieldDifference {
            field: d.field,
            left: d.left,
            right: d.right,
        }
    }
}

/// Determinism parity of two traces: equal signatures over the step hashes.
#[derive(SimpleObject)]
pub struct TraceParity {
    pub is_parity: bool,
    pub left_signature: String,
    pub right_signature: String,
    /// Position (0-based, in step order) of the first step whose hashes differ; when all
    /// compared steps match but the counts differ, the shorter length.
    pub divergence_step: Option<i32>,
    /// Reasons joined by `; `: `skill: a vs b`, `status: a vs b`, `retries: a vs b`,
    /// `params differ` (or `hash mismatch`); `step count: m vs n`; `unknown divergence`.
    pub divergence_reason: Option<String>,
}

impl From<Parity> for TraceParity {
    fn from(p: Parity) -> Self {
        TraceParity {
            is_parity: p.is_parity,
            left_signature: p.left_signature,
            right_signature: p.right_signature,
            divergence_step: p.divergence_step,
            divergence_reason: p.divergence_reason,
        }
    }
}

/// The comparison of two of the tenant's traces.
pub struct TraceComparison {
    comparison: Comparison,
    left: TraceSnapshot,
    right: TraceSnapshot,
    loaders: Arc<TraceLoaders>,
}

#[Object]
impl TraceComparison {
    /// True when no field differs.
    #[graphql(name = "match")]
    async fn is_match(&self) -> bool {
        self.comparison.is_match
    }
    async fn left_root_hash(&self) -> Option<&str> {
        self.comparison.left_root_hash.as_deref()
    }
    async fn right_root_hash(&self) -> Option<&str> {
        self.comparison.right_root_hash.as_deref()
    }
    /// Field differences: root hash, seed, frozen timestamp, step count, then per step position
    /// (over the shorter trace) skill name and outcome category.
    async fn differences(&self) -> Vec<TraceFieldDifference> {
        self.comparison
            .differences
            .iter()
            .cloned()
            .map(Into::into)
            .collect()
    }
    /// "Traces are deterministically identical" or "Traces differ in N field(s): …".
    async fn summary(&self) -> &str {
        &self.comparison.summary
    }
    async fn parity(&self) -> TraceParity {
        self.comparison.parity.clone().into()
    }
    async fn left(&self) -> Trace {
        Trace::new(self.left.clone(), &self.loaders)
    }
    async fn right(&self) -> Trace {
        Trace::new(self.right.clone(), &self.loaders)
    }
}

/// Fetches a trace by its record id for `node(id)`, tenant-scoped; outside the tenant's read
/// window it is `NOT_FOUND`, like another tenant's.
pub async fn node(ctx: &Context<'_>, record_id: &str) -> AppResult<Trace> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let found = store::get_by_id(&state.db, &principal.tenant_id, record_id).await?;
    let snapshot = windowed(ctx, &principal.tenant_id, found).await?;
    Ok(Trace::new(snapshot, &TraceLoaders::of(ctx)?))
}

/// The trace a lookup found, when it is inside the tenant's read window (on `createdAt`, the
/// `traces` list's time); absent or outside: `NOT_FOUND`, as for another tenant's trace. The
/// store's single-trace lookups pick the newest by `createdAt`, so when the one found is
/// outside, every other match is too.
async fn windowed(
    ctx: &Context<'_>,
    tenant: &TenantId,
    found: Option<TraceSnapshot>,
) -> AppResult<TraceSnapshot> {
    crate::pagination::within_read_window(ctx, tenant, found, |t| t.created_at)
        .await?
        .ok_or(AppError::NotFound("Trace"))
}

/// The root fields, in schema order.
#[derive(async_graphql::MergedObject, Default)]
pub struct TraceQuery(
    super::list::TracesField,
    super::step_list::TraceStepsField,
    TraceLookupQuery,
);

#[derive(Default)]
pub struct TraceLookupQuery;

#[Object]
impl TraceLookupQuery {
    /// The tenant's trace with this trace id.
    async fn trace(
        &self,
        ctx: &Context<'_>,
        trace_id: String,
    ) -> async_graphql::Result<Option<Trace>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let found = store::get_by_trace_id(&state.db, &principal.tenant_id, &trace_id).await?;
        let snapshot = windowed(ctx, &principal.tenant_id, found).await?;
        Ok(Some(Trace::new(snapshot, &TraceLoaders::of(ctx)?)))
    }

    /// The tenant's newest trace of this run.
    async fn trace_by_run_id(
        &self,
        ctx: &Context<'_>,
        run_id: String,
    ) -> async_graphql::Result<Option<Trace>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let found = store::get_by_run_id(&state.db, &principal.tenant_id, &run_id).await?;
        let snapshot = windowed(ctx, &principal.tenant_id, found).await?;
        Ok(Some(Trace::new(snapshot, &TraceLoaders::of(ctx)?)))
    }

    /// The tenant's newest trace with this root hash.
    async fn trace_by_root_hash(
        &self,
        ctx: &Context<'_>,
        root_hash: String,
    ) -> async_graphql::Result<Option<Trace>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let found = store::get_by_root_hash(&state.db, &principal.tenant_id, &root_hash).await?;
        let snapshot = windowed(ctx, &principal.tenant_id, found).await?;
        Ok(Some(Trace::new(snapshot, &TraceLoaders::of(ctx)?)))
    }

    /// The tenant's first live step recorded under this idempotency key: whether a replay
    /// worker's step already ran, with its status, `outputHash` and `outcomeData`. None:
    /// `NOT_FOUND`, as for every lookup. Only steps inside the tenant's read window (by
    /// `timestamp`) are considered.
    async fn trace_step_by_idempotency_key(
        &self,
        ctx: &Context<'_>,
        idempotency_key: String,
    ) -> async_graphql::Result<Option<TraceStep>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        if idempotency_key.is_empty() || idempotency_key.chars().count() > 128 {
            return Err(AppError::bad_input(
                "idempotencyKey",
                "idempotencyKey must be 1 to 128 characters",
            )
            .into());
        }
        let state = ctx.data_unchecked::<AppState>();
        // The window in the statement: an older step under the same key is as absent as another
        // tenant's, so the first step inside the window answers.
        let since = crate::pagination::read_window_start(ctx, &principal.tenant_id).await?;
        let found = store::step_by_idempotency_key(
            &state.db,
            &principal.tenant_id,
            &idempotency_key,
            since,
        )
        .await?;
        Ok(Some(TraceStep(
            found.ok_or(AppError::NotFound("TraceStep"))?,
        )))
    }

    /// Compares two of the tenant's traces by trace id: a field diff and determinism parity.
    /// Either trace missing, another tenant's or outside the tenant's read window: `NOT_FOUND`
    /// (nothing of it is read).
    async fn compare_traces(
        &self,
        ctx: &Context<'_>,
        left: String,
        right: String,
    ) -> async_graphql::Result<Option<TraceComparison>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let ids = [left.clone(), right.clone()];
        // Tenant-scoped: another tenant's trace is never loaded, only found missing.
        let mut found = store::traces_by_trace_ids(&state.db, &principal.tenant_id, &ids).await?;
        let left_trace = found.get(&left).cloned();
        let right_trace = found.remove(&right);
        let (Some(left_trace), Some(right_trace)) = (left_trace, right_trace) else {
            return Err(AppError::NotFound("Trace").into());
        };
        // One tier read for both sides (the cache answers the second).
        let since = crate::pagination::read_window_start(ctx, &principal.tenant_id).await?;
        if left_trace.created_at < since || right_trace.created_at < since {
            return Err(AppError::NotFound("Trace").into());
        }
        let steps = store::steps_for_traces(&state.db, &principal.tenant_id, &ids).await?;
        let no_steps = Vec::new();
        let left_steps = steps.get(&left).unwrap_or(&no_steps);
        let right_steps = steps.get(&right).unwrap_or(&no_steps);
        let comparison = compare::compare(&left_trace, left_steps, &right_trace, right_steps);
        Ok(Some(TraceComparison {
            comparison,
            left: left_trace,
            right: right_trace,
            loaders: TraceLoaders::of(ctx)?,
        }))
    }
}
