//! API keys are managed (`docs/api.md` §2.1): an optional expiry, the last time a process saw
//! the key used, and a rate limit of its own (null: the server default; 0: unlimited). The
//! index serves the tenant's key list, newest first.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, exec, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        let columns = [
            timestamp_with_time_zone_null("expires_at"),
            timestamp_with_time_zone_null("last_used_at"),
            big_integer_null("rate_limit_per_minute")
                .check(Expr::col("rate_limit_per_minute").gte(0))
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table("api_keys")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        create_indexes(
            manager,
            vec![index(
                "idx_api_keys_tenant_created",
                "api_keys",
                &["tenant_id", "created_at", "id"],
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec(manager, "DROP INDEX idx_api_keys_tenant_created").await?;
        for column in ["rate_limit_per_minute", "last_used_at", "expires_at"] {
            exec(
                manager,
                &format!("ALTER TABLE api_keys DROP COLUMN {column}"),
            )
            .await?;
        }
        Ok(())
    }
}
