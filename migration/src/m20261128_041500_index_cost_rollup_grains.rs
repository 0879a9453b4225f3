//! Partial indexes over `cost_daily_aggregates`, one per rollup grain (see `src/cost/rollup.rs`).
//!
//! The rollup keeps, per tenant and UTC day, a tenant-total row (all three group columns '') and
//! one row per feature, per user and per model (the other two columns ''). Each cost panel reads
//! one grain over a date range; with these indexes that read is an index range over exactly the
//! rows of that grain (plus the day totals), whatever the number of users, so "cost by model, 30
//! days" touches about 30 × (models + 1) index entries. Queries must spell the '' predicates as
//! literals (not bind parameters) for the planners to match the index predicates.

use sea_orm_migration::prelude::*;

use crate::common::{create_indexes, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "cost_daily_aggregates";

fn grain_index(name: &'static str, empty: [&'static str; 2]) -> IndexCreateStatement {
    let mut stmt = index(name, TABLE, &["tenant_id", "date"]);
    for col in empty {
        stmt.and_where(Expr::col(col).eq(""));
    }
    stmt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(
            manager,
            vec![
                // day totals and per-model rows
                grain_index(
                    "idx_cost_daily_aggregates_model_grain",
                    ["feature_tag", "user_id"],
                ),
                // day totals and per-feature rows
                grain_index(
                    "idx_cost_daily_aggregates_feature_grain",
                    ["user_id", "model"],
                ),
                // day totals and per-user rows
                grain_index(
                    "idx_cost_daily_aggregates_user_grain",
                    ["feature_tag", "model"],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "idx_cost_daily_aggregates_model_grain",
            "idx_cost_daily_aggregates_feature_grain",
            "idx_cost_daily_aggregates_user_grain",
        ] {
            manager
                .drop_index(Index::drop().name(name).table(TABLE).to_owned())
                .await?;
        }
        Ok(())
    }
}
