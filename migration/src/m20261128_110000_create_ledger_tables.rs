//! The verifiable ledger over the audit hash chain (docs/ledger.md):
//! `ledger_merkle_nodes` keeps the hash of every complete RFC 6962 subtree of a tenant's tree
//! (levels ≥ 1; leaves are recomputed from `audit_ledger.entry_hash`), `ledger_merkle_heads`
//! says up to which tree size they are filled, and `ledger_checkpoints` keeps every signed
//! checkpoint issued. Nodes and checkpoints are deterministic or signed facts: append-only.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{
    create_immutable_triggers, create_indexes, drop_immutable_triggers, drop_tables, index,
    unique_index,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const NODES: &str = "ledger_merkle_nodes";
const HEADS: &str = "ledger_merkle_heads";
const CHECKPOINTS: &str = "ledger_checkpoints";

fn tenant_fk(table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_tenant"))
        .from(table, "tenant_id")
        .to("tenants", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NODES)
                    .col(string_len("tenant_id", 64))
                    .col(integer("level"))
                    .col(big_integer("idx"))
                    .col(blob("hash"))
                    .primary_key(Index::create().col("tenant_id").col("level").col("idx"))
                    .foreign_key(&mut tenant_fk(NODES))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(HEADS)
                    .col(string_len("tenant_id", 64).primary_key())
                    .col(big_integer("tree_size"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut tenant_fk(HEADS))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CHECKPOINTS)
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(big_integer("tree_size"))
                    .col(string_len("root_hash", 64))
                    .col(string_len("public_key", 64))
                    .col(string_len("signature", 128))
                    .col(timestamp_with_time_zone("created_at"))
                    .check(Expr::col("tree_size").gte(1))
                    .foreign_key(&mut tenant_fk(CHECKPOINTS))
                    .to_owned(),
            )
            .await?;
        create_indexes(
            manager,
            vec![
                unique_index(
                    "uq_ledger_checkpoints_tenant_key_size",
                    CHECKPOINTS,
                    &["tenant_id", "public_key", "tree_size"],
                ),
                index(
                    "idx_ledger_checkpoints_tenant_keyset",
                    CHECKPOINTS,
                    &["tenant_id", "-created_at", "-id"],
                ),
                index(
                    "idx_ledger_checkpoints_tenant_size",
                    CHECKPOINTS,
                    &["tenant_id", "-tree_size"],
                ),
            ],
        )
        .await?;
        create_immutable_triggers(manager, NODES).await?;
        create_immutable_triggers(manager, CHECKPOINTS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_immutable_triggers(manager, CHECKPOINTS).await?;
        drop_immutable_triggers(manager, NODES).await?;
        drop_tables(manager, &[CHECKPOINTS, HEADS, NODES]).await
    }
}
