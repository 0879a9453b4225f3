//! `llm_run_records` (docs/domain.md §2.1): immutable execution record per LLM run.
//! One record per (tenant, run): docs/decisions.md D4.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{
    create_immutable_triggers, create_indexes, drop_immutable_triggers, drop_tables, in_set, index,
    unique_index,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "llm_run_records";
pub const EXECUTION_STATUSES: &[&str] = &["SUCCEEDED", "FAILED", "ABORTED", "TIMEOUT"];
pub const SOURCES: &[&str] = &["API", "SDK", "SYSTEM", "SYNTHETIC", "WORKER"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("run_id", 64))
                    .col(string_len_null("trace_id", 64))
                    .col(string_len("provider", 64))
                    .col(string_len("model", 128))
                    .col(string_len_null("prompt_hash", 64))
                    .col(string_len_null("response_hash", 64))
                    .col(integer("input_tokens").default(0))
                    .col(integer("output_tokens").default(0))
                    .col(integer("cost_cents").default(0))
                    .col(
                        string_len("execution_status", 32)
                            .check(in_set("execution_status", EXECUTION_STATUSES)),
                    )
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("completed_at"))
                    .col(string_len("source", 32).check(in_set("source", SOURCES)))
                    .col(boolean("is_synthetic").default(false))
                    .col(string_len_null("synthetic_scenario_id", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_llm_run_records_tenant")
                            .from(TABLE, "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![
                unique_index(
                    "uq_llm_run_records_tenant_run",
                    TABLE,
                    &["tenant_id", "run_id"],
                ),
                index(
                    "idx_llm_run_records_tenant_keyset",
                    TABLE,
                    &["tenant_id", "-created_at", "-id"],
                ),
                index(
                    "idx_llm_run_records_tenant_status",
                    TABLE,
                    &["tenant_id", "execution_status", "-created_at", "-id"],
                ),
                index(
                    "idx_llm_run_records_tenant_provider_model",
                    TABLE,
                    &["tenant_id", "provider", "model"],
                ),
                index(
                    "idx_llm_run_records_tenant_trace",
                    TABLE,
                    &["tenant_id", "trace_id"],
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
