//! Database migrations of Logbook. The same migrations run on PostgreSQL and
//! SQLite; backend-specific parts (triggers) are chosen at run time.

pub use sea_orm_migration::prelude::*;

mod common;
mod m20261127_000001_create_tenants;
mod m20261127_000002_create_server_settings;
mod m20261127_000003_create_llm_run_records;
mod m20261127_000004_create_system_records;
mod m20261127_000005_create_audit_ledger;
mod m20261127_000006_create_log_exports;
mod m20261127_000007_create_aos_traces;
mod m20261127_000008_create_aos_trace_steps;
mod m20261127_000009_create_aos_trace_mismatches;
mod m20261127_000010_create_incidents;
mod m20261127_000011_create_cost_tables;
mod m20261127_000012_create_evidence_tables;
mod m20261127_000013_create_policy_activation_audit;
mod m20261128_041500_index_cost_rollup_grains;
mod m20261128_090000_create_idempotency_keys;
mod m20261128_091000_create_request_limits;
mod m20261128_110000_create_ledger_tables;
mod m20261128_130000_create_replay_outputs;
mod m20261128_140000_create_export_jobs;
mod m20261128_150100_scope_evidence_keys;
mod m20261128_160000_audit_export_event;
mod m20261203_120000_index_ledger_checkpoints_created;
mod m20261204_000000_scope_trace_ids_by_tenant;
mod m20261204_010000_keys_claimed_in_the_effects_transaction;
mod m20261204_020000_llm_run_day_counts;
mod m20261204_030000_manage_api_keys;
mod m20261205_000000_run_console_reads;
mod m20261205_010000_run_rollup_totals;
mod m20261205_020000_rollup_grain_varchar;
mod m20261205_030000_trace_console_reads;
mod m20261205_040000_trace_view_index;
mod m20261205_050000_system_audit_console_reads;
mod m20261205_060000_mismatch_console_reads;
mod m20261205_070000_step_list_index;
mod m20261205_080000_trace_end_index;
mod m20261205_090000_run_rollup_months;
mod m20261205_100000_mismatch_resolved_index;
mod m20261206_000000_policy_activation_list_index;
mod m20261206_010000_cost_anomaly_workflow;
mod m20261206_020000_trace_violations_at_seal;
mod m20261206_100000_create_mismatch_notifications;
mod m20261207_163000_retention;
mod m20261207_170000_platform_api_keys;
mod m20261207_171500_export_cancel;
mod m20261207_173000_export_bundle_facts;
mod m20261207_180000_create_otlp_spans;
mod m20261208_090000_api_key_actor_type;
mod m20261208_093000_retention_otlp_spans;
mod m20261209_000000_drop_step_level_index;
mod m20261210_000000_otlp_root_spans;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_tenants::Migration),
            Box::new(m20261127_000002_create_server_settings::Migration),
            Box::new(m20261127_000003_create_llm_run_records::Migration),
            Box::new(m20261127_000004_create_system_records::Migration),
            Box::new(m20261127_000005_create_audit_ledger::Migration),
            Box::new(m20261127_000006_create_log_exports::Migration),
            Box::new(m20261127_000007_create_aos_traces::Migration),
            Box::new(m20261127_000008_create_aos_trace_steps::Migration),
            Box::new(m20261127_000009_create_aos_trace_mismatches::Migration),
            Box::new(m20261127_000010_create_incidents::Migration),
            Box::new(m20261127_000011_create_cost_tables::Migration),
            Box::new(m20261127_000012_create_evidence_tables::Migration),
            Box::new(m20261127_000013_create_policy_activation_audit::Migration),
            Box::new(m20261128_041500_index_cost_rollup_grains::Migration),
            Box::new(m20261128_090000_create_idempotency_keys::Migration),
            Box::new(m20261128_091000_create_request_limits::Migration),
            Box::new(m20261128_110000_create_ledger_tables::Migration),
            Box::new(m20261128_130000_create_replay_outputs::Migration),
            Box::new(m20261128_140000_create_export_jobs::Migration),
            Box::new(m20261128_150100_scope_evidence_keys::Migration),
            Box::new(m20261128_160000_audit_export_event::Migration),
            Box::new(m20261203_120000_index_ledger_checkpoints_created::Migration),
            Box::new(m20261204_000000_scope_trace_ids_by_tenant::Migration),
            Box::new(m20261204_010000_keys_claimed_in_the_effects_transaction::Migration),
            Box::new(m20261204_020000_llm_run_day_counts::Migration),
            Box::new(m20261204_030000_manage_api_keys::Migration),
            Box::new(m20261205_000000_run_console_reads::Migration),
            Box::new(m20261205_010000_run_rollup_totals::Migration),
            Box::new(m20261205_020000_rollup_grain_varchar::Migration),
            Box::new(m20261205_030000_trace_console_reads::Migration),
            Box::new(m20261205_040000_trace_view_index::Migration),
            Box::new(m20261205_050000_system_audit_console_reads::Migration),
            Box::new(m20261205_060000_mismatch_console_reads::Migration),
            Box::new(m20261205_070000_step_list_index::Migration),
            Box::new(m20261205_080000_trace_end_index::Migration),
            Box::new(m20261205_090000_run_rollup_months::Migration),
            Box::new(m20261205_100000_mismatch_resolved_index::Migration),
            Box::new(m20261206_000000_policy_activation_list_index::Migration),
            Box::new(m20261206_010000_cost_anomaly_workflow::Migration),
            Box::new(m20261206_020000_trace_violations_at_seal::Migration),
            Box::new(m20261206_100000_create_mismatch_notifications::Migration),
            Box::new(m20261207_163000_retention::Migration),
            Box::new(m20261207_170000_platform_api_keys::Migration),
            Box::new(m20261207_171500_export_cancel::Migration),
            Box::new(m20261207_173000_export_bundle_facts::Migration),
            Box::new(m20261207_180000_create_otlp_spans::Migration),
            Box::new(m20261208_090000_api_key_actor_type::Migration),
            Box::new(m20261208_093000_retention_otlp_spans::Migration),
            Box::new(m20261209_000000_drop_step_level_index::Migration),
            Box::new(m20261210_000000_otlp_root_spans::Migration),
        ]
    }
}
