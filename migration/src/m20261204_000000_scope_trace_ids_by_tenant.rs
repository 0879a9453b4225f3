//! Trace ids unique per tenant instead of globally. A global `UNIQUE (trace_id)` let a tenant
//! learn another tenant's trace ids (starting one that is taken was refused); now another
//! tenant's trace id behaves like an unused one.
//!
//! - `aos_traces`: `UNIQUE (trace_id)` becomes the unique index `uq_aos_traces_tenant_trace` on
//!   (tenant_id, trace_id).
//! - `aos_traces_archive`: primary key (tenant_id, trace_id) instead of trace_id.
//! - `aos_trace_steps`: a `tenant_id` column, appended last and filled from the step's trace; the
//!   step key (tenant_id, trace_id, step_index), the per-trace indexes lead with (tenant_id,
//!   trace_id), and the foreign key (tenant_id, trace_id) → aos_traces cascades deletes.
//! - Triggers: a step's UPDATE must also keep `tenant_id`; a step's DELETE looks for its parent,
//!   and a trace's DELETE for its archived copy, on (tenant_id, trace_id).
//!
//! PostgreSQL alters in place; the backfill UPDATE runs with the step UPDATE trigger disabled
//! (filling the new column is not an archival). SQLite cannot drop an inline UNIQUE nor change a
//! primary key, so the three tables are rebuilt the documented way (new table, copy, drop,
//! rename). With foreign keys on, dropping a parent table deletes its children through the
//! cascade, so the old `aos_traces` is first renamed away (SQLite rewrites the old steps' foreign
//! key to follow it) and dropped only after the old steps are gone. `DROP TABLE` fires no
//! trigger.
//!
//! `down` restores global trace ids; it refuses (and changes nothing) while a trace id is used
//! by more than one tenant, live or archived: those traces cannot be told apart under a global
//! key without dropping or renaming one, which a down migration must not do silently.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_len;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::common::{backend, create_indexes, exec, unique_index};
use crate::m20261127_000007_create_aos_traces::{
    self as traces, archive_indexes, live_indexes, trace_columns, TRACE_COLUMNS,
};
use crate::m20261127_000008_create_aos_trace_steps::{
    self as steps, step_columns, step_indexes, trace_foreign_key, STEP_COLUMNS,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TRACES: &str = traces::TABLE;
const ARCHIVE: &str = traces::ARCHIVE;

/// A trace's key before and after this migration.
const GLOBAL_KEY: &[&str] = &["trace_id"];
const TENANT_KEY: &[&str] = &["tenant_id", "trace_id"];

/// The unique index that replaces `UNIQUE (trace_id)` on `aos_traces`.
const TRACE_UNIQUE: &str = "uq_aos_traces_tenant_trace";

/// The step indexes keyed by the trace (all but the idempotency index), for PostgreSQL, which
/// re-keys those in place.
fn per_trace_step_indexes(key: &[&'static str]) -> Vec<IndexCreateStatement> {
    step_indexes(key)
        .into_iter()
        .filter(|i| i.get_index_spec().get_name() != Some("idx_aos_trace_steps_idempotency"))
        .collect()
}

/// The step columns after this migration: the original ones, then `tenant_id`.
fn scoped_step_columns() -> Vec<&'static str> {
    STEP_COLUMNS.iter().copied().chain(["tenant_id"]).collect()
}

fn key(scoped: bool) -> &'static [&'static str] {
    if scoped {
        TENANT_KEY
    } else {
        GLOBAL_KEY
    }
}

fn quoted(cols: &[&str]) -> String {
    cols.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Installs the immutability triggers of both tables for the given shape.
async fn install_triggers(manager: &SchemaManager<'_>, scoped: bool) -> Result<(), DbErr> {
    traces::install_triggers(manager, key(scoped)).await?;
    if scoped {
        steps::install_triggers(manager, &scoped_step_columns(), TENANT_KEY).await
    } else {
        steps::install_triggers(manager, STEP_COLUMNS, GLOBAL_KEY).await
    }
}

/// Fails while a trace id is used by more than one tenant in `table` (before `down`).
async fn refuse_shared_trace_ids(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT trace_id, COUNT(*) AS tenants FROM {table} \
                 GROUP BY trace_id HAVING COUNT(*) > 1 ORDER BY trace_id LIMIT 1"
            ),
        ))
        .await?;
    match row {
        None => Ok(()),
        Some(row) => {
            let trace_id: String = row.try_get("", "trace_id")?;
            let tenants: i64 = row.try_get("", "tenants")?;
            Err(DbErr::Migration(format!(
                "cannot restore global trace ids: trace id {trace_id:?} is used by {tenants} \
                 tenants in {table}; a global key would have to drop or rename all but one \
                 of them (nothing was changed)"
            )))
        }
    }
}

/// Lifts the server's per-statement timeout for the rest of this migration's transaction: the
/// backfill and the foreign key validation read or write every step (about 100 s for 2 million
/// steps on a 2-core machine), far longer than a request's statement may take.
async fn no_statement_timeout(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    exec(manager, "SET LOCAL statement_timeout = 0").await
}

async fn postgres_up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    no_statement_timeout(manager).await?;
    // The per-trace step indexes and the foreign key go first: the backfill then maintains
    // only the primary key and the idempotency index.
    exec(
        manager,
        "ALTER TABLE aos_trace_steps DROP CONSTRAINT fk_aos_trace_steps_trace",
    )
    .await?;
    exec(
        manager,
        "DROP INDEX uq_aos_trace_steps_trace_step, idx_aos_trace_steps_trace_time, \
         idx_aos_trace_steps_trace_level",
    )
    .await?;
    exec(
        manager,
        "ALTER TABLE aos_trace_steps ADD COLUMN tenant_id varchar(64)",
    )
    .await?;
    exec(
        manager,
        "ALTER TABLE aos_trace_steps DISABLE TRIGGER trg_aos_trace_steps_prevent_update",
    )
    .await?;
    exec(
        manager,
        "UPDATE aos_trace_steps s SET tenant_id = t.tenant_id \
         FROM aos_traces t WHERE t.trace_id = s.trace_id",
    )
    .await?;
    exec(
        manager,
        "ALTER TABLE aos_trace_steps ENABLE TRIGGER trg_aos_trace_steps_prevent_update",
    )
    .await?;
    // Every step had a parent (the old foreign key), so none is left NULL.
    exec(
        manager,
        "ALTER TABLE aos_trace_steps ALTER COLUMN tenant_id SET NOT NULL",
    )
    .await?;
    exec(
        manager,
        "ALTER TABLE aos_traces DROP CONSTRAINT aos_traces_trace_id_key",
    )
    .await?;
    manager
        .create_index(unique_index(TRACE_UNIQUE, TRACES, TENANT_KEY))
        .await?;
    manager
        .create_foreign_key(trace_foreign_key(TENANT_KEY))
        .await?;
    create_indexes(manager, per_trace_step_indexes(TENANT_KEY)).await?;
    exec(
        manager,
        "ALTER TABLE aos_traces_archive DROP CONSTRAINT aos_traces_archive_pkey, \
         ADD CONSTRAINT aos_traces_archive_pkey PRIMARY KEY (tenant_id, trace_id)",
    )
    .await?;
    install_triggers(manager, true).await
}

async fn postgres_down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    no_statement_timeout(manager).await?;
    refuse_shared_trace_ids(manager, TRACES).await?;
    refuse_shared_trace_ids(manager, ARCHIVE).await?;
    // The old step UPDATE trigger does not know `tenant_id`: install it before dropping it.
    install_triggers(manager, false).await?;
    exec(
        manager,
        "ALTER TABLE aos_trace_steps DROP CONSTRAINT fk_aos_trace_steps_trace",
    )
    .await?;
    exec(
        manager,
        "DROP INDEX uq_aos_trace_steps_trace_step, idx_aos_trace_steps_trace_time, \
         idx_aos_trace_steps_trace_level",
    )
    .await?;
    exec(manager, &format!("DROP INDEX {TRACE_UNIQUE}")).await?;
    exec(
        manager,
        "ALTER TABLE aos_traces ADD CONSTRAINT aos_traces_trace_id_key UNIQUE (trace_id)",
    )
    .await?;
    manager
        .create_foreign_key(trace_foreign_key(GLOBAL_KEY))
        .await?;
    create_indexes(manager, per_trace_step_indexes(GLOBAL_KEY)).await?;
    exec(manager, "ALTER TABLE aos_trace_steps DROP COLUMN tenant_id").await?;
    exec(
        manager,
        "ALTER TABLE aos_traces_archive DROP CONSTRAINT aos_traces_archive_pkey, \
         ADD CONSTRAINT aos_traces_archive_pkey PRIMARY KEY (trace_id)",
    )
    .await
}

/// `columns` with the `trace_id` definition replaced by a plain NOT NULL one (no UNIQUE, no
/// PRIMARY KEY): the key moves to a table-level constraint or index.
fn without_trace_id_key(columns: Vec<ColumnDef>) -> Vec<ColumnDef> {
    columns
        .into_iter()
        .map(|c| {
            if c.get_column_name() == "trace_id" {
                string_len("trace_id", 64)
            } else {
                c
            }
        })
        .collect()
}

/// `CREATE TABLE name` of `aos_traces` (`archive == false`) or `aos_traces_archive` in the
/// shape before (`scoped == false`) or after this migration.
fn trace_table(name: &str, archive: bool, scoped: bool) -> TableCreateStatement {
    let columns = if scoped {
        without_trace_id_key(trace_columns(archive))
    } else {
        trace_columns(archive)
    };
    let mut table = Table::create();
    table.table(Alias::new(name));
    for c in columns {
        table.col(c);
    }
    if archive {
        table.col(sea_orm_migration::schema::timestamp_with_time_zone(
            "moved_at",
        ));
        if scoped {
            table.primary_key(Index::create().col("tenant_id").col("trace_id"));
        }
    }
    table
}

/// `CREATE TABLE name` of `aos_trace_steps` in either shape.
fn step_table(name: &str, scoped: bool) -> TableCreateStatement {
    let mut table = Table::create();
    table.table(Alias::new(name));
    for c in step_columns() {
        table.col(c);
    }
    if scoped {
        table.col(string_len("tenant_id", 64));
    }
    table.foreign_key(&mut trace_foreign_key(key(scoped)));
    table
}

/// Rebuilds the three tables into the shape `scoped` selects, keeping every row; the caller
/// runs it in one transaction.
async fn sqlite_rebuild(manager: &SchemaManager<'_>, scoped: bool) -> Result<(), DbErr> {
    let trace_cols = quoted(TRACE_COLUMNS);
    let archive_cols = format!("{trace_cols}, \"moved_at\"");

    // Traces: rename the old table away first (the old steps' foreign key follows it).
    exec(manager, "ALTER TABLE aos_traces RENAME TO aos_traces_old").await?;
    manager
        .create_table(trace_table(TRACES, false, scoped))
        .await?;
    exec(
        manager,
        &format!("INSERT INTO aos_traces ({trace_cols}) SELECT {trace_cols} FROM aos_traces_old"),
    )
    .await?;
    if scoped {
        // The new steps' foreign key needs its parent key indexed before they are copied.
        manager
            .create_index(unique_index(TRACE_UNIQUE, TRACES, TENANT_KEY))
            .await?;
    }

    // Steps: a new table referencing the new `aos_traces`, filled from the old one.
    manager
        .create_table(step_table("aos_trace_steps_new", scoped))
        .await?;
    let step_cols = quoted(STEP_COLUMNS);
    if scoped {
        // LEFT JOIN: a step without a trace would fail the NOT NULL instead of vanishing.
        let selected = STEP_COLUMNS
            .iter()
            .map(|c| format!("s.\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        exec(
            manager,
            &format!(
                "INSERT INTO aos_trace_steps_new ({step_cols}, \"tenant_id\") \
                 SELECT {selected}, t.\"tenant_id\" FROM aos_trace_steps s \
                 LEFT JOIN aos_traces_old t ON t.\"trace_id\" = s.\"trace_id\""
            ),
        )
        .await?;
    } else {
        exec(
            manager,
            &format!(
                "INSERT INTO aos_trace_steps_new ({step_cols}) \
                 SELECT {step_cols} FROM aos_trace_steps"
            ),
        )
        .await?;
    }
    // Children first: once the old steps are gone nothing references the old traces, so
    // dropping them cascades nowhere.
    exec(manager, "DROP TABLE aos_trace_steps").await?;
    exec(manager, "DROP TABLE aos_traces_old").await?;
    exec(
        manager,
        "ALTER TABLE aos_trace_steps_new RENAME TO aos_trace_steps",
    )
    .await?;

    // Archive: no foreign keys either way.
    exec(
        manager,
        "ALTER TABLE aos_traces_archive RENAME TO aos_traces_archive_old",
    )
    .await?;
    manager
        .create_table(trace_table(ARCHIVE, true, scoped))
        .await?;
    exec(
        manager,
        &format!(
            "INSERT INTO aos_traces_archive ({archive_cols}) \
             SELECT {archive_cols} FROM aos_traces_archive_old"
        ),
    )
    .await?;
    exec(manager, "DROP TABLE aos_traces_archive_old").await?;

    // The dropped tables took their indexes and triggers along.
    create_indexes(manager, live_indexes()).await?;
    create_indexes(manager, archive_indexes()).await?;
    create_indexes(manager, step_indexes(key(scoped))).await?;
    install_triggers(manager, scoped).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on SQLite too: the rebuild must run on one connection (another pooled
    /// connection's cached schema would still hold the dropped tables) and must not be left
    /// half done.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => postgres_up(manager).await,
            _ => sqlite_rebuild(manager, true).await,
        }
    }

    /// Refuses while a trace id is used by more than one tenant (see the module doc).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => postgres_down(manager).await,
            _ => {
                refuse_shared_trace_ids(manager, TRACES).await?;
                refuse_shared_trace_ids(manager, ARCHIVE).await?;
                sqlite_rebuild(manager, false).await
            }
        }
    }
}
