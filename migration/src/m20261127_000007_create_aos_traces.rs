//! `aos_traces` (docs/domain.md §5.1, with docs/decisions.md D14, D15, D32)
//! and `aos_traces_archive` (§5.6, kept column-for-column in sync, D16).
//!
//! Immutability of `aos_traces` (trigger, messages prefixed
//! `S6_IMMUTABILITY_VIOLATION:`): an UPDATE is accepted only if it is
//! (a) a one-way archival (`archived_at` NULL -> value, nothing else changes), or
//! (b) a completion: `status` goes from `running` to completed / failed / aborted,
//!     `archived_at` unchanged, `root_hash` and `checksum` may only be set from
//!     NULL, and every other column except `completed_at` and `metadata` is
//!     unchanged (violation_* and replay_* included).
//! A DELETE is accepted only if the trace_id is already in `aos_traces_archive` (since
//! `m20261204_000000_scope_trace_ids_by_tenant`: the same tenant's trace_id).

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{
    backend, create_indexes, drop_tables, exec, in_set, index, key_match, quoted_list, same,
    unchanged,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(crate) const TABLE: &str = "aos_traces";
pub(crate) const ARCHIVE: &str = "aos_traces_archive";
/// How this migration identifies a trace: by `trace_id` alone (global trace ids).
const KEY: &[&str] = &["trace_id"];
pub const STATUSES: &[&str] = &["running", "completed", "failed", "aborted"];
pub const TERMINAL_STATUSES: &[&str] = &["completed", "failed", "aborted"];
pub const REPLAY_MODES: &[&str] = &["FULL", "TRACE_ONLY"];

/// Every column of `aos_traces`, in table order (the archive has the same ones
/// plus `moved_at`).
pub const TRACE_COLUMNS: &[&str] = &[
    "id",
    "trace_id",
    "run_id",
    "correlation_id",
    "tenant_id",
    "agent_id",
    "plan_id",
    "seed",
    "frozen_timestamp",
    "root_hash",
    "plan_hash",
    "schema_version",
    "plan",
    "trace",
    "metadata",
    "status",
    "started_at",
    "completed_at",
    "created_at",
    "stored_by",
    "checksum",
    "incident_id",
    "is_synthetic",
    "synthetic_scenario_id",
    "archived_at",
    "violation_step_index",
    "violation_timestamp",
    "violation_policy_id",
    "violation_reason",
    "replay_mode",
    "replay_attempt_id",
    "replay_artifact_version",
    "trace_completeness_status",
];

/// The columns of `aos_traces` as a set of trigger rules see them: every column, and those a
/// completion may set once (from NULL). A completion may also change `status`, `completed_at`
/// and `metadata`; every other column must stay as it was.
pub(crate) struct TraceShape<'a> {
    pub columns: &'a [&'a str],
    pub set_once: &'a [&'a str],
}

/// The shape this migration creates.
pub(crate) const SHAPE: TraceShape<'static> = TraceShape {
    columns: TRACE_COLUMNS,
    set_once: &["root_hash", "checksum"],
};

/// Columns a completion may change freely.
const COMPLETION_FREE: &[&str] = &["status", "completed_at", "metadata"];

/// Column definitions shared by `aos_traces` and `aos_traces_archive`.
/// `archive` selects the key: the live table is keyed by `id` with a unique
/// `trace_id`; the archive is keyed by `trace_id` and carries no CHECKs.
/// `m20261204_000000_scope_trace_ids_by_tenant` rebuilds both tables from these
/// definitions with the trace_id key replaced by (tenant_id, trace_id).
pub(crate) fn trace_columns(archive: bool) -> Vec<ColumnDef> {
    let mut id = string_len("id", 64);
    let mut trace_id = string_len("trace_id", 64);
    let mut status = string_len("status", 32);
    let mut replay_mode = string_len_null("replay_mode", 20);
    if archive {
        trace_id.primary_key();
    } else {
        id.primary_key();
        trace_id.unique_key();
        status.check(in_set("status", STATUSES));
        replay_mode.check(in_set("replay_mode", REPLAY_MODES));
    }
    vec![
        id,
        trace_id,
        string_len("run_id", 64),
        string_len("correlation_id", 64),
        string_len("tenant_id", 64),
        string_len_null("agent_id", 64),
        string_len_null("plan_id", 64),
        big_integer_null("seed"),
        string_len_null("frozen_timestamp", 64),
        string_len_null("root_hash", 64),
        string_len_null("plan_hash", 64),
        string_len("schema_version", 16),
        json_binary("plan"),
        json_binary("trace"),
        json_binary_null("metadata"),
        status,
        timestamp_with_time_zone("started_at"),
        timestamp_with_time_zone_null("completed_at"),
        timestamp_with_time_zone("created_at"),
        string_len_null("stored_by", 64),
        string_len_null("checksum", 64),
        string_len_null("incident_id", 100),
        boolean("is_synthetic").default(false).take(),
        string_len_null("synthetic_scenario_id", 64),
        timestamp_with_time_zone_null("archived_at"),
        integer_null("violation_step_index"),
        timestamp_with_time_zone_null("violation_timestamp"),
        string_len_null("violation_policy_id", 64),
        string_len_null("violation_reason", 512),
        replay_mode,
        string_len_null("replay_attempt_id", 64),
        string_len_null("replay_artifact_version", 64),
        string_len_null("trace_completeness_status", 30),
    ]
}

/// Boolean SQL: the UPDATE is an allowed one-way archival.
fn archival_ok(b: DbBackend, shape: &TraceShape<'_>) -> String {
    let others: Vec<&str> = shape
        .columns
        .iter()
        .copied()
        .filter(|c| *c != "archived_at")
        .collect();
    format!(
        "(OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL\n      AND {})",
        unchanged(b, &others)
    )
}

/// Boolean SQL: the UPDATE is an allowed running -> terminal completion.
fn completion_ok(b: DbBackend, shape: &TraceShape<'_>) -> String {
    let others: Vec<&str> = shape
        .columns
        .iter()
        .copied()
        .filter(|c| !COMPLETION_FREE.contains(c) && !shape.set_once.contains(c))
        .collect();
    let set_once: String = shape
        .set_once
        .iter()
        .map(|c| format!("\n      AND (OLD.{c} IS NULL OR {})", same(b, c)))
        .collect();
    format!(
        "(OLD.status = 'running' AND NEW.status IN ({terminal}){set_once}\n      \
         AND {rest})",
        terminal = quoted_list(TERMINAL_STATUSES),
        rest = unchanged(b, &others),
    )
}

const MSG_ARCHIVED: &str =
    "S6_IMMUTABILITY_VIOLATION: aos_traces is immutable: UPDATE not allowed (trace is archived)";
const MSG_TERMINAL: &str = "S6_IMMUTABILITY_VIOLATION: aos_traces is immutable: UPDATE not allowed (trace is already in a terminal status; only one-way archival may change it)";
const MSG_OTHER: &str = "S6_IMMUTABILITY_VIOLATION: aos_traces is immutable: UPDATE not allowed (only one-way archival, or a running -> completed/failed/aborted completion changing status, completed_at, metadata and a NULL root_hash/checksum)";
const MSG_DELETE: &str = "S6_IMMUTABILITY_VIOLATION: aos_traces is immutable: DELETE not allowed (trace is not in aos_traces_archive)";

/// The indexes of `aos_traces`.
pub(crate) fn live_indexes() -> Vec<IndexCreateStatement> {
    let mut violation = index(
        "idx_aos_traces_violation",
        TABLE,
        &["tenant_id", "violation_step_index"],
    );
    violation.and_where(Expr::col("violation_step_index").is_not_null());
    let mut incident = index("idx_aos_traces_incident", TABLE, &["incident_id"]);
    incident.and_where(Expr::col("incident_id").is_not_null());
    vec![
        index(
            "idx_aos_traces_tenant_keyset",
            TABLE,
            &["tenant_id", "-created_at", "-id"],
        ),
        index("idx_aos_traces_tenant_run", TABLE, &["tenant_id", "run_id"]),
        index(
            "idx_aos_traces_tenant_root_hash",
            TABLE,
            &["tenant_id", "root_hash"],
        ),
        index(
            "idx_aos_traces_tenant_status",
            TABLE,
            &["tenant_id", "status"],
        ),
        index(
            "idx_aos_traces_replay_attempt",
            TABLE,
            &["replay_attempt_id"],
        ),
        violation,
        incident,
    ]
}

/// The indexes of `aos_traces_archive` (besides its key).
pub(crate) fn archive_indexes() -> Vec<IndexCreateStatement> {
    vec![index(
        "idx_aos_traces_archive_tenant_created",
        ARCHIVE,
        &["tenant_id", "created_at"],
    )]
}

/// Installs, or replaces, the immutability triggers of `aos_traces`. `key` names the columns
/// that find a trace's copy in `aos_traces_archive`: `trace_id` here, (tenant_id, trace_id)
/// once trace ids are unique per tenant (`m20261204_000000_scope_trace_ids_by_tenant`).
pub(crate) async fn install_triggers(
    manager: &SchemaManager<'_>,
    key: &[&str],
) -> Result<(), DbErr> {
    install_shaped_triggers(manager, key, &SHAPE).await
}

/// [`install_triggers`] for a later shape of the table (more columns, more set-once columns).
pub(crate) async fn install_shaped_triggers(
    manager: &SchemaManager<'_>,
    key: &[&str],
    shape: &TraceShape<'_>,
) -> Result<(), DbErr> {
    install_update_trigger(manager, shape).await?;
    install_delete_trigger(manager, key).await
}

/// Installs, or replaces, the UPDATE trigger alone: what a new column changes.
pub(crate) async fn install_update_trigger(
    manager: &SchemaManager<'_>,
    shape: &TraceShape<'_>,
) -> Result<(), DbErr> {
    let b = backend(manager)?;
    match b {
        DbBackend::Postgres => {
            exec(
                manager,
                &format!(
                    "CREATE OR REPLACE FUNCTION aos_traces_prevent_update() RETURNS trigger \
                     LANGUAGE plpgsql AS $$\n\
                     BEGIN\n\
                     \x20   IF {archival} THEN\n\
                     \x20       RETURN NEW;\n\
                     \x20   END IF;\n\
                     \x20   IF {completion} THEN\n\
                     \x20       RETURN NEW;\n\
                     \x20   END IF;\n\
                     \x20   IF OLD.archived_at IS NOT NULL THEN\n\
                     \x20       RAISE EXCEPTION '{MSG_ARCHIVED} [trace_id=%]', OLD.trace_id;\n\
                     \x20   ELSIF OLD.status <> 'running' THEN\n\
                     \x20       RAISE EXCEPTION '{MSG_TERMINAL} [trace_id=%, status=%]', OLD.trace_id, OLD.status;\n\
                     \x20   END IF;\n\
                     \x20   RAISE EXCEPTION '{MSG_OTHER} [trace_id=%]', OLD.trace_id;\n\
                     END;\n\
                     $$",
                    archival = archival_ok(b, shape),
                    completion = completion_ok(b, shape),
                ),
            )
            .await?;
            exec(
                manager,
                "DROP TRIGGER IF EXISTS trg_aos_traces_prevent_update ON aos_traces",
            )
            .await?;
            exec(
                manager,
                "CREATE TRIGGER trg_aos_traces_prevent_update BEFORE UPDATE ON aos_traces \
                 FOR EACH ROW EXECUTE FUNCTION aos_traces_prevent_update()",
            )
            .await
        }
        _ => {
            exec(
                manager,
                "DROP TRIGGER IF EXISTS trg_aos_traces_prevent_update",
            )
            .await?;
            exec(manager, &sqlite_update_trigger(shape)).await
        }
    }
}

/// The SQLite `CREATE TRIGGER` of the UPDATE rule for a shape.
pub(crate) fn sqlite_update_trigger(shape: &TraceShape<'_>) -> String {
    let b = DbBackend::Sqlite;
    format!(
                    "CREATE TRIGGER trg_aos_traces_prevent_update BEFORE UPDATE ON aos_traces\n\
                     WHEN NOT ({archival}\n    OR {completion})\n\
                     BEGIN\n\
                     \x20   SELECT CASE\n\
                     \x20       WHEN OLD.archived_at IS NOT NULL THEN RAISE(ABORT, '{MSG_ARCHIVED}')\n\
                     \x20       WHEN OLD.status <> 'running' THEN RAISE(ABORT, '{MSG_TERMINAL}')\n\
                     \x20       ELSE RAISE(ABORT, '{MSG_OTHER}')\n\
                     \x20   END;\n\
                     END",
                    archival = archival_ok(b, shape),
                    completion = completion_ok(b, shape),
                )
}

/// Installs, or replaces, the DELETE trigger: a trace may go only once its archived copy exists.
async fn install_delete_trigger(manager: &SchemaManager<'_>, key: &[&str]) -> Result<(), DbErr> {
    let archived = format!(
        "EXISTS (SELECT 1 FROM aos_traces_archive a WHERE {})",
        key_match("a", key)
    );
    match backend(manager)? {
        DbBackend::Postgres => {
            exec(
                manager,
                &format!(
                    "CREATE OR REPLACE FUNCTION aos_traces_prevent_delete() RETURNS trigger \
                     LANGUAGE plpgsql AS $$\n\
                     BEGIN\n\
                     \x20   IF {archived} THEN\n\
                     \x20       RETURN OLD;\n\
                     \x20   END IF;\n\
                     \x20   RAISE EXCEPTION '{MSG_DELETE} [trace_id=%]', OLD.trace_id;\n\
                     END;\n\
                     $$"
                ),
            )
            .await?;
            exec(
                manager,
                "DROP TRIGGER IF EXISTS trg_aos_traces_prevent_delete ON aos_traces",
            )
            .await?;
            exec(
                manager,
                "CREATE TRIGGER trg_aos_traces_prevent_delete BEFORE DELETE ON aos_traces \
                 FOR EACH ROW EXECUTE FUNCTION aos_traces_prevent_delete()",
            )
            .await
        }
        _ => {
            exec(
                manager,
                "DROP TRIGGER IF EXISTS trg_aos_traces_prevent_delete",
            )
            .await?;
            exec(
                manager,
                &format!(
                    "CREATE TRIGGER trg_aos_traces_prevent_delete BEFORE DELETE ON aos_traces\n\
                     WHEN NOT {archived}\n\
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
        backend(manager)?;

        let mut live = Table::create();
        live.table(TABLE);
        for c in trace_columns(false) {
            live.col(c);
        }
        manager.create_table(live).await?;

        let mut archive = Table::create();
        archive.table(ARCHIVE);
        for c in trace_columns(true) {
            archive.col(c);
        }
        archive.col(timestamp_with_time_zone("moved_at"));
        manager.create_table(archive).await?;

        create_indexes(manager, live_indexes()).await?;
        create_indexes(manager, archive_indexes()).await?;
        install_triggers(manager, KEY).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => {
                exec(
                    manager,
                    "DROP TRIGGER IF EXISTS trg_aos_traces_prevent_update ON aos_traces",
                )
                .await?;
                exec(
                    manager,
                    "DROP TRIGGER IF EXISTS trg_aos_traces_prevent_delete ON aos_traces",
                )
                .await?;
                exec(
                    manager,
                    "DROP FUNCTION IF EXISTS aos_traces_prevent_update()",
                )
                .await?;
                exec(
                    manager,
                    "DROP FUNCTION IF EXISTS aos_traces_prevent_delete()",
                )
                .await?;
            }
            _ => {
                exec(
                    manager,
                    "DROP TRIGGER IF EXISTS trg_aos_traces_prevent_update",
                )
                .await?;
                exec(
                    manager,
                    "DROP TRIGGER IF EXISTS trg_aos_traces_prevent_delete",
                )
                .await?;
            }
        }
        drop_tables(manager, &[ARCHIVE, TABLE]).await
    }
}
