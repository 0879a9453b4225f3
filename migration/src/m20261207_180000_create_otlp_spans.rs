//! `otlp_spans`: every span the OTLP receiver has stored, by (tenant, trace, span id), so an
//! exporter's retried batch is stored once across server processes (docs/otlp.md). A span
//! becomes a step (`step_index`), or, for a root span, no step (`step_index` NULL).
//! `end_unix_nano` tells when the root span's end is the last one, which seals the trace;
//! `open` marks a root span whose trace is not sealed yet, which the quiet-period sealer reads
//! (over the partial index `idx_otlp_spans_open_roots`).

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{drop_tables, exec};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "otlp_spans";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("tenant_id", 64))
                    .col(string_len("trace_id", 64))
                    .col(string_len("span_id", 16))
                    .col(boolean("is_root"))
                    .col(integer_null("step_index"))
                    .col(boolean("failed"))
                    .col(boolean("open"))
                    .col(big_integer("end_unix_nano"))
                    .col(big_integer("received_at_ms"))
                    .primary_key(
                        Index::create()
                            .col("tenant_id")
                            .col("trace_id")
                            .col("span_id"),
                    )
                    .to_owned(),
            )
            .await?;
        exec(
            manager,
            "CREATE INDEX idx_otlp_spans_open_roots ON otlp_spans (received_at_ms) WHERE open",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &[TABLE]).await
    }
}
