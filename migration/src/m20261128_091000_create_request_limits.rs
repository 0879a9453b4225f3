//! Tables behind two request-level limits when no Redis is configured (see `src/ratelimit.rs`
//! and `src/persisted.rs`): `rate_limit_windows` counts complexity points per API key and
//! minute; `persisted_queries` maps a query's sha256 to its text (automatic persisted queries).

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::drop_tables;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("rate_limit_windows")
                    .col(string_len("bucket", 64))
                    .col(big_integer("window_start"))
                    .col(big_integer("points"))
                    .primary_key(Index::create().col("bucket").col("window_start"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("persisted_queries")
                    .col(string_len("sha256", 64).primary_key())
                    .col(text("query"))
                    .col(big_integer("created_at_ms"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["rate_limit_windows", "persisted_queries"]).await
    }
}
