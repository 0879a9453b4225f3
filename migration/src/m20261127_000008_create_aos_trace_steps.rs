//! `aos_trace_steps` (docs/domain.md §5.2). Append-only: an UPDATE may only archive a
//! step (`archived_at` NULL -> value, nothing else changes); a DELETE is only
//! accepted once the parent trace row is gone, i.e. from the ON DELETE CASCADE
//! of an (archived, then deleted) trace.
//!
//! `m20261204_000000_scope_trace_ids_by_tenant` adds `tenant_id` (trace ids become unique per
//! tenant) and re-keys the table with the helpers below.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{
    backend, create_indexes, drop_tables, exec, in_set, index, key_match, unchanged, unique_index,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const TABLE: &str = "aos_trace_steps";
pub const LEVELS: &[&str] = &["INFO", "WARN", "ERROR"];
pub const REPLAY_BEHAVIORS: &[&str] = &["execute", "skip", "check"];
pub const SOURCES: &[&str] = &["engine", "external", "replay"];
/// How this migration identifies a step's trace: by `trace_id` alone (global trace ids).
const KEY: &[&str] = &["trace_id"];

/// Every column of `aos_trace_steps`, in table order, as this migration creates them
/// (`m20261204_000000_scope_trace_ids_by_tenant` appends `tenant_id`).
pub const STEP_COLUMNS: &[&str] = &[
    "id",
    "trace_id",
    "step_index",
    "skill_id",
    "skill_name",
    "params",
    "status",
    "outcome_category",
    "outcome_code",
    "outcome_data",
    "cost_cents",
    "duration_ms",
    "retry_count",
    "input_hash",
    "output_hash",
    "rng_state_before",
    "idempotency_key",
    "replay_behavior",
    "timestamp",
    "source",
    "level",
    "is_synthetic",
    "synthetic_scenario_id",
    "archived_at",
];

const MSG_UPDATE: &str = "S6_IMMUTABILITY_VIOLATION: aos_trace_steps is immutable: UPDATE not allowed (only one-way archival)";
const MSG_DELETE: &str = "S6_IMMUTABILITY_VIOLATION: aos_trace_steps is immutable: DELETE not allowed while the parent trace exists";

/// Boolean SQL: the UPDATE only archives the step; every column of `columns` but
/// `archived_at` is unchanged.
fn archival_ok(b: DbBackend, columns: &[&str]) -> String {
    let others: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|c| *c != "archived_at")
        .collect();
    format!(
        "(OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL\n      AND {})",
        unchanged(b, &others)
    )
}

/// The column definitions of [`STEP_COLUMNS`], in that order.
pub(crate) fn step_columns() -> Vec<ColumnDef> {
    vec![
        string_len("id", 64).primary_key().take(),
        string_len("trace_id", 64),
        integer("step_index"),
        string_len("skill_id", 128),
        string_len("skill_name", 128),
        json_binary("params"),
        string_len("status", 32),
        string_len("outcome_category", 64),
        string_len_null("outcome_code", 64),
        json_binary_null("outcome_data"),
        double("cost_cents").default(0.0).take(),
        double("duration_ms").default(0.0).take(),
        integer("retry_count").default(0).take(),
        string_len_null("input_hash", 64),
        string_len_null("output_hash", 64),
        string_len_null("rng_state_before", 128),
        string_len_null("idempotency_key", 128),
        string_len("replay_behavior", 16)
            .check(in_set("replay_behavior", REPLAY_BEHAVIORS))
            .take(),
        timestamp_with_time_zone("timestamp"),
        string_len("source", 50)
            .default("engine")
            .check(in_set("source", SOURCES))
            .take(),
        string_len("level", 16)
            .default("INFO")
            .check(in_set("level", LEVELS))
            .take(),
        boolean("is_synthetic").default(false).take(),
        string_len_null("synthetic_scenario_id", 64),
        timestamp_with_time_zone_null("archived_at"),
    ]
}

/// The foreign key from a step to its trace over `key`, cascading deletes.
pub(crate) fn trace_foreign_key(key: &[&'static str]) -> ForeignKeyCreateStatement {
    let mut fk = ForeignKey::create();
    fk.name("fk_aos_trace_steps_trace")
        .on_delete(ForeignKeyAction::Cascade);
    for c in key {
        fk.from_col(*c).to_col(*c);
    }
    fk.from_tbl(TABLE).to_tbl("aos_traces");
    fk
}

/// The step indexes; `key` (the trace's key) leads the per-trace ones.
pub(crate) fn step_indexes(key: &[&'static str]) -> Vec<IndexCreateStatement> {
    let with =
        |extra: &'static str| -> Vec<&'static str> { key.iter().copied().chain([extra]).collect() };
    vec![
        unique_index("uq_aos_trace_steps_trace_step", TABLE, &with("step_index")),
        index("idx_aos_trace_steps_trace_time", TABLE, &with("timestamp")),
        index(
            "idx_aos_trace_steps_idempotency",
            TABLE,
            &["idempotency_key"],
        ),
        index("idx_aos_trace_steps_trace_level", TABLE, &with("level")),
    ]
}

/// Installs, or replaces, the immutability triggers of `aos_trace_steps`: an UPDATE may only
/// archive (every column of `columns` but `archived_at` unchanged); a DELETE only once no
/// trace matches the step on `key`.
pub(crate) async fn install_triggers(
    manager: &SchemaManager<'_>,
    columns: &[&str],
    key: &[&str],
) -> Result<(), DbErr> {
    let b = backend(manager)?;
    let parent = format!(
        "EXISTS (SELECT 1 FROM aos_traces t WHERE {})",
        key_match("t", key)
    );
    match b {
        DbBackend::Postgres => {
            exec(
                manager,
                &format!(
                    "CREATE OR REPLACE FUNCTION aos_trace_steps_prevent_update() RETURNS trigger \
                     LANGUAGE plpgsql AS $$\n\
                     BEGIN\n\
                     \x20   IF {archival} THEN\n\
                     \x20       RETURN NEW;\n\
                     \x20   END IF;\n\
                     \x20   RAISE EXCEPTION '{MSG_UPDATE} [trace_id=%, step_index=%]', OLD.trace_id, OLD.step_index;\n\
                     END;\n\
                     $$",
                    archival = archival_ok(b, columns),
                ),
            )
            .await?;
            exec(
                manager,
                "DROP TRIGGER IF EXISTS trg_aos_trace_steps_prevent_update ON aos_trace_steps",
            )
            .await?;
            exec(
                manager,
                "CREATE TRIGGER trg_aos_trace_steps_prevent_update BEFORE UPDATE ON aos_trace_steps \
                 FOR EACH ROW EXECUTE FUNCTION aos_trace_steps_prevent_update()",
            )
            .await?;
            exec(
                manager,
                &format!(
                    "CREATE OR REPLACE FUNCTION aos_trace_steps_prevent_delete() RETURNS trigger \
                     LANGUAGE plpgsql AS $$\n\
                     BEGIN\n\
                     \x20   IF NOT {parent} THEN\n\
                     \x20       RETURN OLD;\n\
                     \x20   END IF;\n\
                     \x20   RAISE EXCEPTION '{MSG_DELETE} [trace_id=%, step_index=%]', OLD.trace_id, OLD.step_index;\n\
                     END;\n\
                     $$"
                ),
            )
            .await?;
            exec(
                manager,
                "DROP TRIGGER IF EXISTS trg_aos_trace_steps_prevent_delete ON aos_trace_steps",
            )
            .await?;
            exec(
                manager,
                "CREATE TRIGGER trg_aos_trace_steps_prevent_delete BEFORE DELETE ON aos_trace_steps \
                 FOR EACH ROW EXECUTE FUNCTION aos_trace_steps_prevent_delete()",
            )
            .await
        }
        _ => {
            exec(
                manager,
                "DROP TRIGGER IF EXISTS trg_aos_trace_steps_prevent_update",
            )
            .await?;
            exec(
                manager,
                &format!(
                    "CREATE TRIGGER trg_aos_trace_steps_prevent_update BEFORE UPDATE ON aos_trace_steps\n\
                     WHEN NOT {archival}\n\
                     BEGIN\n\
                     \x20   SELECT RAISE(ABORT, '{MSG_UPDATE}');\n\
                     END",
                    archival = archival_ok(b, columns),
                ),
            )
            .await?;
            exec(
                manager,
                "DROP TRIGGER IF EXISTS trg_aos_trace_steps_prevent_delete",
            )
            .await?;
            exec(
                manager,
                &format!(
                    "CREATE TRIGGER trg_aos_trace_steps_prevent_delete BEFORE DELETE ON aos_trace_steps\n\
                     WHEN {parent}\n\
                     BEGIN\n\
                     \x20   SELECT RAISE(ABORT, '{MSG_DELETE}');\n\
                     END"
                ),
            )
            .await
        }
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut table = Table::create();
        table.table(TABLE);
        for c in step_columns() {
            table.col(c);
        }
        table.foreign_key(&mut trace_foreign_key(KEY));
        manager.create_table(table).await?;
        create_indexes(manager, step_indexes(KEY)).await?;
        install_triggers(manager, STEP_COLUMNS, KEY).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => {
                exec(
                    manager,
                    "DROP TRIGGER IF EXISTS trg_aos_trace_steps_prevent_update ON aos_trace_steps",
                )
                .await?;
                exec(
                    manager,
                    "DROP TRIGGER IF EXISTS trg_aos_trace_steps_prevent_delete ON aos_trace_steps",
                )
                .await?;
                exec(
                    manager,
                    "DROP FUNCTION IF EXISTS aos_trace_steps_prevent_update()",
                )
                .await?;
                exec(
                    manager,
                    "DROP FUNCTION IF EXISTS aos_trace_steps_prevent_delete()",
                )
                .await?;
            }
            _ => {
                exec(
                    manager,
                    "DROP TRIGGER IF EXISTS trg_aos_trace_steps_prevent_update",
                )
                .await?;
                exec(
                    manager,
                    "DROP TRIGGER IF EXISTS trg_aos_trace_steps_prevent_delete",
                )
                .await?;
            }
        }
        drop_tables(manager, &[TABLE]).await
    }
}
