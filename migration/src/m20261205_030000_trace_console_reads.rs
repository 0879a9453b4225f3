//! What the console's trace screens read besides the newest page (docs/console.md):
//!
//! - `step_count`, set once when a trace is sealed (completed, failed or aborted; NULL while it
//!   runs, since steps are still arriving), and `duration_ms`, generated from the start and
//!   completion times as on runs, so a sort or a range on them is a plain indexed column;
//! - an index behind every offered order: start time, step count and duration, each
//!   `(tenant_id, key, id)`;
//! - case-insensitive substring search over the short text fields (trace, run, correlation,
//!   agent, plan, incident and scenario ids, and the violation reason): a trigram GIN index on
//!   PostgreSQL, an FTS5 trigram table on SQLite.
//!
//! The archive keeps both columns too (it is column-for-column the live table); traces archived
//! before this migration had their steps deleted with them, so their `step_count` stays NULL.
//! The backfill of sealed traces runs with the immutability trigger off (filling a new column is
//! not a change of the trace), and the trigger comes back allowing a completion to set
//! `step_count` from NULL, like the root hash.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec, sqlite_micros};
use crate::m20261127_000007_create_aos_traces::{
    install_update_trigger, sqlite_update_trigger, TraceShape, SHAPE, TRACE_COLUMNS,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `aos_traces` after this migration, as the immutability trigger sees it (`duration_ms` is
/// generated, so it is not named: it follows `completed_at`).
pub(crate) fn shape_columns() -> Vec<&'static str> {
    TRACE_COLUMNS
        .iter()
        .copied()
        .chain(["step_count"])
        .collect()
}

pub(crate) const SET_ONCE: &[&str] = &["root_hash", "checksum", "step_count"];

/// Sealed traces' step counts, from their live steps (as `finish_trace` counts them).
const BACKFILL: &str = "UPDATE aos_traces SET step_count = (SELECT COUNT(*) FROM aos_trace_steps s
        WHERE s.tenant_id = aos_traces.tenant_id AND s.trace_id = aos_traces.trace_id
            AND s.archived_at IS NULL)
    WHERE status <> 'running'";

const POSTGRES_UP: &[&str] = &[
    // The backfill and the index builds read every trace and step.
    "SET LOCAL statement_timeout = 0",
    "ALTER TABLE aos_traces
        ADD COLUMN step_count integer,
        ADD COLUMN duration_ms bigint
            GENERATED ALWAYS AS ((EXTRACT(EPOCH FROM (completed_at - started_at)) * 1000)::bigint)
            STORED",
    "ALTER TABLE aos_traces_archive ADD COLUMN step_count integer, ADD COLUMN duration_ms bigint",
    "ALTER TABLE aos_traces DISABLE TRIGGER trg_aos_traces_prevent_update",
    BACKFILL,
    "ALTER TABLE aos_traces ENABLE TRIGGER trg_aos_traces_prevent_update",
    "CREATE INDEX idx_aos_traces_tenant_started ON aos_traces (tenant_id, started_at, id)",
    "CREATE INDEX idx_aos_traces_tenant_steps ON aos_traces (tenant_id, step_count, id)",
    "CREATE INDEX idx_aos_traces_tenant_duration ON aos_traces (tenant_id, duration_ms, id)",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX idx_aos_traces_search ON aos_traces USING gin ((lower(trace_id || ' ' || run_id
        || ' ' || correlation_id || ' ' || coalesce(agent_id, '') || ' ' || coalesce(plan_id, '')
        || ' ' || coalesce(incident_id, '') || ' ' || coalesce(synthetic_scenario_id, '')
        || ' ' || coalesce(violation_reason, ''))) gin_trgm_ops)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX idx_aos_traces_search",
    "DROP INDEX idx_aos_traces_tenant_duration",
    "DROP INDEX idx_aos_traces_tenant_steps",
    "DROP INDEX idx_aos_traces_tenant_started",
    "ALTER TABLE aos_traces_archive DROP COLUMN duration_ms, DROP COLUMN step_count",
];

/// The searched text of a trace row (`NEW.` or none), as `traces::search` matches it.
macro_rules! sqlite_search_text {
    ($row:literal) => {
        concat!(
            "lower(",
            $row,
            "trace_id || ' ' || ",
            $row,
            "run_id || ' ' || ",
            $row,
            "correlation_id || ' ' || coalesce(",
            $row,
            "agent_id, '') || ' ' || coalesce(",
            $row,
            "plan_id, '') || ' ' || coalesce(",
            $row,
            "incident_id, '') || ' ' || coalesce(",
            $row,
            "synthetic_scenario_id, '') || ' ' || coalesce(",
            $row,
            "violation_reason, ''))"
        )
    };
}
pub(crate) use sqlite_search_text;

const SQLITE_UP: &[&str] = &[
    "ALTER TABLE aos_traces ADD COLUMN step_count INTEGER",
    concat!(
        "ALTER TABLE aos_traces ADD COLUMN duration_ms INTEGER GENERATED ALWAYS AS (",
        "CAST(round((",
        sqlite_micros!("completed_at"),
        " - ",
        sqlite_micros!("started_at"),
        ") / 1000.0) AS INTEGER)) VIRTUAL"
    ),
    "ALTER TABLE aos_traces_archive ADD COLUMN step_count INTEGER",
    "ALTER TABLE aos_traces_archive ADD COLUMN duration_ms INTEGER",
    // Off while the backfill fills a column of sealed traces (installed again below).
    "DROP TRIGGER trg_aos_traces_prevent_update",
    BACKFILL,
    "CREATE INDEX idx_aos_traces_tenant_started ON aos_traces (tenant_id, started_at, id)",
    "CREATE INDEX idx_aos_traces_tenant_steps ON aos_traces (tenant_id, step_count, id)",
    "CREATE INDEX idx_aos_traces_tenant_duration ON aos_traces (tenant_id, duration_ms, id)",
    // Keyed by the trace's rowid. Logbook never VACUUMs, which could renumber the rowids of a
    // table without an INTEGER PRIMARY KEY.
    "CREATE VIRTUAL TABLE aos_trace_search USING fts5(body, tokenize = 'trigram')",
    concat!(
        "INSERT INTO aos_trace_search (rowid, body) SELECT rowid, ",
        sqlite_search_text!(""),
        " FROM aos_traces"
    ),
    // The searched columns never change after insert (the immutability trigger), so an insert
    // and a delete trigger keep the table.
    concat!(
        "CREATE TRIGGER aos_trace_search_insert AFTER INSERT ON aos_traces BEGIN
            INSERT INTO aos_trace_search (rowid, body) VALUES (NEW.rowid, ",
        sqlite_search_text!("NEW."),
        "); END"
    ),
    "CREATE TRIGGER aos_trace_search_delete AFTER DELETE ON aos_traces BEGIN
        DELETE FROM aos_trace_search WHERE rowid = OLD.rowid; END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER aos_trace_search_delete",
    "DROP TRIGGER aos_trace_search_insert",
    "DROP TABLE aos_trace_search",
    "DROP INDEX idx_aos_traces_tenant_duration",
    "DROP INDEX idx_aos_traces_tenant_steps",
    "DROP INDEX idx_aos_traces_tenant_started",
    "ALTER TABLE aos_traces_archive DROP COLUMN duration_ms",
    "ALTER TABLE aos_traces_archive DROP COLUMN step_count",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match backend(manager)? {
            DbBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        for sql in statements {
            exec(manager, sql).await?;
        }
        let columns = shape_columns();
        let shape = TraceShape {
            columns: &columns,
            set_once: SET_ONCE,
        };
        match backend(manager)? {
            DbBackend::Postgres => install_update_trigger(manager, &shape).await,
            // Dropped above.
            _ => exec(manager, &sqlite_update_trigger(&shape)).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let b = backend(manager)?;
        let statements = match b {
            DbBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        for sql in statements {
            exec(manager, sql).await?;
        }
        // The UPDATE trigger without `step_count` first: it names the columns it compares. Only
        // that trigger changes here (the DELETE trigger names no column). On SQLite the drop and
        // the new trigger go in one batch: run as two statements (the installer's `DROP TRIGGER
        // IF EXISTS`, then `CREATE TRIGGER`), the CREATE failed with "already exists" in the
        // migration test although a DROP had just succeeded; the cause was not established.
        if b == DbBackend::Postgres {
            install_update_trigger(manager, &SHAPE).await?;
        } else {
            exec(
                manager,
                &format!(
                    "DROP TRIGGER trg_aos_traces_prevent_update;\n{}",
                    sqlite_update_trigger(&SHAPE)
                ),
            )
            .await?;
        }
        match b {
            DbBackend::Postgres => {
                exec(
                    manager,
                    "ALTER TABLE aos_traces DROP COLUMN duration_ms, DROP COLUMN step_count",
                )
                .await
            }
            _ => {
                // SQLite cannot drop an indexed or generated column in place; the indexes are
                // gone, and a VIRTUAL generated column can be dropped.
                exec(manager, "ALTER TABLE aos_traces DROP COLUMN duration_ms").await?;
                exec(manager, "ALTER TABLE aos_traces DROP COLUMN step_count").await
            }
        }
    }
}
