//! `tenants` and their `api_keys`.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, in_set, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const TENANT_TIERS: &[&str] = &["OBSERVE", "REACT", "PREVENT", "ASSIST", "GOVERN"];
pub const API_KEY_ROLES: &[&str] = &["VIEWER", "OPERATOR", "INGEST", "ADMIN"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenants")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("name", 256))
                    .col(string_len("tier", 16).check(in_set("tier", TENANT_TIERS)))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("api_keys")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("key_sha256", 64).unique_key())
                    .col(string_len("role", 16).check(in_set("role", API_KEY_ROLES)))
                    .col(string_len_null("label", 128))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_tenant")
                            .from("api_keys", "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![index("idx_api_keys_tenant", "api_keys", &["tenant_id"])],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["api_keys", "tenants"]).await
    }
}
