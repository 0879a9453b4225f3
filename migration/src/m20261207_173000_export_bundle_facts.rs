//! What a completed bundle export says of itself, kept on its job row so `LogExport` can show
//! it without opening the file: `bundle_sha256`, the bundle's content hash over its members
//! (also in the manifest), and `bundle_completeness`, the JSON `{complete, missing}` of
//! `evidence.json` (docs/domain.md §10.4). NULL for list exports and unfinished bundles.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("export_jobs")
                    .add_column(ColumnDef::new("bundle_sha256").string_len(64).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("export_jobs")
                    .add_column(ColumnDef::new("bundle_completeness").text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["bundle_completeness", "bundle_sha256"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("export_jobs")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
