//! Totals rows in `llm_run_rollups`: per tenant and UTC hour (`grain` `h`) and day (`d`), the
//! runs, cost and tokens over every provider, model, status and source (the key columns hold
//! `''` and `false`). A histogram or count whose filter names no rollup key reads one row per
//! hour instead of one per hour and key (about 36 on the bench data's hot tenant), so a 30-day
//! hourly chart sums 720 rows. The triggers of `m20261205_000000_run_console_reads` write the
//! keyed and the totals rows together from now on.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The four grains: (grain, `to_char` format, keyed).
pub(crate) const PG_GRAINS: &str =
    "(VALUES ('H', 'YYYY-MM-DD\"T\"HH24', true), ('D', 'YYYY-MM-DD', true), \
    ('h', 'YYYY-MM-DD\"T\"HH24', false), ('d', 'YYYY-MM-DD', false)) g(grain, format, keyed)";

/// The select of the rollup rows of `source` (a table of runs), signed by `sign`.
pub(crate) fn pg_rows(source: &str, sign: &str, grains: &str) -> String {
    format!(
        "SELECT tenant_id, g.grain, to_char(created_at AT TIME ZONE 'UTC', g.format),
            CASE WHEN g.keyed THEN provider ELSE '' END,
            CASE WHEN g.keyed THEN model ELSE '' END,
            CASE WHEN g.keyed THEN execution_status ELSE '' END,
            CASE WHEN g.keyed THEN source ELSE '' END,
            g.keyed AND is_synthetic,
            {sign}COUNT(*), {sign}SUM(cost_cents), {sign}SUM(input_tokens), {sign}SUM(output_tokens)
        FROM {source}, {grains}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"
    )
}

pub(crate) fn pg_function(grains: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION llm_run_rollups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                DELETE FROM llm_run_rollups;
                RETURN NULL;
            END IF;
            IF TG_OP = 'DELETE' THEN
                INSERT INTO llm_run_rollups {};
            ELSE
                INSERT INTO llm_run_rollups {};
            END IF;
            RETURN NULL;
        END $$",
        pg_rows("old_runs", "-", grains),
        pg_rows("new_runs", "", grains)
    )
}

/// One SQLite upsert of a run's row (`NEW` or `OLD`) into a grain.
fn sqlite_upsert(row: &str, sign: &str, grain: &str, length: u8, keyed: bool) -> String {
    let key = |column: &str| {
        if keyed {
            format!("{row}.{column}")
        } else {
            "''".to_owned()
        }
    };
    let synthetic = if keyed {
        format!("{row}.is_synthetic")
    } else {
        "0".to_owned()
    };
    format!(
        "INSERT INTO llm_run_rollups VALUES ({row}.tenant_id, '{grain}',
            replace(substr({row}.created_at, 1, {length}), ' ', 'T'), {}, {}, {}, {}, {synthetic},
            {sign}1, {sign}{row}.cost_cents, {sign}{row}.input_tokens, {sign}{row}.output_tokens)
        ON CONFLICT DO UPDATE SET runs = runs + excluded.runs,
            cost_cents = cost_cents + excluded.cost_cents,
            input_tokens = input_tokens + excluded.input_tokens,
            output_tokens = output_tokens + excluded.output_tokens;",
        key("provider"),
        key("model"),
        key("execution_status"),
        key("source")
    )
}

fn sqlite_trigger(name: &str, event: &str, row: &str, sign: &str, totals: bool) -> String {
    let grains: &[(&str, u8, bool)] = if totals {
        &[
            ("H", 13, true),
            ("D", 10, true),
            ("h", 13, false),
            ("d", 10, false),
        ]
    } else {
        &[("H", 13, true), ("D", 10, true)]
    };
    sqlite_trigger_of(name, event, row, sign, grains)
}

/// The SQLite trigger upserting a run's row into each of `grains` (grain, length of the
/// bucket's prefix of `created_at`, keyed).
pub(crate) fn sqlite_trigger_of(
    name: &str,
    event: &str,
    row: &str,
    sign: &str,
    grains: &[(&str, u8, bool)],
) -> String {
    let body: Vec<String> = grains
        .iter()
        .map(|(grain, length, keyed)| sqlite_upsert(row, sign, grain, *length, *keyed))
        .collect();
    format!(
        "CREATE TRIGGER {name} AFTER {event} ON llm_run_records BEGIN {} END",
        body.join(" ")
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => {
                exec(manager, &pg_function(PG_GRAINS)).await?;
                let totals = "(VALUES ('h', 'YYYY-MM-DD\"T\"HH24', false), \
                    ('d', 'YYYY-MM-DD', false)) g(grain, format, keyed)";
                exec(
                    manager,
                    &format!(
                        "INSERT INTO llm_run_rollups {}",
                        pg_rows("llm_run_records", "", totals)
                    ),
                )
                .await
            }
            _ => {
                exec(manager, "DROP TRIGGER llm_run_rollups_insert").await?;
                exec(manager, "DROP TRIGGER llm_run_rollups_delete").await?;
                let insert = sqlite_trigger("llm_run_rollups_insert", "INSERT", "NEW", "", true);
                let delete = sqlite_trigger("llm_run_rollups_delete", "DELETE", "OLD", "-", true);
                exec(manager, &insert).await?;
                exec(manager, &delete).await?;
                for (grain, length) in [("h", 13), ("d", 10)] {
                    exec(
                        manager,
                        &format!(
                            "INSERT INTO llm_run_rollups
                            SELECT tenant_id, '{grain}', replace(substr(created_at, 1, {length}), ' ', 'T'),
                                '', '', '', '', 0, COUNT(*), SUM(cost_cents), SUM(input_tokens),
                                SUM(output_tokens)
                            FROM llm_run_records GROUP BY 1, 2, 3"
                        ),
                    )
                    .await?;
                }
                Ok(())
            }
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match backend(manager)? {
            DbBackend::Postgres => {
                let keyed = "(VALUES ('H', 'YYYY-MM-DD\"T\"HH24', true), \
                    ('D', 'YYYY-MM-DD', true)) g(grain, format, keyed)";
                exec(manager, &pg_function(keyed)).await?;
            }
            _ => {
                exec(manager, "DROP TRIGGER llm_run_rollups_insert").await?;
                exec(manager, "DROP TRIGGER llm_run_rollups_delete").await?;
                let insert = sqlite_trigger("llm_run_rollups_insert", "INSERT", "NEW", "", false);
                let delete = sqlite_trigger("llm_run_rollups_delete", "DELETE", "OLD", "-", false);
                exec(manager, &insert).await?;
                exec(manager, &delete).await?;
            }
        }
        exec(
            manager,
            "DELETE FROM llm_run_rollups WHERE grain IN ('h', 'd')",
        )
        .await
    }
}
