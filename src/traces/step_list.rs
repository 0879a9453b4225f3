//! GraphQL for `traceSteps`, the tenant's steps across traces: its filter and its connection,
//! with the facets, aggregate and histogram a console shows beside the page (docs/console.md).

use async_graphql::{Context, InputObject, SimpleObject};

use super::graphql::TraceStep;
use super::steps::{StepFacetField, StepList, StepListFilter, StepSet};
use super::{StepLevel, StepSource};
use crate::error::{AppError, AppResult};
use crate::list_filters::{range, stored_values, text_set, IntRangeInput};
use crate::pagination::{self, canonical, PageRequest};
use crate::scalars::{BigInt, DateTime};
use crate::stats::{
    Buckets, FacetValue, FractionalStats, Histogram, HistogramInterval, NumericStats,
};

crate::connection_types!(TraceStepListConnection, TraceStepListEdge, TraceStep, views StepSet {
    /// Value → count of each named field over the steps matching the filter and `asOf` (all
    /// pages), most frequent first; for a console's filter dropdowns.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn facets(
        &self,
        fields: Vec<StepFacetField>,
        #[graphql(desc = "Values per field (default 20, at most 100); the rest are `otherCount`.")]
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<TraceStepFacet>> {
        let limit = crate::stats::facet_args(&fields, limit, 5)?;
        let counts = self.1.facets(&fields).await?;
        Ok(crate::stats::facets_of(fields, counts, limit, |field, parts| TraceStepFacet {
            field,
            values: parts.values,
            other_count: parts.other_count,
        }))
    }

    /// Count and stats of the numeric fields over the steps matching the filter and `asOf` (all
    /// pages). Durations and costs are stored as fractional numbers and answered as such.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn aggregate(&self) -> async_graphql::Result<TraceStepAggregate> {
        let a = self.1.aggregate().await?;
        Ok(TraceStepAggregate {
            count: BigInt(a.count),
            duration_ms: a.duration_ms,
            cost_cents: a.cost_cents,
            retry_count: a.retry_count,
        })
    }

    /// Steps per bucket of their `timestamp` over `[from, to)`, zero-filled, for the steps
    /// matching the filter and `asOf`. Buckets start on the interval's boundaries in `timeZone`
    /// (an IANA name; UTC when absent); the first and last are cut at `from` and `to`.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn histogram(
        &self,
        interval: HistogramInterval,
        from: DateTime,
        to: DateTime,
        time_zone: Option<String>,
    ) -> async_graphql::Result<Histogram> {
        let buckets = Buckets::new(interval, from.0, to.0, time_zone.as_deref())?;
        Ok(buckets.finish_counts(&self.1.histogram(&buckets).await?))
    }
});

/// Stats over the steps matching a `traceSteps` filter. Each field's stats count the steps
/// (every step has each field).
#[derive(SimpleObject)]
pub struct TraceStepAggregate {
    pub count: BigInt,
    pub duration_ms: FractionalStats,
    pub cost_cents: FractionalStats,
    pub retry_count: NumericStats,
}

/// One facet of `traceSteps` (every step has a value for each field).
#[derive(SimpleObject)]
pub struct TraceStepFacet {
    pub field: StepFacetField,
    pub values: Vec<FacetValue>,
    /// Steps whose value was cut by `limit`.
    pub other_count: BigInt,
}

/// Filters for `traceSteps`; the same input drives the list, its `totalCount`, facets,
/// aggregate and histogram. Every given condition must hold; bounds and ranges are inclusive.
#[derive(Debug, Clone, Default, InputObject)]
pub struct TraceStepFilter {
    /// The steps of one trace.
    pub trace_id: Option<String>,
    /// Any of these levels.
    pub level: Option<Vec<StepLevel>>,
    /// None of these levels.
    pub level_not_in: Option<Vec<StepLevel>>,
    /// Any of these statuses, as the writer sent them (`success`, `failure`, …).
    pub status: Option<Vec<String>>,
    pub status_not_in: Option<Vec<String>>,
    pub skill_name: Option<Vec<String>>,
    pub skill_name_not_in: Option<Vec<String>>,
    pub outcome_category: Option<Vec<String>>,
    pub outcome_category_not_in: Option<Vec<String>>,
    /// Any of these sources.
    pub source: Option<Vec<StepSource>>,
    pub is_synthetic: Option<bool>,
    /// Inclusive lower bound on the step's `timestamp`.
    pub timestamp_after: Option<DateTime>,
    /// Inclusive upper bound on the step's `timestamp`.
    pub timestamp_before: Option<DateTime>,
    /// Milliseconds the step took (compared with the stored fractional value).
    pub duration_ms: Option<IntRangeInput>,
    /// Cents the step cost (compared with the stored fractional value).
    pub cost_cents: Option<IntRangeInput>,
    pub retry_count: Option<IntRangeInput>,
}

impl TryFrom<TraceStepFilter> for StepListFilter {
    type Error = AppError;

    fn try_from(f: TraceStepFilter) -> AppResult<Self> {
        let levels = |v: Option<Vec<StepLevel>>| {
            stored_values(
                &v.map(|v| canonical(v, StepLevel::as_str)),
                StepLevel::as_str,
            )
        };
        let sources = f.source.map(|v| canonical(v, StepSource::as_str));
        Ok(StepListFilter {
            trace_id: f.trace_id,
            level: levels(f.level),
            level_not_in: levels(f.level_not_in),
            status: text_set("status", f.status)?,
            status_not_in: text_set("statusNotIn", f.status_not_in)?,
            skill_name: text_set("skillName", f.skill_name)?,
            skill_name_not_in: text_set("skillNameNotIn", f.skill_name_not_in)?,
            outcome_category: text_set("outcomeCategory", f.outcome_category)?,
            outcome_category_not_in: text_set("outcomeCategoryNotIn", f.outcome_category_not_in)?,
            source: stored_values(&sources, StepSource::as_str),
            is_synthetic: f.is_synthetic,
            timestamp_after: f.timestamp_after.map(|d| d.0),
            timestamp_before: f.timestamp_before.map(|d| d.0),
            duration_ms: range("durationMs", f.duration_ms)?,
            cost_cents: range("costCents", f.cost_cents)?,
            retry_count: range("retryCount", f.retry_count)?,
        })
    }
}

crate::list_field!(
    /// The tenant's steps across its live traces, newest step time first (ties broken by id).
    /// The time is the step's `timestamp` as the writer recorded it.
    TraceStepsField.trace_steps(TraceStepFilter) -> TraceStepListConnection, via trace_steps_page
);

/// A page of `traceSteps` and the views over the same filter.
async fn trace_steps_page(
    ctx: &Context<'_>,
    filter: TraceStepFilter,
    request: PageRequest,
) -> AppResult<TraceStepListConnection> {
    let filter = StepListFilter::try_from(filter)?;
    let listed = pagination::view_page::<StepList>(ctx, filter, request).await?;
    let views = StepSet {
        db: listed.db,
        tenant: listed.tenant,
        filter: listed.filter,
        as_of: listed.as_of,
    };
    Ok(TraceStepListConnection(listed.page.map(TraceStep), views))
}
