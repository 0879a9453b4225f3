//! `llm_run_rollups.grain` as `varchar(1)`, not `char(1)`: PostgreSQL compared the `char` column
//! with a text parameter by casting the column, so the `(tenant_id, grain, bucket)` index could
//! not narrow by grain and a 30-day facet read all of a tenant's rollup rows (BENCHMARKS.md,
//! "Console reads"). SQLite has no such type: nothing to do there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if backend(manager)? == DbBackend::Postgres {
            exec(
                manager,
                "ALTER TABLE llm_run_rollups ALTER COLUMN grain TYPE varchar(1)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if backend(manager)? == DbBackend::Postgres {
            exec(
                manager,
                "ALTER TABLE llm_run_rollups ALTER COLUMN grain TYPE char(1)",
            )
            .await?;
        }
        Ok(())
    }
}
