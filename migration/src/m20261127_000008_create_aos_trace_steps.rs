//! `aos_trace_steps` (DOMAIN 1.6). Append-only: an UPDATE may only archive a
//! step (`archived_at` NULL -> value, nothing else changes); a DELETE is only
//! accepted once the parent trace row is gone, i.e. from the ON DELETE CASCADE
//! of an (archived, then deleted) trace.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{
    backend, create_indexes, drop_tables, exec, in_set, index, unchanged, unique_index,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "aos_trace_steps";
pub const LEVELS: &[&str] = &["INFO", "WARN", "ERROR"];
pub const REPLAY_BEHAVIORS: &[&str] = &["execute", "skip", "check"];
pub const SOURCES: &[&str] = &["engine", "external", "replay"];

/// Every column of `aos_trace_steps`, in table order.
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

fn archival_ok(b: DbBackend) -> String {
    let others: Vec<&str> = STEP_COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "archived_at")
        .collect();
    format!(
        "(OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL\n      AND {})",
        unchanged(b, &others)
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let b = backend(manager)?;
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("trace_id", 64))
                    .col(integer("step_index"))
                    .col(string_len("skill_id", 128))
                    .col(string_len("skill_name", 128))
                    .col(json_binary("params"))
                    .col(string_len("status", 32))
                    .col(string_len("outcome_category", 64))
                    .col(string_len_null("outcome_code", 64))
                    .col(json_binary_null("outcome_data"))
                    .col(double("cost_cents").default(0.0))
                    .col(double("duration_ms").default(0.0))
                    .col(integer("retry_count").default(0))
                    .col(string_len_null("input_hash", 64))
                    .col(string_len_null("output_hash", 64))
                    .col(string_len_null("rng_state_before", 128))
                    .col(string_len_null("idempotency_key", 128))
                    .col(
                        string_len("replay_behavior", 16)
                            .check(in_set("replay_behavior", REPLAY_BEHAVIORS)),
                    )
                    .col(timestamp_with_time_zone("timestamp"))
                    .col(
                        string_len("source", 50)
                            .default("engine")
                            .check(in_set("source", SOURCES)),
                    )
                    .col(
                        string_len("level", 16)
                            .default("INFO")
                            .check(in_set("level", LEVELS)),
                    )
                    .col(boolean("is_synthetic").default(false))
                    .col(string_len_null("synthetic_scenario_id", 64))
                    .col(timestamp_with_time_zone_null("archived_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_aos_trace_steps_trace")
                            .from(TABLE, "trace_id")
                            .to("aos_traces", "trace_id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![
                unique_index(
                    "uq_aos_trace_steps_trace_step",
                    TABLE,
                    &["trace_id", "step_index"],
                ),
                index(
                    "idx_aos_trace_steps_trace_time",
                    TABLE,
                    &["trace_id", "timestamp"],
                ),
                index(
                    "idx_aos_trace_steps_idempotency",
                    TABLE,
                    &["idempotency_key"],
                ),
                index(
                    "idx_aos_trace_steps_trace_level",
                    TABLE,
                    &["trace_id", "level"],
                ),
            ],
        )
        .await?;

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
                        archival = archival_ok(b),
                    ),
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
                         \x20   IF NOT EXISTS (SELECT 1 FROM aos_traces t WHERE t.trace_id = OLD.trace_id) THEN\n\
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
                    "CREATE TRIGGER trg_aos_trace_steps_prevent_delete BEFORE DELETE ON aos_trace_steps \
                     FOR EACH ROW EXECUTE FUNCTION aos_trace_steps_prevent_delete()",
                )
                .await
            }
            _ => {
                exec(
                    manager,
                    &format!(
                        "CREATE TRIGGER trg_aos_trace_steps_prevent_update BEFORE UPDATE ON aos_trace_steps\n\
                         WHEN NOT {archival}\n\
                         BEGIN\n\
                         \x20   SELECT RAISE(ABORT, '{MSG_UPDATE}');\n\
                         END",
                        archival = archival_ok(b),
                    ),
                )
                .await?;
                exec(
                    manager,
                    &format!(
                        "CREATE TRIGGER trg_aos_trace_steps_prevent_delete BEFORE DELETE ON aos_trace_steps\n\
                         WHEN EXISTS (SELECT 1 FROM aos_traces t WHERE t.trace_id = OLD.trace_id)\n\
                         BEGIN\n\
                         \x20   SELECT RAISE(ABORT, '{MSG_DELETE}');\n\
                         END"
                    ),
                )
                .await
            }
        }
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
