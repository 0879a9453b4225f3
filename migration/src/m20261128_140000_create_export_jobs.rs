//! `export_jobs` and `export_job_events`: the persisted execution state of exports
//! (docs/domain.md §10.2; docs/decisions.md D11, D12). `log_exports` stays the append-only record
//! of what was exported; a job row is the mutable scheduling state of one export (state, attempt,
//! retry strategy, progress, lease), and `export_job_events` is its append-only audit trail,
//! hash-chained per job. Times are epoch milliseconds, compared in the application, so both
//! backends claim and expire leases the same way.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_immutable_triggers, create_indexes, drop_tables, in_set, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const JOBS: &str = "export_jobs";
const EVENTS: &str = "export_job_events";

pub const STATES: &[&str] = &["queued", "running", "retry_wait", "completed", "failed"];
pub const STAGES: &[&str] = &[
    "queued",
    "starting",
    "running",
    "completing",
    "completed",
    "failed",
    "cancelled",
];
pub const STRATEGIES: &[&str] = &["fixed", "linear", "exponential", "fibonacci"];
pub const EVENT_TYPES: &[&str] = &[
    "job_created",
    "job_started",
    "job_progress",
    "job_completed",
    "job_failed",
    "job_retried",
    "job_reclaimed",
    "job_dead_lettered",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JOBS)
                    .col(string_len("export_id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("scope", 32))
                    .col(string_len("format", 16))
                    // The whole request: filter, asOf, bundle subject ids.
                    .col(text("request"))
                    .col(big_integer("as_of_ms"))
                    .col(string_len("state", 16).check(in_set("state", STATES)))
                    .col(string_len("stage", 16).check(in_set("stage", STAGES)))
                    .col(double("percent").default(0.0))
                    .col(big_integer_null("eta_seconds"))
                    .col(big_integer("rows_done").default(0))
                    .col(big_integer_null("rows_total"))
                    .col(integer("attempt").default(0))
                    .col(integer("max_attempts"))
                    .col(
                        string_len("retry_strategy", 16)
                            .check(in_set("retry_strategy", STRATEGIES)),
                    )
                    .col(big_integer("base_delay_ms"))
                    .col(big_integer("max_delay_ms"))
                    .col(double("jitter_factor"))
                    .col(big_integer("next_attempt_ms"))
                    .col(text_null("last_error"))
                    .col(string_len_null("lease_owner", 64))
                    .col(big_integer_null("lease_expires_ms"))
                    .col(big_integer_null("heartbeat_ms"))
                    .col(big_integer_null("started_ms"))
                    .col(big_integer_null("finished_ms"))
                    .col(text_null("artefact_path"))
                    .col(big_integer("created_ms"))
                    .col(big_integer("updated_ms"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_export_jobs_tenant")
                            .from(JOBS, "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EVENTS)
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("export_id", 64))
                    .col(string_len("tenant_id", 64))
                    .col(big_integer("seq"))
                    .col(string_len("event_type", 32).check(in_set("event_type", EVENT_TYPES)))
                    .col(integer("attempt"))
                    .col(string_len_null("worker", 64))
                    .col(text_null("error"))
                    .col(text_null("metadata"))
                    .col(string_len_null("previous_event_hash", 64))
                    .col(string_len("integrity_hash", 64))
                    .col(big_integer("created_ms"))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            vec![
                index("idx_export_jobs_due", JOBS, &["state", "next_attempt_ms"]),
                index(
                    "idx_export_job_events_export",
                    EVENTS,
                    &["export_id", "seq"],
                ),
            ],
        )
        .await?;
        create_immutable_triggers(manager, EVENTS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::common::drop_immutable_triggers(manager, EVENTS).await?;
        drop_tables(manager, &[EVENTS, JOBS]).await
    }
}
