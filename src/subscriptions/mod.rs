//! GraphQL subscriptions over the logs: `llmRunAdded`, `systemRecordAdded`, `auditEntryAdded`,
//! `traceStepAdded`, `traceStarted`, `traceEnded`, `traceMismatchReported`,
//! `traceMismatchResolved`, `costAnomalyDetected` and `activityAdded` (the activity feed, merging four of them). Each takes the same filter input as its list and an optional `after`
//! cursor (a cursor of that list, or of an earlier event), and yields edges (`cursor` + `node`)
//! oldest first: first what was missed since `after`, then live rows. See `docs/subscriptions.md`.

pub mod admission;
pub mod feeds;
pub mod tail;

use async_graphql::{Context, SimpleObject, Subscription};
use futures_util::{Stream, StreamExt};

use self::feeds::{ActivityFeed, ListFeed, StepFeed};
use crate::activity::graphql::{ActivityFilterInput, ActivityItemNode};
use crate::activity::{ActivityFilter, ActivityKind};
use crate::audit::graphql::{AuditEntry, AuditEntryFilter};
use crate::audit::store::AuditList;
use crate::auth::TenantId;
use crate::auth::{self, Permission};
use crate::cost::graphql::{CostAnomaly, CostAnomalyFilter};
use crate::cost::store::AnomalyList;
use crate::error::AppError;
use crate::error::AppResult;
use crate::events::Topic;
use crate::mismatches::graphql::{TraceMismatch, TraceMismatchFilter};
use crate::mismatches::store::{MismatchList, MismatchResolvedList};
use crate::mismatches::MismatchListFilter;
use crate::pagination::{self, Listed};
use crate::runs::graphql::{LlmRun, LlmRunFilter};
use crate::runs::store::RunList;
use crate::state::AppState;
use crate::system::graphql::{SystemRecord, SystemRecordFilter};
use crate::system::store::SystemList;
use crate::traces::graphql::{Trace, TraceLinks, TraceLoaders, TraceStep};
use crate::traces::list::TraceFilter;
use crate::traces::store::{TraceEndList, TraceList};
use crate::traces::TraceListFilter;

/// A run recorded after the subscription's position.
#[derive(SimpleObject)]
pub struct LlmRunAdded {
    /// An `llmRuns` cursor (same filter): pass it as `after` to resume after this run.
    pub cursor: String,
    pub node: LlmRun,
}

/// A system record recorded after the subscription's position.
#[derive(SimpleObject)]
pub struct SystemRecordAdded {
    /// A `systemRecords` cursor (same filter): pass it as `after` to resume after this record.
    pub cursor: String,
    pub node: SystemRecord,
}

/// An audit entry appended after the subscription's position.
#[derive(SimpleObject)]
pub struct AuditEntryAdded {
    /// An `auditEntries` cursor (same filter): pass it as `after` to resume after this entry.
    pub cursor: String,
    pub node: AuditEntry,
}

/// A trace that started or ended after the subscription's position.
#[derive(SimpleObject)]
pub struct TraceEvent {
    /// Pass it as `after` to resume after this trace.
    pub cursor: String,
    pub node: Trace,
}

/// A mismatch reported after the subscription's position.
#[derive(SimpleObject)]
pub struct TraceMismatchReported {
    /// A `traceMismatches` cursor (same filter): pass it as `after` to resume after it.
    pub cursor: String,
    pub node: TraceMismatch,
}

/// A mismatch resolved after the subscription's position.
#[derive(SimpleObject)]
pub struct TraceMismatchResolved {
    /// Pass it as `after` to resume after this resolution.
    pub cursor: String,
    pub node: TraceMismatch,
}

/// A cost anomaly detected after the subscription's position.
#[derive(SimpleObject)]
pub struct CostAnomalyDetected {
    /// A `cost { anomalies }` cursor (same filter): pass it as `after` to resume after it.
    pub cursor: String,
    pub node: CostAnomaly,
}

/// A step appended to the trace after the subscription's position.
#[derive(SimpleObject)]
pub struct TraceStepAdded {
    /// A `Trace.steps` cursor: pass it as `after` to resume after this step.
    pub cursor: String,
    pub node: TraceStep,
}

/// An activity item that happened after the subscription's position.
#[derive(SimpleObject)]
pub struct ActivityAdded {
    /// An `activity` cursor (same filter, no `asOf`): pass it as `after` to resume after this
    /// item, or to `activity` to page on from it.
    pub cursor: String,
    pub node: ActivityItemNode,
}

#[derive(Default)]
pub struct LogSubscription;

#[Subscription]
impl LogSubscription {
    /// The tenant's runs matching `filter` as they are recorded, oldest first. With `after`
    /// (an `llmRuns` cursor for the same filter, or an event's cursor) the runs recorded since
    /// come first. Live rows arrive about a second after they are recorded.
    async fn llm_run_added(
        &self,
        ctx: &Context<'_>,
        filter: Option<LlmRunFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = LlmRunAdded>> {
        let filter = crate::runs::RunFilter::try_from(filter.unwrap_or_default())?;
        let (_, _, rows) = list_tail::<RunList>(ctx, Topic::LlmRuns, filter, after).await?;
        Ok(rows.map(|(cursor, run)| LlmRunAdded {
            cursor,
            node: LlmRun(run),
        }))
    }

    /// The system records the tenant may see (its own and system-wide, per `filter.scope`) as
    /// they are recorded, oldest first; `after` as for `llmRunAdded`.
    async fn system_record_added(
        &self,
        ctx: &Context<'_>,
        filter: Option<SystemRecordFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = SystemRecordAdded>> {
        let filter = filter.unwrap_or_default().try_into()?;
        let (_, _, rows) =
            list_tail::<SystemList>(ctx, Topic::SystemRecords, filter, after).await?;
        Ok(rows.map(|(cursor, record)| SystemRecordAdded {
            cursor,
            node: SystemRecord(record),
        }))
    }

    /// The tenant's audit entries matching `filter` as they are appended, oldest first;
    /// `after` as for `llmRunAdded`.
    async fn audit_entry_added(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEntryFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = AuditEntryAdded>> {
        let filter = filter.unwrap_or_default().try_into()?;
        let (_, _, rows) = list_tail::<AuditList>(ctx, Topic::AuditEntries, filter, after).await?;
        Ok(rows.map(|(cursor, entry)| AuditEntryAdded {
            cursor,
            node: AuditEntry(entry),
        }))
    }

    /// The steps of one of the tenant's traces as they are appended, in step order. With
    /// `after` (a `Trace.steps` cursor or an event's cursor) the later steps already stored come
    /// first. Another tenant's trace, or one outside the tenant's read window, is `NOT_FOUND`.
    async fn trace_step_added(
        &self,
        ctx: &Context<'_>,
        trace_id: String,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = TraceStepAdded>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let found =
            crate::traces::store::get_by_trace_id(&state.db, &principal.tenant_id, &trace_id)
                .await?;
        // As `trace(traceId)`: outside the read window, as absent as another tenant's. The
        // steps of a readable trace are all readable (docs/api.md §4.1).
        let trace =
            pagination::within_read_window(ctx, &principal.tenant_id, found, |t| t.created_at)
                .await?
                .ok_or(AppError::NotFound("Trace"))?;
        let feed = StepFeed {
            tenant: principal.tenant_id.clone(),
            trace_id: trace.trace_id,
        };
        let rows = tail::start(
            state,
            &[Topic::TraceSteps],
            &principal.tenant_id,
            feed,
            after,
        )
        .await?;
        Ok(rows.map(|(cursor, step)| TraceStepAdded {
            cursor,
            node: TraceStep(step),
        }))
    }

    /// The tenant's traces matching `filter` as they start (are stored), oldest first; `after`
    /// (a `traces` cursor for the same filter, or an event's cursor) as for `llmRunAdded`.
    async fn trace_started(
        &self,
        ctx: &Context<'_>,
        filter: Option<TraceFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = TraceEvent>> {
        let filter = TraceListFilter::try_from(filter.unwrap_or_default())?;
        let (state, _, rows) = list_tail::<TraceList>(ctx, Topic::Traces, filter, after).await?;
        Ok(rows.map(move |(cursor, trace)| TraceEvent {
            cursor,
            node: Trace::new(trace, &TraceLoaders::new(&state.db)),
        }))
    }

    /// The tenant's traces matching `filter` as they end (completed, failed or aborted), oldest
    /// end first; `after` is an earlier event's cursor (this tail's own order, by `completedAt`).
    async fn trace_ended(
        &self,
        ctx: &Context<'_>,
        filter: Option<TraceFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = TraceEvent>> {
        let filter = TraceListFilter::try_from(filter.unwrap_or_default())?;
        let (state, _, rows) = list_tail::<TraceEndList>(ctx, Topic::Traces, filter, after).await?;
        Ok(rows.map(move |(cursor, trace)| TraceEvent {
            cursor,
            node: Trace::new(trace, &TraceLoaders::new(&state.db)),
        }))
    }

    /// The tenant's replay mismatches matching `filter` as they are reported, oldest first;
    /// `after` (a `traceMismatches` cursor for the same filter, or an event's cursor) as for
    /// `llmRunAdded`.
    async fn trace_mismatch_reported(
        &self,
        ctx: &Context<'_>,
        filter: Option<TraceMismatchFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = TraceMismatchReported>> {
        let rows = mismatch_tail::<MismatchList>(ctx, filter, after).await?;
        Ok(rows.map(|(cursor, node)| TraceMismatchReported { cursor, node }))
    }

    /// The tenant's replay mismatches matching `filter` as they are resolved, oldest
    /// resolution first; `after` is an earlier event's cursor (this tail's own order, by
    /// `resolvedAt`). A mismatch is resolved once, so it arrives once.
    async fn trace_mismatch_resolved(
        &self,
        ctx: &Context<'_>,
        filter: Option<TraceMismatchFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = TraceMismatchResolved>> {
        let rows = mismatch_tail::<MismatchResolvedList>(ctx, filter, after).await?;
        Ok(rows.map(|(cursor, node)| TraceMismatchResolved { cursor, node }))
    }

    /// The tenant's cost anomalies matching `filter` as they are detected, oldest first;
    /// `after` (a `cost { anomalies }` cursor for the same filter, or an event's cursor) as for
    /// `llmRunAdded`. Detection run again the same day updates an anomaly's detection time, so
    /// it arrives again.
    async fn cost_anomaly_detected(
        &self,
        ctx: &Context<'_>,
        filter: Option<CostAnomalyFilter>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = CostAnomalyDetected>> {
        let filter = filter.unwrap_or_default().into();
        let (_, _, rows) =
            list_tail::<AnomalyList>(ctx, Topic::CostAnomalies, filter, after).await?;
        Ok(rows.map(|(cursor, anomaly)| CostAnomalyDetected {
            cursor,
            node: CostAnomaly(anomaly),
        }))
    }

    /// What happens in the tenant as it happens, oldest first: the `activity` feed's items
    /// (runs, system records it may see, audit entries, trace starts and ends) matching
    /// `filter`. With `after` (an `activity` cursor for the same filter without `asOf`, or an
    /// event's cursor) the items since come first. Live items arrive about a second after
    /// they happen.
    async fn activity_added(
        &self,
        ctx: &Context<'_>,
        filter: Option<ActivityFilterInput>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = ActivityAdded>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let filter = ActivityFilter::try_from(filter.unwrap_or_default())?;
        let topics = activity_topics(&filter);
        // The `activity` list's window: a range before it is refused now; each read narrows.
        let mut narrowed = filter.clone();
        let window = pagination::tenant_window(
            ctx,
            &principal.tenant_id,
            pagination::TimeBounds {
                field: "after",
                to: narrowed.before,
                from: &mut narrowed.after,
            },
            None,
        )
        .await?;
        let feed = ActivityFeed {
            tenant: principal.tenant_id.clone(),
            filter,
            tier: window.tier,
        };
        let loaders = TraceLoaders::new(&state.db);
        let rows = tail::start(state, &topics, &principal.tenant_id, feed, after).await?;
        Ok(rows.map(move |(cursor, item)| ActivityAdded {
            cursor,
            node: ActivityItemNode::new(item, loaders.clone()),
        }))
    }
}

/// What wakes a tail of the activity items the filter's kinds name.
fn activity_topics(filter: &ActivityFilter) -> Vec<Topic> {
    let mut topics: Vec<Topic> = filter
        .kinds
        .clone()
        .unwrap_or_else(|| ActivityKind::ALL.to_vec())
        .into_iter()
        .map(|kind| match kind {
            ActivityKind::LlmRun => Topic::LlmRuns,
            ActivityKind::SystemRecord => Topic::SystemRecords,
            ActivityKind::AuditEntry => Topic::AuditEntries,
            ActivityKind::TraceStarted | ActivityKind::TraceEnded => Topic::Traces,
        })
        .collect();
    topics.dedup();
    topics
}

/// A tail of one of the mismatch lists (reported or resolved) as GraphQL nodes. Each event's
/// node gets fresh trace loaders: a loader kept for the life of a subscription would cache
/// its traces forever.
async fn mismatch_tail<L>(
    ctx: &Context<'_>,
    filter: Option<TraceMismatchFilter>,
    after: Option<String>,
) -> AppResult<impl Stream<Item = (String, TraceMismatch)> + Send + 'static>
where
    L: Listed<Filter = MismatchListFilter, Row = crate::mismatches::MismatchSnapshot>,
{
    let filter = MismatchListFilter::try_from(filter.unwrap_or_default())?;
    let (state, tenant, rows) = list_tail::<L>(ctx, Topic::TraceMismatches, filter, after).await?;
    Ok(rows.map(move |(cursor, mismatch)| {
        let links = TraceLinks::new(&state.db, &tenant);
        (cursor, TraceMismatch::new(mismatch, &links))
    }))
}

/// The caller's tail of the list `L` with `filter` (the caller must be able to read; its own
/// tenant), after `after`: the state and tenant it reads with, and the rows with their cursors.
async fn list_tail<L: Listed>(
    ctx: &Context<'_>,
    topic: Topic,
    filter: L::Filter,
    after: Option<String>,
) -> AppResult<(
    AppState,
    TenantId,
    impl Stream<Item = (String, L::Row)> + Send + 'static,
)> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>().clone();
    let tenant = principal.tenant_id.clone();
    // A list of log data reads only inside the tenant's read window, as the list does: a range
    // before it is refused now, and each read narrows the filter (`ListFeed::narrowed`).
    let (_, window) = pagination::read_window::<L>(ctx, &tenant, &filter, None).await?;
    let feed = ListFeed::<L> {
        tenant: tenant.clone(),
        filter,
        tier: window.map(|w| w.tier),
    };
    let rows = tail::start(state.clone(), &[topic], &tenant, feed, after).await?;
    Ok((state, tenant, rows))
}
