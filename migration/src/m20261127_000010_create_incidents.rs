//! `incidents` (docs/domain.md §13): the subset of the Incidents domain table that the
//! export bundles and O-levels read.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, in_set, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "incidents";
pub const SEVERITIES: &[&str] = &["critical", "high", "medium", "low"];
pub const STATUSES: &[&str] = &["open", "acknowledged", "resolved"];
pub const LIFECYCLE_STATES: &[&str] = &["ACTIVE", "ACKED", "RESOLVED"];
pub const CAUSE_TYPES: &[&str] = &["LLM_RUN", "SYSTEM", "HUMAN"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("id", 100).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("title", 255))
                    .col(string_len("severity", 20).check(in_set("severity", SEVERITIES)))
                    .col(
                        string_len("status", 20)
                            .default("open")
                            .check(in_set("status", STATUSES)),
                    )
                    .col(string_len("trigger_type", 50))
                    .col(string_len_null("source_run_id", 64))
                    .col(string_len_null("category", 64))
                    .col(text_null("description"))
                    .col(string_len_null("error_code", 64))
                    .col(text_null("error_message"))
                    .col(
                        string_len("lifecycle_state", 16)
                            .default("ACTIVE")
                            .check(in_set("lifecycle_state", LIFECYCLE_STATES)),
                    )
                    .col(
                        string_len("cause_type", 16)
                            .default("HUMAN")
                            .check(in_set("cause_type", CAUSE_TYPES)),
                    )
                    .col(integer_null("inflection_step_index"))
                    .col(timestamp_with_time_zone_null("inflection_timestamp"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("ended_at"))
                    .col(timestamp_with_time_zone_null("resolved_at"))
                    .col(string_len_null("resolved_by", 64))
                    .col(boolean("is_synthetic").default(false))
                    .col(string_len_null("synthetic_scenario_id", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![
                index(
                    "idx_incidents_tenant_keyset",
                    TABLE,
                    &["tenant_id", "-created_at", "-id"],
                ),
                index(
                    "idx_incidents_tenant_source_run",
                    TABLE,
                    &["tenant_id", "source_run_id"],
                ),
                index(
                    "idx_incidents_tenant_status",
                    TABLE,
                    &["tenant_id", "status"],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &[TABLE]).await
    }
}
