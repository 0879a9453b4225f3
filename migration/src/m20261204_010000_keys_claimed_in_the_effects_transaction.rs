//! `idempotency_keys` rows are now written in the same transaction as the effect they guard
//! (see `src/idempotency/`): a claim that is visible to others is always completed, so the
//! owner `token` and its `lease_until_ms` are no longer needed. Rows an older version left
//! `pending` are taken over by the next attempt.

use sea_orm_migration::prelude::*;

use crate::common::exec;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["token", "lease_until_ms"] {
            exec(
                manager,
                &format!("ALTER TABLE idempotency_keys DROP COLUMN {column}"),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            "ALTER TABLE idempotency_keys ADD COLUMN token varchar(64) NOT NULL DEFAULT ''",
        )
        .await?;
        exec(
            manager,
            "ALTER TABLE idempotency_keys ADD COLUMN lease_until_ms bigint NOT NULL DEFAULT 0",
        )
        .await
    }
}
