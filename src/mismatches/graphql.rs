//! GraphQL for trace mismatches: the `TraceMismatch` node, the `traceMismatches` list (with its
//! open/resolved summary) and the loaders other domains use.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use chrono::Utc;
use sea_orm::DatabaseConnection;

use super::store;
use super::{MismatchCounts, MismatchListFilter, MismatchSnapshot, MismatchStatus};
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::pagination::{self, Page, PageInfo, PageRequest};
use crate::scalars::DateTime;
use crate::state::AppState;
use crate::traces::graphql::{LoadError, Trace, TraceByTraceIdLoader, TraceLoaders};

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

/// What a `TraceMismatch`'s nested `trace` needs; share one across a response.
pub struct MismatchLoaders {
    pub traces: DataLoader<TraceByTraceIdLoader>,
    pub trace_fields: Arc<TraceLoaders>,
}

impl MismatchLoaders {
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
        MismatchLoaders {
            traces: crate::request::loader(TraceByTraceIdLoader {
                db: db.clone(),
                tenant: tenant.clone(),
            }),
            trace_fields,
        }
    }
}

/// A replay mismatch reported against one of the tenant's traces.
pub struct TraceMismatch {
    pub snapshot: MismatchSnapshot,
    loaders: Arc<MismatchLoaders>,
}

impl TraceMismatch {
    pub fn new(snapshot: MismatchSnapshot, loaders: &Arc<MismatchLoaders>) -> Self {
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

/// A page of mismatches (Relay connection) plus the window's open/resolved summary.
pub struct TraceMismatchConnection {
    page: Page<TraceMismatch>,
    db: DatabaseConnection,
    tenant: TenantId,
    filter: MismatchListFilter,
    as_of: Option<chrono::DateTime<Utc>>,
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
        Ok(
            store::counts(&self.db, &self.tenant, &self.filter, self.as_of)
                .await?
                .into(),
        )
    }
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

/// Filters for `traceMismatches`; the same input drives the list and its `totalCount`.
#[derive(Debug, Clone, Default, InputObject)]
pub struct TraceMismatchFilter {
    pub trace_id: Option<String>,
    pub status: Option<MismatchStatus>,
    /// Inclusive lower bound on `createdAt` (the window's start).
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `createdAt` (the window's end).
    pub created_before: Option<DateTime>,
}

impl From<TraceMismatchFilter> for MismatchListFilter {
    fn from(f: TraceMismatchFilter) -> Self {
        MismatchListFilter {
            trace_id: f.trace_id,
            status: f.status,
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
        }
    }
}

/// Fetches a mismatch by id for `node(id)`, tenant-scoped.
pub async fn node(ctx: &Context<'_>, record_id: &str) -> AppResult<TraceMismatch> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let snapshot = store::get_by_id(&state.db, &principal.tenant_id, record_id)
        .await?
        .ok_or(AppError::NotFound("TraceMismatch"))?;
    Ok(TraceMismatch::new(
        snapshot,
        &MismatchLoaders::of(ctx, &principal.tenant_id)?,
    ))
}

/// `traceMismatches`: a page of mismatches with the open/resolved summary of its filter.
async fn mismatches_page(
    ctx: &Context<'_>,
    filter: MismatchListFilter,
    request: PageRequest,
) -> AppResult<TraceMismatchConnection> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let loaders = MismatchLoaders::of(ctx, &principal.tenant_id)?;
    let as_of = request.as_of;
    let page = pagination::page::<store::MismatchList>(
        &state.db,
        &state.cursors,
        &principal.tenant_id,
        &filter,
        &request,
    )
    .await?
    .map(|m| TraceMismatch::new(m, &loaders));
    Ok(TraceMismatchConnection {
        page,
        db: state.db.clone(),
        tenant: principal.tenant_id,
        filter,
        as_of,
    })
}

crate::list_field!(
    /// The tenant's replay mismatches, newest first (ties broken by id); up to 500 per page.
    MismatchQuery.trace_mismatches(TraceMismatchFilter) -> TraceMismatchConnection, via mismatches_page
);
