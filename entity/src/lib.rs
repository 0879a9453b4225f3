//! SeaORM entities of Logbook, one module per table (see `migration` for the DDL).

pub mod activity_evidence;
pub mod aos_trace_mismatches;
pub mod aos_trace_steps;
pub mod aos_traces;
pub mod aos_traces_archive;
pub mod api_keys;
pub mod audit_chain_heads;
pub mod audit_ledger;
pub mod cost_anomalies;
pub mod cost_anomaly_evaluations;
pub mod cost_breach_history;
pub mod cost_budgets;
pub mod cost_daily_aggregates;
pub mod cost_drift_tracking;
pub mod cost_records;
pub mod cost_snapshot_aggregates;
pub mod cost_snapshot_baselines;
pub mod cost_snapshots;
pub mod environment_evidence;
pub mod evidence_capture_failures;
pub mod feature_tags;
pub mod incidents;
pub mod integrity_evidence;
pub mod llm_run_records;
pub mod log_exports;
pub mod policy_activation_audit;
pub mod policy_decisions;
pub mod provider_evidence;
pub mod server_settings;
pub mod system_records;
pub mod tenants;

pub mod prelude {
    //! Entity types under table-derived names, e.g. `LlmRunRecords`.
    pub use super::activity_evidence::Entity as ActivityEvidence;
    pub use super::aos_trace_mismatches::Entity as AosTraceMismatches;
    pub use super::aos_trace_steps::Entity as AosTraceSteps;
    pub use super::aos_traces::Entity as AosTraces;
    pub use super::aos_traces_archive::Entity as AosTracesArchive;
    pub use super::api_keys::Entity as ApiKeys;
    pub use super::audit_chain_heads::Entity as AuditChainHeads;
    pub use super::audit_ledger::Entity as AuditLedger;
    pub use super::cost_anomalies::Entity as CostAnomalies;
    pub use super::cost_anomaly_evaluations::Entity as CostAnomalyEvaluations;
    pub use super::cost_breach_history::Entity as CostBreachHistory;
    pub use super::cost_budgets::Entity as CostBudgets;
    pub use super::cost_daily_aggregates::Entity as CostDailyAggregates;
    pub use super::cost_drift_tracking::Entity as CostDriftTracking;
    pub use super::cost_records::Entity as CostRecords;
    pub use super::cost_snapshot_aggregates::Entity as CostSnapshotAggregates;
    pub use super::cost_snapshot_baselines::Entity as CostSnapshotBaselines;
    pub use super::cost_snapshots::Entity as CostSnapshots;
    pub use super::environment_evidence::Entity as EnvironmentEvidence;
    pub use super::evidence_capture_failures::Entity as EvidenceCaptureFailures;
    pub use super::feature_tags::Entity as FeatureTags;
    pub use super::incidents::Entity as Incidents;
    pub use super::integrity_evidence::Entity as IntegrityEvidence;
    pub use super::llm_run_records::Entity as LlmRunRecords;
    pub use super::log_exports::Entity as LogExports;
    pub use super::policy_activation_audit::Entity as PolicyActivationAudit;
    pub use super::policy_decisions::Entity as PolicyDecisions;
    pub use super::provider_evidence::Entity as ProviderEvidence;
    pub use super::server_settings::Entity as ServerSettings;
    pub use super::system_records::Entity as SystemRecords;
    pub use super::tenants::Entity as Tenants;
}
