//! GraphQL subscriptions over the logs: `llmRunAdded`, `systemRecordAdded`, `auditEntryAdded`
//! and `traceStepAdded`. Each takes the same filter input as its list and an optional `after`
//! cursor (a cursor of that list, or of an earlier event), and yields edges (`cursor` + `node`)
//! oldest first: first what was missed since `after`, then live rows. See `docs/subscriptions.md`.

pub mod admission;
pub mod feeds;
pub mod tail;

use async_graphql::{Context, SimpleObject, Subscription};
use futures_util::{Stream, StreamExt};

use self::feeds::{AuditFeed, RunFeed, StepFeed, SystemFeed};
use crate::audit::graphql::{AuditEntry, AuditEntryFilter};
use crate::auth::{self, Permission};
use crate::error::AppError;
use crate::events::Topic;
use crate::runs::graphql::{LlmRun, LlmRunFilter};
use crate::state::AppState;
use crate::system::graphql::{SystemRecord, SystemRecordFilter};
use crate::traces::graphql::TraceStep;

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

/// A step appended to the trace after the subscription's position.
#[derive(SimpleObject)]
pub struct TraceStepAdded {
    /// A `Trace.steps` cursor: pass it as `after` to resume after this step.
    pub cursor: String,
    pub node: TraceStep,
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
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let feed = RunFeed {
            tenant: principal.tenant_id.clone(),
            filter: crate::runs::RunFilter::try_from(filter.unwrap_or_default())?,
        };
        let rows = tail::start(state, Topic::LlmRuns, &principal.tenant_id, feed, after).await?;
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
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let feed = SystemFeed {
            tenant: principal.tenant_id.clone(),
            filter: filter.unwrap_or_default().try_into()?,
        };
        let rows = tail::start(
            state,
            Topic::SystemRecords,
            &principal.tenant_id,
            feed,
            after,
        )
        .await?;
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
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let feed = AuditFeed {
            tenant: principal.tenant_id.clone(),
            filter: filter.unwrap_or_default().try_into()?,
        };
        let rows = tail::start(
            state,
            Topic::AuditEntries,
            &principal.tenant_id,
            feed,
            after,
        )
        .await?;
        Ok(rows.map(|(cursor, entry)| AuditEntryAdded {
            cursor,
            node: AuditEntry(entry),
        }))
    }

    /// The steps of one of the tenant's traces as they are appended, in step order. With
    /// `after` (a `Trace.steps` cursor or an event's cursor) the later steps already stored come
    /// first. Another tenant's trace is `NOT_FOUND`.
    async fn trace_step_added(
        &self,
        ctx: &Context<'_>,
        trace_id: String,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = TraceStepAdded>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let trace =
            crate::traces::store::get_by_trace_id(&state.db, &principal.tenant_id, &trace_id)
                .await?
                .ok_or(AppError::NotFound("Trace"))?;
        let feed = StepFeed {
            tenant: principal.tenant_id.clone(),
            trace_id: trace.trace_id,
        };
        let rows = tail::start(state, Topic::TraceSteps, &principal.tenant_id, feed, after).await?;
        Ok(rows.map(|(cursor, step)| TraceStepAdded {
            cursor,
            node: TraceStep(step),
        }))
    }
}
