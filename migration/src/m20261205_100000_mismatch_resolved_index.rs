//! The index behind the `traceMismatchResolved` tail (docs/subscriptions.md): a tenant's
//! resolved mismatches by resolution time, `(tenant_id, resolved_at, id)`. Without it each read
//! of the tail sorted every resolved mismatch of the tenant.

use sea_orm_migration::prelude::*;

use crate::common::exec;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            "CREATE INDEX idx_aos_trace_mismatches_tenant_resolved_at
                ON aos_trace_mismatches (tenant_id, resolved_at, id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            "DROP INDEX idx_aos_trace_mismatches_tenant_resolved_at",
        )
        .await
    }
}
