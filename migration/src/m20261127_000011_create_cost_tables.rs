//! Cost intelligence tables (docs/domain.md §9.1).
//!
//! NULL-vs-uniqueness fix (docs/decisions.md D30): wherever an "entity" or "group" column takes
//! part in a unique key (cost_budgets.entity_id, cost_daily_aggregates
//! feature_tag / user_id / model, and entity_id of cost_snapshot_aggregates,
//! cost_snapshot_baselines, cost_breach_history, cost_drift_tracking) the
//! column is NOT NULL DEFAULT '' and the empty string means "no entity /
//! higher-level aggregate". Plain composite unique indexes then work the same
//! on PostgreSQL and SQLite and can be used as ON CONFLICT targets (an
//! expression index on COALESCE(..) could not be targeted portably).
//! Tables without such a key (cost_anomalies, cost_anomaly_evaluations) keep a
//! nullable entity_id.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, in_set, index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const BUDGET_TYPES: &[&str] = &["tenant", "feature", "user"];
pub const ANOMALY_TYPES: &[&str] = &[
    "ABSOLUTE_SPIKE",
    "SUSTAINED_DRIFT",
    "BUDGET_WARNING",
    "BUDGET_EXCEEDED",
    "USER_SPIKE",
    "FEATURE_SPIKE",
];
pub const ANOMALY_SEVERITIES: &[&str] = &["LOW", "MEDIUM", "HIGH", "CRITICAL"];
pub const ENTITY_TYPES: &[&str] = &["tenant", "user", "feature", "model"];
pub const DERIVED_CAUSES: &[&str] = &[
    "RETRY_LOOP",
    "PROMPT_GROWTH",
    "FEATURE_SURGE",
    "TRAFFIC_GROWTH",
    "UNKNOWN",
];
pub const SNAPSHOT_TYPES: &[&str] = &["hourly", "daily"];
pub const SNAPSHOT_STATUSES: &[&str] = &["pending", "computing", "complete", "failed"];
pub const BREACH_TYPES: &[&str] = &["ABSOLUTE_SPIKE", "SUSTAINED_DRIFT"];

/// `entity_id` with the '' sentinel (see module docs).
fn entity_id_sentinel() -> ColumnDef {
    string_len("entity_id", 128).default("").take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("feature_tags")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("tag", 128))
                    .col(string_len("display_name", 256))
                    .col(text_null("description"))
                    .col(integer_null("budget_cents"))
                    .col(boolean("is_active").default(true))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_records")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len_null("user_id", 64))
                    .col(string_len_null("feature_tag", 128))
                    .col(string_len_null("request_id", 64))
                    .col(string_len_null("workflow_id", 64))
                    .col(string_len_null("skill_id", 64))
                    .col(string_len("model", 64))
                    .col(integer("input_tokens").default(0))
                    .col(integer("output_tokens").default(0))
                    .col(double("cost_cents"))
                    .col(boolean("is_retry").default(false))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_budgets")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("budget_type", 32).check(in_set("budget_type", BUDGET_TYPES)))
                    .col(entity_id_sentinel())
                    .col(integer_null("daily_limit_cents"))
                    .col(integer_null("monthly_limit_cents"))
                    .col(integer("warn_threshold_pct").default(80))
                    .col(boolean("hard_limit_enabled").default(false))
                    .col(boolean("is_active").default(true))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    // tenant budgets have no entity ('' sentinel); the others must name one
                    .check(Expr::cust(
                        "(budget_type = 'tenant' AND entity_id = '') \
                         OR (budget_type <> 'tenant' AND entity_id <> '')",
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_anomalies")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(
                        string_len("anomaly_type", 32).check(in_set("anomaly_type", ANOMALY_TYPES)),
                    )
                    .col(string_len("severity", 16).check(in_set("severity", ANOMALY_SEVERITIES)))
                    .col(string_len("entity_type", 32).check(in_set("entity_type", ENTITY_TYPES)))
                    .col(string_len_null("entity_id", 128))
                    .col(double("current_value_cents"))
                    .col(double("expected_value_cents"))
                    .col(double("deviation_pct"))
                    .col(double("threshold_pct").default(200.0))
                    .col(text("message"))
                    .col(string_len_null("incident_id", 64))
                    .col(string_len_null("action_taken", 64))
                    .col(boolean("resolved").default(false))
                    .col(timestamp_with_time_zone_null("resolved_at"))
                    .col(json_binary_null("metadata"))
                    .col(timestamp_with_time_zone("detected_at"))
                    .col(string_len_null("snapshot_id", 64))
                    .col(string_len_null("baseline_id", 64))
                    .col(
                        string_len_null("derived_cause", 32)
                            .check(in_set("derived_cause", DERIVED_CAUSES)),
                    )
                    .col(integer("breach_count").default(1))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_daily_aggregates")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(date("date"))
                    .col(string_len("feature_tag", 128).default(""))
                    .col(string_len("user_id", 64).default(""))
                    .col(string_len("model", 64).default(""))
                    .col(double("total_cost_cents").default(0.0))
                    .col(big_integer("total_input_tokens").default(0))
                    .col(big_integer("total_output_tokens").default(0))
                    .col(integer("request_count").default(0))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_snapshots")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(
                        string_len("snapshot_type", 16)
                            .check(in_set("snapshot_type", SNAPSHOT_TYPES)),
                    )
                    .col(timestamp_with_time_zone("period_start"))
                    .col(timestamp_with_time_zone("period_end"))
                    .col(
                        string_len("status", 16)
                            .default("pending")
                            .check(in_set("status", SNAPSHOT_STATUSES)),
                    )
                    .col(integer("version").default(1))
                    .col(integer_null("records_processed"))
                    .col(integer_null("computation_ms"))
                    .col(text_null("error_message"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("completed_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_snapshot_aggregates")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("snapshot_id", 64))
                    .col(string_len("tenant_id", 64))
                    .col(string_len("entity_type", 16).check(in_set("entity_type", ENTITY_TYPES)))
                    .col(entity_id_sentinel())
                    .col(double("total_cost_cents").default(0.0))
                    .col(integer("request_count").default(0))
                    .col(big_integer("total_input_tokens").default(0))
                    .col(big_integer("total_output_tokens").default(0))
                    .col(double_null("avg_cost_per_request_cents"))
                    .col(double_null("avg_tokens_per_request"))
                    .col(double_null("baseline_7d_avg_cents"))
                    .col(double_null("baseline_30d_avg_cents"))
                    .col(double_null("deviation_from_7d_pct"))
                    .col(double_null("deviation_from_30d_pct"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_cost_snapshot_aggregates_snapshot")
                            .from("cost_snapshot_aggregates", "snapshot_id")
                            .to("cost_snapshots", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_snapshot_baselines")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("entity_type", 16).check(in_set("entity_type", ENTITY_TYPES)))
                    .col(entity_id_sentinel())
                    .col(double("avg_daily_cost_cents"))
                    .col(double_null("stddev_daily_cost_cents"))
                    .col(double("avg_daily_requests"))
                    .col(double_null("max_daily_cost_cents"))
                    .col(double_null("min_daily_cost_cents"))
                    .col(integer("window_days"))
                    .col(integer("samples_count"))
                    .col(timestamp_with_time_zone("computed_at"))
                    .col(timestamp_with_time_zone("valid_until"))
                    .col(boolean("is_current").default(true))
                    .col(string_len_null("last_snapshot_id", 64))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_anomaly_evaluations")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len_null("snapshot_id", 64))
                    .col(string_len("entity_type", 16).check(in_set("entity_type", ENTITY_TYPES)))
                    .col(string_len_null("entity_id", 128))
                    .col(double("current_value_cents"))
                    .col(double("baseline_value_cents"))
                    .col(double("threshold_pct"))
                    .col(double("deviation_pct"))
                    .col(boolean("triggered"))
                    .col(
                        string_len_null("severity_computed", 16)
                            .check(in_set("severity_computed", ANOMALY_SEVERITIES)),
                    )
                    .col(string_len_null("anomaly_id", 64))
                    .col(text_null("evaluation_reason"))
                    .col(timestamp_with_time_zone("evaluated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_cost_anomaly_evaluations_snapshot")
                            .from("cost_anomaly_evaluations", "snapshot_id")
                            .to("cost_snapshots", "id")
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_breach_history")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("entity_type", 32).check(in_set("entity_type", ENTITY_TYPES)))
                    .col(entity_id_sentinel())
                    .col(string_len("breach_type", 32).check(in_set("breach_type", BREACH_TYPES)))
                    .col(date("breach_date"))
                    .col(double("deviation_pct"))
                    .col(double("current_value_cents"))
                    .col(double("baseline_value_cents"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("cost_drift_tracking")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("tenant_id", 64))
                    .col(string_len("entity_type", 32).check(in_set("entity_type", ENTITY_TYPES)))
                    .col(entity_id_sentinel())
                    .col(double("rolling_7d_avg_cents"))
                    .col(double("baseline_7d_avg_cents"))
                    .col(double("drift_pct"))
                    .col(integer("drift_days_count").default(1))
                    .col(date("first_drift_date"))
                    .col(date("last_check_date"))
                    .col(boolean("is_active").default(true))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        // One *current* baseline per (tenant, entity, window); any number of
        // superseded ones (the Python platform's UNIQUE(.., is_current) allowed only one).
        let mut baseline_current = unique_index(
            "uq_cost_snapshot_baselines_current",
            "cost_snapshot_baselines",
            &["tenant_id", "entity_type", "entity_id", "window_days"],
        );
        baseline_current.and_where(Expr::col("is_current").eq(true));

        create_indexes(
            manager,
            vec![
                // feature_tags
                unique_index(
                    "uq_feature_tags_tenant_tag",
                    "feature_tags",
                    &["tenant_id", "tag"],
                ),
                index("idx_feature_tags_tag", "feature_tags", &["tag"]),
                // cost_records
                index(
                    "idx_cost_records_tenant_created",
                    "cost_records",
                    &["tenant_id", "created_at", "id"],
                ),
                index(
                    "idx_cost_records_tenant_feature",
                    "cost_records",
                    &["tenant_id", "feature_tag"],
                ),
                index(
                    "idx_cost_records_tenant_user",
                    "cost_records",
                    &["tenant_id", "user_id"],
                ),
                index(
                    "idx_cost_records_tenant_model",
                    "cost_records",
                    &["tenant_id", "model", "created_at"],
                ),
                // cost_budgets
                unique_index(
                    "uq_cost_budgets_tenant_type_entity",
                    "cost_budgets",
                    &["tenant_id", "budget_type", "entity_id"],
                ),
                // cost_anomalies
                index(
                    "idx_cost_anomalies_tenant_detected",
                    "cost_anomalies",
                    &["tenant_id", "detected_at"],
                ),
                index(
                    "idx_cost_anomalies_tenant_resolved",
                    "cost_anomalies",
                    &["tenant_id", "resolved", "detected_at"],
                ),
                index(
                    "idx_cost_anomalies_type",
                    "cost_anomalies",
                    &["anomaly_type"],
                ),
                index(
                    "idx_cost_anomalies_severity",
                    "cost_anomalies",
                    &["severity"],
                ),
                index(
                    "idx_cost_anomalies_incident",
                    "cost_anomalies",
                    &["incident_id"],
                ),
                index(
                    "idx_cost_anomalies_snapshot",
                    "cost_anomalies",
                    &["snapshot_id"],
                ),
                // cost_daily_aggregates
                unique_index(
                    "uq_cost_daily_aggregates_group",
                    "cost_daily_aggregates",
                    &["tenant_id", "date", "feature_tag", "user_id", "model"],
                ),
                index(
                    "idx_cost_daily_aggregates_tenant_date",
                    "cost_daily_aggregates",
                    &["tenant_id", "date"],
                ),
                index(
                    "idx_cost_daily_aggregates_tenant_feature",
                    "cost_daily_aggregates",
                    &["tenant_id", "feature_tag", "date"],
                ),
                // cost_snapshots
                unique_index(
                    "uq_cost_snapshots_tenant_type_period",
                    "cost_snapshots",
                    &["tenant_id", "snapshot_type", "period_start"],
                ),
                index(
                    "idx_cost_snapshots_tenant_status",
                    "cost_snapshots",
                    &["tenant_id", "status", "period_end"],
                ),
                index(
                    "idx_cost_snapshots_tenant_period",
                    "cost_snapshots",
                    &["tenant_id", "period_start", "period_end"],
                ),
                // cost_snapshot_aggregates
                unique_index(
                    "uq_cost_snapshot_aggregates_entity",
                    "cost_snapshot_aggregates",
                    &["snapshot_id", "entity_type", "entity_id"],
                ),
                index(
                    "idx_cost_snapshot_aggregates_tenant_entity",
                    "cost_snapshot_aggregates",
                    &["tenant_id", "entity_type", "entity_id"],
                ),
                index(
                    "idx_cost_snapshot_aggregates_deviation",
                    "cost_snapshot_aggregates",
                    &["tenant_id", "deviation_from_7d_pct"],
                ),
                // cost_snapshot_baselines
                baseline_current,
                index(
                    "idx_cost_snapshot_baselines_current",
                    "cost_snapshot_baselines",
                    &["tenant_id", "entity_type", "entity_id", "is_current"],
                ),
                // cost_anomaly_evaluations
                index(
                    "idx_cost_anomaly_evaluations_tenant_time",
                    "cost_anomaly_evaluations",
                    &["tenant_id", "evaluated_at"],
                ),
                index(
                    "idx_cost_anomaly_evaluations_snapshot",
                    "cost_anomaly_evaluations",
                    &["snapshot_id", "triggered"],
                ),
                // cost_breach_history
                unique_index(
                    "uq_cost_breach_history_entity_day",
                    "cost_breach_history",
                    &[
                        "tenant_id",
                        "entity_type",
                        "entity_id",
                        "breach_type",
                        "breach_date",
                    ],
                ),
                // cost_drift_tracking
                unique_index(
                    "uq_cost_drift_tracking_entity",
                    "cost_drift_tracking",
                    &["tenant_id", "entity_type", "entity_id"],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "cost_drift_tracking",
                "cost_breach_history",
                "cost_anomaly_evaluations",
                "cost_snapshot_baselines",
                "cost_snapshot_aggregates",
                "cost_snapshots",
                "cost_daily_aggregates",
                "cost_anomalies",
                "cost_budgets",
                "cost_records",
                "feature_tags",
            ],
        )
        .await
    }
}
