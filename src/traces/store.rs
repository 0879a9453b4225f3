//! SQL for `aos_traces` and `aos_trace_steps`. Trace ids are unique per tenant, not globally, so
//! every trace and step read binds the tenant in the SQL itself (another tenant's trace with the
//! same trace id is never seen) and skips archived rows. The `*_for_*` functions are the batch
//! loaders: one statement for any number of one tenant's trace ids.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use entity::aos_trace_steps::{self, Column as S, Entity as Steps};
use entity::aos_traces::{self, Column as T, Entity as Traces};
use sea_orm::sea_query::{Asterisk, Expr, ExprTrait, Func, Order, Query, WindowStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select,
};

use super::{
    ReplayBehavior, ReplayMode, StepLevel, StepSnapshot, StepSource, TraceListFilter,
    TraceSnapshot, TraceStatus, TraceSummary, Violation,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::list_filters::{within_ranges, within_sets, TextSearch};
use crate::pagination::{
    created_within, CursorCodec, Direction, ListProbe, Listed, Page, Position, Scope, Window,
};

/// Largest page of steps (docs/api.md §4: trace steps up to 1000).
pub const MAX_STEP_PAGE: u64 = 1000;

pub(crate) fn trace_snapshot(m: aos_traces::Model) -> AppResult<TraceSnapshot> {
    let status = TraceStatus::parse(&m.status).ok_or_else(|| {
        AppError::internal(format!("trace {} has unknown status {}", m.id, m.status))
    })?;
    let replay_mode = m
        .replay_mode
        .as_deref()
        .map(|mode| {
            ReplayMode::parse(mode).ok_or_else(|| {
                AppError::internal(format!("trace {} has unknown replay mode {mode}", m.id))
            })
        })
        .transpose()?;
    let violation = (m.violation_step_index.is_some()
        || m.violation_timestamp.is_some()
        || m.violation_policy_id.is_some()
        || m.violation_reason.is_some())
    .then(|| Violation {
        step_index: m.violation_step_index,
        timestamp: m.violation_timestamp,
        policy_id: m.violation_policy_id.clone(),
        reason: m.violation_reason.clone(),
    });
    Ok(TraceSnapshot {
        id: m.id,
        trace_id: m.trace_id,
        run_id: m.run_id,
        correlation_id: m.correlation_id,
        tenant_id: m.tenant_id,
        agent_id: m.agent_id,
        plan_id: m.plan_id,
        seed: m.seed,
        frozen_timestamp: m.frozen_timestamp,
        root_hash: m.root_hash,
        plan_hash: m.plan_hash,
        schema_version: m.schema_version,
        plan: m.plan,
        metadata: m.metadata,
        status,
        started_at: m.started_at,
        completed_at: m.completed_at,
        created_at: m.created_at,
        stored_by: m.stored_by,
        checksum: m.checksum,
        incident_id: m.incident_id,
        is_synthetic: m.is_synthetic,
        synthetic_scenario_id: m.synthetic_scenario_id,
        violation,
        replay_mode,
        replay_attempt_id: m.replay_attempt_id,
        replay_artifact_version: m.replay_artifact_version,
        trace_completeness_status: m.trace_completeness_status,
        step_count: m.step_count,
        duration_ms: m.duration_ms,
    })
}

pub(crate) fn step_snapshot(m: aos_trace_steps::Model) -> AppResult<StepSnapshot> {
    let bad = |what: &str, value: &str| {
        AppError::internal(format!(
            "step {} of trace {} has unknown {what} {value}",
            m.step_index, m.trace_id
        ))
    };
    let replay_behavior = ReplayBehavior::parse(&m.replay_behavior)
        .ok_or_else(|| bad("replay_behavior", &m.replay_behavior))?;
    let source = StepSource::parse(&m.source).ok_or_else(|| bad("source", &m.source))?;
    let level = StepLevel::parse(&m.level).ok_or_else(|| bad("level", &m.level))?;
    Ok(StepSnapshot {
        id: m.id,
        trace_id: m.trace_id,
        step_index: m.step_index,
        skill_id: m.skill_id,
        skill_name: m.skill_name,
        params: m.params,
        status: m.status,
        outcome_category: m.outcome_category,
        outcome_code: m.outcome_code,
        outcome_data: m.outcome_data,
        cost_cents: m.cost_cents,
        duration_ms: m.duration_ms,
        retry_count: m.retry_count,
        input_hash: m.input_hash,
        output_hash: m.output_hash,
        rng_state_before: m.rng_state_before,
        idempotency_key: m.idempotency_key,
        replay_behavior,
        timestamp: m.timestamp,
        source,
        level,
        is_synthetic: m.is_synthetic,
        synthetic_scenario_id: m.synthetic_scenario_id,
    })
}

/// The tenant's live (non-archived) traces.
pub(crate) fn visible(tenant: &TenantId) -> Select<Traces> {
    Traces::find()
        .filter(T::TenantId.eq(tenant.as_str()))
        .filter(T::ArchivedAt.is_null())
}

/// The searchable text of a trace: its ids and violation reason (docs/console.md), indexed by
/// migration `m20261205_030000_trace_console_reads`.
pub const TRACE_SEARCH: TextSearch = TextSearch {
    table: "aos_traces",
    text: "lower(trace_id || ' ' || run_id || ' ' || correlation_id || ' ' || \
        coalesce(agent_id, '') || ' ' || coalesce(plan_id, '') || ' ' || \
        coalesce(incident_id, '') || ' ' || coalesce(synthetic_scenario_id, '') || ' ' || \
        coalesce(violation_reason, ''))",
    fts_table: "aos_trace_search",
};

pub(crate) fn filtered(
    backend: DbBackend,
    tenant: &TenantId,
    filter: &TraceListFilter,
) -> Select<Traces> {
    let mut q = visible(tenant);
    for (column, value) in [
        (T::RunId, &filter.run_id),
        (T::AgentId, &filter.agent_id),
        (T::RootHash, &filter.root_hash),
        (T::PlanHash, &filter.plan_hash),
        (T::TraceId, &filter.trace_id),
        (T::IncidentId, &filter.incident_id),
        (T::SyntheticScenarioId, &filter.synthetic_scenario_id),
    ] {
        if let Some(v) = value {
            q = q.filter(column.eq(v.as_str()));
        }
    }
    if let Some(statuses) = &filter.status {
        q = q.filter(T::Status.is_in(statuses.iter().map(|s| s.as_str())));
    }
    if let Some(statuses) = &filter.status_not_in {
        q = q.filter(T::Status.is_not_in(statuses.iter().map(|s| s.as_str())));
    }
    if let Some(v) = filter.seed {
        q = q.filter(T::Seed.eq(v));
    }
    if let Some(v) = filter.is_synthetic {
        q = q.filter(T::IsSynthetic.eq(v));
    }
    if let Some(term) = &filter.search {
        q = q.filter(TRACE_SEARCH.matches(backend, term));
    }
    let q = within_sets(
        q,
        T::AgentId,
        filter.agent_id_in.as_deref(),
        filter.agent_id_not_in.as_deref(),
    );
    let q = within_ranges(
        q,
        [
            (T::StepCount, filter.step_count),
            (T::DurationMs, filter.duration_ms),
        ],
    );
    let q = created_within(q, T::StartedAt, filter.started_after, filter.started_before);
    let q = created_within(
        q,
        T::CompletedAt,
        filter.completed_after,
        filter.completed_before,
    );
    created_within(q, T::CreatedAt, filter.created_after, filter.created_before)
}

/// The tenant's live traces matching a filter, newest first (`traces`).
pub struct TraceList;

impl Listed for TraceList {
    type Entity = Traces;
    type Filter = TraceListFilter;
    type Row = TraceSnapshot;
    const NAME: &'static str = "traces";
    const ORDER: (T, T) = (T::CreatedAt, T::Id);
    const ROW: fn(aos_traces::Model) -> AppResult<TraceSnapshot> = trace_snapshot;
    const POSITION: fn(&TraceSnapshot) -> Position = |t| Position::of(t.created_at, &t.id);

    /// Log data: only the tenant's read window (`crate::read_window`).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        Some(crate::pagination::TimeBounds {
            field: "createdAfter",
            to: filter.created_before,
            from: &mut filter.created_after,
        })
    }

    /// Only a search term needs the backend; every caller goes through `select_on` with the
    /// connection's. Without one, the PostgreSQL form.
    fn select(
        tenant: &TenantId,
        filter: &TraceListFilter,
        as_of: Option<chrono::DateTime<Utc>>,
    ) -> Select<Traces> {
        Self::select_on(DbBackend::Postgres, tenant, filter, as_of)
    }

    fn select_on(
        backend: DbBackend,
        tenant: &TenantId,
        filter: &TraceListFilter,
        _: Option<chrono::DateTime<Utc>>,
    ) -> Select<Traces> {
        filtered(backend, tenant, filter)
    }
}

/// The tenant's live traces matching a filter that have ended (completed, failed or aborted),
/// newest end first: the `traceEnded` tail. A trace's `completedAt` is set once, by the server,
/// when it is sealed.
pub struct TraceEndList;

impl Listed for TraceEndList {
    type Entity = Traces;
    type Filter = TraceListFilter;
    type Row = TraceSnapshot;
    const NAME: &'static str = "traceEnded";
    const ORDER: (T, T) = (T::CompletedAt, T::Id);
    const ROW: fn(aos_traces::Model) -> AppResult<TraceSnapshot> = trace_snapshot;
    const POSITION: fn(&TraceSnapshot) -> Position =
        |t| Position::of(t.completed_at.unwrap_or(t.created_at), &t.id);

    /// Log data: only traces inside the tenant's read window, on `createdAt` as for `traces`
    /// (a trace that started before the window and ends now is not delivered either).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        TraceList::time_bounds(filter)
    }

    fn select(
        tenant: &TenantId,
        filter: &TraceListFilter,
        as_of: Option<chrono::DateTime<Utc>>,
    ) -> Select<Traces> {
        Self::select_on(DbBackend::Postgres, tenant, filter, as_of)
    }

    fn select_on(
        backend: DbBackend,
        tenant: &TenantId,
        filter: &TraceListFilter,
        _: Option<chrono::DateTime<Utc>>,
    ) -> Select<Traces> {
        filtered(backend, tenant, filter).filter(T::CompletedAt.is_not_null())
    }
}

async fn newest(
    db: &impl ConnectionTrait,
    select: Select<Traces>,
) -> AppResult<Option<TraceSnapshot>> {
    select
        .order_by_desc(T::CreatedAt)
        .order_by_desc(T::Id)
        .one(db)
        .await?
        .map(trace_snapshot)
        .transpose()
}

/// By record id (for `node`).
pub async fn get_by_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<Option<TraceSnapshot>> {
    newest(db, visible(tenant).filter(T::Id.eq(id))).await
}

pub async fn get_by_trace_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_id: &str,
) -> AppResult<Option<TraceSnapshot>> {
    newest(db, visible(tenant).filter(T::TraceId.eq(trace_id))).await
}

/// The newest of the run's traces.
pub async fn get_by_run_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_id: &str,
) -> AppResult<Option<TraceSnapshot>> {
    newest(db, visible(tenant).filter(T::RunId.eq(run_id))).await
}

/// The newest trace with this root hash.
pub async fn get_by_root_hash(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    root_hash: &str,
) -> AppResult<Option<TraceSnapshot>> {
    newest(db, visible(tenant).filter(T::RootHash.eq(root_hash))).await
}

/// The tenant's traces with these trace ids, in one statement.
pub async fn traces_by_trace_ids(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_ids: &[String],
) -> AppResult<HashMap<String, TraceSnapshot>> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = visible(tenant)
        .filter(T::TraceId.is_in(trace_ids.iter().map(String::as_str)))
        .all(db)
        .await?;
    rows.into_iter()
        .map(|m| trace_snapshot(m).map(|t| (t.trace_id.clone(), t)))
        .collect()
}

/// For each run id, the tenant's newest live trace of that run, in one statement.
pub async fn traces_for_runs(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, TraceSnapshot>> {
    if run_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = visible(tenant)
        .filter(T::RunId.is_in(run_ids.iter().map(String::as_str)))
        .order_by_desc(T::CreatedAt)
        .order_by_desc(T::Id)
        .all(db)
        .await?;
    let mut out = HashMap::new();
    for row in rows {
        let trace = trace_snapshot(row)?;
        out.entry(trace.run_id.clone()).or_insert(trace);
    }
    Ok(out)
}

/// The tenant's live steps of these traces.
pub(crate) fn live_steps(tenant: &TenantId, trace_ids: &[String]) -> Select<Steps> {
    Steps::find()
        .filter(S::TenantId.eq(tenant.as_str()))
        .filter(S::TraceId.is_in(trace_ids.iter().map(String::as_str)))
        .filter(S::ArchivedAt.is_null())
}

/// Every live step of each of the tenant's traces, in step order, in one statement.
pub async fn steps_for_traces(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_ids: &[String],
) -> AppResult<HashMap<String, Vec<StepSnapshot>>> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = live_steps(tenant, trace_ids)
        .order_by_asc(S::TraceId)
        .order_by_asc(S::StepIndex)
        .all(db)
        .await?;
    let mut out: HashMap<String, Vec<StepSnapshot>> = HashMap::new();
    for row in rows {
        let step = step_snapshot(row)?;
        out.entry(step.trace_id.clone()).or_default().push(step);
    }
    Ok(out)
}

/// The tenant's first live step recorded under this idempotency key at or after `since` (the
/// start of the tenant's read window; earliest step time, then trace and step order): the
/// database-side "was this key executed?" check of docs/domain.md §7.2, answered from the steps
/// themselves.
pub async fn step_by_idempotency_key(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    key: &str,
    since: chrono::DateTime<Utc>,
) -> AppResult<Option<StepSnapshot>> {
    Steps::find()
        .filter(S::TenantId.eq(tenant.as_str()))
        .filter(S::IdempotencyKey.eq(key))
        .filter(S::ArchivedAt.is_null())
        .filter(S::Timestamp.gte(since))
        .order_by_asc(S::Timestamp)
        .order_by_asc(S::TraceId)
        .order_by_asc(S::StepIndex)
        .one(db)
        .await?
        .map(step_snapshot)
        .transpose()
}

/// Step aggregates per trace (`summary`), one grouped statement. Traces without steps are
/// absent (their summary is all zeros).
pub async fn summaries_for_traces(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_ids: &[String],
) -> AppResult<HashMap<String, TraceSummary>> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64, i64, i64, f64, f64)> = live_steps(tenant, trace_ids)
        .select_only()
        .column(S::TraceId)
        .column_as(Expr::cust("COUNT(*)"), "total_steps")
        .column_as(
            Expr::cust("SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END)"),
            "success_count",
        )
        .column_as(
            Expr::cust("SUM(CASE WHEN status = 'failure' THEN 1 ELSE 0 END)"),
            "failure_count",
        )
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(cost_cents), 0) AS DOUBLE PRECISION)"),
            "total_cost_cents",
        )
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(duration_ms), 0) AS DOUBLE PRECISION)"),
            "total_duration_ms",
        )
        .group_by(S::TraceId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(trace_id, total, success, failure, cost, duration)| {
            (
                trace_id,
                TraceSummary {
                    total_steps: total,
                    success_count: success,
                    failure_count: failure,
                    total_cost_cents: cost,
                    total_duration_ms: duration,
                },
            )
        })
        .collect())
}

/// The first `limit + 1` live steps of each trace in list order (`backward`: the last ones,
/// highest step index first), one statement with `ROW_NUMBER()` per trace. The extra row tells
/// whether the page has more.
pub async fn edge_steps_for_traces(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_ids: &[String],
    limit: u64,
    backward: bool,
) -> AppResult<HashMap<String, Vec<StepSnapshot>>> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let order = if backward { Order::Desc } else { Order::Asc };
    let mut numbered = live_steps(tenant, trace_ids).into_query();
    numbered.expr_window_as(
        Func::cust("ROW_NUMBER"),
        WindowStatement::partition_by(S::TraceId)
            .order_by(S::StepIndex, order.clone())
            .to_owned(),
        "rn",
    );
    let outer = Query::select()
        .column(Asterisk)
        .from_subquery(numbered, "numbered")
        .and_where(Expr::col("rn").lte(limit as i64 + 1))
        .order_by("trace_id", Order::Asc)
        .order_by("step_index", order)
        .to_owned();
    let rows = db.query_all(&outer).await?;
    let mut out: HashMap<String, Vec<StepSnapshot>> = HashMap::new();
    for row in rows {
        let step = step_snapshot(aos_trace_steps::Model::from_query_result(&row, "")?)?;
        out.entry(step.trace_id.clone()).or_default().push(step);
    }
    Ok(out)
}

/// The cursor scope of one trace's steps (trace ids are the tenant's own).
pub fn step_scope(tenant: &str, trace_id: &str) -> Scope {
    Scope::new(tenant, "traceSteps", "STEP_INDEX_ASC", &trace_id, None)
}

/// A step's position in its (ascending) list: the step index in the cursor's id part.
pub fn step_position(step: &StepSnapshot) -> Position {
    Position::keyed(0, &step.step_index.to_string())
}

fn step_index_of(position: &Position) -> AppResult<i32> {
    position
        .id
        .parse()
        .map_err(|_| AppError::BadCursor("not a step cursor"))
}

/// `totalCount` and the far side of `pageInfo` for one trace's steps. `newer` means earlier in
/// the list (lower step index).
pub struct StepProbe {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub trace_id: String,
}

#[async_trait::async_trait]
impl ListProbe for StepProbe {
    async fn count(&self) -> AppResult<i64> {
        Ok(PaginatorTrait::count(
            live_steps(&self.tenant, std::slice::from_ref(&self.trace_id)),
            &self.db,
        )
        .await? as i64)
    }

    async fn exists_beyond(&self, at: &Position, newer: bool) -> AppResult<bool> {
        let index = step_index_of(at)?;
        let select = live_steps(&self.tenant, std::slice::from_ref(&self.trace_id));
        let select = if newer {
            select.filter(S::StepIndex.lt(index))
        } else {
            select.filter(S::StepIndex.gt(index))
        };
        let hit: Option<String> = select
            .select_only()
            .column(S::Id)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(hit.is_some())
    }
}

/// One page of a trace's steps between cursors (step index ascending). `prefetched` is the
/// edge page a batch loader already fetched (`edge_steps_for_traces`, only without cursors);
/// `probe` answers `totalCount` and the far side of `pageInfo` (a [`StepProbe`], or one that
/// batches).
pub async fn step_page(
    db: &DatabaseConnection,
    codec: &CursorCodec,
    tenant: &TenantId,
    trace_id: &str,
    window: Window,
    prefetched: Option<Vec<StepSnapshot>>,
    probe: Arc<dyn ListProbe>,
) -> AppResult<Page<StepSnapshot>> {
    let rows = match prefetched {
        Some(rows) => rows,
        None => {
            let mut select = live_steps(tenant, &[trace_id.to_owned()]);
            if let Some(after) = &window.after {
                select = select.filter(S::StepIndex.gt(step_index_of(after)?));
            }
            if let Some(before) = &window.before {
                select = select.filter(S::StepIndex.lt(step_index_of(before)?));
            }
            let select = match window.direction {
                Direction::Forward => select.order_by_asc(S::StepIndex),
                Direction::Backward => select.order_by_desc(S::StepIndex),
            };
            select
                .limit(window.limit + 1)
                .all(db)
                .await?
                .into_iter()
                .map(step_snapshot)
                .collect::<AppResult<Vec<_>>>()?
        }
    };
    let (rows, has_more) = crate::pagination::finish_page(rows, &window);
    Ok(Page::new(
        rows,
        has_more,
        window,
        codec,
        step_scope(tenant.as_str(), trace_id),
        step_position,
        probe,
    ))
}
