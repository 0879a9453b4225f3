//! Month rows in `llm_run_rollups` (grains `M` keyed, `m` totals; bucket `YYYY-MM`), and the
//! end of `llm_run_day_counts`.
//!
//! Counts and facets now cover a window with signed month, day and hour units and row ranges
//! (`runs::cover`): a 30-day window reads about ten units instead of 28 days and 46 hours.
//! `totalCount` reads the same totals rows, so the day counts, one more trigger per insert
//! statement, have no reader left and go.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec};
use crate::m20261204_020000_llm_run_day_counts as day_counts;
use crate::m20261205_010000_run_rollup_totals::{
    pg_function, pg_rows, sqlite_trigger_of, PG_GRAINS,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The six grains: (grain, `to_char` format, keyed).
const PG_GRAINS_WITH_MONTHS: &str = "(VALUES ('H', 'YYYY-MM-DD\"T\"HH24', true), \
    ('D', 'YYYY-MM-DD', true), ('M', 'YYYY-MM', true), ('h', 'YYYY-MM-DD\"T\"HH24', false), \
    ('d', 'YYYY-MM-DD', false), ('m', 'YYYY-MM', false)) g(grain, format, keyed)";

const PG_MONTHS: &str =
    "(VALUES ('M', 'YYYY-MM', true), ('m', 'YYYY-MM', false)) g(grain, format, keyed)";

/// (grain, length of the bucket's prefix of `created_at`, keyed).
const SQLITE_GRAINS_WITH_MONTHS: &[(&str, u8, bool)] = &[
    ("H", 13, true),
    ("D", 10, true),
    ("M", 7, true),
    ("h", 13, false),
    ("d", 10, false),
    ("m", 7, false),
];

const SQLITE_GRAINS: &[(&str, u8, bool)] = &[
    ("H", 13, true),
    ("D", 10, true),
    ("h", 13, false),
    ("d", 10, false),
];

async fn sqlite_triggers(
    manager: &SchemaManager<'_>,
    grains: &[(&str, u8, bool)],
) -> Result<(), DbErr> {
    exec(manager, "DROP TRIGGER llm_run_rollups_insert").await?;
    exec(manager, "DROP TRIGGER llm_run_rollups_delete").await?;
    let insert = sqlite_trigger_of("llm_run_rollups_insert", "INSERT", "NEW", "", grains);
    let delete = sqlite_trigger_of("llm_run_rollups_delete", "DELETE", "OLD", "-", grains);
    exec(manager, &insert).await?;
    exec(manager, &delete).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// SQLite too: the backfill and the triggers land together or not at all.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => {
                exec(manager, &pg_function(PG_GRAINS_WITH_MONTHS)).await?;
                // The transaction holds the triggers' lock on llm_run_records until it commits,
                // so no run is written between the backfill and the triggers taking over.
                let backfill = pg_rows("llm_run_records", "", PG_MONTHS);
                exec(manager, &format!("INSERT INTO llm_run_rollups {backfill}")).await?;
                for sql in day_counts::POSTGRES_DOWN {
                    exec(manager, sql).await?;
                }
                Ok(())
            }
            _ => {
                sqlite_triggers(manager, SQLITE_GRAINS_WITH_MONTHS).await?;
                // The month rows, keyed and totals (the same columns as the triggers write).
                for keyed in [true, false] {
                    let (grain, keys, group) = if keyed {
                        (
                            "M",
                            "provider, model, execution_status, source, is_synthetic",
                            "1, 2, 3, 4, 5, 6, 7, 8",
                        )
                    } else {
                        ("m", "'', '', '', '', 0", "1, 2, 3")
                    };
                    let backfill = format!(
                        "INSERT INTO llm_run_rollups
                        SELECT tenant_id, '{grain}', substr(created_at, 1, 7), {keys}, COUNT(*),
                            SUM(cost_cents), SUM(input_tokens), SUM(output_tokens)
                        FROM llm_run_records GROUP BY {group}"
                    );
                    exec(manager, &backfill).await?;
                }
                for sql in day_counts::SQLITE_DOWN {
                    exec(manager, sql).await?;
                }
                Ok(())
            }
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => {
                exec(manager, &pg_function(PG_GRAINS)).await?;
                for sql in day_counts::POSTGRES_UP {
                    exec(manager, sql).await?;
                }
            }
            _ => {
                sqlite_triggers(manager, SQLITE_GRAINS).await?;
                for sql in day_counts::SQLITE_UP {
                    exec(manager, sql).await?;
                }
            }
        }
        exec(
            manager,
            "DELETE FROM llm_run_rollups WHERE grain IN ('M', 'm')",
        )
        .await
    }
}
