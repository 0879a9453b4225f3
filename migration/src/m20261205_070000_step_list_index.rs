//! The index behind `traceSteps`, the tenant's steps across traces newest step time first
//! (docs/console.md): `(tenant_id, timestamp, id)`. The step indexes so far all lead with the
//! trace, which serves a trace's own steps but not a tenant-wide page or time window.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec};

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = "CREATE INDEX idx_aos_trace_steps_tenant_time \
    ON aos_trace_steps (tenant_id, \"timestamp\", id)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if backend(manager)? == DbBackend::Postgres {
            // The build reads every step.
            exec(manager, "SET LOCAL statement_timeout = 0").await?;
        }
        exec(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(manager, "DROP INDEX idx_aos_trace_steps_tenant_time").await
    }
}
