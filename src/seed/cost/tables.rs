//! The cost tables the seeder writes, and their indexes in the cost sinks.

use super::super::runs;
use super::super::writer::TableDef;

pub(crate) static FEATURE_TAGS: TableDef = TableDef {
    name: "feature_tags",
    columns: &[
        "id",
        "tenant_id",
        "tag",
        "display_name",
        "description",
        "budget_cents",
        "is_active",
        "created_at",
        "updated_at",
    ],
};
pub(crate) static COST_RECORDS: TableDef = TableDef {
    name: "cost_records",
    columns: &[
        "id",
        "tenant_id",
        "user_id",
        "feature_tag",
        "request_id",
        "workflow_id",
        "skill_id",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_cents",
        "is_retry",
        "created_at",
    ],
};
pub(crate) static BUDGETS: TableDef = TableDef {
    name: "cost_budgets",
    columns: &[
        "id",
        "tenant_id",
        "budget_type",
        "entity_id",
        "daily_limit_cents",
        "monthly_limit_cents",
        "warn_threshold_pct",
        "hard_limit_enabled",
        "is_active",
        "created_at",
        "updated_at",
    ],
};
pub(crate) static DAILY: TableDef = TableDef {
    name: "cost_daily_aggregates",
    columns: &[
        "id",
        "tenant_id",
        "date",
        "feature_tag",
        "user_id",
        "model",
        "total_cost_cents",
        "total_input_tokens",
        "total_output_tokens",
        "request_count",
        "created_at",
        "updated_at",
    ],
};
pub(crate) static SNAPSHOTS: TableDef = TableDef {
    name: "cost_snapshots",
    columns: &[
        "id",
        "tenant_id",
        "snapshot_type",
        "period_start",
        "period_end",
        "status",
        "version",
        "records_processed",
        "computation_ms",
        "error_message",
        "created_at",
        "completed_at",
    ],
};
pub(crate) static SNAPSHOT_AGGREGATES: TableDef = TableDef {
    name: "cost_snapshot_aggregates",
    columns: &[
        "id",
        "snapshot_id",
        "tenant_id",
        "entity_type",
        "entity_id",
        "total_cost_cents",
        "request_count",
        "total_input_tokens",
        "total_output_tokens",
        "avg_cost_per_request_cents",
        "avg_tokens_per_request",
        "baseline_7d_avg_cents",
        "baseline_30d_avg_cents",
        "deviation_from_7d_pct",
        "deviation_from_30d_pct",
        "created_at",
    ],
};
pub(crate) static BASELINES: TableDef = TableDef {
    name: "cost_snapshot_baselines",
    columns: &[
        "id",
        "tenant_id",
        "entity_type",
        "entity_id",
        "avg_daily_cost_cents",
        "stddev_daily_cost_cents",
        "avg_daily_requests",
        "max_daily_cost_cents",
        "min_daily_cost_cents",
        "window_days",
        "samples_count",
        "computed_at",
        "valid_until",
        "is_current",
        "last_snapshot_id",
    ],
};
pub(crate) static EVALUATIONS: TableDef = TableDef {
    name: "cost_anomaly_evaluations",
    columns: &[
        "id",
        "tenant_id",
        "snapshot_id",
        "entity_type",
        "entity_id",
        "current_value_cents",
        "baseline_value_cents",
        "threshold_pct",
        "deviation_pct",
        "triggered",
        "severity_computed",
        "anomaly_id",
        "evaluation_reason",
        "evaluated_at",
    ],
};
pub(crate) static ANOMALIES: TableDef = TableDef {
    name: "cost_anomalies",
    columns: &[
        "id",
        "tenant_id",
        "anomaly_type",
        "severity",
        "entity_type",
        "entity_id",
        "current_value_cents",
        "expected_value_cents",
        "deviation_pct",
        "threshold_pct",
        "message",
        "incident_id",
        "action_taken",
        "resolved",
        "resolved_at",
        "metadata",
        "detected_at",
        "snapshot_id",
        "baseline_id",
        "derived_cause",
        "breach_count",
    ],
};
pub(crate) static BREACHES: TableDef = TableDef {
    name: "cost_breach_history",
    columns: &[
        "id",
        "tenant_id",
        "entity_type",
        "entity_id",
        "breach_type",
        "breach_date",
        "deviation_pct",
        "current_value_cents",
        "baseline_value_cents",
        "created_at",
    ],
};
pub(crate) static DRIFT: TableDef = TableDef {
    name: "cost_drift_tracking",
    columns: &[
        "id",
        "tenant_id",
        "entity_type",
        "entity_id",
        "rolling_7d_avg_cents",
        "baseline_7d_avg_cents",
        "drift_pct",
        "drift_days_count",
        "first_drift_date",
        "last_check_date",
        "is_active",
        "created_at",
        "updated_at",
    ],
};

pub(crate) static RECORD_TABLES: [&TableDef; 1] = [&COST_RECORDS];

pub(super) const X_FEATURE_TAGS: usize = 0;
pub(super) const X_BUDGETS: usize = 1;
pub(super) const X_DAILY: usize = 2;
pub(super) const X_SNAPSHOTS: usize = 3;
pub(super) const X_SNAPSHOT_AGGREGATES: usize = 4;
pub(super) const X_BASELINES: usize = 5;
pub(super) const X_EVALUATIONS: usize = 6;
pub(super) const X_ANOMALIES: usize = 7;
pub(super) const X_BREACHES: usize = 8;
pub(super) const X_DRIFT: usize = 9;
pub(super) const X_INCIDENTS: usize = 10;

/// Snapshots before their aggregates and evaluations (foreign keys).
pub(crate) static EXTRA_TABLES: [&TableDef; 11] = [
    &FEATURE_TAGS,
    &BUDGETS,
    &DAILY,
    &SNAPSHOTS,
    &SNAPSHOT_AGGREGATES,
    &BASELINES,
    &EVALUATIONS,
    &ANOMALIES,
    &BREACHES,
    &DRIFT,
    &runs::INCIDENTS,
];
