//! `replay_outputs`: the database-backed replay store (docs/domain.md §7.2), used when no Redis is
//! configured (see `src/replay/enforce.rs`). One row per (tenant, step idempotency key): the
//! last output recorded for it, its hash and step index, valid until `expires_at_ms` (24 h
//! after it was stored, like the Redis TTL). Times are epoch milliseconds, compared in the
//! application, so both backends behave the same.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("replay_outputs")
                    .col(string_len("tenant_id", 64))
                    .col(string_len("replay_key", 255))
                    .col(integer("step_index"))
                    .col(string_len("output_hash", 64))
                    .col(text("output"))
                    .col(big_integer("stored_at_ms"))
                    .col(big_integer("expires_at_ms"))
                    .primary_key(Index::create().col("tenant_id").col("replay_key"))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            vec![index(
                "idx_replay_outputs_expires_at_ms",
                "replay_outputs",
                &["expires_at_ms"],
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["replay_outputs"]).await
    }
}
