//! The retention job (docs/retention.md): one function, [`run`], behind `logbook retention run`
//! and the optional in-server timer ([`spawn`], `--retention-interval`). It is an edge: it reaches
//! the traces' archive, the idempotency keys, the replay outputs and the export artefacts.
//!
//! One process at a time: on PostgreSQL the run holds `pg_try_advisory_xact_lock` in a guard
//! transaction on one pooled connection for its whole length (the pattern of
//! `cost::anomaly_detect::sweep`); a second process asking meanwhile gets `false` and skips, and
//! a crashed process's connection closes and releases the lock. The work itself runs in short
//! transactions of at most `batch` rows on other connections, so no lock on a table is held for
//! long. SQLite has one writer, and a server over it is one process.
//!
//! Every step is idempotent (it only takes what is past its age), so a run cut short is finished
//! by the next one.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use entity::export_jobs::{self, Column as J};
use entity::{aos_traces_archive, otlp_root_spans, replay_outputs};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, IntoIden, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::config::RetentionSettings;
use crate::error::{AppError, AppResult};
use crate::export_files::http::ARTEFACT_EXPIRED_MS;
use crate::export_files::manifest;
use crate::traces::archive::{archive_traces, ArchiveOptions, STEPS_ARCHIVE};

/// The advisory lock key of the job (PostgreSQL `hashtext` of it).
const LOCK: &str = "logbook_retention";
/// The table each completed run is recorded in.
const RUNS: &str = "retention_runs";

/// What one run removed, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionCounts {
    /// Traces moved from `aos_traces` to the archive.
    pub traces_archived: u64,
    /// Their steps, moved to `aos_trace_steps_archive`.
    pub steps_archived: u64,
    /// Archived traces deleted for good.
    pub archived_traces_deleted: u64,
    /// Their archived steps.
    pub archived_steps_deleted: u64,
    pub idempotency_keys_purged: u64,
    pub replay_outputs_purged: u64,
    /// Exports whose files were deleted.
    pub export_artefacts_expired: u64,
    /// OTLP root spans (`otlp_root_spans`) of traces no longer live: archived above, or earlier.
    pub otlp_spans_purged: u64,
}

/// What one call of [`run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionOutcome {
    /// Another process holds the retention lock; nothing was touched.
    Skipped,
    Ran {
        /// The `retention_runs` row recording it.
        run_id: String,
        counts: RetentionCounts,
        duration_ms: u64,
    },
}

/// Runs the whole job once, as of `now`, unless another process is running it; records the run
/// in `retention_runs`. `export_dir` is where export artefacts live.
pub async fn run(
    db: &DatabaseConnection,
    settings: &RetentionSettings,
    export_dir: &std::path::Path,
    now: DateTime<Utc>,
) -> AppResult<RetentionOutcome> {
    settings
        .check()
        .map_err(|m| AppError::bad_input("retention", m))?;
    let started = Instant::now();
    let guard = db.begin().await?;
    if !crate::db::try_advisory_xact_lock(&guard, LOCK).await? {
        guard.rollback().await?;
        return Ok(RetentionOutcome::Skipped);
    }
    let counts = work(db, settings, export_dir, now).await;
    let counts = match counts {
        Ok(counts) => counts,
        Err(e) => {
            guard.rollback().await?;
            return Err(e);
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let run_id = uuid::Uuid::new_v4().to_string();
    record(db, &run_id, now, duration_ms, &counts).await?;
    // Ends the guard transaction, releasing the advisory lock.
    guard.rollback().await?;
    Ok(RetentionOutcome::Ran {
        run_id,
        counts,
        duration_ms,
    })
}

async fn work(
    db: &DatabaseConnection,
    settings: &RetentionSettings,
    export_dir: &std::path::Path,
    now: DateTime<Utc>,
) -> AppResult<RetentionCounts> {
    let mut counts = RetentionCounts::default();
    let archived = archive_traces(
        db,
        &ArchiveOptions {
            older_than_days: settings.archive_after_days,
            tenant: None,
            batch: settings.batch,
            now,
        },
        |_, _| {},
    )
    .await?;
    counts.traces_archived = archived.traces_archived;
    counts.steps_archived = archived.steps_removed;
    let cutoff = now - Duration::days(i64::from(settings.delete_after_days));
    loop {
        let (traces, steps) = delete_archived(db, cutoff, settings.batch).await?;
        counts.archived_traces_deleted += traces;
        counts.archived_steps_deleted += steps;
        if traces < settings.batch {
            break;
        }
    }
    loop {
        let purged = crate::idempotency::purge_expired(db, settings.batch).await?;
        counts.idempotency_keys_purged += purged;
        if purged < settings.batch {
            break;
        }
    }
    let now_ms = now.timestamp_millis();
    loop {
        let purged = delete_limited(
            db,
            replay_outputs::Entity,
            Expr::col(replay_outputs::Column::ExpiresAtMs).lt(now_ms),
            settings.batch,
        )
        .await?;
        counts.replay_outputs_purged += purged;
        if purged < settings.batch {
            break;
        }
    }
    loop {
        let purged =
            delete_limited(db, otlp_root_spans::Entity, orphan_spans(), settings.batch).await?;
        counts.otlp_spans_purged += purged;
        if purged < settings.batch {
            break;
        }
    }
    let finished_before =
        (now - Duration::days(i64::from(settings.export_after_days))).timestamp_millis();
    loop {
        let expired =
            expire_exports(db, export_dir, finished_before, now_ms, settings.batch).await?;
        counts.export_artefacts_expired += expired;
        if expired < settings.batch {
            break;
        }
    }
    Ok(counts)
}

/// The OTLP root spans whose trace is no longer in `aos_traces` (archived or deleted): they
/// served only to store a retried root once and to find open traces, and a trace that is not
/// live takes no more spans. The anti-join reads the whole (small, one row per trace) table
/// through the traces' unique (tenant, trace id) index, once per run.
fn orphan_spans() -> Expr {
    use entity::aos_traces::{Column as T, Entity as Traces};
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(Traces)
            .and_where(
                Expr::col((Traces, T::TenantId))
                    .equals((otlp_root_spans::Entity, otlp_root_spans::Column::TenantId)),
            )
            .and_where(
                Expr::col((Traces, T::TraceId))
                    .equals((otlp_root_spans::Entity, otlp_root_spans::Column::TraceId)),
            )
            .to_owned(),
    )
    .not()
}

/// One transaction: up to `batch` archived traces created before `cutoff` are deleted, with
/// their archived steps (the steps first, while their traces still name them).
async fn delete_archived(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> AppResult<(u64, u64)> {
    use aos_traces_archive::Column as A;
    let due = || -> SelectStatement {
        Query::select()
            .columns([A::TenantId, A::TraceId])
            .from(aos_traces_archive::Entity)
            .and_where(Expr::col(A::CreatedAt).lt(cutoff))
            .order_by(A::CreatedAt, sea_orm::Order::Asc)
            .order_by(A::TraceId, sea_orm::Order::Asc)
            .limit(batch)
            .to_owned()
    };
    let key = |table: sea_orm::sea_query::DynIden| {
        Expr::tuple([
            Expr::col((table.clone(), Alias::new("tenant_id"))),
            Expr::col((table, Alias::new("trace_id"))),
        ])
    };
    let txn = db.begin().await?;
    let steps = Query::delete()
        .from_table(Alias::new(STEPS_ARCHIVE))
        .and_where(key(Alias::new(STEPS_ARCHIVE).into_iden()).in_subquery(due()))
        .to_owned();
    let steps = txn.execute(&steps).await?.rows_affected();
    let traces = Query::delete()
        .from_table(aos_traces_archive::Entity)
        .and_where(key(aos_traces_archive::Entity.into_iden()).in_subquery(due()))
        .to_owned();
    let traces = txn.execute(&traces).await?.rows_affected();
    txn.commit().await?;
    Ok((traces, steps))
}

/// Deletes up to `limit` rows of `table` matching `condition`; returns how many. A DELETE has
/// no LIMIT on PostgreSQL, so the rows are picked by their physical id in a subquery (as
/// `idempotency::purge_expired` does).
async fn delete_limited(
    db: &DatabaseConnection,
    table: impl IntoIden + Clone,
    condition: Expr,
    limit: u64,
) -> AppResult<u64> {
    let row_id = Alias::new(match db.get_database_backend() {
        DbBackend::Postgres => "ctid",
        _ => "rowid",
    });
    let delete = Query::delete()
        .from_table(table.clone())
        .and_where(
            Expr::col(row_id.clone()).in_subquery(
                Query::select()
                    .column(row_id)
                    .from(table)
                    .and_where(condition)
                    .limit(limit)
                    .to_owned(),
            ),
        )
        .to_owned();
    Ok(db.execute(&delete).await?.rows_affected())
}

/// Up to `batch` completed exports finished before `finished_before` whose files are still
/// there: deletes the artefact, its manifest and (AUDIT exports) its ledger file, then marks the
/// job `artefact_expired_ms`, which the download routes answer 410 to. A file already gone
/// counts as deleted, so a run interrupted between the files and the mark is finished by the
/// next one. The export's `log_exports` rows are append-only history and stay.
async fn expire_exports(
    db: &DatabaseConnection,
    export_dir: &std::path::Path,
    finished_before: i64,
    now_ms: i64,
    batch: u64,
) -> AppResult<u64> {
    let expired = Alias::new(ARTEFACT_EXPIRED_MS);
    let due: Vec<(String, Option<String>)> = export_jobs::Entity::find()
        .select_only()
        .columns([J::ExportId, J::ArtefactPath])
        .filter(J::State.eq(crate::exports::jobs::JobState::Completed.as_str()))
        .filter(J::FinishedMs.lt(finished_before))
        .filter(Expr::col(expired.clone()).is_null())
        .order_by_asc(J::FinishedMs)
        .order_by_asc(J::ExportId)
        .limit(batch)
        .into_tuple()
        .all(db)
        .await?;
    for (export_id, path) in &due {
        let Some(path) = path else { continue };
        let artefact = PathBuf::from(path);
        // Only files under the configured directory: a row cannot make the job delete
        // anything else.
        if !artefact.starts_with(export_dir) {
            tracing::warn!(
                export_id,
                path,
                "export artefact outside the export directory left in place"
            );
            continue;
        }
        for file in [
            manifest::manifest_path(&artefact),
            manifest::ledger_path(&artefact),
            artefact,
        ] {
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(AppError::internal(e)),
            }
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    let marked = export_jobs::Entity::update_many()
        .col_expr(expired.clone(), Expr::val(now_ms))
        .col_expr(J::UpdatedMs, Expr::val(now_ms))
        .filter(J::ExportId.is_in(due.iter().map(|(id, _)| id.as_str())))
        .filter(Expr::col(expired).is_null())
        .exec(db)
        .await?;
    Ok(marked.rows_affected)
}

/// Appends the run's row to `retention_runs`.
async fn record(
    db: &DatabaseConnection,
    run_id: &str,
    started_at: DateTime<Utc>,
    duration_ms: u64,
    c: &RetentionCounts,
) -> AppResult<()> {
    let n = |v: u64| Expr::val(v as i64);
    let insert = Query::insert()
        .into_table(Alias::new(RUNS))
        .columns(
            [
                "id",
                "started_at",
                "duration_ms",
                "traces_archived",
                "steps_archived",
                "archived_traces_deleted",
                "archived_steps_deleted",
                "idempotency_keys_purged",
                "replay_outputs_purged",
                "export_artefacts_expired",
                "otlp_spans_purged",
            ]
            .map(Alias::new),
        )
        .values([
            Expr::val(run_id),
            Expr::val(started_at),
            n(duration_ms),
            n(c.traces_archived),
            n(c.steps_archived),
            n(c.archived_traces_deleted),
            n(c.archived_steps_deleted),
            n(c.idempotency_keys_purged),
            n(c.replay_outputs_purged),
            n(c.export_artefacts_expired),
            n(c.otlp_spans_purged),
        ])
        .map_err(AppError::internal)?
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

/// Runs the job every `settings.interval` in this process, when one is set (off by default).
/// Every process may run the timer: the advisory lock lets one of them work at a time.
pub fn spawn(
    db: DatabaseConnection,
    settings: RetentionSettings,
    export_dir: PathBuf,
) -> Option<tokio::task::AbortHandle> {
    let every = settings.interval?;
    Some(
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await; // the first tick is immediate; start after one period
            loop {
                tick.tick().await;
                match run(&db, &settings, &export_dir, crate::scalars::now()).await {
                    Ok(RetentionOutcome::Ran {
                        counts,
                        duration_ms,
                        ..
                    }) => tracing::info!(?counts, duration_ms, "retention run"),
                    Ok(RetentionOutcome::Skipped) => {
                        tracing::debug!("retention run skipped: another process holds the lock")
                    }
                    Err(err) => tracing::warn!(error = ?err, "retention run failed"),
                }
            }
        })
        .abort_handle(),
    )
}
