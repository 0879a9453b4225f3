//! The index behind `policyActivations` (docs/domain.md §13.1): a tenant's
//! activations by first activation, `(tenant_id, created_at, policy_id)`, the list's keyset
//! order. The table's own `(tenant_id, activated_at)` index serves the `activatedAfter` and
//! `activatedBefore` filters but not this order.

use sea_orm_migration::prelude::*;

use crate::common::exec;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            "CREATE INDEX idx_policy_activation_audit_tenant_created
                ON policy_activation_audit (tenant_id, created_at, policy_id)",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            "DROP INDEX idx_policy_activation_audit_tenant_created",
        )
        .await
    }
}
