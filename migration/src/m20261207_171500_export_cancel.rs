//! Cancelling exports, and telling retryable job errors from final ones (issue 15).
//!
//! - `export_jobs.state` gains `cancelled`, `export_job_events.event_type` gains
//!   `job_cancelled`, `log_exports.status` gains `cancelled`: a cancelled export is terminal,
//!   and its job row, its job history and its lifecycle rows all say so.
//! - `export_jobs.last_error_retryable` (nullable boolean): whether the last failed attempt's
//!   error was one a retry can cure (I/O, the database) or not (the subject is gone, the request
//!   is invalid), so the job fails at once. NULL while no attempt failed.
//!
//! PostgreSQL alters the CHECK constraints in place. SQLite cannot alter a CHECK, so each table
//! is rebuilt the documented way (create the new table, copy, drop, rename) with its indexes and
//! immutability triggers recreated from their stored SQL; `DROP TABLE` fires no trigger and
//! nothing references these tables. Existing rows are untouched.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::common::{backend, exec, quoted_list};
use crate::m20261127_000006_create_log_exports::STATUSES;
use crate::m20261128_140000_create_export_jobs::{EVENT_TYPES, STATES};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, column, values before this migration, the value it adds)
const WIDENED: [(&str, &str, &[&str], &str); 3] = [
    ("export_jobs", "state", STATES, "cancelled"),
    (
        "export_job_events",
        "event_type",
        EVENT_TYPES,
        "job_cancelled",
    ),
    ("log_exports", "status", STATUSES, "cancelled"),
];

fn values(before: &[&'static str], extra: &'static str, widen: bool) -> Vec<&'static str> {
    let mut all = before.to_vec();
    if widen {
        all.push(extra);
    }
    all
}

async fn postgres(
    manager: &SchemaManager<'_>,
    table: &str,
    col: &str,
    allowed: &[&str],
) -> Result<(), DbErr> {
    // The inline column CHECK got a generated name; find it by the column it constrains
    // (`((col)::text = ANY (...))` in PostgreSQL's rendering).
    exec(
        manager,
        &format!(
            "DO $$ DECLARE c record; BEGIN \
               FOR c IN SELECT conname FROM pg_constraint \
                 WHERE conrelid = '{table}'::regclass AND contype = 'c' \
                   AND pg_get_constraintdef(oid) LIKE '%(({col})::text%' \
               LOOP EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', c.conname); \
               END LOOP; END $$"
        ),
    )
    .await?;
    exec(
        manager,
        &format!(
            "ALTER TABLE {table} ADD CONSTRAINT ck_{table}_{col} CHECK ({col} IN ({}))",
            quoted_list(allowed)
        ),
    )
    .await
}

async fn sqlite(
    manager: &SchemaManager<'_>,
    table: &str,
    col: &str,
    from: &[&str],
    to: &[&str],
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("SELECT type, sql FROM sqlite_master WHERE tbl_name = '{table}' AND sql IS NOT NULL"),
        ))
        .await?;
    let mut table_sql = None;
    let mut dependents = Vec::new();
    for row in rows {
        let kind: String = row.try_get("", "type")?;
        let sql: String = row.try_get("", "sql")?;
        if kind == "table" {
            table_sql = Some(sql);
        } else {
            dependents.push(sql);
        }
    }
    let table_sql = table_sql.ok_or_else(|| DbErr::Migration(format!("{table} is missing")))?;
    let old = format!("CHECK (\"{col}\" IN ({}))", quoted_list(from));
    if !table_sql.contains(&old) {
        return Err(DbErr::Migration(format!(
            "{table}: the {col} CHECK is not the expected one; refusing to rebuild"
        )));
    }
    let new = format!("CHECK (\"{col}\" IN ({}))", quoted_list(to));
    let rebuilt = table_sql.replacen(&old, &new, 1).replacen(
        &format!("CREATE TABLE \"{table}\""),
        &format!("CREATE TABLE \"{table}_rebuilt\""),
        1,
    );
    exec(manager, &rebuilt).await?;
    exec(
        manager,
        &format!("INSERT INTO \"{table}_rebuilt\" SELECT * FROM \"{table}\""),
    )
    .await?;
    exec(manager, &format!("DROP TABLE \"{table}\"")).await?;
    exec(
        manager,
        &format!("ALTER TABLE \"{table}_rebuilt\" RENAME TO \"{table}\""),
    )
    .await?;
    for sql in dependents {
        exec(manager, &sql).await?;
    }
    Ok(())
}

async fn apply(manager: &SchemaManager<'_>, widen: bool) -> Result<(), DbErr> {
    let postgres_db = backend(manager)? == DbBackend::Postgres;
    for (table, col, before, extra) in WIDENED {
        let now = values(before, extra, !widen);
        let next = values(before, extra, widen);
        if postgres_db {
            postgres(manager, table, col, &next).await?;
        } else {
            sqlite(manager, table, col, &now, &next).await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on SQLite too: each rebuild must run on one connection and must not be
    /// left half done.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        apply(manager, true).await?;
        manager
            .alter_table(
                Table::alter()
                    .table("export_jobs")
                    .add_column(ColumnDef::new("last_error_retryable").boolean().null())
                    .to_owned(),
            )
            .await
    }

    /// Fails (by the CHECKs) while cancelled exports exist: their `log_exports` rows and job
    /// events cannot be dropped from the append-only history.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("export_jobs")
                    .drop_column("last_error_retryable")
                    .to_owned(),
            )
            .await?;
        apply(manager, false).await
    }
}
