//! What the console's run screens read besides the newest page (docs/console.md):
//!
//! - `total_tokens` and `duration_ms`, generated columns, so a sort or a range on them is a
//!   plain indexed column and a cursor's key is the stored value itself;
//! - an index behind every offered order: cost, total tokens, duration and start time, each
//!   `(tenant_id, key, id)`;
//! - case-insensitive substring search over the short text fields (run id, model, provider,
//!   trace id, scenario id): a trigram GIN index on PostgreSQL (`pg_trgm`), an FTS5 trigram
//!   table on SQLite;
//! - `llm_run_rollups`: runs, cost and tokens per tenant, UTC hour and UTC day, and
//!   (provider, model, status, source, synthetic), kept by triggers whatever writes the runs,
//!   so facets and histograms over whole hours and days sum a few rows instead of reading runs.
//!   PostgreSQL appends signed deltas per statement (no lock shared between writers; the server
//!   folds them, `runs::rollups::compact`); SQLite upserts one row per key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec, sqlite_micros};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "ALTER TABLE llm_run_records
        ADD COLUMN total_tokens bigint
            GENERATED ALWAYS AS (input_tokens::bigint + output_tokens::bigint) STORED,
        ADD COLUMN duration_ms bigint
            GENERATED ALWAYS AS ((EXTRACT(EPOCH FROM (completed_at - started_at)) * 1000)::bigint)
            STORED",
    "CREATE INDEX idx_llm_run_records_tenant_cost ON llm_run_records (tenant_id, cost_cents, id)",
    "CREATE INDEX idx_llm_run_records_tenant_tokens ON llm_run_records (tenant_id, total_tokens, id)",
    "CREATE INDEX idx_llm_run_records_tenant_duration
        ON llm_run_records (tenant_id, duration_ms, id)",
    "CREATE INDEX idx_llm_run_records_tenant_started ON llm_run_records (tenant_id, started_at, id)",
    // A trusted extension since PostgreSQL 13: a database owner may create it.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX idx_llm_run_records_search ON llm_run_records USING gin
        ((lower(run_id || ' ' || model || ' ' || provider || ' ' || coalesce(trace_id, '')
            || ' ' || coalesce(synthetic_scenario_id, ''))) gin_trgm_ops)",
    "CREATE TABLE llm_run_rollups (
        tenant_id varchar(64) NOT NULL,
        grain char(1) NOT NULL,
        bucket varchar(13) NOT NULL,
        provider varchar(64) NOT NULL,
        model varchar(128) NOT NULL,
        execution_status varchar(32) NOT NULL,
        source varchar(32) NOT NULL,
        is_synthetic boolean NOT NULL,
        runs bigint NOT NULL,
        cost_cents bigint NOT NULL,
        input_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL
    )",
    "CREATE INDEX idx_llm_run_rollups_tenant_bucket ON llm_run_rollups (tenant_id, grain, bucket)",
    "CREATE FUNCTION llm_run_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            DELETE FROM llm_run_rollups;
            RETURN NULL;
        END IF;
        IF TG_OP = 'DELETE' THEN
            INSERT INTO llm_run_rollups
            SELECT tenant_id, g.grain,
                to_char(created_at AT TIME ZONE 'UTC', g.format),
                provider, model, execution_status, source, is_synthetic,
                -COUNT(*), -SUM(cost_cents), -SUM(input_tokens), -SUM(output_tokens)
            FROM old_runs, (VALUES ('H', 'YYYY-MM-DD\"T\"HH24'), ('D', 'YYYY-MM-DD')) g(grain, format)
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8;
        ELSE
            INSERT INTO llm_run_rollups
            SELECT tenant_id, g.grain,
                to_char(created_at AT TIME ZONE 'UTC', g.format),
                provider, model, execution_status, source, is_synthetic,
                COUNT(*), SUM(cost_cents), SUM(input_tokens), SUM(output_tokens)
            FROM new_runs, (VALUES ('H', 'YYYY-MM-DD\"T\"HH24'), ('D', 'YYYY-MM-DD')) g(grain, format)
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8;
        END IF;
        RETURN NULL;
    END $$",
    "CREATE TRIGGER llm_run_rollups_insert AFTER INSERT ON llm_run_records
        REFERENCING NEW TABLE AS new_runs
        FOR EACH STATEMENT EXECUTE FUNCTION llm_run_rollups_apply()",
    "CREATE TRIGGER llm_run_rollups_delete AFTER DELETE ON llm_run_records
        REFERENCING OLD TABLE AS old_runs
        FOR EACH STATEMENT EXECUTE FUNCTION llm_run_rollups_apply()",
    "CREATE TRIGGER llm_run_rollups_truncate AFTER TRUNCATE ON llm_run_records
        FOR EACH STATEMENT EXECUTE FUNCTION llm_run_rollups_apply()",
    // The migration's transaction holds the triggers' lock on llm_run_records until it commits,
    // so no run is written between the backfill and the triggers taking over.
    "INSERT INTO llm_run_rollups
        SELECT tenant_id, g.grain, to_char(created_at AT TIME ZONE 'UTC', g.format),
            provider, model, execution_status, source, is_synthetic,
            COUNT(*), SUM(cost_cents), SUM(input_tokens), SUM(output_tokens)
        FROM llm_run_records, (VALUES ('H', 'YYYY-MM-DD\"T\"HH24'), ('D', 'YYYY-MM-DD')) g(grain, format)
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER llm_run_rollups_insert ON llm_run_records",
    "DROP TRIGGER llm_run_rollups_delete ON llm_run_records",
    "DROP TRIGGER llm_run_rollups_truncate ON llm_run_records",
    "DROP FUNCTION llm_run_rollups_apply()",
    "DROP TABLE llm_run_rollups",
    "DROP INDEX idx_llm_run_records_search",
    "DROP INDEX idx_llm_run_records_tenant_started",
    "DROP INDEX idx_llm_run_records_tenant_duration",
    "DROP INDEX idx_llm_run_records_tenant_tokens",
    "DROP INDEX idx_llm_run_records_tenant_cost",
    "ALTER TABLE llm_run_records DROP COLUMN duration_ms, DROP COLUMN total_tokens",
];

/// `created_at` is RFC 3339 text in UTC: its first 13 characters are the UTC hour (the
/// separator is normalised to `T`), its first 10 the UTC day.
macro_rules! sqlite_rollup_upsert {
    ($row:literal, $sign:literal, $grain:literal, $len:literal) => {
        concat!(
            "INSERT INTO llm_run_rollups VALUES (",
            $row,
            ".tenant_id, '",
            $grain,
            "', replace(substr(",
            $row,
            ".created_at, 1, ",
            $len,
            "), ' ', 'T'), ",
            $row,
            ".provider, ",
            $row,
            ".model, ",
            $row,
            ".execution_status, ",
            $row,
            ".source, ",
            $row,
            ".is_synthetic, ",
            $sign,
            "1, ",
            $sign,
            $row,
            ".cost_cents, ",
            $sign,
            $row,
            ".input_tokens, ",
            $sign,
            $row,
            ".output_tokens)
            ON CONFLICT DO UPDATE SET runs = runs + excluded.runs,
                cost_cents = cost_cents + excluded.cost_cents,
                input_tokens = input_tokens + excluded.input_tokens,
                output_tokens = output_tokens + excluded.output_tokens;"
        )
    };
}

const SQLITE_SEARCH_TEXT: &str = "lower(run_id || ' ' || model || ' ' || provider || ' ' || \
    coalesce(trace_id, '') || ' ' || coalesce(synthetic_scenario_id, ''))";

const SQLITE_NEW_SEARCH_TEXT: &str = "lower(NEW.run_id || ' ' || NEW.model || ' ' || \
    NEW.provider || ' ' || coalesce(NEW.trace_id, '') || ' ' || \
    coalesce(NEW.synthetic_scenario_id, ''))";

const SQLITE_UP: &[&str] = &[
    "ALTER TABLE llm_run_records ADD COLUMN total_tokens INTEGER
        GENERATED ALWAYS AS (input_tokens + output_tokens) VIRTUAL",
    concat!(
        "ALTER TABLE llm_run_records ADD COLUMN duration_ms INTEGER GENERATED ALWAYS AS (",
        "CAST(round((",
        sqlite_micros!("completed_at"),
        " - ",
        sqlite_micros!("started_at"),
        ") / 1000.0) AS INTEGER)) VIRTUAL"
    ),
    "CREATE INDEX idx_llm_run_records_tenant_cost ON llm_run_records (tenant_id, cost_cents, id)",
    "CREATE INDEX idx_llm_run_records_tenant_tokens ON llm_run_records (tenant_id, total_tokens, id)",
    "CREATE INDEX idx_llm_run_records_tenant_duration
        ON llm_run_records (tenant_id, duration_ms, id)",
    "CREATE INDEX idx_llm_run_records_tenant_started ON llm_run_records (tenant_id, started_at, id)",
    "CREATE VIRTUAL TABLE llm_run_search USING fts5(body, tokenize = 'trigram')",
    "CREATE TABLE llm_run_rollups (
        tenant_id varchar(64) NOT NULL,
        grain char(1) NOT NULL,
        bucket varchar(13) NOT NULL,
        provider varchar(64) NOT NULL,
        model varchar(128) NOT NULL,
        execution_status varchar(32) NOT NULL,
        source varchar(32) NOT NULL,
        is_synthetic boolean NOT NULL,
        runs bigint NOT NULL,
        cost_cents bigint NOT NULL,
        input_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL,
        PRIMARY KEY (tenant_id, grain, bucket, provider, model, execution_status, source,
            is_synthetic)
    )",
    concat!(
        "CREATE TRIGGER llm_run_rollups_insert AFTER INSERT ON llm_run_records BEGIN ",
        sqlite_rollup_upsert!("NEW", "", "H", "13"),
        sqlite_rollup_upsert!("NEW", "", "D", "10"),
        "END"
    ),
    concat!(
        "CREATE TRIGGER llm_run_rollups_delete AFTER DELETE ON llm_run_records BEGIN ",
        sqlite_rollup_upsert!("OLD", "-", "H", "13"),
        sqlite_rollup_upsert!("OLD", "-", "D", "10"),
        "END"
    ),
    "INSERT INTO llm_run_rollups
        SELECT tenant_id, 'H', replace(substr(created_at, 1, 13), ' ', 'T'), provider, model,
            execution_status, source, is_synthetic, COUNT(*), SUM(cost_cents),
            SUM(input_tokens), SUM(output_tokens)
        FROM llm_run_records GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
    "INSERT INTO llm_run_rollups
        SELECT tenant_id, 'D', substr(created_at, 1, 10), provider, model,
            execution_status, source, is_synthetic, COUNT(*), SUM(cost_cents),
            SUM(input_tokens), SUM(output_tokens)
        FROM llm_run_records GROUP BY 1, 2, 3, 4, 5, 6, 7, 8",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER llm_run_rollups_insert",
    "DROP TRIGGER llm_run_rollups_delete",
    "DROP TABLE llm_run_rollups",
    "DROP TRIGGER llm_run_search_insert",
    "DROP TRIGGER llm_run_search_delete",
    "DROP TABLE llm_run_search",
    "DROP INDEX idx_llm_run_records_tenant_started",
    "DROP INDEX idx_llm_run_records_tenant_duration",
    "DROP INDEX idx_llm_run_records_tenant_tokens",
    "DROP INDEX idx_llm_run_records_tenant_cost",
    "ALTER TABLE llm_run_records DROP COLUMN duration_ms",
    "ALTER TABLE llm_run_records DROP COLUMN total_tokens",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// SQLite too: the backfills and the triggers land together or not at all.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => {
                for sql in POSTGRES_UP {
                    exec(manager, sql).await?;
                }
            }
            _ => {
                for sql in SQLITE_UP {
                    exec(manager, sql).await?;
                }
                // The search rows keep the run's rowid, so a match joins back without a lookup.
                exec(
                    manager,
                    &format!(
                        "CREATE TRIGGER llm_run_search_insert AFTER INSERT ON llm_run_records \
                         BEGIN INSERT INTO llm_run_search (rowid, body) \
                         VALUES (NEW.rowid, {}); END",
                        SQLITE_NEW_SEARCH_TEXT
                    ),
                )
                .await?;
                exec(
                    manager,
                    "CREATE TRIGGER llm_run_search_delete AFTER DELETE ON llm_run_records \
                     BEGIN DELETE FROM llm_run_search WHERE rowid = OLD.rowid; END",
                )
                .await?;
                exec(
                    manager,
                    &format!(
                        "INSERT INTO llm_run_search (rowid, body) \
                         SELECT rowid, {SQLITE_SEARCH_TEXT} FROM llm_run_records"
                    ),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match backend(manager)? {
            DbBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        for sql in statements {
            exec(manager, sql).await?;
        }
        Ok(())
    }
}
