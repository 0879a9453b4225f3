//! Who uses a key (issue 15): `api_keys.actor_type` ∈ {HUMAN, SYSTEM, AGENT}, so what a key
//! creates can record its actor, e.g. an export's `origin`. Existing tenant keys were made for
//! people at a console and become HUMAN (the column default); existing platform keys are the
//! platform's own automation and become SYSTEM.
//!
//! Both backends add a column with a default and a CHECK in place, so no table is rebuilt.

use sea_orm_migration::prelude::*;

use crate::common::{exec, quoted_list};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The actor types a key may have.
pub const ACTOR_TYPES: &[&str] = &["HUMAN", "SYSTEM", "AGENT"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            &format!(
                "ALTER TABLE api_keys ADD COLUMN actor_type varchar(16) NOT NULL DEFAULT 'HUMAN' \
                 CHECK (actor_type IN ({}))",
                quoted_list(ACTOR_TYPES)
            ),
        )
        .await?;
        exec(
            manager,
            "UPDATE api_keys SET actor_type = 'SYSTEM' WHERE role = 'PLATFORM'",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("api_keys")
                    .drop_column("actor_type")
                    .to_owned(),
            )
            .await
    }
}
