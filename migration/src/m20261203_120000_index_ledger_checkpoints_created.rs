//! `ledger_checkpoints (created_at, id)`: the checkpoint sink publishers (`src/ledger/sink.rs`)
//! read every tenant's checkpoints in issue order from a cursor, every few seconds in every
//! server process; the existing indexes all lead with `tenant_id`.

use sea_orm_migration::prelude::*;

use crate::common::{create_indexes, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "ledger_checkpoints";
const NAME: &str = "idx_ledger_checkpoints_created";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(manager, vec![index(NAME, TABLE, &["created_at", "id"])]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(TABLE).to_owned())
            .await
    }
}
