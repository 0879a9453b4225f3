//! GraphQL for the activity feed: `activity(filter, asOf, first, after)`, a forward keyset
//! connection of items, each naming its kind, its time and what it is about.

use async_graphql::{Context, InputObject, Object, Union};

use super::{ActivityFilter, ActivityItem, ActivityKind, ActivityPosition, ActivitySubject};
use crate::audit::graphql::AuditEntry;
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::pagination::page_sizes;
use crate::runs::graphql::LlmRun;
use crate::scalars::DateTime;
use crate::state::AppState;
use crate::system::graphql::SystemRecord;
use crate::traces::graphql::{Trace, TraceLoaders};

/// What the feed shows; every given condition must hold.
#[derive(Debug, Clone, Default, InputObject)]
#[graphql(name = "ActivityFilter")]
pub struct ActivityFilterInput {
    /// Any of these kinds (all when absent).
    pub kinds: Option<Vec<ActivityKind>>,
    /// What concerns one run: the run, system records correlated with it, audit entries naming
    /// it, its traces' starts and ends.
    pub run_id: Option<String>,
    /// Inclusive lower bound on the item's time.
    pub after: Option<DateTime>,
    /// Inclusive upper bound on the item's time.
    pub before: Option<DateTime>,
}

impl TryFrom<ActivityFilterInput> for ActivityFilter {
    type Error = AppError;

    fn try_from(f: ActivityFilterInput) -> AppResult<Self> {
        if f.kinds.as_ref().is_some_and(Vec::is_empty) {
            return Err(AppError::bad_input(
                "filter.kinds",
                "`kinds` names no kind (leave it out for all)",
            ));
        }
        Ok(ActivityFilter {
            kinds: f.kinds.map(|mut k| {
                k.sort();
                k.dedup();
                k
            }),
            run_id: f.run_id,
            after: f.after.map(|d| d.0),
            before: f.before.map(|d| d.0),
        })
    }
}

/// What an activity item is about.
#[derive(Union)]
pub enum ActivitySubjectNode {
    LlmRun(LlmRun),
    SystemRecord(SystemRecord),
    AuditEntry(AuditEntry),
    Trace(Trace),
}

/// One thing that happened.
pub struct ActivityItemNode {
    item: ActivityItem,
    loaders: std::sync::Arc<TraceLoaders>,
}

impl ActivityItemNode {
    pub fn new(item: ActivityItem, loaders: std::sync::Arc<TraceLoaders>) -> Self {
        ActivityItemNode { item, loaders }
    }
}

#[Object(name = "ActivityItem")]
impl ActivityItemNode {
    async fn kind(&self) -> ActivityKind {
        self.item.position.kind
    }
    /// When it happened: the row's `createdAt`, or a trace's `completedAt` for `TRACE_ENDED`.
    async fn at(&self) -> DateTime {
        self.item.position.at.into()
    }
    async fn subject(&self) -> ActivitySubjectNode {
        match self.item.subject.clone() {
            ActivitySubject::LlmRun(run) => ActivitySubjectNode::LlmRun(LlmRun(run)),
            ActivitySubject::SystemRecord(r) => ActivitySubjectNode::SystemRecord(SystemRecord(r)),
            ActivitySubject::AuditEntry(e) => ActivitySubjectNode::AuditEntry(AuditEntry(e)),
            ActivitySubject::Trace(t) => ActivitySubjectNode::Trace(Trace::new(*t, &self.loaders)),
        }
    }
}

pub struct ActivityEdge {
    cursor: String,
    node: ActivityItemNode,
}

#[Object]
impl ActivityEdge {
    async fn cursor(&self) -> &str {
        &self.cursor
    }
    async fn node(&self) -> &ActivityItemNode {
        &self.node
    }
}

/// Paging state of the feed (forward only: `hasPreviousPage` is always false).
pub struct ActivityPageInfo {
    has_next_page: bool,
    start_cursor: Option<String>,
    end_cursor: Option<String>,
}

#[Object]
impl ActivityPageInfo {
    async fn has_next_page(&self) -> bool {
        self.has_next_page
    }
    async fn has_previous_page(&self) -> bool {
        false
    }
    async fn start_cursor(&self) -> Option<&str> {
        self.start_cursor.as_deref()
    }
    async fn end_cursor(&self) -> Option<&str> {
        self.end_cursor.as_deref()
    }
}

pub struct ActivityConnection {
    edges: Vec<ActivityEdge>,
    page_info: ActivityPageInfo,
    tenant: TenantId,
    filter: ActivityFilter,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    read_window: crate::read_window::ReadWindow,
}

#[Object]
impl ActivityConnection {
    async fn edges(&self) -> &[ActivityEdge] {
        &self.edges
    }
    async fn nodes(&self) -> Vec<&ActivityItemNode> {
        self.edges.iter().map(|e| &e.node).collect()
    }
    async fn page_info(&self) -> &ActivityPageInfo {
        &self.page_info
    }
    /// Items matching the filter and `asOf`, across all pages (one count per selected kind).
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(super::count(&state.db, &self.tenant, &self.filter, self.as_of).await?)
    }
    /// The tenant's read window the feed answered under (docs/api.md, "Read windows").
    async fn read_window(&self) -> crate::read_window::ReadWindow {
        self.read_window
    }
}

#[derive(Default)]
pub struct ActivityQuery;

#[Object]
impl ActivityQuery {
    /// What happened in the tenant, newest first: its runs, the system records it may see, its
    /// audit entries and its traces' starts and ends, in one keyset-paged stream ordered by
    /// time, then kind, then id. Forward paging only (`first`, `after`); cursors are bound to
    /// the filter and `asOf`.
    #[graphql(complexity = "crate::limits::list_cost(first, None, child_complexity)")]
    async fn activity(
        &self,
        ctx: &Context<'_>,
        filter: Option<ActivityFilterInput>,
        #[graphql(
            desc = "Only items at or before this instant: a stable snapshot to page."
        )]
        as_of: Option<DateTime>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ActivityConnection> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let filter = ActivityFilter::try_from(filter.unwrap_or_default())?;
        let sizes = page_sizes(ctx);
        let limit = match first {
            None => sizes.default.min(sizes.max),
            Some(n) if n >= 1 && n as u64 <= sizes.max => n as u64,
            Some(_) => {
                return Err(AppError::bad_input(
                    "first",
                    format!(
                        "`first` must be between 1 and {} (the maximum page size)",
                        sizes.max
                    ),
                )
                .into())
            }
        };
        let as_of = as_of.map(|d| d.0);
        let tenant = principal.tenant_id.clone();
        // Cursors are bound to the client's filter; the rows come from it narrowed to the
        // tenant's read window (which moves with the clock).
        let scope = super::scope(&tenant, &filter, as_of);
        let mut narrowed = filter.clone();
        let window = crate::pagination::tenant_window(
            ctx,
            &tenant,
            crate::pagination::TimeBounds {
                field: "after",
                to: narrowed.before,
                from: &mut narrowed.after,
            },
            as_of,
        )
        .await?;
        let filter = narrowed;
        let cursor = after
            .map(|c| {
                let position = state.cursors.decode(scope, &c)?;
                ActivityPosition::decode(&position).ok_or(AppError::BadCursor("not a cursor"))
            })
            .transpose()?;
        let mut items = super::page(
            &state.db,
            &tenant,
            &filter,
            as_of,
            cursor.as_ref(),
            limit + 1,
        )
        .await?;
        let has_next_page = items.len() as u64 > limit;
        items.truncate(limit as usize);
        let loaders = TraceLoaders::of(ctx)?;
        let edges: Vec<ActivityEdge> = items
            .into_iter()
            .map(|item| ActivityEdge {
                cursor: state.cursors.encode(scope, &item.position.encode()),
                node: ActivityItemNode {
                    item,
                    loaders: loaders.clone(),
                },
            })
            .collect();
        Ok(ActivityConnection {
            page_info: ActivityPageInfo {
                has_next_page,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            tenant,
            filter,
            as_of,
            read_window: window,
        })
    }
}
