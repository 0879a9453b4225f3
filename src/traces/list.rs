//! GraphQL for the `traces` list: its filter, its orders and its connection, with the facets,
//! aggregate and histogram a console shows beside the page (docs/console.md).

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};

use super::graphql::{Trace, TraceLoaders};
use super::store::TraceList;
use super::views::{TraceFacetField, TraceSet, TraceTimeField};
use super::{TraceListFilter, TraceSnapshot, TraceStatus};
use crate::error::{AppError, AppResult};
use crate::list_filters::{check_term, range, text_set, IntRangeInput, OrderDirection};
use crate::pagination::{self, canonical, ListOrder, PageArgs, Position, SortKey};
use crate::scalars::{BigInt, DateTime};
use crate::stats::{Buckets, FacetValue, Histogram, HistogramInterval, NumericStats};

crate::connection_types!(TraceConnection, TraceEdge, Trace, views TraceSet {
    /// Value → count of each named field over the traces matching the filter and `asOf` (all
    /// pages), most frequent first; for a console's filter dropdowns.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn facets(
        &self,
        fields: Vec<TraceFacetField>,
        #[graphql(desc = "Values per field (default 20, at most 100); the rest are `otherCount`.")]
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<TraceFacet>> {
        let limit = crate::stats::facet_args(&fields, limit, 4)?;
        let counts = self.1.facets(&fields).await?;
        Ok(crate::stats::facets_of(fields, counts, limit, |field, parts| TraceFacet {
            field,
            values: parts.values,
            other_count: parts.other_count,
            missing_count: parts.missing_count,
        }))
    }

    /// Count, sum, mean, extremes and percentiles of the step count and duration over the
    /// traces matching the filter and `asOf` (all pages; running traces have neither).
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn aggregate(&self) -> async_graphql::Result<TraceAggregate> {
        let (count, mut stats) = self.1.aggregate().await?;
        let mut next = || stats.remove(0);
        Ok(TraceAggregate {
            count: BigInt(count),
            step_count: next(),
            duration_ms: next(),
        })
    }

    /// Traces per time bucket over `[from, to)`, zero-filled, for the traces matching the
    /// filter and `asOf`. Buckets start on the interval's boundaries in `timeZone` (an IANA
    /// name; UTC when absent); the first and last are cut at `from` and `to`.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn histogram(
        &self,
        #[graphql(default)] field: TraceTimeField,
        interval: HistogramInterval,
        from: DateTime,
        to: DateTime,
        time_zone: Option<String>,
    ) -> async_graphql::Result<Histogram> {
        let buckets = Buckets::new(interval, from.0, to.0, time_zone.as_deref())?;
        Ok(buckets.finish_counts(&self.1.histogram(field, &buckets).await?))
    }
});

/// One facet of `traces`.
#[derive(SimpleObject)]
pub struct TraceFacet {
    pub field: TraceFacetField,
    pub values: Vec<FacetValue>,
    /// Traces whose value was cut by `limit`.
    pub other_count: BigInt,
    /// Traces without a value for the field (no agent, not synthetic).
    pub missing_count: BigInt,
}

/// Aggregates of `traces` (running traces have no step count or duration and are not counted in
/// those).
#[derive(SimpleObject)]
pub struct TraceAggregate {
    pub count: BigInt,
    pub step_count: NumericStats,
    pub duration_ms: NumericStats,
}

/// Filters for `traces`; the same input drives the list, its `totalCount`, facets, aggregate and
/// histogram, and an export of the list. Every given condition must hold; ranges and time bounds
/// are inclusive.
#[derive(Debug, Clone, Default, InputObject)]
pub struct TraceFilter {
    pub trace_id: Option<String>,
    pub run_id: Option<String>,
    pub agent_id: Option<String>,
    /// Any of these agents.
    pub agent_id_in: Option<Vec<String>>,
    /// None of these agents (traces without an agent are kept).
    pub agent_id_not_in: Option<Vec<String>>,
    /// Any of these statuses.
    pub status: Option<Vec<TraceStatus>>,
    /// None of these statuses.
    pub status_not_in: Option<Vec<TraceStatus>>,
    pub root_hash: Option<String>,
    pub plan_hash: Option<String>,
    pub incident_id: Option<String>,
    pub seed: Option<BigInt>,
    pub is_synthetic: Option<bool>,
    pub synthetic_scenario_id: Option<String>,
    /// Inclusive lower bound on `startedAt`.
    pub started_after: Option<DateTime>,
    /// Inclusive upper bound on `startedAt`.
    pub started_before: Option<DateTime>,
    /// Inclusive lower bound on `createdAt`.
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `createdAt`.
    pub created_before: Option<DateTime>,
    /// Traces still running have no `completedAt` and fall outside these bounds.
    pub completed_after: Option<DateTime>,
    pub completed_before: Option<DateTime>,
    /// Steps of a sealed trace; running traces fall outside.
    pub step_count: Option<IntRangeInput>,
    /// Milliseconds from start to completion; running traces fall outside.
    pub duration_ms: Option<IntRangeInput>,
    /// Case-insensitive substring (3 to 100 characters) of the trace, run, correlation, agent,
    /// plan, incident or scenario id or the violation reason, answered from a trigram index.
    pub search: Option<String>,
}

impl TryFrom<TraceFilter> for TraceListFilter {
    type Error = AppError;

    fn try_from(f: TraceFilter) -> AppResult<Self> {
        let statuses = |v: Option<Vec<TraceStatus>>| v.map(|s| canonical(s, TraceStatus::as_str));
        if let Some(term) = &f.search {
            check_term("search", term)?;
        }
        Ok(TraceListFilter {
            run_id: f.run_id,
            agent_id: f.agent_id,
            status: statuses(f.status),
            root_hash: f.root_hash,
            plan_hash: f.plan_hash,
            seed: f.seed.map(|s| s.0),
            is_synthetic: f.is_synthetic,
            started_after: f.started_after.map(|d| d.0),
            started_before: f.started_before.map(|d| d.0),
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
            trace_id: f.trace_id,
            incident_id: f.incident_id,
            synthetic_scenario_id: f.synthetic_scenario_id,
            agent_id_in: text_set("agentIdIn", f.agent_id_in)?,
            agent_id_not_in: text_set("agentIdNotIn", f.agent_id_not_in)?,
            status_not_in: statuses(f.status_not_in),
            completed_after: f.completed_after.map(|d| d.0),
            completed_before: f.completed_before.map(|d| d.0),
            step_count: range("stepCount", f.step_count)?,
            duration_ms: range("durationMs", f.duration_ms)?,
            search: f.search,
        })
    }
}

/// The columns `traces` can be sorted by; each has an index `(tenant, column, id)`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceOrderField {
    #[default]
    CreatedAt,
    StartedAt,
    /// Running traces have no step count yet and are not listed in this order.
    StepCount,
    /// Running traces have no duration and are not listed in this order.
    DurationMs,
}

/// The order of `traces`: a column, then the record id, both in `direction`.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct TraceOrder {
    #[graphql(default)]
    pub field: TraceOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl TraceOrder {
    fn list_order(self) -> ListOrder<TraceList> {
        use entity::aos_traces::Column as C;
        use TraceOrderField as F;
        type Key = fn(&TraceSnapshot) -> Position;
        // (names in cursor scopes descending / ascending, column, a time?, the row's key)
        let (names, column, time, position): ((&str, &str), _, _, Key) = match self.field {
            F::CreatedAt => (
                ("CREATED_AT_DESC", "CREATED_AT_ASC"),
                C::CreatedAt,
                true,
                |t| Position::of(t.created_at, &t.id),
            ),
            F::StartedAt => (
                ("STARTED_AT_DESC", "STARTED_AT_ASC"),
                C::StartedAt,
                true,
                |t| Position::of(t.started_at, &t.id),
            ),
            F::StepCount => (
                ("STEP_COUNT_DESC", "STEP_COUNT_ASC"),
                C::StepCount,
                false,
                |t| Position::keyed(t.step_count.unwrap_or_default().into(), &t.id),
            ),
            F::DurationMs => (
                ("DURATION_MS_DESC", "DURATION_MS_ASC"),
                C::DurationMs,
                false,
                |t| Position::keyed(t.duration_ms.unwrap_or_default(), &t.id),
            ),
        };
        let descending = self.direction == OrderDirection::Desc;
        ListOrder {
            key: SortKey {
                name: if descending { names.0 } else { names.1 },
                column,
                time,
                descending,
                skip_null: matches!(self.field, F::StepCount | F::DurationMs),
            },
            position,
        }
    }
}

#[derive(Default)]
pub struct TracesField;

#[Object]
impl TracesField {
    /// The tenant's live (non-archived) traces, newest first (ties broken by id) unless
    /// `orderBy` names another order. Cursors are bound to the filter, the order and `asOf`.
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn traces(
        &self,
        ctx: &Context<'_>,
        filter: Option<TraceFilter>,
        order_by: Option<TraceOrder>,
        #[graphql(
            desc = "Only rows recorded at or before this instant: a stable snapshot to page."
        )]
        as_of: Option<DateTime>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<TraceConnection> {
        let filter = TraceListFilter::try_from(filter.unwrap_or_default())?;
        let order = order_by.unwrap_or_default().list_order();
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let listed = pagination::ordered_page(ctx, filter, order, args, as_of.map(|d| d.0)).await?;
        // The page's traces share the request's loaders, so their nested fields batch.
        let loaders = TraceLoaders::of(ctx)?;
        let views = TraceSet {
            db: listed.db,
            tenant: listed.tenant,
            filter: listed.filter,
            as_of: listed.as_of,
        };
        Ok(TraceConnection(
            listed.page.map(|t| Trace::new(t, &loaders)),
            views,
        ))
    }
}
