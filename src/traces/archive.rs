//! Trace retention (docs/domain.md §5.6; docs/decisions.md D16): moves traces created before a
//! cutoff into `aos_traces_archive` and deletes them from `aos_traces`, in batches, each batch one
//! transaction. `logbook traces archive` calls [`archive_traces`].
//!
//! The order is what the triggers demand: the archive copy first (a trace may only be deleted
//! once its (tenant_id, trace_id) is in the archive), then the DELETE, whose `ON DELETE CASCADE`
//! removes the trace's steps (a step may only be deleted once its trace is gone). No UPDATE is
//! needed, so `archived_at` is not marked on the live row; the archive copy carries it (the time
//! of the move unless the trace was soft-archived earlier) and `moved_at`. The copy names every
//! column of the live table, so it keeps working as both tables grow together (the Python
//! platform's `SELECT *` copy broke once they diverged). The trace's steps are copied the same
//! way into `aos_trace_steps_archive` in the same transaction, before the DELETE removes them.
//!
//! Reads only ever see `aos_traces` rows with `archived_at IS NULL`, so a moved trace leaves every
//! read (lists, lookups, comparisons, run and mismatch links). Trace ids are unique per tenant,
//! so the archive is keyed by (tenant_id, trace_id). A trace whose (tenant_id, trace_id) is
//! already in the archive (an id the tenant reused after an earlier move) is left in place and
//! counted as `conflicts`: moving it would overwrite the archived copy. Another tenant's archived
//! trace with the same trace id is no conflict.

use chrono::{DateTime, Duration, Utc};
use entity::aos_trace_steps::{self, Entity as Steps};
use entity::aos_traces::{Column as T, Entity as Traces};
use entity::aos_traces_archive::{Column as A, Entity as Archive};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IdenStatic, Iterable, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, TransactionTrait,
};

use crate::error::{AppError, AppResult};

/// Largest batch (traces per transaction).
pub const MAX_BATCH: u64 = 10_000;

/// What to move.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveOptions {
    /// Traces created strictly before `now - older_than_days` move.
    pub older_than_days: u32,
    /// Only this tenant's traces; all tenants when `None`.
    pub tenant: Option<String>,
    /// Traces per transaction.
    pub batch: u64,
    /// "Now" for the cutoff (the CLI passes the current time; tests may pin it).
    pub now: DateTime<Utc>,
}

/// What one batch moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchReport {
    pub traces: u64,
    pub steps: u64,
}

/// What a whole run moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    pub cutoff: DateTime<Utc>,
    pub batches: u64,
    pub traces_archived: u64,
    /// Steps removed with their traces (by the cascade).
    pub steps_removed: u64,
    /// Traces older than the cutoff left in place because their `trace_id` is already archived.
    pub conflicts: u64,
}

/// Live traces older than the cutoff whose (tenant_id, trace_id) is not yet archived.
fn candidates(options: &ArchiveOptions, cutoff: DateTime<Utc>) -> sea_orm::Select<Traces> {
    let archived = Query::select()
        .expr(Expr::val(1))
        .from_as(Archive, Alias::new("a"))
        .and_where(Expr::col((Alias::new("a"), A::TenantId)).equals((Traces, T::TenantId)))
        .and_where(Expr::col((Alias::new("a"), A::TraceId)).equals((Traces, T::TraceId)))
        .to_owned();
    let mut select = Traces::find()
        .filter(T::CreatedAt.lt(cutoff))
        .filter(Expr::not_exists(archived));
    if let Some(tenant) = &options.tenant {
        select = select.filter(T::TenantId.eq(tenant.as_str()));
    }
    select
}

/// Moves the traces `options` selects, `options.batch` per transaction; `on_batch` hears about
/// each committed batch. Running it again moves nothing new.
pub async fn archive_traces(
    db: &DatabaseConnection,
    options: &ArchiveOptions,
    mut on_batch: impl FnMut(u64, BatchReport),
) -> AppResult<ArchiveReport> {
    if options.older_than_days == 0 {
        return Err(AppError::bad_input(
            "olderThan",
            "--older-than must be at least 1 day",
        ));
    }
    if options.batch == 0 || options.batch > MAX_BATCH {
        return Err(AppError::bad_input(
            "batch",
            format!("--batch must be 1 to {MAX_BATCH}"),
        ));
    }
    let cutoff = options.now - Duration::days(i64::from(options.older_than_days));
    let mut report = ArchiveReport {
        cutoff,
        batches: 0,
        traces_archived: 0,
        steps_removed: 0,
        conflicts: 0,
    };
    loop {
        let moved = archive_batch(db, options, cutoff).await?;
        if moved.traces == 0 {
            break;
        }
        report.batches += 1;
        report.traces_archived += moved.traces;
        report.steps_removed += moved.steps;
        on_batch(report.batches, moved);
    }
    let mut left = Traces::find().filter(T::CreatedAt.lt(cutoff));
    if let Some(tenant) = &options.tenant {
        left = left.filter(T::TenantId.eq(tenant.as_str()));
    }
    report.conflicts = left.count(db).await?;
    Ok(report)
}

/// One transaction: copy up to `batch` traces into the archive, count their steps, delete them.
async fn archive_batch(
    db: &DatabaseConnection,
    options: &ArchiveOptions,
    cutoff: DateTime<Utc>,
) -> AppResult<BatchReport> {
    let txn = db.begin().await?;
    // Row ids: a trace id alone no longer names one trace.
    let ids: Vec<String> = candidates(options, cutoff)
        .select_only()
        .column(T::Id)
        .order_by_asc(T::CreatedAt)
        .order_by_asc(T::Id)
        .limit(options.batch)
        .into_tuple()
        .all(&txn)
        .await?;
    if ids.is_empty() {
        return Ok(BatchReport::default());
    }
    let moved_at = crate::scalars::now();
    let columns: Vec<T> = T::iter().collect();
    let mut copy = Query::select();
    for column in &columns {
        if matches!(column, T::ArchivedAt) {
            copy.expr(Func::coalesce([
                Expr::col(T::ArchivedAt),
                Expr::val(moved_at),
            ]));
        } else {
            copy.column(*column);
        }
    }
    copy.expr(Expr::val(moved_at))
        .from(Traces)
        .and_where(Expr::col(T::Id).is_in(ids.iter().map(String::as_str)));
    let mut insert = Query::insert();
    insert
        .into_table(Archive)
        .columns(
            columns
                .iter()
                .map(|c| c.as_str())
                .chain([A::MovedAt.as_str()])
                .map(sea_orm::sea_query::Alias::new),
        )
        .select_from(copy)
        .map_err(AppError::internal)?
        .on_conflict(
            OnConflict::columns([A::TenantId, A::TraceId])
                .do_nothing()
                .to_owned(),
        );
    txn.execute(&insert).await?;
    txn.execute(&copy_steps(&ids, moved_at)?).await?;
    let steps = Steps::find()
        .join(JoinType::InnerJoin, aos_trace_steps::Relation::Trace.def())
        .filter(T::Id.is_in(ids.iter().map(String::as_str)))
        .count(&txn)
        .await?;
    let traces = Traces::delete_many()
        .filter(T::Id.is_in(ids.iter().map(String::as_str)))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(BatchReport { traces, steps })
}

/// The archive table of steps (`aos_trace_steps_archive`: every column of `aos_trace_steps`,
/// plus `moved_at`).
pub const STEPS_ARCHIVE: &str = "aos_trace_steps_archive";

/// `INSERT INTO aos_trace_steps_archive (every step column, moved_at) SELECT …` of the steps of
/// the traces whose row ids are `ids`. A step already archived (by id) is left as it is.
fn copy_steps(
    ids: &[String],
    moved_at: DateTime<Utc>,
) -> AppResult<sea_orm::sea_query::InsertStatement> {
    let columns: Vec<aos_trace_steps::Column> = aos_trace_steps::Column::iter().collect();
    let of_traces = Query::select()
        .columns([T::TenantId, T::TraceId])
        .from(Traces)
        .and_where(Expr::col(T::Id).is_in(ids.iter().map(String::as_str)))
        .to_owned();
    let mut copy = Query::select();
    for column in &columns {
        copy.column(*column);
    }
    copy.expr(Expr::val(moved_at)).from(Steps).and_where(
        Expr::tuple([
            Expr::col(aos_trace_steps::Column::TenantId),
            Expr::col(aos_trace_steps::Column::TraceId),
        ])
        .in_subquery(of_traces),
    );
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new(STEPS_ARCHIVE))
        .columns(
            columns
                .iter()
                .map(|c| c.as_str())
                .chain(["moved_at"])
                .map(Alias::new),
        )
        .select_from(copy)
        .map_err(AppError::internal)?
        .on_conflict(OnConflict::column(Alias::new("id")).do_nothing().to_owned());
    Ok(insert)
}
