//! `otlp_spans` becomes `otlp_root_spans`: the OTLP receiver keeps a row only for each trace's
//! root span. A child span is a step whose idempotency key is `otel:<trace>:<span>`, and the
//! receiver now tells a retried child by that key, so the child's own row only added a row and
//! an index entry to every span written (docs/otlp.md, "Exactly once"). The child rows are
//! deleted with the columns only they needed (`is_root`, `step_index`); the partial index of
//! open roots is renamed with the table.

use sea_orm_migration::prelude::*;

use crate::common::exec;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for sql in [
            "DELETE FROM otlp_spans WHERE NOT is_root",
            "DROP INDEX idx_otlp_spans_open_roots",
            "ALTER TABLE otlp_spans RENAME TO otlp_root_spans",
            "ALTER TABLE otlp_root_spans DROP COLUMN is_root",
            "ALTER TABLE otlp_root_spans DROP COLUMN step_index",
            "CREATE INDEX idx_otlp_root_spans_open \
             ON otlp_root_spans (received_at_ms) WHERE open",
        ] {
            exec(manager, sql).await?;
        }
        Ok(())
    }

    /// The child spans' rows are not restored: their steps still hold their idempotency keys.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for sql in [
            "DROP INDEX idx_otlp_root_spans_open",
            "ALTER TABLE otlp_root_spans RENAME TO otlp_spans",
            "ALTER TABLE otlp_spans ADD COLUMN is_root boolean NOT NULL DEFAULT TRUE",
            "ALTER TABLE otlp_spans ADD COLUMN step_index integer NULL",
            "CREATE INDEX idx_otlp_spans_open_roots ON otlp_spans (received_at_ms) WHERE open",
        ] {
            exec(manager, sql).await?;
        }
        Ok(())
    }
}
