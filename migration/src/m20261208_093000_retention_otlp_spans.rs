//! The retention job purges the OTLP receiver's span ids (`otlp_spans`) once their trace is no
//! longer live (archived, or gone), and records how many: `retention_runs.otlp_spans_purged`.
//! Existing runs purged none.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("retention_runs")
                    .add_column(
                        ColumnDef::new("otlp_spans_purged")
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("retention_runs")
                    .drop_column("otlp_spans_purged")
                    .to_owned(),
            )
            .await
    }
}
