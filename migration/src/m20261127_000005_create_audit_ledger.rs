//! `audit_ledger` (docs/domain.md §4.1) with a per-tenant hash chain (`seq`,
//! `prev_hash`, `entry_hash`, `hash_version`), a real `run_id` column
//! (docs/decisions.md D3) and the previously unused `correlation_id` (docs/decisions.md D5); plus
//! `audit_chain_heads`, the mutable per-tenant chain head used to serialise appends.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{
    create_immutable_triggers, create_indexes, drop_immutable_triggers, drop_tables, in_set, index,
    unique_index,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "audit_ledger";
const HEADS: &str = "audit_chain_heads";

pub const ACTOR_TYPES: &[&str] = &["HUMAN", "SYSTEM", "AGENT"];
pub const ENTITY_TYPES: &[&str] = &[
    "POLICY_RULE",
    "POLICY_PROPOSAL",
    "LIMIT",
    "INCIDENT",
    "SIGNAL",
];
/// The 18 canonical audit event types (docs/domain.md §4.2).
pub const EVENT_TYPES: &[&str] = &[
    "PolicyRuleCreated",
    "PolicyRuleModified",
    "PolicyRuleRetired",
    "PolicyProposalApproved",
    "PolicyProposalRejected",
    "LimitCreated",
    "LimitUpdated",
    "LimitBreached",
    "LimitOverrideGranted",
    "LimitOverrideRevoked",
    "IncidentAcknowledged",
    "IncidentResolved",
    "IncidentManuallyClosed",
    "EmergencyOverrideActivated",
    "EmergencyOverrideDeactivated",
    "SignalAcknowledged",
    "SignalSuppressed",
    "SignalEscalated",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(big_integer("seq"))
                    .col(string_len("event_type", 64).check(in_set("event_type", EVENT_TYPES)))
                    .col(string_len("entity_type", 32).check(in_set("entity_type", ENTITY_TYPES)))
                    .col(string_len("entity_id", 64))
                    .col(string_len("actor_type", 16).check(in_set("actor_type", ACTOR_TYPES)))
                    .col(string_len_null("actor_id", 64))
                    .col(text_null("action_reason"))
                    .col(json_binary_null("before_state"))
                    .col(json_binary_null("after_state"))
                    .col(string_len_null("run_id", 64))
                    .col(string_len_null("correlation_id", 64))
                    .col(string_len("prev_hash", 64))
                    .col(string_len("entry_hash", 64))
                    .col(integer("hash_version").default(1))
                    .col(timestamp_with_time_zone("created_at"))
                    .check(Expr::col("seq").gte(1))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_ledger_tenant")
                            .from(TABLE, "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(HEADS)
                    .col(string_len("tenant_id", 64).primary_key())
                    .col(big_integer("seq"))
                    .col(string_len("entry_hash", 64))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_chain_heads_tenant")
                            .from(HEADS, "tenant_id")
                            .to("tenants", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        create_indexes(
            manager,
            vec![
                unique_index("uq_audit_ledger_tenant_seq", TABLE, &["tenant_id", "seq"]),
                index(
                    "idx_audit_ledger_tenant_keyset",
                    TABLE,
                    &["tenant_id", "-created_at", "-id"],
                ),
                index(
                    "idx_audit_ledger_tenant_event",
                    TABLE,
                    &["tenant_id", "event_type", "-created_at"],
                ),
                index(
                    "idx_audit_ledger_tenant_entity",
                    TABLE,
                    &["tenant_id", "entity_type", "entity_id", "-created_at"],
                ),
                index(
                    "idx_audit_ledger_tenant_actor",
                    TABLE,
                    &["tenant_id", "actor_type", "actor_id"],
                ),
                index(
                    "idx_audit_ledger_tenant_run",
                    TABLE,
                    &["tenant_id", "run_id"],
                ),
            ],
        )
        .await?;

        create_immutable_triggers(manager, TABLE).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_immutable_triggers(manager, TABLE).await?;
        drop_tables(manager, &[HEADS, TABLE]).await
    }
}
