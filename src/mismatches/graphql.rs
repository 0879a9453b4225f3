//! GraphQL for trace mismatches: the `TraceMismatch` node, the `traceMismatches` list (with its
//! open/resolved summary) and the loaders other domains use.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, Enum, InputObject, Json, Object, SimpleObject, ID};
use sea_orm::DatabaseConnection;

use super::store;
use super::views::{MismatchFacetField, MismatchSet, MismatchTimeField};
use super::{MismatchCounts, MismatchListFilter, MismatchSnapshot, MismatchStatus};
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::list_filters::{check_term, range, text_set, IntRangeInput, OrderDirection};
use crate::pagination::{self, ListOrder, Page, PageArgs, PageInfo, SortKey};
use crate::scalars::{BigInt, DateTime};
use crate::state::AppState;
use crate::stats::{Buckets, FacetValue, Histogram, HistogramInterval};
use crate::traces::graphql::{LoadError, Trace, TraceLinks};

/// The tenant's mismatches per trace id, newest first.
pub struct MismatchesByTraceLoader {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
}

impl Loader<String> for MismatchesByTraceLoader {
    type Value = Arc<Vec<MismatchSnapshot>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Arc<Vec<MismatchSnapshot>>>, LoadError> {
        Ok(store::mismatches_for_traces(&self.db, &self.tenant, keys)
            .await?
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect())
    }
}

/// The tenant's mismatches per run id (over the run's live traces), newest first.
pub struct MismatchesByRunLoader {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
}

impl Loader<String> for MismatchesByRunLoader {
    type Value = Arc<Vec<MismatchSnapshot>>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Arc<Vec<MismatchSnapshot>>>, LoadError> {
        Ok(store::mismatches_for_runs(&self.db, &self.tenant, keys)
            .await?
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect())
    }
}

/// A replay mismatch reported against one of the tenant's traces.
pub struct TraceMismatch {
    pub snapshot: MismatchSnapshot,
    loaders: Arc<TraceLinks>,
}

impl TraceMismatch {
    pub fn new(snapshot: MismatchSnapshot, loaders: &Arc<TraceLinks>) -> Self {
        TraceMismatch {
            snapshot,
            loaders: loaders.clone(),
        }
    }
}

#[Object]
impl TraceMismatch {
    /// Global object id (for `node`).
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::TraceMismatch, &self.snapshot.id)
    }
    /// The mismatch's own id (what `resolveMismatch` takes).
    async fn mismatch_id(&self) -> &str {
        &self.snapshot.id
    }
    async fn trace_id(&self) -> &str {
        &self.snapshot.trace_id
    }
    /// The step that diverged, when reported.
    async fn step_index(&self) -> Option<i32> {
        self.snapshot.step_index
    }
    /// e.g. `output_mismatch`, `hash_mismatch`.
    async fn reason(&self) -> &str {
        &self.snapshot.reason
    }
    async fn expected_hash(&self) -> Option<&str> {
        self.snapshot.expected_hash.as_deref()
    }
    async fn actual_hash(&self) -> Option<&str> {
        self.snapshot.actual_hash.as_deref()
    }
    async fn details(&self) -> Json<&serde_json::Value> {
        Json(&self.snapshot.details)
    }
    /// Whether a notification (issue or chat message) went out.
    async fn notification_sent(&self) -> bool {
        self.snapshot.notification_sent
    }
    /// The tracking issue, when one was opened.
    async fn issue_url(&self) -> Option<&str> {
        self.snapshot.issue_url.as_deref()
    }
    async fn status(&self) -> MismatchStatus {
        self.snapshot.status
    }
    async fn resolved_at(&self) -> Option<DateTime> {
        self.snapshot.resolved_at.map(Into::into)
    }
    async fn resolved_by(&self) -> Option<&str> {
        self.snapshot.resolved_by.as_deref()
    }
    async fn resolution_note(&self) -> Option<&str> {
        self.snapshot.resolution_note.as_deref()
    }
    /// Who reported it.
    async fn reported_by(&self) -> Option<&str> {
        self.snapshot.reported_by.as_deref()
    }
    /// When it was reported (the list order).
    async fn created_at(&self) -> DateTime {
        self.snapshot.created_at.into()
    }
    /// The trace, when it is one of the tenant's live traces (null once archived).
    async fn trace(&self) -> async_graphql::Result<Option<Trace>> {
        let found = self
            .loaders
            .traces
            .load_one(self.snapshot.trace_id.clone())
            .await?;
        Ok(found.map(|t| Trace::new(t, &self.loaders.trace_fields)))
    }
}

/// Open and resolved mismatches within the list's trace and time window, whatever its status
/// filter.
#[derive(SimpleObject)]
pub struct TraceMismatchSummary {
    pub open: i32,
    pub resolved: i32,
}

impl From<MismatchCounts> for TraceMismatchSummary {
    fn from(c: MismatchCounts) -> Self {
        let int = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        TraceMismatchSummary {
            open: int(c.open),
            resolved: int(c.resolved),
        }
    }
}

/// A page of mismatches (Relay connection) plus the window's open/resolved summary, facets and
/// histogram.
pub struct TraceMismatchConnection {
    page: Page<TraceMismatch>,
    views: MismatchSet,
}

#[Object]
impl TraceMismatchConnection {
    async fn edges(&self) -> Vec<TraceMismatchEdge<'_>> {
        self.page
            .edges
            .iter()
            .map(|(cursor, node)| TraceMismatchEdge { cursor, node })
            .collect()
    }

    async fn nodes(&self) -> Vec<&TraceMismatch> {
        self.page.edges.iter().map(|(_, node)| node).collect()
    }

    async fn page_info(&self) -> &PageInfo {
        &self.page.page_info
    }

    /// Rows matching the same filter and `asOf` as the page, across all pages.
    async fn total_count(&self) -> async_graphql::Result<i64> {
        Ok(self.page.total_count().await?)
    }

    /// Open and resolved counts over the filter's `traceId` and created window (and `asOf`),
    /// ignoring its `status`.
    async fn summary(&self) -> async_graphql::Result<TraceMismatchSummary> {
        let v = &self.views;
        Ok(store::counts(&v.db, &v.tenant, &v.filter, v.as_of)
            .await?
            .into())
    }

    /// Value → count of each named field over the mismatches matching the filter and `asOf`
    /// (all pages), most frequent first; for a console's filter dropdowns.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn facets(
        &self,
        fields: Vec<MismatchFacetField>,
        #[graphql(desc = "Values per field (default 20, at most 100); the rest are `otherCount`.")]
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<TraceMismatchFacet>> {
        let limit = crate::stats::facet_args(&fields, limit, 3)?;
        let counts = self.views.facets(&fields).await?;
        Ok(crate::stats::facets_of(
            fields,
            counts,
            limit,
            |field, parts| TraceMismatchFacet {
                field,
                values: parts.values,
                other_count: parts.other_count,
                missing_count: parts.missing_count,
            },
        ))
    }

    /// Mismatches per time bucket over `[from, to)`, zero-filled, for the mismatches matching
    /// the filter and `asOf`. Buckets start on the interval's boundaries in `timeZone` (an IANA
    /// name; UTC when absent); the first and last are cut at `from` and `to`.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn histogram(
        &self,
        #[graphql(default)] field: MismatchTimeField,
        interval: HistogramInterval,
        from: DateTime,
        to: DateTime,
        time_zone: Option<String>,
    ) -> async_graphql::Result<Histogram> {
        let buckets = Buckets::new(interval, from.0, to.0, time_zone.as_deref())?;
        Ok(buckets.finish_counts(&self.views.histogram(field, &buckets).await?))
    }
}

/// One facet of `traceMismatches`.
#[derive(SimpleObject)]
pub struct TraceMismatchFacet {
    pub field: MismatchFacetField,
    pub values: Vec<FacetValue>,
    /// Mismatches whose value was cut by `limit`.
    pub other_count: BigInt,
    /// Mismatches without a value for the field (no reporter).
    pub missing_count: BigInt,
}

pub struct TraceMismatchEdge<'a> {
    cursor: &'a str,
    node: &'a TraceMismatch,
}

#[Object]
impl<'a> TraceMismatchEdge<'a> {
    async fn cursor(&self) -> &str {
        self.cursor
    }

    async fn node(&self) -> &TraceMismatch {
        self.node
    }
}

/// Filters for `traceMismatches`; the same input drives the list, its `totalCount`, facets and
/// histogram (and, but for `status`, its `summary`). Every given condition must hold; bounds
/// and ranges are inclusive.
#[derive(Debug, Clone, Default, InputObject)]
pub struct TraceMismatchFilter {
    pub trace_id: Option<String>,
    pub status: Option<MismatchStatus>,
    /// Inclusive lower bound on `createdAt` (the window's start).
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `createdAt` (the window's end).
    pub created_before: Option<DateTime>,
    /// Any of these reasons (1 to 100).
    pub reason_in: Option<Vec<String>>,
    /// None of these reasons.
    pub reason_not_in: Option<Vec<String>>,
    /// Any of these reporters.
    pub reported_by_in: Option<Vec<String>>,
    /// None of these reporters (mismatches without a reporter are kept).
    pub reported_by_not_in: Option<Vec<String>>,
    /// The diverging step's index; mismatches without one fall outside.
    pub step_index: Option<IntRangeInput>,
    /// Open mismatches have no `resolvedAt` and fall outside these bounds.
    pub resolved_after: Option<DateTime>,
    pub resolved_before: Option<DateTime>,
    /// Case-insensitive substring (3 to 100 characters) of the mismatch id, trace id, reason or
    /// reporter, answered from a trigram index.
    pub search: Option<String>,
}

impl TryFrom<TraceMismatchFilter> for MismatchListFilter {
    type Error = AppError;

    fn try_from(f: TraceMismatchFilter) -> AppResult<Self> {
        if let Some(term) = &f.search {
            check_term("search", term)?;
        }
        Ok(MismatchListFilter {
            trace_id: f.trace_id,
            status: f.status,
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
            reason_in: text_set("reasonIn", f.reason_in)?,
            reason_not_in: text_set("reasonNotIn", f.reason_not_in)?,
            reported_by_in: text_set("reportedByIn", f.reported_by_in)?,
            reported_by_not_in: text_set("reportedByNotIn", f.reported_by_not_in)?,
            step_index: range("stepIndex", f.step_index)?,
            resolved_after: f.resolved_after.map(|d| d.0),
            resolved_before: f.resolved_before.map(|d| d.0),
            search: f.search,
        })
    }
}

/// The orders of `traceMismatches`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceMismatchOrderField {
    /// By age: `DESC` newest first (the default), `ASC` oldest first.
    #[default]
    CreatedAt,
}

/// The order of `traceMismatches`: a column, then the mismatch id, both in `direction`.
#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct TraceMismatchOrder {
    #[graphql(default)]
    pub field: TraceMismatchOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl TraceMismatchOrder {
    fn list_order(self) -> ListOrder<store::MismatchList> {
        let newest = ListOrder::newest_first();
        match self.direction {
            OrderDirection::Desc => newest,
            OrderDirection::Asc => ListOrder {
                key: SortKey {
                    name: "CREATED_AT_ASC",
                    descending: false,
                    ..newest.key
                },
                position: newest.position,
            },
        }
    }
}

/// Fetches a mismatch by id for `node(id)`, tenant-scoped. Outside the tenant's read window
/// (on `createdAt`, like `traceMismatches`) it is `NOT_FOUND`, like another tenant's.
pub async fn node(ctx: &Context<'_>, record_id: &str) -> AppResult<TraceMismatch> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let found = store::get_by_id(&state.db, &principal.tenant_id, record_id).await?;
    let snapshot =
        pagination::within_read_window(ctx, &principal.tenant_id, found, |m| m.created_at)
            .await?
            .ok_or(AppError::NotFound("TraceMismatch"))?;
    Ok(TraceMismatch::new(
        snapshot,
        &TraceLinks::of(ctx, &principal.tenant_id)?,
    ))
}

#[derive(Default)]
pub struct MismatchQuery;

#[Object]
impl MismatchQuery {
    /// The tenant's replay mismatches, newest first (ties broken by id) unless `orderBy` says
    /// oldest first; up to 500 per page. Cursors are bound to the filter, the order and `asOf`.
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn trace_mismatches(
        &self,
        ctx: &Context<'_>,
        filter: Option<TraceMismatchFilter>,
        order_by: Option<TraceMismatchOrder>,
        #[graphql(
            desc = "Only rows recorded at or before this instant: a stable snapshot to page."
        )]
        as_of: Option<DateTime>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<TraceMismatchConnection> {
        let filter = MismatchListFilter::try_from(filter.unwrap_or_default())?;
        let order = order_by.unwrap_or_default().list_order();
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let listed = pagination::ordered_page(ctx, filter, order, args, as_of.map(|d| d.0)).await?;
        let loaders = TraceLinks::of(ctx, &listed.tenant)?;
        Ok(TraceMismatchConnection {
            page: listed.page.map(|m| TraceMismatch::new(m, &loaders)),
            views: MismatchSet {
                db: listed.db,
                tenant: listed.tenant,
                filter: listed.filter,
                as_of: listed.as_of,
            },
        })
    }
}
