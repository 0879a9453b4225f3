//! The cost anomaly workflow (`acknowledgeCostAnomaly`, `resolveCostAnomaly`, docs/domain.md §9.7):
//! who acknowledged an anomaly and when, who resolved it and with which note. `resolved` and
//! `resolved_at` already exist; an anomaly is OPEN, ACKNOWLEDGED (acknowledged_at set, not
//! resolved) or RESOLVED.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::exec;

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: [&str; 4] = [
    "acknowledged_at",
    "acknowledged_by",
    "resolved_by",
    "resolution_note",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        let columns = [
            timestamp_with_time_zone_null("acknowledged_at"),
            string_len_null("acknowledged_by", 128),
            string_len_null("resolved_by", 128),
            text_null("resolution_note"),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table("cost_anomalies")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS.iter().rev() {
            exec(
                manager,
                &format!("ALTER TABLE cost_anomalies DROP COLUMN {column}"),
            )
            .await?;
        }
        Ok(())
    }
}
