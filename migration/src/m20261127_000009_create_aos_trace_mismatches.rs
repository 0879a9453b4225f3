//! `aos_trace_mismatches` (docs/domain.md §6.1): operator-reported replay mismatches.
//! Mutable (resolve, issue url). `details` is real JSON (docs/decisions.md D20) and the
//! resolution note is persisted in `resolution_note`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "aos_trace_mismatches";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("trace_id", 64))
                    .col(string_len("tenant_id", 64))
                    .col(text_null("reported_by"))
                    .col(integer_null("step_index"))
                    .col(text("reason"))
                    .col(text_null("expected_hash"))
                    .col(text_null("actual_hash"))
                    .col(json_binary("details").default("{}"))
                    .col(boolean("notification_sent").default(false))
                    .col(text_null("issue_url"))
                    .col(boolean("resolved").default(false))
                    .col(timestamp_with_time_zone_null("resolved_at"))
                    .col(text_null("resolved_by"))
                    .col(text_null("resolution_note"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![
                index(
                    "idx_aos_trace_mismatches_tenant_keyset",
                    TABLE,
                    &["tenant_id", "-created_at", "-id"],
                ),
                index(
                    "idx_aos_trace_mismatches_tenant_trace",
                    TABLE,
                    &["tenant_id", "trace_id"],
                ),
                index(
                    "idx_aos_trace_mismatches_tenant_resolved",
                    TABLE,
                    &["tenant_id", "resolved", "-created_at"],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &[TABLE]).await
    }
}
