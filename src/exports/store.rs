//! Reads of `log_exports`. Every query is scoped to one tenant in the SQL itself.
//!
//! A list pages the exports' request rows (the first row of each `export_id`), which never
//! change, by `(created_at DESC, id DESC)`: an export keeps its place in the list while its
//! state moves on, so pages neither skip nor repeat it. The page's exports are then completed
//! with their state rows in one more statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::log_exports::{self, Column, Entity};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Select,
};

use super::{
    assemble, ExportFilter, ExportFormat, ExportRowSnapshot, ExportScope, ExportStatus,
    LogExportSnapshot,
};
use crate::audit::ActorType;
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::list_filters::{stored_values, within_sets};
use crate::pagination::{self, created_within, CursorCodec, Listed, Page, PageRequest, Position};

fn snapshot(m: log_exports::Model) -> AppResult<ExportRowSnapshot> {
    let bad = |what: &str, value: &str| {
        AppError::internal(format!(
            "log export row {} has unknown {what} {value}",
            m.id
        ))
    };
    let scope = ExportScope::parse(&m.scope).ok_or_else(|| bad("scope", &m.scope))?;
    let format = ExportFormat::parse(&m.format).ok_or_else(|| bad("format", &m.format))?;
    let status = ExportStatus::parse(&m.status).ok_or_else(|| bad("status", &m.status))?;
    let origin = ActorType::parse(&m.origin).ok_or_else(|| bad("origin", &m.origin))?;
    Ok(ExportRowSnapshot {
        id: m.id,
        export_id: m.export_id,
        tenant_id: m.tenant_id,
        scope,
        run_id: m.run_id,
        requested_by: m.requested_by,
        format,
        origin,
        source_component: m.source_component,
        correlation_id: m.correlation_id,
        checksum: m.checksum,
        status,
        delivered_at: m.delivered_at,
        filter: m.filter,
        row_count: m.row_count,
        byte_size: m.byte_size,
        manifest_sha256: m.manifest_sha256,
        error: m.error,
        created_at: m.created_at,
    })
}

fn tenant_rows(tenant: &TenantId) -> Select<Entity> {
    Entity::find().filter(Column::TenantId.eq(tenant.as_str()))
}

/// `SELECT 1 FROM log_exports AS alias WHERE alias` is another row of the same export as the
/// outer `log_exports` row.
fn same_export(alias: &Alias) -> SelectStatement {
    let outer = Alias::new("log_exports");
    Query::select()
        .expr(Expr::val(1))
        .from_as(Alias::new("log_exports"), alias.clone())
        .and_where(
            Expr::col((alias.clone(), Column::TenantId)).equals((outer.clone(), Column::TenantId)),
        )
        .and_where(Expr::col((alias.clone(), Column::ExportId)).equals((outer, Column::ExportId)))
        .to_owned()
}

/// `(alias.created_at, alias.id)` compared with the outer row's.
fn key_of(alias: &Alias) -> Expr {
    Expr::tuple([
        Expr::col((alias.clone(), Column::CreatedAt)),
        Expr::col((alias.clone(), Column::Id)),
    ])
}

fn outer_key() -> Expr {
    key_of(&Alias::new("log_exports"))
}

/// The row is its export's request: no earlier row of the same export exists.
fn is_request_row() -> Expr {
    let earlier = Alias::new("earlier");
    let mut sub = same_export(&earlier);
    sub.and_where(key_of(&earlier).lt(outer_key()));
    Expr::not_exists(sub)
}

/// The export's current status (its newest row at or before `as_of`), as a scalar subquery.
pub(super) fn current_status(as_of: Option<DateTime<Utc>>) -> Expr {
    let state = Alias::new("state");
    let mut sub = same_export(&state);
    sub.clear_selects();
    sub.column((state.clone(), Column::Status));
    if let Some(at) = as_of {
        sub.and_where(Expr::col((state.clone(), Column::CreatedAt)).lte(at));
    }
    sub.order_by((state.clone(), Column::CreatedAt), Order::Desc)
        .order_by((state, Column::Id), Order::Desc)
        .limit(1);
    Expr::from(sub)
}

/// The request rows of the tenant's exports matching `filter`, each export's status read as of
/// `as_of`.
pub(super) fn filtered(
    tenant: &TenantId,
    filter: &ExportFilter,
    as_of: Option<DateTime<Utc>>,
) -> Select<Entity> {
    let mut q = tenant_rows(tenant).filter(is_request_row());
    q = within_sets(
        q,
        Column::Scope,
        stored_values(&filter.scope, ExportScope::as_str).as_deref(),
        stored_values(&filter.scope_not_in, ExportScope::as_str).as_deref(),
    );
    q = within_sets(
        q,
        Column::Format,
        stored_values(&filter.format, ExportFormat::as_str).as_deref(),
        stored_values(&filter.format_not_in, ExportFormat::as_str).as_deref(),
    );
    q = within_sets(
        q,
        Column::RequestedBy,
        filter.requested_by.as_deref(),
        filter.requested_by_not_in.as_deref(),
    );
    q = within_sets(
        q,
        Column::Origin,
        stored_values(&filter.origin, ActorType::as_str).as_deref(),
        None,
    );
    // Every export has a status (its request row's, at least), so "none of" needs no NULL case.
    if let Some(values) = &filter.status {
        q = q.filter(current_status(as_of).is_in(values.iter().map(|v| v.as_str())));
    }
    if let Some(values) = &filter.status_not_in {
        q = q.filter(current_status(as_of).is_not_in(values.iter().map(|v| v.as_str())));
    }
    if let Some(v) = &filter.run_id {
        q = q.filter(Column::RunId.eq(v.as_str()));
    }
    created_within(
        q,
        Column::CreatedAt,
        filter.created_after,
        filter.created_before,
    )
}

/// The request rows of the tenant's exports matching a filter, newest first; an export's
/// status is read as of `asOf` (`logExports` adds each export's states to its page).
pub struct ExportRequests;

impl Listed for ExportRequests {
    type Entity = Entity;
    type Filter = ExportFilter;
    type Row = ExportRowSnapshot;
    const NAME: &'static str = "logExports";
    const ORDER: (Column, Column) = (Column::CreatedAt, Column::Id);
    const ROW: fn(log_exports::Model) -> AppResult<ExportRowSnapshot> = snapshot;
    const POSITION: fn(&ExportRowSnapshot) -> Position = |r| Position::of(r.created_at, &r.id);

    /// Log data: only the tenant's read window (`crate::read_window`).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        Some(crate::pagination::TimeBounds {
            field: "createdAfter",
            to: filter.created_before,
            from: &mut filter.created_after,
        })
    }

    fn select(
        tenant: &TenantId,
        filter: &ExportFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        filtered(tenant, filter, as_of)
    }
}

/// Every row of the given exports (at or before `as_of`), in one statement.
async fn rows_of_exports(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    export_ids: &[&str],
    as_of: Option<DateTime<Utc>>,
) -> AppResult<Vec<ExportRowSnapshot>> {
    if export_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = tenant_rows(tenant).filter(Column::ExportId.is_in(export_ids.iter().copied()));
    if let Some(at) = as_of {
        q = q.filter(Column::CreatedAt.lte(at));
    }
    q.order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(snapshot)
        .collect()
}

/// One page of the tenant's exports matching `filter`, newest request first, each with its
/// state as of `asOf` (or now), under cursors scoped to `scope` (the client's filter, before the
/// read window narrowed it). Two statements: the page of request rows, then their states.
pub async fn page(
    db: &DatabaseConnection,
    codec: &CursorCodec,
    tenant: &TenantId,
    scope: &ExportFilter,
    filter: &ExportFilter,
    request: &PageRequest,
) -> AppResult<Page<LogExportSnapshot>> {
    let requests = pagination::page_scoped::<ExportRequests>(
        db,
        codec,
        tenant,
        scope,
        filter,
        request,
        pagination::ListOrder::newest_first(),
    )
    .await?;
    let ids: Vec<&str> = requests
        .edges
        .iter()
        .map(|(_, r)| r.export_id.as_str())
        .collect();
    let exports: HashMap<String, LogExportSnapshot> =
        assemble(rows_of_exports(db, tenant, &ids, request.as_of).await?)
            .into_iter()
            .map(|e| (e.request.export_id.clone(), e))
            .collect();
    let exports = std::cell::RefCell::new(exports);
    Ok(requests.map(|row| {
        exports
            .borrow_mut()
            .remove(&row.export_id)
            .filter(|e| e.request.id == row.id)
            .unwrap_or_else(|| LogExportSnapshot {
                history: vec![row.clone()],
                request: row,
            })
    }))
}

/// One export by its export id, with its current state; `None` when the tenant has no such
/// export.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    export_id: &str,
) -> AppResult<Option<LogExportSnapshot>> {
    let rows = rows_of_exports(db, tenant, &[export_id], None).await?;
    Ok(assemble(rows).into_iter().next())
}

/// The exports of each run (requested with that `run_id`), newest request first, each with its
/// current state. One SQL statement whatever the number of runs; a run with no exports maps to
/// an empty list.
pub async fn exports_for_runs(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, Vec<LogExportSnapshot>>> {
    let mut out: HashMap<String, Vec<LogExportSnapshot>> =
        run_ids.iter().map(|r| (r.clone(), Vec::new())).collect();
    if run_ids.is_empty() {
        return Ok(out);
    }
    let of_runs = Query::select()
        .column(Column::ExportId)
        .from(Entity)
        .and_where(Column::TenantId.eq(tenant.as_str()))
        .and_where(Column::RunId.is_in(run_ids.iter().map(String::as_str)))
        .to_owned();
    let rows = tenant_rows(tenant)
        .filter(Column::ExportId.in_subquery(of_runs))
        .all(db)
        .await?
        .into_iter()
        .map(snapshot)
        .collect::<AppResult<Vec<_>>>()?;
    for export in assemble(rows) {
        if let Some(list) = export
            .request
            .run_id
            .as_ref()
            .and_then(|run| out.get_mut(run))
        {
            list.push(export);
        }
    }
    Ok(out)
}
