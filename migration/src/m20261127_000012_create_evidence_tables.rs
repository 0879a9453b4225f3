//! Evidence capture tables (docs/domain.md §8.1): environment_evidence (H),
//! activity_evidence (B), provider_evidence (G), policy_decisions (D),
//! integrity_evidence (J) and evidence_capture_failures.
//!
//! Differences from the Python platform: an explicit `tenant_id` on every table
//! (there is no `runs` table here to scope through, so no FK on run_id either);
//! PostgreSQL `text[]` columns are JSON arrays (jsonb / text) on both backends.

use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_indexes, drop_tables, in_set, index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const RESOLUTIONS: &[&str] = &["transient", "permanent", "superseded"];

/// `tenant_id` + `run_id`, the leading columns of every evidence table.
fn scope_columns(table: &mut TableCreateStatement) {
    table
        .col(string_len("tenant_id", 64))
        .col(string_len("run_id", 64));
}

/// SDSR columns and `created_at`, the trailing columns of B/D/G/H/J.
fn trailing_columns(table: &mut TableCreateStatement) {
    table
        .col(boolean("is_synthetic").default(false))
        .col(string_len_null("synthetic_scenario_id", 64))
        .col(timestamp_with_time_zone("created_at"));
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Class H
        let mut t = Table::create();
        t.table("environment_evidence")
            .col(text("id").primary_key());
        scope_columns(&mut t);
        t.col(string_len("sdk_mode", 20))
            .col(string_len_null("sdk_version", 20))
            .col(string_len_null("environment", 20))
            .col(boolean_null("telemetry_enabled").default(true))
            .col(string_len_null("telemetry_delivery_status", 20))
            .col(double_null("trace_sampling_rate").default(1.0))
            .col(boolean_null("metrics_enabled").default(true))
            .col(string_len_null("client_ip", 45))
            .col(text_null("client_user_agent"))
            .col(string_len_null("client_origin", 255))
            .col(json_binary_null("active_feature_flags"))
            .col(boolean_null("debug_mode").default(false))
            .col(boolean_null("dry_run").default(false))
            .col(double_null("capture_confidence_score"))
            .col(boolean_null("firewall_proxy_detected"));
        trailing_columns(&mut t);
        manager.create_table(t).await?;

        // Class B
        let mut t = Table::create();
        t.table("activity_evidence").col(text("id").primary_key());
        scope_columns(&mut t);
        t.col(integer("step_index"))
            .col(text("skill_id"))
            .col(text("model_name"))
            .col(string_len("prompt_fingerprint", 64))
            .col(integer("prompt_token_length"))
            .col(text_null("prompt_template_id"))
            .col(string_len_null("prompt_template_version", 20))
            .col(string_len_null("response_fingerprint", 64))
            .col(integer_null("response_token_length"))
            .col(string_len_null("completion_type", 20))
            .col(string_len_null("sensitivity_class", 20))
            .col(string_len_null("redaction_status", 20))
            .col(json_binary_null("provider_safety_flags"))
            .col(string_len("evidence_source", 20).default("execution"));
        trailing_columns(&mut t);
        manager.create_table(t).await?;

        // Class G
        let mut t = Table::create();
        t.table("provider_evidence").col(text("id").primary_key());
        scope_columns(&mut t);
        t.col(integer("step_index"))
            .col(string_len("provider_name", 50))
            .col(text_null("provider_request_id"))
            .col(text("model_name"))
            .col(string_len_null("model_version", 50))
            .col(integer_null("input_tokens"))
            .col(integer_null("output_tokens"))
            .col(integer_null("cache_read_tokens").default(0))
            .col(integer_null("cache_creation_tokens").default(0))
            .col(integer_null("total_tokens"))
            .col(string_len_null("api_version", 20))
            .col(string_len_null("endpoint", 255))
            .col(integer_null("provider_latency_ms"))
            .col(integer_null("provider_http_status"))
            .col(string_len_null("provider_error_code", 50))
            .col(integer_null("provider_retry_count").default(0))
            .col(json_binary_null("provider_safety_signals"))
            .col(timestamp_with_time_zone("requested_at"))
            .col(timestamp_with_time_zone_null("responded_at"));
        trailing_columns(&mut t);
        manager.create_table(t).await?;

        // Class D
        let mut t = Table::create();
        t.table("policy_decisions").col(text("id").primary_key());
        scope_columns(&mut t);
        t.col(string_len("policy_type", 50))
            .col(text_null("policy_rule_id"))
            .col(integer_null("policy_version"))
            .col(string_len("decision", 20))
            .col(text_null("decision_reason"))
            .col(double_null("decision_confidence"))
            .col(json_binary_null("policies_evaluated"))
            .col(string_len_null("policy_results", 20))
            .col(json_binary_null("evaluation_order"))
            .col(json_binary_null("thresholds_used"))
            .col(json_binary_null("customer_guardrail_result"))
            .col(json_binary_null("provider_moderation_result"))
            .col(json_binary_null("decision_reason_codes"))
            .col(text_null("approval_request_id"))
            .col(integer_null("required_approval_level"))
            .col(integer_null("current_approval_level"))
            .col(string_len_null("evaluated_by", 50))
            .col(timestamp_with_time_zone("evaluated_at"));
        trailing_columns(&mut t);
        manager.create_table(t).await?;

        // Class J
        let mut t = Table::create();
        t.table("integrity_evidence").col(text("id").primary_key());
        scope_columns(&mut t);
        t.col(json_binary("expected_artifacts"))
            .col(json_binary_null("expected_artifact_schema"))
            .col(json_binary("observed_artifacts"))
            .col(json_binary_null("missing_artifacts"))
            .col(json_binary_null("missing_reasons"))
            .col(double("integrity_score"))
            .col(string_len("integrity_status", 20))
            .col(string_len_null("verification_method", 30))
            .col(timestamp_with_time_zone_null("verification_timestamp"))
            .col(text_null("divergence_details"))
            .col(text_null("recovery_action"))
            .col(json_binary_null("coverage_metrics"));
        trailing_columns(&mut t);
        manager.create_table(t).await?;

        // Capture failures (id is unbounded text: `ecf-<run_id>-<evidence_type>-<8 hex>`
        // exceeds 64 characters for a UUID run id and a long evidence type).
        let mut t = Table::create();
        t.table("evidence_capture_failures")
            .col(text("id").primary_key());
        scope_columns(&mut t);
        t.col(string_len("evidence_type", 64))
            .col(string_len("failure_reason", 64))
            .col(text_null("error_message"))
            .col(
                string_len("resolution", 32)
                    .default("transient")
                    .check(in_set("resolution", RESOLUTIONS)),
            )
            .col(timestamp_with_time_zone("created_at"));
        manager.create_table(t).await?;

        create_indexes(
            manager,
            vec![
                // H
                unique_index(
                    "uq_environment_evidence_run",
                    "environment_evidence",
                    &["run_id"],
                ),
                index(
                    "idx_environment_evidence_tenant_run",
                    "environment_evidence",
                    &["tenant_id", "run_id"],
                ),
                // B
                unique_index(
                    "uq_activity_evidence_run_step",
                    "activity_evidence",
                    &["run_id", "step_index"],
                ),
                index(
                    "idx_activity_evidence_tenant_run",
                    "activity_evidence",
                    &["tenant_id", "run_id"],
                ),
                index(
                    "idx_activity_evidence_prompt_fp",
                    "activity_evidence",
                    &["prompt_fingerprint"],
                ),
                // G
                unique_index(
                    "uq_provider_evidence_run_step",
                    "provider_evidence",
                    &["run_id", "step_index"],
                ),
                index(
                    "idx_provider_evidence_tenant_run",
                    "provider_evidence",
                    &["tenant_id", "run_id"],
                ),
                index(
                    "idx_provider_evidence_request_id",
                    "provider_evidence",
                    &["provider_request_id"],
                ),
                // D
                index(
                    "idx_policy_decisions_tenant_run",
                    "policy_decisions",
                    &["tenant_id", "run_id"],
                ),
                // J
                unique_index(
                    "uq_integrity_evidence_run",
                    "integrity_evidence",
                    &["run_id"],
                ),
                index(
                    "idx_integrity_evidence_tenant_run",
                    "integrity_evidence",
                    &["tenant_id", "run_id"],
                ),
                index(
                    "idx_integrity_evidence_status",
                    "integrity_evidence",
                    &["integrity_status"],
                ),
                index(
                    "idx_integrity_evidence_score",
                    "integrity_evidence",
                    &["integrity_score"],
                ),
                // failures
                unique_index(
                    "uq_evidence_capture_failures_run_type_reason",
                    "evidence_capture_failures",
                    &["run_id", "evidence_type", "failure_reason"],
                ),
                index(
                    "idx_evidence_capture_failures_tenant_run",
                    "evidence_capture_failures",
                    &["tenant_id", "run_id"],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "evidence_capture_failures",
                "integrity_evidence",
                "policy_decisions",
                "provider_evidence",
                "activity_evidence",
                "environment_evidence",
            ],
        )
        .await
    }
}
