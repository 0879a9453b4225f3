//! Substring search over a trace mismatch's fixed text (id, trace id, reason, reporter) for the
//! console (docs/console.md): a trigram GIN index on PostgreSQL, an FTS5 trigram table on
//! SQLite. Resolving a mismatch changes only its resolution fields, which are not searched, so
//! the SQLite table is kept by insert and delete triggers alone.

use crate::common::exec_for_backend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The searched text of a mismatch row (`NEW.` or none), as the server's search matches it.
macro_rules! search_text {
    ($row:literal) => {
        concat!(
            "lower(",
            $row,
            "id || ' ' || ",
            $row,
            "trace_id || ' ' || ",
            $row,
            "reason || ' ' || coalesce(",
            $row,
            "reported_by, ''))"
        )
    };
}

const POSTGRES_UP: &[&str] = &[
    "SET LOCAL statement_timeout = 0",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    concat!(
        "CREATE INDEX idx_aos_trace_mismatches_search ON aos_trace_mismatches USING gin ((",
        search_text!(""),
        ") gin_trgm_ops)"
    ),
];

const POSTGRES_DOWN: &[&str] = &["DROP INDEX idx_aos_trace_mismatches_search"];

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE aos_trace_mismatch_search USING fts5(body, tokenize = 'trigram')",
    concat!(
        "INSERT INTO aos_trace_mismatch_search (rowid, body) SELECT rowid, ",
        search_text!(""),
        " FROM aos_trace_mismatches"
    ),
    concat!(
        "CREATE TRIGGER aos_trace_mismatch_search_insert AFTER INSERT ON aos_trace_mismatches
        BEGIN INSERT INTO aos_trace_mismatch_search (rowid, body) VALUES (NEW.rowid, ",
        search_text!("NEW."),
        "); END"
    ),
    "CREATE TRIGGER aos_trace_mismatch_search_delete AFTER DELETE ON aos_trace_mismatches
        BEGIN DELETE FROM aos_trace_mismatch_search WHERE rowid = OLD.rowid; END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER aos_trace_mismatch_search_delete",
    "DROP TRIGGER aos_trace_mismatch_search_insert",
    "DROP TABLE aos_trace_mismatch_search",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec_for_backend(manager, POSTGRES_UP, SQLITE_UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec_for_backend(manager, POSTGRES_DOWN, SQLITE_DOWN).await
    }
}
