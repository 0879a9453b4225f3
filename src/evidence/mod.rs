//! Evidence capture (docs/domain.md §8.1, §8.2): the write side of the governance evidence
//! classes H (environment), B (activity), G (provider), D (policy decisions) and the J seal,
//! plus `evidence_capture_failures`. `captureEvidence` writes one run's evidence in one
//! transaction; integrity grading (`crate::integrity`) reads it.
//!
//! Fixes over the Python platform (docs/decisions.md D13): a write error is never swallowed — the
//! failed row is rolled back to its savepoint, recorded as a `database_error` capture failure in
//! the same transaction, and reported in the mutation's payload; the seal is graded inside the
//! transaction, so it sees the evidence written just before it. Evidence keys are per tenant
//! (run ids are unique per tenant), so ids carry an 8-hex digest of the tenant.

pub mod capture;
pub mod mutation;
pub mod reads;

use async_graphql::Enum;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::TenantId;
use crate::closed_set::closed_set;
use crate::integrity::CaptureResolution;

/// SHA-256 of the UTF-8 text, lower-case hex: how prompts and responses are fingerprinted
/// (their raw text is never stored).
pub fn fingerprint(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The first 8 hex characters of the tenant's digest, part of every evidence id.
pub fn tenant_tag(tenant: &TenantId) -> String {
    fingerprint(tenant.as_str())[..8].to_owned()
}

/// The default resolution of a failure reason (docs/domain.md §8.2); unknown reasons are transient.
pub fn default_resolution(reason: &str) -> CaptureResolution {
    match reason {
        "pre_attach" | "context_invalid" => CaptureResolution::Permanent,
        _ => CaptureResolution::Transient,
    }
}

/// Cuts `text` to at most `max` characters (error texts are kept to 500).
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

closed_set! {
    /// Who produced the evidence (the context's `source`, stored as `evidence_source`).
    #[derive(Enum, Serialize, Deserialize)]
    pub enum CaptureSource {
        Sdk => "sdk",
        Worker => "worker",
        Provider => "provider",
        Reconciler => "reconciler",
    }
}

/// The execution context every capture except the seal requires (docs/domain.md §8.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionContext {
    pub trace_id: String,
    pub source: CaptureSource,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
}

/// Class H, once per run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentCapture {
    pub sdk_mode: &'static str,
    pub sdk_version: Option<String>,
    pub environment: Option<&'static str>,
    pub telemetry_enabled: bool,
    pub telemetry_delivery_status: Option<&'static str>,
    pub trace_sampling_rate: Option<f64>,
    pub metrics_enabled: Option<bool>,
    pub client_ip: Option<String>,
    pub client_user_agent: Option<String>,
    pub client_origin: Option<String>,
    pub active_feature_flags: Option<Vec<String>>,
    pub debug_mode: bool,
    pub dry_run: bool,
    pub capture_confidence_score: Option<f64>,
    pub firewall_proxy_detected: Option<bool>,
}

/// Class B, one per consequential step; a second capture of a step fills in response fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityCapture {
    pub step_index: i32,
    pub skill_id: String,
    pub model_name: String,
    pub prompt_fingerprint: String,
    pub prompt_token_length: i32,
    pub prompt_template_id: Option<String>,
    pub prompt_template_version: Option<String>,
    pub response_fingerprint: Option<String>,
    pub response_token_length: Option<i32>,
    pub completion_type: Option<&'static str>,
    pub sensitivity_class: Option<&'static str>,
    pub redaction_status: Option<&'static str>,
    pub provider_safety_flags: Option<Value>,
}

/// Class G, one per provider response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderCapture {
    pub step_index: i32,
    pub provider_name: String,
    pub provider_request_id: Option<String>,
    pub model_name: String,
    pub model_version: Option<String>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
    pub cache_read_tokens: i32,
    pub cache_creation_tokens: i32,
    /// Given, or input + output (missing counts as 0).
    pub total_tokens: i32,
    pub api_version: Option<String>,
    pub endpoint: Option<String>,
    pub provider_latency_ms: Option<i32>,
    pub provider_http_status: Option<i32>,
    pub provider_error_code: Option<String>,
    pub provider_retry_count: i32,
    pub provider_safety_signals: Option<Value>,
}

/// Class D, any number per run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyDecisionCapture {
    pub policy_type: &'static str,
    pub policy_rule_id: Option<String>,
    pub policy_version: Option<i32>,
    pub decision: &'static str,
    pub decision_reason: Option<String>,
    pub decision_confidence: Option<f64>,
    pub policies_evaluated: Option<Vec<String>>,
    pub policy_results: Option<&'static str>,
    pub evaluation_order: Option<Vec<String>>,
    pub thresholds_used: Option<Value>,
    pub customer_guardrail_result: Option<Value>,
    pub provider_moderation_result: Option<Value>,
    pub decision_reason_codes: Option<Vec<String>>,
    pub approval_request_id: Option<String>,
    pub required_approval_level: Option<i32>,
    pub current_approval_level: Option<i32>,
    pub evaluated_by: Option<String>,
}

/// A capture failure reported by the caller (e.g. the SDK timed out waiting for a provider).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureReport {
    /// The class's table name.
    pub evidence_type: &'static str,
    pub failure_reason: String,
    pub error_message: Option<String>,
    pub resolution: &'static str,
}

/// Everything one `captureEvidence` call writes for a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptureRequest {
    pub run_id: String,
    pub context: Option<ExecutionContext>,
    pub environment: Option<EnvironmentCapture>,
    pub activities: Vec<ActivityCapture>,
    pub providers: Vec<ProviderCapture>,
    pub policy_decisions: Vec<PolicyDecisionCapture>,
    pub failures: Vec<FailureReport>,
    pub seal: bool,
}

closed_set! {
    /// An evidence class written by `captureEvidence`.
    #[derive(Enum, Serialize, Deserialize)]
    pub enum EvidenceClass {
        /// H: `environment_evidence`.
        Environment => "environment_evidence",
        /// B: `activity_evidence`.
        Activity => "activity_evidence",
        /// G: `provider_evidence`.
        Provider => "provider_evidence",
        /// D: `policy_decisions`.
        PolicyDecision => "policy_decisions",
        /// J: `integrity_evidence`, the seal.
        Integrity => "integrity_evidence",
    }
}

impl EvidenceClass {
    /// The class's table: its stored text.
    pub fn table(self) -> &'static str {
        self.as_str()
    }
}

/// What happened to one evidence row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
pub enum CaptureStatus {
    /// A new row.
    Created,
    /// An existing activity row had response fields filled in.
    Updated,
    /// A row already existed and was kept (first capture wins).
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedRow {
    pub class: EvidenceClass,
    pub id: String,
    pub step_index: Option<i32>,
    pub status: CaptureStatus,
}

/// A capture failure this call recorded (or found already recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedFailure {
    pub evidence_type: String,
    pub step_index: Option<i32>,
    pub failure_reason: String,
    pub error_message: Option<String>,
    pub resolution: String,
    /// False when the same (class, reason) was already recorded for the run: only the first
    /// is kept.
    pub newly_recorded: bool,
}

/// The result of one capture, stored for idempotent replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureOutcome {
    pub run_id: String,
    pub captured: Vec<CapturedRow>,
    pub failures: Vec<RecordedFailure>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_and_defaults() {
        assert_eq!(
            fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            default_resolution("pre_attach"),
            CaptureResolution::Permanent
        );
        assert_eq!(
            default_resolution("provider_timeout"),
            CaptureResolution::Transient
        );
        assert_eq!(default_resolution("weird"), CaptureResolution::Transient);
        assert_eq!(truncate("ééé", 2), "éé");
        assert_eq!(tenant_tag(&TenantId::trusted("t")).len(), 8);
    }
}
