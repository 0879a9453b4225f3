//! SQL for `system_records`. Every query is scoped in SQL to the caller's tenant plus the
//! system-wide rows (`tenant_id IS NULL`), never to another tenant's rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use entity::system_records::{self, Column, Entity};
use sea_orm::sea_query::{Asterisk, Condition, Expr, ExprTrait, IntoIden, Order, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, QueryFilter, QueryTrait,
    Select,
};

use super::{
    SystemComponent, SystemEventType, SystemFilter, SystemRecordCause, SystemRecordScope,
    SystemRecordSeverity, SystemRecordSnapshot,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::list_filters::{stored_values, within_sets, TextSearch, WordSearch};
use crate::pagination::{created_within, Listed, Position};

/// Most system records returned per run by [`system_records_for_runs`].
pub const RECORDS_PER_RUN: u64 = 50;

pub(crate) fn snapshot(m: system_records::Model) -> AppResult<SystemRecordSnapshot> {
    let bad = |what: &str, value: &str| {
        AppError::internal(format!("system record {} has unknown {what} {value}", m.id))
    };
    let component =
        SystemComponent::parse(&m.component).ok_or_else(|| bad("component", &m.component))?;
    let event_type =
        SystemEventType::parse(&m.event_type).ok_or_else(|| bad("event type", &m.event_type))?;
    let severity =
        SystemRecordSeverity::parse(&m.severity).ok_or_else(|| bad("severity", &m.severity))?;
    let caused_by = m
        .caused_by
        .as_deref()
        .map(|c| SystemRecordCause::parse(c).ok_or_else(|| bad("cause", c)))
        .transpose()?;
    Ok(SystemRecordSnapshot {
        id: m.id,
        tenant_id: m.tenant_id,
        component,
        event_type,
        severity,
        summary: m.summary,
        details: m.details,
        caused_by,
        correlation_id: m.correlation_id,
        created_at: m.created_at,
    })
}

/// The rows `tenant` may see under `scope`.
fn visible(tenant: &TenantId, scope: SystemRecordScope) -> Condition {
    let own = Column::TenantId.eq(tenant.as_str());
    let system_wide = Column::TenantId.is_null();
    match scope {
        SystemRecordScope::All => Condition::any().add(own).add(system_wide),
        SystemRecordScope::TenantOnly => Condition::all().add(own),
        SystemRecordScope::SystemWideOnly => Condition::all().add(system_wide),
    }
}

/// The substring search over a record's short text: its id, summary and correlation id
/// (migration `m20261205_050000_system_audit_console_reads`).
pub const SYSTEM_SEARCH: TextSearch = TextSearch {
    table: "system_records",
    text: "lower(id || ' ' || summary || ' ' || coalesce(correlation_id, ''))",
    fts_table: "system_record_search",
};

/// The word search over a record's summary and details (keys and values).
pub const SYSTEM_WORDS: WordSearch = WordSearch {
    table: "system_records",
    column: "search_words",
    fts_table: "system_record_words",
};

/// The records `tenant` may see matching `filter`; the text searches are written for `backend`.
pub(crate) fn filtered(
    backend: DbBackend,
    tenant: &TenantId,
    filter: &SystemFilter,
) -> Select<Entity> {
    let mut q = Entity::find().filter(visible(tenant, filter.scope));
    let sets = [
        (
            Column::Component,
            stored_values(&filter.component, SystemComponent::as_str),
            stored_values(&filter.component_not_in, SystemComponent::as_str),
        ),
        (
            Column::EventType,
            stored_values(&filter.event_type, SystemEventType::as_str),
            stored_values(&filter.event_type_not_in, SystemEventType::as_str),
        ),
        (
            Column::Severity,
            stored_values(&filter.severity, SystemRecordSeverity::as_str),
            stored_values(&filter.severity_not_in, SystemRecordSeverity::as_str),
        ),
        (
            Column::CausedBy,
            stored_values(&filter.caused_by, SystemRecordCause::as_str),
            stored_values(&filter.caused_by_not_in, SystemRecordCause::as_str),
        ),
    ];
    for (column, any_of, none_of) in sets {
        q = within_sets(q, column, any_of.as_deref(), none_of.as_deref());
    }
    if let Some(v) = &filter.correlation_id {
        q = q.filter(Column::CorrelationId.eq(v.as_str()));
    }
    if let Some(term) = &filter.search {
        q = q.filter(SYSTEM_SEARCH.matches(backend, term));
    }
    if let Some(words) = &filter.text {
        q = q.filter(SYSTEM_WORDS.matches(backend, words));
    }
    created_within(
        q,
        Column::CreatedAt,
        filter.created_after,
        filter.created_before,
    )
}

/// The records a tenant may see matching a filter, newest first (`systemRecords`).
pub struct SystemList;

impl Listed for SystemList {
    type Entity = Entity;
    type Filter = SystemFilter;
    type Row = SystemRecordSnapshot;
    const NAME: &'static str = "systemRecords";
    const ORDER: (Column, Column) = (Column::CreatedAt, Column::Id);
    const ROW: fn(system_records::Model) -> AppResult<SystemRecordSnapshot> = snapshot;
    const POSITION: fn(&SystemRecordSnapshot) -> Position = |r| Position::of(r.created_at, &r.id);

    /// Log data: only the tenant's read window (`crate::read_window`).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        Some(crate::pagination::TimeBounds {
            field: "createdAfter",
            to: filter.created_before,
            from: &mut filter.created_after,
        })
    }

    /// Only the text searches need the backend; every caller goes through `select_on` with
    /// the connection's. Without one, the PostgreSQL form.
    fn select(
        tenant: &TenantId,
        filter: &SystemFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        Self::select_on(DbBackend::Postgres, tenant, filter, as_of)
    }

    fn select_on(
        backend: DbBackend,
        tenant: &TenantId,
        filter: &SystemFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        filtered(backend, tenant, filter)
    }
}

/// A record by id if `tenant` may see it (its own or system-wide).
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<Option<SystemRecordSnapshot>> {
    let found = Entity::find()
        .filter(visible(tenant, SystemRecordScope::All))
        .filter(Column::Id.eq(id))
        .one(db)
        .await?;
    found.map(snapshot).transpose()
}

/// A system-wide record by id (what a platform key's duplicate write reads back).
pub async fn get_system_wide(
    db: &impl ConnectionTrait,
    id: &str,
) -> AppResult<Option<SystemRecordSnapshot>> {
    let found = Entity::find()
        .filter(Column::TenantId.is_null())
        .filter(Column::Id.eq(id))
        .one(db)
        .await?;
    found.map(snapshot).transpose()
}

/// The system records of each run (`correlation_id = run_id`), the tenant's and system-wide,
/// newest first, at most [`RECORDS_PER_RUN`] per run. One SQL statement whatever the number of
/// runs; a run with no records maps to an empty list.
pub async fn system_records_for_runs(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, Vec<SystemRecordSnapshot>>> {
    let mut out: HashMap<String, Vec<SystemRecordSnapshot>> =
        run_ids.iter().map(|r| (r.clone(), Vec::new())).collect();
    if run_ids.is_empty() {
        return Ok(out);
    }
    let select = Entity::find()
        .filter(visible(tenant, SystemRecordScope::All))
        .filter(Column::CorrelationId.is_in(run_ids.iter().map(String::as_str)));
    let rows = newest_per_key(
        db,
        select,
        Column::CorrelationId,
        Column::CreatedAt,
        Column::Id,
        RECORDS_PER_RUN,
    )
    .await?;
    for row in rows {
        let record = snapshot(row)?;
        if let Some(list) = record
            .correlation_id
            .as_ref()
            .and_then(|run| out.get_mut(run))
        {
            list.push(record);
        }
    }
    Ok(out)
}

/// Runs `select` keeping at most `cap` rows per value of `key` (the newest by
/// `(created_at, id)`), in one statement: a `ROW_NUMBER()` window over the filtered rows.
/// Rows come back newest first. Works on PostgreSQL and SQLite (3.25+).
pub(crate) async fn newest_per_key<E>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    key: E::Column,
    created_at: E::Column,
    id: E::Column,
    cap: u64,
) -> AppResult<Vec<E::Model>>
where
    E: EntityTrait,
    E::Column: IdenStatic + IntoIden + Copy,
{
    let mut inner = select.into_query();
    inner.expr_as(
        Expr::cust(format!(
            "ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {} DESC, {} DESC)",
            key.as_str(),
            created_at.as_str(),
            id.as_str()
        )),
        "lb_rank",
    );
    let outer = Query::select()
        .column(Asterisk)
        .from_subquery(inner, "ranked")
        .and_where(Expr::col("lb_rank").lte(cap as i64))
        .order_by(created_at, Order::Desc)
        .order_by(id, Order::Desc)
        .to_owned();
    let statement = db.get_database_backend().build(&outer);
    Ok(E::find().from_raw_sql(statement).all(db).await?)
}
