//! `llm_run_day_counts`: how many LLM runs each tenant has per UTC day, kept exact by triggers
//! on `llm_run_records` (every insert, delete, update and truncate, whatever path writes them),
//! so `llmRuns { totalCount }` over whole days sums a few rows instead of counting the runs
//! (docs/domain.md §2.2.1).
//!
//! PostgreSQL: statement-level triggers append one signed delta row per (tenant, day) a
//! statement touched. Appending never waits on another writer's row lock, so concurrent run
//! inserts of one tenant do not serialize on a shared counter; the server folds the deltas of a
//! (tenant, day) into one row now and then (`runs::counts::compact`). SQLite has one writer at a
//! time, so its row-level triggers keep one row per (tenant, day) with an upsert.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec};

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE llm_run_day_counts (
        tenant_id varchar(64) NOT NULL,
        day varchar(10) NOT NULL,
        runs bigint NOT NULL
    )",
    "CREATE INDEX idx_llm_run_day_counts_tenant_day ON llm_run_day_counts (tenant_id, day)",
    // Deltas in (tenant, day) order, so concurrent statements take no locks in crossing orders.
    "CREATE FUNCTION llm_run_day_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            DELETE FROM llm_run_day_counts;
            RETURN NULL;
        END IF;
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            INSERT INTO llm_run_day_counts (tenant_id, day, runs)
            SELECT tenant_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), -COUNT(*)
            FROM old_runs GROUP BY 1, 2 ORDER BY 1, 2;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO llm_run_day_counts (tenant_id, day, runs)
            SELECT tenant_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), COUNT(*)
            FROM new_runs GROUP BY 1, 2 ORDER BY 1, 2;
        END IF;
        RETURN NULL;
    END $$",
    "CREATE TRIGGER llm_run_day_counts_insert AFTER INSERT ON llm_run_records
        REFERENCING NEW TABLE AS new_runs
        FOR EACH STATEMENT EXECUTE FUNCTION llm_run_day_counts_apply()",
    "CREATE TRIGGER llm_run_day_counts_delete AFTER DELETE ON llm_run_records
        REFERENCING OLD TABLE AS old_runs
        FOR EACH STATEMENT EXECUTE FUNCTION llm_run_day_counts_apply()",
    "CREATE TRIGGER llm_run_day_counts_update AFTER UPDATE ON llm_run_records
        REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
        FOR EACH STATEMENT EXECUTE FUNCTION llm_run_day_counts_apply()",
    "CREATE TRIGGER llm_run_day_counts_truncate AFTER TRUNCATE ON llm_run_records
        FOR EACH STATEMENT EXECUTE FUNCTION llm_run_day_counts_apply()",
    // The migration's transaction holds the triggers' lock on llm_run_records until it commits,
    // so no run is written between the backfill and the triggers taking over.
    "INSERT INTO llm_run_day_counts (tenant_id, day, runs)
        SELECT tenant_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), COUNT(*)
        FROM llm_run_records GROUP BY 1, 2",
];

pub(crate) const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER llm_run_day_counts_insert ON llm_run_records",
    "DROP TRIGGER llm_run_day_counts_delete ON llm_run_records",
    "DROP TRIGGER llm_run_day_counts_update ON llm_run_records",
    "DROP TRIGGER llm_run_day_counts_truncate ON llm_run_records",
    "DROP FUNCTION llm_run_day_counts_apply()",
    "DROP TABLE llm_run_day_counts",
];

// `created_at` is stored as RFC 3339 text in UTC: its first ten characters are the UTC day.
pub(crate) const SQLITE_UP: &[&str] = &[
    "CREATE TABLE llm_run_day_counts (
        tenant_id varchar(64) NOT NULL,
        day varchar(10) NOT NULL,
        runs bigint NOT NULL,
        PRIMARY KEY (tenant_id, day)
    )",
    "CREATE TRIGGER llm_run_day_counts_insert AFTER INSERT ON llm_run_records BEGIN
        INSERT INTO llm_run_day_counts (tenant_id, day, runs)
        VALUES (NEW.tenant_id, substr(NEW.created_at, 1, 10), 1)
        ON CONFLICT (tenant_id, day) DO UPDATE SET runs = runs + 1;
    END",
    "CREATE TRIGGER llm_run_day_counts_delete AFTER DELETE ON llm_run_records BEGIN
        INSERT INTO llm_run_day_counts (tenant_id, day, runs)
        VALUES (OLD.tenant_id, substr(OLD.created_at, 1, 10), -1)
        ON CONFLICT (tenant_id, day) DO UPDATE SET runs = runs - 1;
    END",
    "CREATE TRIGGER llm_run_day_counts_update AFTER UPDATE OF tenant_id, created_at
        ON llm_run_records BEGIN
        INSERT INTO llm_run_day_counts (tenant_id, day, runs)
        VALUES (OLD.tenant_id, substr(OLD.created_at, 1, 10), -1)
        ON CONFLICT (tenant_id, day) DO UPDATE SET runs = runs - 1;
        INSERT INTO llm_run_day_counts (tenant_id, day, runs)
        VALUES (NEW.tenant_id, substr(NEW.created_at, 1, 10), 1)
        ON CONFLICT (tenant_id, day) DO UPDATE SET runs = runs + 1;
    END",
    "INSERT INTO llm_run_day_counts (tenant_id, day, runs)
        SELECT tenant_id, substr(created_at, 1, 10), COUNT(*)
        FROM llm_run_records GROUP BY 1, 2",
];

pub(crate) const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER llm_run_day_counts_insert",
    "DROP TRIGGER llm_run_day_counts_delete",
    "DROP TRIGGER llm_run_day_counts_update",
    "DROP TABLE llm_run_day_counts",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// SQLite too: the backfill and the triggers land together or not at all.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match backend(manager)? {
            DbBackend::Postgres => POSTGRES_UP,
            _ => SQLITE_UP,
        };
        for sql in statements {
            exec(manager, sql).await?;
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
