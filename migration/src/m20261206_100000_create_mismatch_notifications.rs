//! `mismatch_notifications`: the outbox of the optional mismatch webhook (docs/writes.md,
//! "Mismatch webhook"). One row per reported mismatch while a webhook URL is configured,
//! written in the report's own transaction; a background worker in every server process POSTs
//! it and records the outcome here. Times are epoch milliseconds, compared in the application,
//! so both backends behave the same.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "mismatch_notifications";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("mismatch_id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(integer("attempts").default(0))
                    .col(big_integer("next_attempt_ms"))
                    .col(big_integer_null("delivered_at_ms"))
                    .col(text_null("last_error"))
                    .col(big_integer("created_at_ms"))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            vec![index(
                "idx_mismatch_notifications_due",
                TABLE,
                &["next_attempt_ms"],
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &[TABLE]).await
    }
}
