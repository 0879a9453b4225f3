//! SQL for `aos_trace_mismatches`, scoped to one tenant in every statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::aos_trace_mismatches::{self, Column, Entity};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};

use super::{MismatchCounts, MismatchListFilter, MismatchSnapshot, MismatchStatus};
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::list_filters::{within_ranges, within_sets, TextSearch};
use crate::pagination::{created_within, Listed, Position};

/// Largest page of mismatches (docs/api.md §4: up to 500).
pub const MAX_MISMATCH_PAGE: u64 = 500;

pub(crate) fn snapshot(m: aos_trace_mismatches::Model) -> AppResult<MismatchSnapshot> {
    Ok(MismatchSnapshot {
        id: m.id,
        trace_id: m.trace_id,
        tenant_id: m.tenant_id,
        reported_by: m.reported_by,
        step_index: m.step_index,
        reason: m.reason,
        expected_hash: m.expected_hash,
        actual_hash: m.actual_hash,
        details: m.details,
        notification_sent: m.notification_sent,
        issue_url: m.issue_url,
        status: MismatchStatus::of(m.resolved),
        resolved_at: m.resolved_at,
        resolved_by: m.resolved_by,
        resolution_note: m.resolution_note,
        created_at: m.created_at,
    })
}

fn of_tenant(tenant: &TenantId) -> Select<Entity> {
    Entity::find().filter(Column::TenantId.eq(tenant.as_str()))
}

/// The substring search over a mismatch's fixed text: its id, trace id, reason and reporter
/// (migration `m20261205_060000_mismatch_console_reads`; the resolution fields change and are
/// not searched).
pub const MISMATCH_SEARCH: TextSearch = TextSearch {
    table: "aos_trace_mismatches",
    text: "lower(id || ' ' || trace_id || ' ' || reason || ' ' || coalesce(reported_by, ''))",
    fts_table: "aos_trace_mismatch_search",
};

/// Everything of the filter except the status: the scope of the open/resolved summary.
fn windowed(backend: DbBackend, tenant: &TenantId, filter: &MismatchListFilter) -> Select<Entity> {
    let mut q = of_tenant(tenant);
    if let Some(v) = &filter.trace_id {
        q = q.filter(Column::TraceId.eq(v.as_str()));
    }
    q = within_sets(
        q,
        Column::Reason,
        filter.reason_in.as_deref(),
        filter.reason_not_in.as_deref(),
    );
    q = within_sets(
        q,
        Column::ReportedBy,
        filter.reported_by_in.as_deref(),
        filter.reported_by_not_in.as_deref(),
    );
    q = within_ranges(q, [(Column::StepIndex, filter.step_index)]);
    if let Some(term) = &filter.search {
        q = q.filter(MISMATCH_SEARCH.matches(backend, term));
    }
    q = created_within(
        q,
        Column::ResolvedAt,
        filter.resolved_after,
        filter.resolved_before,
    );
    created_within(
        q,
        Column::CreatedAt,
        filter.created_after,
        filter.created_before,
    )
}

/// The tenant's mismatches matching `filter`; the search is written for `backend`.
pub(crate) fn filtered(
    backend: DbBackend,
    tenant: &TenantId,
    filter: &MismatchListFilter,
) -> Select<Entity> {
    let q = windowed(backend, tenant, filter);
    match filter.status {
        Some(status) => q.filter(Column::Resolved.eq(status == MismatchStatus::Resolved)),
        None => q,
    }
}

/// The tenant's mismatches matching a filter, newest first (`traceMismatches`).
pub struct MismatchList;

impl Listed for MismatchList {
    type Entity = Entity;
    type Filter = MismatchListFilter;
    type Row = MismatchSnapshot;
    const NAME: &'static str = "traceMismatches";
    const OWN_MAX_PAGE: Option<u64> = Some(MAX_MISMATCH_PAGE);
    const ORDER: (Column, Column) = (Column::CreatedAt, Column::Id);
    const ROW: fn(aos_trace_mismatches::Model) -> AppResult<MismatchSnapshot> = snapshot;
    const POSITION: fn(&MismatchSnapshot) -> Position = |m| Position::of(m.created_at, &m.id);

    /// Log data: only the tenant's read window (`crate::read_window`).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        Some(crate::pagination::TimeBounds {
            field: "createdAfter",
            to: filter.created_before,
            from: &mut filter.created_after,
        })
    }

    /// Only the search needs the backend; every caller goes through `select_on` with the
    /// connection's. Without one, the PostgreSQL form.
    fn select(
        tenant: &TenantId,
        filter: &MismatchListFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        Self::select_on(DbBackend::Postgres, tenant, filter, as_of)
    }

    fn select_on(
        backend: DbBackend,
        tenant: &TenantId,
        filter: &MismatchListFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        filtered(backend, tenant, filter)
    }
}

/// The tenant's resolved mismatches matching a filter, newest resolution first: the
/// `traceMismatchResolved` tail. A mismatch is resolved once (`OPEN → RESOLVED`), so its
/// `resolvedAt` never moves.
pub struct MismatchResolvedList;

impl Listed for MismatchResolvedList {
    type Entity = Entity;
    type Filter = MismatchListFilter;
    type Row = MismatchSnapshot;
    const NAME: &'static str = "traceMismatchResolved";
    const OWN_MAX_PAGE: Option<u64> = Some(MAX_MISMATCH_PAGE);
    const ORDER: (Column, Column) = (Column::ResolvedAt, Column::Id);
    const ROW: fn(aos_trace_mismatches::Model) -> AppResult<MismatchSnapshot> = snapshot;
    const POSITION: fn(&MismatchSnapshot) -> Position =
        |m| Position::of(m.resolved_at.unwrap_or(m.created_at), &m.id);

    /// Log data: only mismatches inside the tenant's read window, on `createdAt` as for
    /// `traceMismatches` (one reported before the window and resolved now is not delivered).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        MismatchList::time_bounds(filter)
    }

    fn select(
        tenant: &TenantId,
        filter: &MismatchListFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        MismatchList::select(tenant, filter, as_of).filter(Column::ResolvedAt.is_not_null())
    }

    fn select_on(
        backend: DbBackend,
        tenant: &TenantId,
        filter: &MismatchListFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        MismatchList::select_on(backend, tenant, filter, as_of)
            .filter(Column::ResolvedAt.is_not_null())
    }
}

/// Open and resolved counts over the filter's trace and window (and `asOf`), ignoring its
/// status: one grouped statement.
pub async fn counts(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    filter: &MismatchListFilter,
    as_of: Option<DateTime<Utc>>,
) -> AppResult<MismatchCounts> {
    let backend = db.get_database_backend();
    let mut q = windowed(backend, tenant, filter);
    if let Some(at) = as_of {
        q = q.filter(Column::CreatedAt.lte(at));
    }
    let rows: Vec<(bool, i64)> = q
        .select_only()
        .column(Column::Resolved)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(Column::Resolved)
        .into_tuple()
        .all(db)
        .await?;
    let mut counts = MismatchCounts::default();
    for (resolved, n) in rows {
        if resolved {
            counts.resolved += n;
        } else {
            counts.open += n;
        }
    }
    Ok(counts)
}

pub async fn get_by_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<Option<MismatchSnapshot>> {
    of_tenant(tenant)
        .filter(Column::Id.eq(id))
        .one(db)
        .await?
        .map(snapshot)
        .transpose()
}

/// The tenant's mismatches of each trace, newest first, in one statement.
pub async fn mismatches_for_traces(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_ids: &[String],
) -> AppResult<HashMap<String, Vec<MismatchSnapshot>>> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = of_tenant(tenant)
        .filter(Column::TraceId.is_in(trace_ids.iter().map(String::as_str)))
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .all(db)
        .await?;
    let mut out: HashMap<String, Vec<MismatchSnapshot>> = HashMap::new();
    for row in rows {
        let m = snapshot(row)?;
        out.entry(m.trace_id.clone()).or_default().push(m);
    }
    Ok(out)
}

/// The tenant's mismatches of each run's live trace(s), newest first: two statements (the runs'
/// trace ids, then their mismatches) for any number of runs.
pub async fn mismatches_for_runs(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, Vec<MismatchSnapshot>>> {
    use entity::aos_traces::{Column as T, Entity as Traces};
    if run_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let traces: Vec<(String, String)> = Traces::find()
        .filter(T::TenantId.eq(tenant.as_str()))
        .filter(T::ArchivedAt.is_null())
        .filter(T::RunId.is_in(run_ids.iter().map(String::as_str)))
        .select_only()
        .column(T::TraceId)
        .column(T::RunId)
        .into_tuple()
        .all(db)
        .await?;
    let run_of: HashMap<String, String> = traces.into_iter().collect();
    if run_of.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = of_tenant(tenant)
        .filter(Column::TraceId.is_in(run_of.keys().map(String::as_str)))
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .all(db)
        .await?;
    let mut out: HashMap<String, Vec<MismatchSnapshot>> = HashMap::new();
    for row in rows {
        let m = snapshot(row)?;
        if let Some(run_id) = run_of.get(&m.trace_id) {
            out.entry(run_id.clone()).or_default().push(m);
        }
    }
    Ok(out)
}
