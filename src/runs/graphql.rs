//! GraphQL for LLM runs: the `LlmRun` node, `llmRuns` (a keyset-paged connection) and `llmRun`.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};

use super::views::{FacetField, RunSet, TimeField};
use super::{store, ExecutionStatus, LlmRunSnapshot, RunFilter, RunSource};
use crate::auth::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::list_filters::{check_term, range, text_set, IntRangeInput, OrderDirection};
use crate::pagination::{self, canonical, ListOrder, PageArgs, Position, SortKey};
use crate::plain::{value, PlainField, PlainFields};
use crate::scalars::BigInt;
use crate::scalars::DateTime;
use crate::state::AppState;
use crate::stats::{Buckets, FacetValue, Histogram, HistogramInterval, NumericStats};

/// One LLM run's immutable execution record (topic LLM_RUNS, depth O1). Its resolvers are in
/// `crate::run_node`: they reach every domain that links back to runs, so they live above them.
pub struct LlmRun(pub LlmRunSnapshot);

crate::connection_types!(LlmRunConnection, LlmRunEdge, LlmRun, views RunSet {
    /// Value → count of each named field over the runs matching the filter and `asOf` (all
    /// pages), most frequent first; for a console's filter dropdowns.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn facets(
        &self,
        fields: Vec<FacetField>,
        #[graphql(desc = "Values per field (default 20, at most 100); the rest are `otherCount`.")]
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<LlmRunFacet>> {
        let limit = crate::stats::facet_limit(limit)?;
        if fields.is_empty() || fields.len() > 5 {
            return Err(AppError::bad_input("fields", "name 1 to 5 facet fields").into());
        }
        let counts = self.1.facets(&fields).await?;
        Ok(fields
            .into_iter()
            .zip(counts)
            .map(|(field, counts)| {
                let (values, other_count) = crate::stats::top_values(counts, limit);
                LlmRunFacet {
                    field,
                    values,
                    other_count: BigInt(other_count),
                }
            })
            .collect())
    }

    /// Count, sum, mean, extremes and percentiles of the numeric fields over the runs matching
    /// the filter and `asOf` (all pages).
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn aggregate(&self) -> async_graphql::Result<LlmRunAggregate> {
        let (count, mut stats) = self.1.aggregate().await?;
        let mut next = || stats.remove(0);
        Ok(LlmRunAggregate {
            count: BigInt(count),
            cost_cents: next(),
            input_tokens: next(),
            output_tokens: next(),
            total_tokens: next(),
            duration_ms: next(),
        })
    }

    /// Runs (and their cost) per time bucket over `[from, to)`, zero-filled, for the runs
    /// matching the filter and `asOf`. Buckets start on the interval's boundaries in `timeZone`
    /// (an IANA name; UTC when absent); the first and last are cut at `from` and `to`.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn histogram(
        &self,
        #[graphql(default)] field: TimeField,
        interval: HistogramInterval,
        from: DateTime,
        to: DateTime,
        time_zone: Option<String>,
    ) -> async_graphql::Result<Histogram> {
        let buckets = Buckets::new(interval, from.0, to.0, time_zone.as_deref())?;
        let totals = self.1.histogram(field, &buckets).await?;
        Ok(buckets.finish(&totals, true))
    }
});

/// One facet of `llmRuns`.
#[derive(SimpleObject)]
pub struct LlmRunFacet {
    pub field: FacetField,
    pub values: Vec<FacetValue>,
    /// Runs whose value was cut by `limit`.
    pub other_count: BigInt,
}

/// Aggregates of `llmRuns` (NULL durations, of runs still running, are not counted).
#[derive(SimpleObject)]
pub struct LlmRunAggregate {
    pub count: BigInt,
    pub cost_cents: NumericStats,
    pub input_tokens: NumericStats,
    pub output_tokens: NumericStats,
    pub total_tokens: NumericStats,
    pub duration_ms: NumericStats,
}

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
            "totalTokens" => |r| value::scalar(&BigInt(r.0.total_tokens)),
            "durationMs" => |r| value::optional_scalar(r.0.duration_ms.map(BigInt).as_ref()),
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

/// Filters for `llmRuns`; the same input drives the list, its `totalCount`, facets, aggregate
/// and histogram, an export of the list and the `llmRunAdded` tail. Every given condition must
/// hold; ranges and time bounds are inclusive.
#[derive(Debug, Clone, Default, InputObject)]
pub struct LlmRunFilter {
    pub run_id: Option<String>,
    pub trace_id: Option<String>,
    pub synthetic_scenario_id: Option<String>,
    pub provider: Option<String>,
    /// Any of these providers.
    pub provider_in: Option<Vec<String>>,
    /// None of these providers.
    pub provider_not_in: Option<Vec<String>>,
    pub model: Option<String>,
    pub model_in: Option<Vec<String>>,
    pub model_not_in: Option<Vec<String>>,
    /// Any of these statuses.
    pub status: Option<Vec<ExecutionStatus>>,
    /// None of these statuses.
    pub status_not_in: Option<Vec<ExecutionStatus>>,
    pub source: Option<RunSource>,
    pub source_in: Option<Vec<RunSource>>,
    pub source_not_in: Option<Vec<RunSource>>,
    pub is_synthetic: Option<bool>,
    /// Inclusive lower bound on `createdAt`.
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `createdAt`.
    pub created_before: Option<DateTime>,
    pub started_after: Option<DateTime>,
    pub started_before: Option<DateTime>,
    /// Runs still running have no `completedAt` and fall outside these bounds.
    pub completed_after: Option<DateTime>,
    pub completed_before: Option<DateTime>,
    pub cost_cents: Option<IntRangeInput>,
    pub input_tokens: Option<IntRangeInput>,
    pub output_tokens: Option<IntRangeInput>,
    pub total_tokens: Option<IntRangeInput>,
    /// Milliseconds from start to completion; runs still running fall outside.
    pub duration_ms: Option<IntRangeInput>,
    /// Case-insensitive substring (3 to 100 characters) of the run id, model, provider, trace
    /// id or scenario id, answered from a trigram index.
    pub search: Option<String>,
}

impl TryFrom<LlmRunFilter> for RunFilter {
    type Error = AppError;

    fn try_from(f: LlmRunFilter) -> AppResult<Self> {
        let statuses =
            |v: Option<Vec<ExecutionStatus>>| v.map(|s| canonical(s, ExecutionStatus::as_str));
        let sources = |v: Option<Vec<RunSource>>| v.map(|s| canonical(s, RunSource::as_str));
        if let Some(term) = &f.search {
            check_term("search", term)?;
        }
        Ok(RunFilter {
            run_id: f.run_id,
            provider: f.provider,
            model: f.model,
            status: statuses(f.status),
            source: f.source,
            is_synthetic: f.is_synthetic,
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
            trace_id: f.trace_id,
            synthetic_scenario_id: f.synthetic_scenario_id,
            provider_in: text_set("providerIn", f.provider_in)?,
            provider_not_in: text_set("providerNotIn", f.provider_not_in)?,
            model_in: text_set("modelIn", f.model_in)?,
            model_not_in: text_set("modelNotIn", f.model_not_in)?,
            status_not_in: statuses(f.status_not_in),
            source_in: sources(f.source_in),
            source_not_in: sources(f.source_not_in),
            started_after: f.started_after.map(|d| d.0),
            started_before: f.started_before.map(|d| d.0),
            completed_after: f.completed_after.map(|d| d.0),
            completed_before: f.completed_before.map(|d| d.0),
            cost_cents: range("costCents", f.cost_cents)?,
            input_tokens: range("inputTokens", f.input_tokens)?,
            output_tokens: range("outputTokens", f.output_tokens)?,
            total_tokens: range("totalTokens", f.total_tokens)?,
            duration_ms: range("durationMs", f.duration_ms)?,
            search: f.search,
        })
    }
}

/// The columns `llmRuns` can be sorted by; each has an index `(tenant, column, id)`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LlmRunOrderField {
    #[default]
    CreatedAt,
    StartedAt,
    CostCents,
    TotalTokens,
    /// Runs still running have no duration and are not listed in this order.
    DurationMs,
}

/// The order of `llmRuns`: a column, then the record id, both in `direction`.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct LlmRunOrder {
    #[graphql(default)]
    pub field: LlmRunOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl LlmRunOrder {
    fn list_order(self) -> ListOrder<store::RunList> {
        use entity::llm_run_records::Column as C;
        use LlmRunOrderField as F;
        let descending = self.direction == OrderDirection::Desc;
        type Key = fn(&LlmRunSnapshot) -> Position;
        // (names in cursor scopes descending / ascending, column, a time?, the row's key)
        let (names, column, time, position): ((&str, &str), _, _, Key) = match self.field {
            F::CreatedAt => (
                ("CREATED_AT_DESC", "CREATED_AT_ASC"),
                C::CreatedAt,
                true,
                |r| Position::of(r.created_at, &r.id),
            ),
            F::StartedAt => (
                ("STARTED_AT_DESC", "STARTED_AT_ASC"),
                C::StartedAt,
                true,
                |r| Position::of(r.started_at, &r.id),
            ),
            F::CostCents => (
                ("COST_CENTS_DESC", "COST_CENTS_ASC"),
                C::CostCents,
                false,
                |r| Position::keyed(r.cost_cents.into(), &r.id),
            ),
            F::TotalTokens => (
                ("TOTAL_TOKENS_DESC", "TOTAL_TOKENS_ASC"),
                C::TotalTokens,
                false,
                |r| Position::keyed(r.total_tokens, &r.id),
            ),
            F::DurationMs => (
                ("DURATION_MS_DESC", "DURATION_MS_ASC"),
                C::DurationMs,
                false,
                |r| Position::keyed(r.duration_ms.unwrap_or_default(), &r.id),
            ),
        };
        let name = if descending { names.0 } else { names.1 };
        ListOrder {
            key: SortKey {
                name,
                column,
                time,
                descending,
                skip_null: self.field == F::DurationMs,
            },
            position,
        }
    }
}

/// Fetches a run by its record id for `node(id)`, tenant-scoped; outside the tenant's read
/// window it is `NOT_FOUND`, like another tenant's.
pub async fn node(ctx: &Context<'_>, record_id: &str) -> AppResult<LlmRun> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let found = store::get_by_id(&state.db, &principal.tenant_id, record_id).await?;
    pagination::within_read_window(ctx, &principal.tenant_id, found, |r| r.created_at)
        .await?
        .map(LlmRun)
        .ok_or(AppError::NotFound("LlmRun"))
}

#[derive(Default)]
pub struct LlmRunsField;

#[Object]
impl LlmRunsField {
    /// The tenant's LLM run records, newest first (ties broken by id) unless `orderBy` names
    /// another order. Cursors are bound to the filter, the order and `asOf`.
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn llm_runs(
        &self,
        ctx: &Context<'_>,
        filter: Option<LlmRunFilter>,
        order_by: Option<LlmRunOrder>,
        #[graphql(
            desc = "Only rows recorded at or before this instant: a stable snapshot to page."
        )]
        as_of: Option<DateTime>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<LlmRunConnection> {
        let filter = RunFilter::try_from(filter.unwrap_or_default())?;
        let order = order_by.unwrap_or_default().list_order();
        // An order that leaves out runs without a value counts only the others.
        let counts_every_run = !order.key.skip_null;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let listed = pagination::ordered_page(ctx, filter, order, args, as_of.map(|d| d.0)).await?;
        let views = RunSet::new(listed.db, listed.tenant, listed.filter, listed.as_of);
        let mut page = listed.page.map(LlmRun);
        // The facets read every matching run's key combination; asked with them, the total is
        // their sum, not another statement.
        if counts_every_run && ctx.look_ahead().field("facets").exists() {
            page = page.counted_by(Arc::new(views.clone()));
        }
        Ok(LlmRunConnection(page, views))
    }
}

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
        let found = store::get_by_run_id(&state.db, &principal.tenant_id, &run_id).await?;
        // Outside the tenant's read window: as absent as another tenant's run.
        let run =
            pagination::within_read_window(ctx, &principal.tenant_id, found, |r| r.created_at)
                .await?
                .ok_or(AppError::NotFound("LlmRun"))?;
        Ok(Some(LlmRun(run)))
    }
}
