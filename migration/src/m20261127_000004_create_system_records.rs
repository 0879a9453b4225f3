//! `system_records` (docs/domain.md §3.1): immutable system events. `tenant_id` NULL
//! means system-wide (visible to every tenant); no FK.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{
    create_immutable_triggers, create_indexes, drop_immutable_triggers, drop_tables, in_set, index,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "system_records";
pub const COMPONENTS: &[&str] = &["worker", "api", "scheduler", "db", "auth", "migration"];
pub const EVENT_TYPES: &[&str] = &[
    "STARTUP",
    "SHUTDOWN",
    "RESTART",
    "DEPLOY",
    "MIGRATION",
    "AUTH_CHANGE",
    "CONFIG_CHANGE",
    "ERROR",
    "HEALTH_CHECK",
];
pub const SEVERITIES: &[&str] = &["INFO", "WARN", "CRITICAL"];
pub const CAUSED_BY: &[&str] = &["SYSTEM", "HUMAN", "AUTOMATION"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("id", 64).primary_key())
                    .col(string_len_null("tenant_id", 64))
                    .col(string_len("component", 64).check(in_set("component", COMPONENTS)))
                    .col(string_len("event_type", 64).check(in_set("event_type", EVENT_TYPES)))
                    .col(string_len("severity", 16).check(in_set("severity", SEVERITIES)))
                    .col(text("summary"))
                    .col(json_binary_null("details"))
                    .col(string_len_null("caused_by", 32).check(in_set("caused_by", CAUSED_BY)))
                    .col(string_len_null("correlation_id", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![
                index(
                    "idx_system_records_tenant_keyset",
                    TABLE,
                    &["tenant_id", "-created_at", "-id"],
                ),
                index("idx_system_records_keyset", TABLE, &["-created_at", "-id"]),
                index("idx_system_records_correlation", TABLE, &["correlation_id"]),
                index(
                    "idx_system_records_event",
                    TABLE,
                    &["event_type", "severity"],
                ),
            ],
        )
        .await?;

        create_immutable_triggers(manager, TABLE).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_immutable_triggers(manager, TABLE).await?;
        drop_tables(manager, &[TABLE]).await
    }
}
