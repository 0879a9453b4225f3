//! `idempotency_keys`: the database-backed idempotency store, used when no Redis is configured
//! (see `src/idempotency/`). One row per (tenant, key); a row is `pending` while its first
//! attempt runs (owned by `token` until `lease_until`), then `completed` with the stored result
//! until `expires_at`. A failed attempt deletes its row so a retry runs again. Times are epoch
//! milliseconds, compared in the application, so both backends behave the same.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, in_set, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("idempotency_keys")
                    .col(string_len("tenant_id", 64))
                    .col(string_len("operation", 64))
                    .col(string_len("idempotency_key", 255))
                    .col(string_len("request_hash", 64))
                    .col(
                        string_len("status", 16).check(in_set("status", &["pending", "completed"])),
                    )
                    .col(string_len("token", 64))
                    .col(text_null("response"))
                    .col(big_integer("created_at_ms"))
                    .col(big_integer("lease_until_ms"))
                    .col(big_integer("expires_at_ms"))
                    .primary_key(Index::create().col("tenant_id").col("idempotency_key"))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            vec![index(
                "idx_idempotency_keys_expires_at_ms",
                "idempotency_keys",
                &["expires_at_ms"],
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["idempotency_keys"]).await
    }
}
