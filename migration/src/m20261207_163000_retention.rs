//! What the retention job (`logbook retention run`, docs/retention.md) needs:
//!
//! - `aos_trace_steps_archive`: the steps of archived traces, column for column the live
//!   `aos_trace_steps` as it stands (its original columns, then `tenant_id`), plus `moved_at`.
//!   Keyed by the step's `id` (unique in the live table too); no CHECKs, triggers or foreign key:
//!   it only ever receives copies of valid live rows and loses them with their trace.
//! - `retention_runs`: one row per completed run, with its counts per kind and its duration.
//! - `export_jobs.artefact_expired_ms`: when retention deleted the export's files; the download
//!   routes answer 410 from then on (the append-only `log_exports` history stays).

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, exec, index};
use crate::m20261127_000008_create_aos_trace_steps::step_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STEPS_ARCHIVE: &str = "aos_trace_steps_archive";
const RUNS: &str = "retention_runs";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut steps = Table::create();
        steps.table(STEPS_ARCHIVE);
        for c in step_columns() {
            steps.col(c);
        }
        steps
            .col(string_len("tenant_id", 64))
            .col(timestamp_with_time_zone("moved_at"));
        manager.create_table(steps).await?;
        manager
            .create_table(
                Table::create()
                    .table(RUNS)
                    .col(string_len("id", 64).primary_key())
                    .col(timestamp_with_time_zone("started_at"))
                    .col(big_integer("duration_ms"))
                    .col(big_integer("traces_archived"))
                    .col(big_integer("steps_archived"))
                    .col(big_integer("archived_traces_deleted"))
                    .col(big_integer("archived_steps_deleted"))
                    .col(big_integer("idempotency_keys_purged"))
                    .col(big_integer("replay_outputs_purged"))
                    .col(big_integer("export_artefacts_expired"))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            vec![
                // Finds an archived trace's steps when the trace leaves the archive.
                index(
                    "idx_aos_trace_steps_archive_trace",
                    STEPS_ARCHIVE,
                    &["tenant_id", "trace_id"],
                ),
                index("idx_retention_runs_started", RUNS, &["started_at"]),
            ],
        )
        .await?;
        exec(
            manager,
            "ALTER TABLE export_jobs ADD COLUMN artefact_expired_ms bigint",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            "ALTER TABLE export_jobs DROP COLUMN artefact_expired_ms",
        )
        .await?;
        drop_tables(manager, &[RUNS, STEPS_ARCHIVE]).await
    }
}
