//! `log_exports` (docs/domain.md §10.1), append-only: an export's lifecycle is a series
//! of rows sharing `export_id`, one row per state (pending, running,
//! completed / failed), since rows can never be updated.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{
    create_immutable_triggers, create_indexes, drop_immutable_triggers, drop_tables, in_set, index,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "log_exports";
pub const SCOPES: &[&str] = &[
    "llm_runs",
    "system_records",
    "audit",
    "traces",
    "run_bundle",
    "trace_bundle",
    "incident_bundle",
    "compliance",
];
pub const FORMATS: &[&str] = &["json", "ndjson", "csv", "zip"];
pub const ORIGINS: &[&str] = &["SYSTEM", "HUMAN", "AGENT"];
pub const STATUSES: &[&str] = &["pending", "running", "completed", "failed"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("export_id", 64))
                    .col(string_len("tenant_id", 64))
                    .col(string_len("scope", 32).check(in_set("scope", SCOPES)))
                    .col(string_len_null("run_id", 64))
                    .col(string_len("requested_by", 128))
                    .col(string_len("format", 16).check(in_set("format", FORMATS)))
                    .col(string_len("origin", 32).check(in_set("origin", ORIGINS)))
                    .col(string_len("source_component", 64).default("LogExportService"))
                    .col(string_len_null("correlation_id", 64))
                    .col(string_len_null("checksum", 128))
                    .col(
                        string_len("status", 32)
                            .default("pending")
                            .check(in_set("status", STATUSES)),
                    )
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(json_binary_null("filter"))
                    .col(big_integer_null("row_count"))
                    .col(big_integer_null("byte_size"))
                    .col(string_len_null("manifest_sha256", 64))
                    .col(text_null("error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_log_exports_tenant")
                            .from(TABLE, "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![
                index(
                    "idx_log_exports_tenant_keyset",
                    TABLE,
                    &["tenant_id", "-created_at", "-id"],
                ),
                index(
                    "idx_log_exports_tenant_export",
                    TABLE,
                    &["tenant_id", "export_id", "-created_at"],
                ),
            ],
        )
        .await?;

        create_immutable_triggers(manager, TABLE).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_immutable_triggers(manager, TABLE).await?;
        drop_tables(manager, &[TABLE]).await
    }
}
