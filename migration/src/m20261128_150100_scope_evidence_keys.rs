//! Evidence keys per tenant. Run ids are unique per tenant (`llm_run_records` is unique on
//! `(tenant_id, run_id)`), but the evidence tables' unique keys were on `run_id` alone, so two
//! tenants with the same run id would collide: one tenant's capture would be ignored (or
//! rejected) because of the other's row. Each unique key now leads with `tenant_id`; the
//! capture writer (`src/evidence`) uses them as its `ON CONFLICT` targets.

use sea_orm_migration::prelude::*;

use crate::common::{create_indexes, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (old index, new index, table, key columns after `tenant_id`).
const KEYS: &[(&str, &str, &str, &[&str])] = &[
    (
        "uq_environment_evidence_run",
        "uq_environment_evidence_tenant_run",
        "environment_evidence",
        &["run_id"],
    ),
    (
        "uq_activity_evidence_run_step",
        "uq_activity_evidence_tenant_run_step",
        "activity_evidence",
        &["run_id", "step_index"],
    ),
    (
        "uq_provider_evidence_run_step",
        "uq_provider_evidence_tenant_run_step",
        "provider_evidence",
        &["run_id", "step_index"],
    ),
    (
        "uq_integrity_evidence_run",
        "uq_integrity_evidence_tenant_run",
        "integrity_evidence",
        &["run_id"],
    ),
    (
        "uq_evidence_capture_failures_run_type_reason",
        "uq_evidence_capture_failures_tenant_run_type_reason",
        "evidence_capture_failures",
        &["run_id", "evidence_type", "failure_reason"],
    ),
];

async fn drop(manager: &SchemaManager<'_>, name: &str, table: &str) -> Result<(), DbErr> {
    manager
        .drop_index(
            Index::drop()
                .name(name.to_owned())
                .table(Alias::new(table))
                .to_owned(),
        )
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut indexes = Vec::new();
        for (old, new, table, cols) in KEYS {
            drop(manager, old, table).await?;
            let mut all = vec!["tenant_id"];
            all.extend_from_slice(cols);
            indexes.push(unique_index(new, table, &all));
        }
        create_indexes(manager, indexes).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut indexes = Vec::new();
        for (old, new, table, cols) in KEYS {
            drop(manager, new, table).await?;
            indexes.push(unique_index(old, table, cols));
        }
        create_indexes(manager, indexes).await
    }
}
