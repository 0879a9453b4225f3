//! What the console's system-record and audit screens search (docs/console.md):
//!
//! - substring search over the short text fields (ids, a system record's summary, an audit
//!   entry's actor and reason): a trigram GIN index on PostgreSQL, an FTS5 trigram table on
//!   SQLite, as for runs and traces;
//! - full-text word search over the long text (a record's summary and details, an entry's
//!   reason and before/after states, JSON keys and values alike): on PostgreSQL a stored
//!   generated `tsvector` column (`search_words`, `simple` configuration: no stemming, no stop
//!   words) with a GIN index; on SQLite an FTS5 table with the `unicode61` tokenizer.
//!
//! Both word indexes read ASCII punctuation as spaces (PostgreSQL's parser would keep a host, a
//! path or `1.5` as one token where SQLite's tokenizer splits it) and only the first 100 000
//! characters of the text (a `tsvector` is capped at 1 MB). Both tables are append-only, so
//! the SQLite tables are kept by insert (and delete) triggers; the generated column is computed
//! on insert. Neither touches the hashed columns of the audit ledger.

use crate::common::exec_for_backend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// ASCII punctuation; `translate` maps each to a space (the second argument is as long).
macro_rules! words_of {
    ($text:literal) => {
        concat!(
            "to_tsvector('simple', translate(left(",
            $text,
            ", 100000), '!\"#$%&''()*+,-./:;<=>?@[\\]^_`{|}~', '",
            "                                ",
            "'))"
        )
    };
}

/// The searched text of a table row (`NEW.` or none), as the server's search matches it.
macro_rules! system_short_text {
    ($row:literal) => {
        concat!(
            "lower(",
            $row,
            "id || ' ' || ",
            $row,
            "summary || ' ' || coalesce(",
            $row,
            "correlation_id, ''))"
        )
    };
}

macro_rules! system_long_text {
    ($row:literal) => {
        concat!($row, "summary || ' ' || coalesce(", $row, "details, '')")
    };
}

macro_rules! audit_short_text {
    ($row:literal) => {
        concat!(
            "lower(",
            $row,
            "id || ' ' || ",
            $row,
            "entity_id || ' ' || coalesce(",
            $row,
            "actor_id, '') || ' ' || coalesce(",
            $row,
            "run_id, '') || ' ' || coalesce(",
            $row,
            "correlation_id, '') || ' ' || coalesce(",
            $row,
            "action_reason, ''))"
        )
    };
}

macro_rules! audit_long_text {
    ($row:literal) => {
        concat!(
            "coalesce(",
            $row,
            "action_reason, '') || ' ' || coalesce(",
            $row,
            "before_state, '') || ' ' || coalesce(",
            $row,
            "after_state, '')"
        )
    };
}

const POSTGRES_UP: &[&str] = &[
    // The column fills and index builds read every row.
    "SET LOCAL statement_timeout = 0",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    concat!(
        "ALTER TABLE system_records ADD COLUMN search_words tsvector GENERATED ALWAYS AS (",
        words_of!("summary || ' ' || coalesce(details::text, '')"),
        ") STORED"
    ),
    "CREATE INDEX idx_system_records_words ON system_records USING gin (search_words)",
    concat!(
        "CREATE INDEX idx_system_records_search ON system_records USING gin ((",
        system_short_text!(""),
        ") gin_trgm_ops)"
    ),
    concat!(
        "ALTER TABLE audit_ledger ADD COLUMN search_words tsvector GENERATED ALWAYS AS (",
        words_of!(
            "coalesce(action_reason, '') || ' ' || coalesce(before_state::text, '') || ' ' \
             || coalesce(after_state::text, '')"
        ),
        ") STORED"
    ),
    "CREATE INDEX idx_audit_ledger_words ON audit_ledger USING gin (search_words)",
    concat!(
        "CREATE INDEX idx_audit_ledger_search ON audit_ledger USING gin ((",
        audit_short_text!(""),
        ") gin_trgm_ops)"
    ),
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX idx_audit_ledger_search",
    "DROP INDEX idx_audit_ledger_words",
    "ALTER TABLE audit_ledger DROP COLUMN search_words",
    "DROP INDEX idx_system_records_search",
    "DROP INDEX idx_system_records_words",
    "ALTER TABLE system_records DROP COLUMN search_words",
];

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE system_record_search USING fts5(body, tokenize = 'trigram')",
    concat!(
        "INSERT INTO system_record_search (rowid, body) SELECT rowid, ",
        system_short_text!(""),
        " FROM system_records"
    ),
    // Letters and digits are words, case folded, diacritics kept (as PostgreSQL's `simple`
    // configuration keeps them).
    "CREATE VIRTUAL TABLE system_record_words USING fts5(body, \
     tokenize = 'unicode61 remove_diacritics 0')",
    concat!(
        "INSERT INTO system_record_words (rowid, body) SELECT rowid, substr(",
        system_long_text!(""),
        ", 1, 100000) FROM system_records"
    ),
    concat!(
        "CREATE TRIGGER system_record_search_insert AFTER INSERT ON system_records BEGIN
            INSERT INTO system_record_search (rowid, body) VALUES (NEW.rowid, ",
        system_short_text!("NEW."),
        ");
            INSERT INTO system_record_words (rowid, body) VALUES (NEW.rowid, substr(",
        system_long_text!("NEW."),
        ", 1, 100000)); END"
    ),
    "CREATE TRIGGER system_record_search_delete AFTER DELETE ON system_records BEGIN
        DELETE FROM system_record_search WHERE rowid = OLD.rowid;
        DELETE FROM system_record_words WHERE rowid = OLD.rowid; END",
    "CREATE VIRTUAL TABLE audit_entry_search USING fts5(body, tokenize = 'trigram')",
    concat!(
        "INSERT INTO audit_entry_search (rowid, body) SELECT rowid, ",
        audit_short_text!(""),
        " FROM audit_ledger"
    ),
    "CREATE VIRTUAL TABLE audit_entry_words USING fts5(body, \
     tokenize = 'unicode61 remove_diacritics 0')",
    concat!(
        "INSERT INTO audit_entry_words (rowid, body) SELECT rowid, substr(",
        audit_long_text!(""),
        ", 1, 100000) FROM audit_ledger"
    ),
    concat!(
        "CREATE TRIGGER audit_entry_search_insert AFTER INSERT ON audit_ledger BEGIN
            INSERT INTO audit_entry_search (rowid, body) VALUES (NEW.rowid, ",
        audit_short_text!("NEW."),
        ");
            INSERT INTO audit_entry_words (rowid, body) VALUES (NEW.rowid, substr(",
        audit_long_text!("NEW."),
        ", 1, 100000)); END"
    ),
    "CREATE TRIGGER audit_entry_search_delete AFTER DELETE ON audit_ledger BEGIN
        DELETE FROM audit_entry_search WHERE rowid = OLD.rowid;
        DELETE FROM audit_entry_words WHERE rowid = OLD.rowid; END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER audit_entry_search_delete",
    "DROP TRIGGER audit_entry_search_insert",
    "DROP TABLE audit_entry_words",
    "DROP TABLE audit_entry_search",
    "DROP TRIGGER system_record_search_delete",
    "DROP TRIGGER system_record_search_insert",
    "DROP TABLE system_record_words",
    "DROP TABLE system_record_search",
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
