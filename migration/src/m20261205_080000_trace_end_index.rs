//! The index behind the activity feed's trace ends (`TRACE_ENDED`, docs/console.md): a tenant's
//! sealed traces newest completion first, `(tenant_id, completed_at, id)`. Without it a page of
//! the feed sorted every sealed trace of the tenant.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if backend(manager)? == DbBackend::Postgres {
            // The build reads every trace.
            exec(manager, "SET LOCAL statement_timeout = 0").await?;
        }
        exec(
            manager,
            "CREATE INDEX idx_aos_traces_tenant_completed ON aos_traces (tenant_id, completed_at, id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(manager, "DROP INDEX idx_aos_traces_tenant_completed").await
    }
}
