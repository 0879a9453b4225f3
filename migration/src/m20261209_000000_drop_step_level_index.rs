//! Drops `idx_aos_trace_steps_trace_level` (tenant_id, trace_id, level). A trace's steps filtered
//! by level are read through the trace's other step indexes, `(tenant_id, trace_id, timestamp)`
//! and `(tenant_id, trace_id, step_index)`, which find the trace's steps as fast and filter the
//! level on the way; the level index only added an index entry to every step written (about
//! one in ten of what OTLP ingest spends on index maintenance, docs/otlp.md "Throughput").

use sea_orm_migration::prelude::*;

use crate::common::exec;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            "DROP INDEX IF EXISTS idx_aos_trace_steps_trace_level",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(
            manager,
            "CREATE INDEX idx_aos_trace_steps_trace_level \
             ON aos_trace_steps (tenant_id, trace_id, level)",
        )
        .await
    }
}
