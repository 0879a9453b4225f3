//! `policy_activation_audit` (docs/domain.md §13): one row per activated policy
//! (upsert on `policy_id`).

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "policy_activation_audit";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(big_pk_auto("id"))
                    .col(string_len("policy_id", 64).unique_key())
                    .col(string_len("source_pattern_id", 64))
                    .col(string_len_null("source_recovery_id", 64))
                    .col(double("confidence_at_activation"))
                    .col(string_len("confidence_version", 32))
                    .col(string_len("approval_path", 128))
                    .col(string_len_null("loop_trace_id", 64))
                    .col(timestamp_with_time_zone("activated_at"))
                    .col(string_len("tenant_id", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![
                index(
                    "idx_policy_activation_audit_tenant_activated",
                    TABLE,
                    &["tenant_id", "activated_at"],
                ),
                index(
                    "idx_policy_activation_audit_pattern",
                    TABLE,
                    &["source_pattern_id"],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &[TABLE]).await
    }
}
