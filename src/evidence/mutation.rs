//! `captureEvidence` (role INGEST): one run's governance evidence (docs/domain.md §8.2) in one
//! transaction. The resolver checks the input (the execution-context guard included) and
//! answers with what was written, the failures recorded, and the run's integrity graded
//! afterwards — the same report `llmRun { integrity }` returns.

use std::collections::HashSet;

use async_graphql::{Context, Enum, InputObject, Json, Object, SimpleObject};
use serde_json::Value;

use super::capture;
use super::{
    default_resolution, fingerprint, truncate, ActivityCapture, CaptureOutcome, CaptureRequest,
    CaptureSource, CaptureStatus, CapturedRow, EnvironmentCapture, EvidenceClass, ExecutionContext,
    FailureReport, PolicyDecisionCapture, ProviderCapture, RecordedFailure,
};
use crate::auth::{self, Permission, TenantId};
use crate::closed_set::closed_set;
use crate::error::{AppError, AppResult};
use crate::idempotency::WriteOnce;
use crate::input::{check_id, check_opt, check_sha256, check_synthetic, check_text};
use crate::integrity::graphql::IntegrityReportNode;
use crate::integrity::{store as integrity_store, CaptureResolution, EvidenceArtifact};
use crate::state::AppState;

/// Rows of one class per call.
const MAX_ROWS: usize = 100;

closed_set! {
    /// How the SDK delivered evidence.
    #[derive(Enum)]
    pub enum EvidenceSdkMode {
        Inline => "inline",
        Async => "async",
        Degraded => "degraded",
        Offline => "offline",
        Api => "api",
    }
}

closed_set! {
    /// The deployment the run executed in.
    #[derive(Enum)]
    pub enum EvidenceEnvironment {
        Prod => "prod",
        Staging => "staging",
        Dev => "dev",
        Sandbox => "sandbox",
    }
}

closed_set! {
    /// Whether telemetry reached its destination.
    #[derive(Enum)]
    pub enum TelemetryDeliveryStatus {
        Sent => "sent",
        Dropped => "dropped",
        Buffered => "buffered",
        Unknown => "unknown",
        Connected => "connected",
    }
}

closed_set! {
    /// How a model call completed.
    #[derive(Enum)]
    pub enum CompletionType {
        Final => "final",
        Partial => "partial",
        Streaming => "streaming",
        Refused => "refused",
    }
}

closed_set! {
    /// Sensitivity of the prompt's data.
    #[derive(Enum)]
    pub enum SensitivityClass {
        Public => "public",
        Internal => "internal",
        Pii => "pii",
        Regulated => "regulated",
        Code => "code",
    }
}

closed_set! {
    /// What was done to the content before capture.
    #[derive(Enum)]
    pub enum RedactionStatus {
        Raw => "raw",
        Redacted => "redacted",
        Hashed => "hashed",
    }
}

closed_set! {
    /// The kind of policy evaluated.
    #[derive(Enum)]
    pub enum EvidencePolicyType {
        Budget => "budget",
        RateLimit => "rate_limit",
        Capability => "capability",
        Permission => "permission",
    }
}

closed_set! {
    /// A policy decision.
    #[derive(Enum)]
    pub enum PolicyDecisionOutcome {
        Granted => "GRANTED",
        Denied => "DENIED",
        PendingApproval => "PENDING_APPROVAL",
    }
}

closed_set! {
    /// The combined result of the policies evaluated.
    #[derive(Enum)]
    pub enum PolicyResults {
        Pass => "pass",
        Warn => "warn",
        Fail => "fail",
        Skip => "skip",
    }
}

/// The execution context every capture except the seal requires.
#[derive(Debug, InputObject)]
pub struct ExecutionContextInput {
    /// The run's trace (letters, digits, `._:-`, at most 64).
    pub trace_id: String,
    pub source: CaptureSource,
    /// Synthetic (SDSR) data; requires `syntheticScenarioId`.
    #[graphql(default)]
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
}

/// Class H: the run's environment (once per run; later captures keep the first).
#[derive(Debug, InputObject)]
pub struct EnvironmentEvidenceInput {
    pub sdk_mode: EvidenceSdkMode,
    pub sdk_version: Option<String>,
    pub environment: Option<EvidenceEnvironment>,
    #[graphql(default = true)]
    pub telemetry_enabled: bool,
    pub telemetry_delivery_status: Option<TelemetryDeliveryStatus>,
    /// 0..=1; default 1.
    pub trace_sampling_rate: Option<f64>,
    pub metrics_enabled: Option<bool>,
    /// One IPv4 or IPv6 address; stored without its host part (IPv4 /24, IPv6 /48).
    pub client_ip: Option<String>,
    /// Redacted before it is stored, like every producer text.
    pub client_user_agent: Option<String>,
    pub client_origin: Option<String>,
    pub active_feature_flags: Option<Vec<String>>,
    #[graphql(default)]
    pub debug_mode: bool,
    #[graphql(default)]
    pub dry_run: bool,
    /// 0..=1.
    pub capture_confidence_score: Option<f64>,
    pub firewall_proxy_detected: Option<bool>,
}

/// Class B: one externally consequential step (LLM, HTTP or tool call). Send the prompt's
/// text or its fingerprint; only the fingerprint is stored. A second capture of the same step
/// fills in the response fields.
#[derive(Debug, InputObject)]
pub struct ActivityEvidenceInput {
    /// >= 0.
    pub step_index: i32,
    pub skill_id: String,
    pub model_name: String,
    /// Hashed (SHA-256) and discarded.
    pub prompt: Option<String>,
    /// SHA-256 hex of the prompt (64 lower-case hex characters).
    pub prompt_fingerprint: Option<String>,
    /// >= 0.
    pub prompt_token_length: i32,
    pub prompt_template_id: Option<String>,
    pub prompt_template_version: Option<String>,
    /// Hashed (SHA-256) and discarded.
    pub response: Option<String>,
    pub response_fingerprint: Option<String>,
    pub response_token_length: Option<i32>,
    pub completion_type: Option<CompletionType>,
    pub sensitivity_class: Option<SensitivityClass>,
    pub redaction_status: Option<RedactionStatus>,
    pub provider_safety_flags: Option<Json<Value>>,
}

/// Class G: one provider response (once per step; later captures keep the first).
#[derive(Debug, InputObject)]
pub struct ProviderEvidenceInput {
    /// >= 0.
    pub step_index: i32,
    pub provider_name: String,
    pub provider_request_id: Option<String>,
    pub model_name: String,
    pub model_version: Option<String>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
    #[graphql(default)]
    pub cache_read_tokens: i32,
    #[graphql(default)]
    pub cache_creation_tokens: i32,
    /// Default: input + output.
    pub total_tokens: Option<i32>,
    pub api_version: Option<String>,
    pub endpoint: Option<String>,
    pub provider_latency_ms: Option<i32>,
    pub provider_http_status: Option<i32>,
    pub provider_error_code: Option<String>,
    #[graphql(default)]
    pub provider_retry_count: i32,
    pub provider_safety_signals: Option<Json<Value>>,
}

/// Class D: one policy or guardrail evaluation.
#[derive(Debug, InputObject)]
pub struct PolicyDecisionInput {
    pub policy_type: EvidencePolicyType,
    pub policy_rule_id: Option<String>,
    pub policy_version: Option<i32>,
    pub decision: PolicyDecisionOutcome,
    pub decision_reason: Option<String>,
    /// 0..=1.
    pub decision_confidence: Option<f64>,
    pub policies_evaluated: Option<Vec<String>>,
    pub policy_results: Option<PolicyResults>,
    pub evaluation_order: Option<Vec<String>>,
    pub thresholds_used: Option<Json<Value>>,
    pub customer_guardrail_result: Option<Json<Value>>,
    pub provider_moderation_result: Option<Json<Value>>,
    pub decision_reason_codes: Option<Vec<String>>,
    pub approval_request_id: Option<String>,
    pub required_approval_level: Option<i32>,
    pub current_approval_level: Option<i32>,
    pub evaluated_by: Option<String>,
}

/// A capture that failed on the caller's side (e.g. `provider_timeout`, `pre_attach`).
#[derive(Debug, InputObject)]
pub struct CaptureFailureInput {
    pub artifact: EvidenceArtifact,
    /// Lower-case letters, digits and `_`, at most 64 (e.g. `capture_failed`,
    /// `provider_timeout`, `pre_attach`, `network_partition`, `context_invalid`).
    pub failure_reason: String,
    /// Cut to 500 characters.
    pub error_message: Option<String>,
    /// Default by reason: `pre_attach` and `context_invalid` are PERMANENT, others TRANSIENT.
    pub resolution: Option<CaptureResolution>,
}

/// One run's evidence. Classes H, B, G and D require `context`.
#[derive(Debug, InputObject)]
pub struct CaptureEvidenceInput {
    /// One of the tenant's runs (it must have a run record).
    pub run_id: String,
    pub context: Option<ExecutionContextInput>,
    pub environment: Option<EnvironmentEvidenceInput>,
    /// At most 100.
    #[graphql(default)]
    pub activities: Vec<ActivityEvidenceInput>,
    /// At most 100.
    #[graphql(default)]
    pub providers: Vec<ProviderEvidenceInput>,
    /// At most 100.
    #[graphql(default)]
    pub policy_decisions: Vec<PolicyDecisionInput>,
    /// At most 100.
    #[graphql(default)]
    pub failures: Vec<CaptureFailureInput>,
    /// Grade the run after this call's writes (in the same transaction) and store the integrity
    /// seal (class J); the first seal of a run wins.
    #[graphql(default)]
    pub seal: bool,
}

/// Exactly one (`required`) or at most one of raw text (hashed) and a fingerprint.
fn either_fingerprint(
    prefix: &str,
    name: &str,
    raw: Option<String>,
    given: Option<String>,
    required: bool,
) -> AppResult<Option<String>> {
    let fp_field = format!("{prefix}{name}Fingerprint");
    match (raw, given) {
        (Some(_), Some(_)) => Err(AppError::bad_input(
            fp_field,
            format!("give either {prefix}{name} or {prefix}{name}Fingerprint, not both"),
        )),
        (Some(text), None) => Ok(Some(fingerprint(&text))),
        (None, Some(fp)) => check_sha256(&fp_field, &fp).map(|()| Some(fp)),
        (None, None) if required => Err(AppError::bad_input(
            fp_field,
            format!("{prefix}{name} or {prefix}{name}Fingerprint is required"),
        )),
        (None, None) => Ok(None),
    }
}

fn at_least(field: &str, value: Option<i32>, min: i32) -> AppResult<Option<i32>> {
    match value {
        Some(v) if v < min => Err(AppError::bad_input(
            field,
            format!("{field} must be >= {min}"),
        )),
        _ => Ok(value),
    }
}

fn unit(field: &str, value: Option<f64>) -> AppResult<Option<f64>> {
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => Err(AppError::bad_input(
            field,
            format!("{field} must be between 0 and 1"),
        )),
        _ => Ok(value),
    }
}

fn json_object(field: &str, value: Option<Json<Value>>) -> AppResult<Option<Value>> {
    match value.map(|j| j.0) {
        Some(v) if !v.is_object() => Err(AppError::bad_input(
            field,
            format!("{field} must be an object"),
        )),
        other => Ok(other),
    }
}

fn string_list(field: &str, value: Option<Vec<String>>) -> AppResult<Option<Vec<String>>> {
    if let Some(items) = &value {
        if items.len() > MAX_ROWS {
            return Err(AppError::bad_input(
                field,
                format!("{field} holds at most {MAX_ROWS} items"),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            check_text(&format!("{field}.{i}"), item, 128)?;
        }
    }
    Ok(value)
}

fn parse_environment(e: EnvironmentEvidenceInput) -> AppResult<EnvironmentCapture> {
    let p = "input.environment.";
    check_opt(&format!("{p}sdkVersion"), &e.sdk_version, 20)?;
    // The address and the user agent are personal data: the address is stored without its
    // host part, the user agent redacted like any producer text (docs/domain.md §12).
    let client_ip = match e.client_ip.as_deref() {
        None => None,
        Some(ip) => Some(crate::redaction::anonymized_ip(ip).ok_or_else(|| {
            AppError::bad_input(
                format!("{p}clientIp"),
                "clientIp must be one IPv4 or IPv6 address",
            )
        })?),
    };
    let client_user_agent = crate::redaction::redacted_text(e.client_user_agent);
    check_opt(&format!("{p}clientUserAgent"), &client_user_agent, 1000)?;
    check_opt(&format!("{p}clientOrigin"), &e.client_origin, 255)?;
    Ok(EnvironmentCapture {
        sdk_mode: e.sdk_mode.as_str(),
        sdk_version: e.sdk_version,
        environment: e.environment.map(EvidenceEnvironment::as_str),
        telemetry_enabled: e.telemetry_enabled,
        telemetry_delivery_status: e.telemetry_delivery_status.map(|t| t.as_str()),
        trace_sampling_rate: unit(&format!("{p}traceSamplingRate"), e.trace_sampling_rate)?,
        metrics_enabled: e.metrics_enabled,
        client_ip,
        client_user_agent,
        client_origin: e.client_origin,
        active_feature_flags: string_list(
            &format!("{p}activeFeatureFlags"),
            e.active_feature_flags,
        )?,
        debug_mode: e.debug_mode,
        dry_run: e.dry_run,
        capture_confidence_score: unit(
            &format!("{p}captureConfidenceScore"),
            e.capture_confidence_score,
        )?,
        firewall_proxy_detected: e.firewall_proxy_detected,
    })
}

fn parse_activity(i: usize, a: ActivityEvidenceInput) -> AppResult<ActivityCapture> {
    let p = format!("input.activities.{i}.");
    let f = |name: &str| format!("{p}{name}");
    at_least(&f("stepIndex"), Some(a.step_index), 0)?;
    check_text(&f("skillId"), &a.skill_id, 256)?;
    check_text(&f("modelName"), &a.model_name, 256)?;
    check_opt(&f("promptTemplateId"), &a.prompt_template_id, 256)?;
    check_opt(&f("promptTemplateVersion"), &a.prompt_template_version, 20)?;
    let prompt = either_fingerprint(&p, "prompt", a.prompt, a.prompt_fingerprint, true)?
        .ok_or_else(|| AppError::bad_input(f("promptFingerprint"), "a prompt is required"))?;
    Ok(ActivityCapture {
        step_index: a.step_index,
        skill_id: a.skill_id,
        model_name: a.model_name,
        prompt_fingerprint: prompt,
        prompt_token_length: at_least(&f("promptTokenLength"), Some(a.prompt_token_length), 0)?
            .unwrap_or(0),
        prompt_template_id: a.prompt_template_id,
        prompt_template_version: a.prompt_template_version,
        response_fingerprint: either_fingerprint(
            &p,
            "response",
            a.response,
            a.response_fingerprint,
            false,
        )?,
        response_token_length: at_least(&f("responseTokenLength"), a.response_token_length, 0)?,
        completion_type: a.completion_type.map(CompletionType::as_str),
        sensitivity_class: a.sensitivity_class.map(SensitivityClass::as_str),
        redaction_status: a.redaction_status.map(RedactionStatus::as_str),
        provider_safety_flags: json_object(&f("providerSafetyFlags"), a.provider_safety_flags)?,
    })
}

fn parse_provider(i: usize, g: ProviderEvidenceInput) -> AppResult<ProviderCapture> {
    let f = |name: &str| format!("input.providers.{i}.{name}");
    at_least(&f("stepIndex"), Some(g.step_index), 0)?;
    check_text(&f("providerName"), &g.provider_name, 50)?;
    check_opt(&f("providerRequestId"), &g.provider_request_id, 256)?;
    check_text(&f("modelName"), &g.model_name, 256)?;
    check_opt(&f("modelVersion"), &g.model_version, 50)?;
    check_opt(&f("apiVersion"), &g.api_version, 20)?;
    check_opt(&f("endpoint"), &g.endpoint, 255)?;
    check_opt(&f("providerErrorCode"), &g.provider_error_code, 50)?;
    let input_tokens = at_least(&f("inputTokens"), g.input_tokens, 0)?;
    let output_tokens = at_least(&f("outputTokens"), g.output_tokens, 0)?;
    let total = match at_least(&f("totalTokens"), g.total_tokens, 0)? {
        Some(t) => t,
        None => input_tokens
            .unwrap_or(0)
            .checked_add(output_tokens.unwrap_or(0))
            .ok_or_else(|| AppError::bad_input(f("totalTokens"), "token total overflows"))?,
    };
    if let Some(status) = g.provider_http_status {
        if !(100..=599).contains(&status) {
            return Err(AppError::bad_input(
                f("providerHttpStatus"),
                "providerHttpStatus must be an HTTP status (100..599)",
            ));
        }
    }
    Ok(ProviderCapture {
        step_index: g.step_index,
        provider_name: g.provider_name,
        provider_request_id: g.provider_request_id,
        model_name: g.model_name,
        model_version: g.model_version,
        input_tokens,
        output_tokens,
        cache_read_tokens: at_least(&f("cacheReadTokens"), Some(g.cache_read_tokens), 0)?
            .unwrap_or(0),
        cache_creation_tokens: at_least(
            &f("cacheCreationTokens"),
            Some(g.cache_creation_tokens),
            0,
        )?
        .unwrap_or(0),
        total_tokens: total,
        api_version: g.api_version,
        endpoint: g.endpoint,
        provider_latency_ms: at_least(&f("providerLatencyMs"), g.provider_latency_ms, 0)?,
        provider_http_status: g.provider_http_status,
        provider_error_code: g.provider_error_code,
        provider_retry_count: at_least(&f("providerRetryCount"), Some(g.provider_retry_count), 0)?
            .unwrap_or(0),
        provider_safety_signals: json_object(
            &f("providerSafetySignals"),
            g.provider_safety_signals,
        )?,
    })
}

fn parse_decision(i: usize, d: PolicyDecisionInput) -> AppResult<PolicyDecisionCapture> {
    let f = |name: &str| format!("input.policyDecisions.{i}.{name}");
    check_opt(&f("policyRuleId"), &d.policy_rule_id, 256)?;
    check_opt(&f("decisionReason"), &d.decision_reason, 4000)?;
    check_opt(&f("approvalRequestId"), &d.approval_request_id, 256)?;
    check_opt(&f("evaluatedBy"), &d.evaluated_by, 50)?;
    Ok(PolicyDecisionCapture {
        policy_type: d.policy_type.as_str(),
        policy_rule_id: d.policy_rule_id,
        policy_version: d.policy_version,
        decision: d.decision.as_str(),
        decision_reason: d.decision_reason,
        decision_confidence: unit(&f("decisionConfidence"), d.decision_confidence)?,
        policies_evaluated: string_list(&f("policiesEvaluated"), d.policies_evaluated)?,
        policy_results: d.policy_results.map(PolicyResults::as_str),
        evaluation_order: string_list(&f("evaluationOrder"), d.evaluation_order)?,
        thresholds_used: json_object(&f("thresholdsUsed"), d.thresholds_used)?,
        customer_guardrail_result: json_object(
            &f("customerGuardrailResult"),
            d.customer_guardrail_result,
        )?,
        provider_moderation_result: json_object(
            &f("providerModerationResult"),
            d.provider_moderation_result,
        )?,
        decision_reason_codes: string_list(&f("decisionReasonCodes"), d.decision_reason_codes)?,
        approval_request_id: d.approval_request_id,
        required_approval_level: d.required_approval_level,
        current_approval_level: d.current_approval_level,
        evaluated_by: d.evaluated_by,
    })
}

fn parse_failure(i: usize, f: CaptureFailureInput) -> AppResult<FailureReport> {
    let field = format!("input.failures.{i}.failureReason");
    check_text(&field, &f.failure_reason, 64)?;
    if !f
        .failure_reason
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(AppError::bad_input(
            field.clone(),
            format!("{field} may only contain lower-case letters, digits and '_'"),
        ));
    }
    let resolution = f
        .resolution
        .unwrap_or_else(|| default_resolution(&f.failure_reason));
    Ok(FailureReport {
        evidence_type: f.artifact.table(),
        error_message: f.error_message.map(|m| truncate(&m, 500)),
        resolution: resolution.as_str(),
        failure_reason: f.failure_reason,
    })
}

fn limit<T>(field: &str, items: &[T]) -> AppResult<()> {
    if items.len() > MAX_ROWS {
        return Err(AppError::bad_input(
            field,
            format!("{field} holds at most {MAX_ROWS} items"),
        ));
    }
    Ok(())
}

fn unique_steps(field: &str, steps: impl Iterator<Item = i32>) -> AppResult<()> {
    let mut seen = HashSet::new();
    for (i, step) in steps.enumerate() {
        if !seen.insert(step) {
            return Err(AppError::bad_input(
                format!("{field}.{i}.stepIndex"),
                format!("stepIndex {step} appears twice in {field}"),
            ));
        }
    }
    Ok(())
}

fn parse(input: CaptureEvidenceInput) -> AppResult<CaptureRequest> {
    check_id("input.runId", &input.run_id, 64)?;
    limit("input.activities", &input.activities)?;
    limit("input.providers", &input.providers)?;
    limit("input.policyDecisions", &input.policy_decisions)?;
    limit("input.failures", &input.failures)?;
    unique_steps(
        "input.activities",
        input.activities.iter().map(|a| a.step_index),
    )?;
    unique_steps(
        "input.providers",
        input.providers.iter().map(|p| p.step_index),
    )?;
    let needs_context = input.environment.is_some()
        || !input.activities.is_empty()
        || !input.providers.is_empty()
        || !input.policy_decisions.is_empty();
    if !needs_context && input.failures.is_empty() && !input.seal {
        return Err(AppError::bad_input(
            "input",
            "input captures nothing: give evidence, failures or seal: true",
        ));
    }
    let context = match input.context {
        Some(c) => {
            check_id("input.context.traceId", &c.trace_id, 64)?;
            check_synthetic("input.context.", c.is_synthetic, &c.synthetic_scenario_id)?;
            Some(ExecutionContext {
                trace_id: c.trace_id,
                source: c.source,
                is_synthetic: c.is_synthetic,
                synthetic_scenario_id: c.synthetic_scenario_id,
            })
        }
        None if needs_context => {
            return Err(AppError::bad_input(
                "input.context",
                "evidence without an execution context is refused: give input.context",
            ));
        }
        None => None,
    };
    Ok(CaptureRequest {
        run_id: input.run_id,
        context,
        environment: input.environment.map(parse_environment).transpose()?,
        activities: input
            .activities
            .into_iter()
            .enumerate()
            .map(|(i, a)| parse_activity(i, a))
            .collect::<AppResult<_>>()?,
        providers: input
            .providers
            .into_iter()
            .enumerate()
            .map(|(i, p)| parse_provider(i, p))
            .collect::<AppResult<_>>()?,
        policy_decisions: input
            .policy_decisions
            .into_iter()
            .enumerate()
            .map(|(i, d)| parse_decision(i, d))
            .collect::<AppResult<_>>()?,
        failures: input
            .failures
            .into_iter()
            .enumerate()
            .map(|(i, f)| parse_failure(i, f))
            .collect::<AppResult<_>>()?,
        seal: input.seal,
    })
}

/// An evidence row this call wrote or found.
#[derive(SimpleObject)]
pub struct CapturedEvidence {
    pub evidence_class: EvidenceClass,
    pub id: String,
    /// For activity and provider evidence.
    pub step_index: Option<i32>,
    pub status: CaptureStatus,
}

impl From<CapturedRow> for CapturedEvidence {
    fn from(r: CapturedRow) -> Self {
        CapturedEvidence {
            evidence_class: r.class,
            id: r.id,
            step_index: r.step_index,
            status: r.status,
        }
    }
}

/// A capture failure this call recorded: a database error while writing a row (reason
/// `database_error`; the row was rolled back, the rest of the call kept) or one the caller
/// reported.
#[derive(SimpleObject)]
pub struct RecordedCaptureFailure {
    /// The class's table name.
    pub evidence_type: String,
    pub step_index: Option<i32>,
    pub failure_reason: String,
    pub error_message: Option<String>,
    pub resolution: CaptureResolution,
    /// False when the same (class, reason) was already recorded for the run (the first is
    /// kept).
    pub newly_recorded: bool,
}

impl From<RecordedFailure> for RecordedCaptureFailure {
    fn from(f: RecordedFailure) -> Self {
        RecordedCaptureFailure {
            resolution: CaptureResolution::parse(&f.resolution)
                .unwrap_or(CaptureResolution::Transient),
            evidence_type: f.evidence_type,
            step_index: f.step_index,
            failure_reason: f.failure_reason,
            error_message: f.error_message,
            newly_recorded: f.newly_recorded,
        }
    }
}

/// What `captureEvidence` did.
pub struct CaptureEvidencePayload {
    tenant: TenantId,
    outcome: CaptureOutcome,
}

#[Object]
impl CaptureEvidencePayload {
    async fn run_id(&self) -> &str {
        &self.outcome.run_id
    }
    /// In write order: environment, activities, providers, policy decisions, seal.
    async fn captured(&self) -> Vec<CapturedEvidence> {
        self.outcome
            .captured
            .iter()
            .cloned()
            .map(Into::into)
            .collect()
    }
    /// Failures recorded by this call. Non-empty means some evidence was NOT written.
    async fn failures(&self) -> Vec<RecordedCaptureFailure> {
        self.outcome
            .failures
            .iter()
            .cloned()
            .map(Into::into)
            .collect()
    }
    /// The run's integrity now (the same report as `llmRun { integrity }`).
    async fn integrity(&self, ctx: &Context<'_>) -> async_graphql::Result<IntegrityReportNode> {
        let state = ctx.data_unchecked::<AppState>();
        let run_ids = [self.outcome.run_id.clone()];
        let report = integrity_store::integrity_for_runs(&state.db, &self.tenant, &run_ids)
            .await?
            .remove(&self.outcome.run_id)
            .ok_or_else(|| AppError::internal("integrity report missing for the run"))?;
        Ok(IntegrityReportNode(report))
    }
}

#[derive(Default)]
pub struct EvidenceMutation;

#[Object]
impl EvidenceMutation {
    /// Captures governance evidence for one of the tenant's runs (role INGEST), in one
    /// transaction: environment (H), activity (B), provider (G) and policy-decision (D)
    /// evidence, caller-reported capture failures, and optionally the integrity seal (J).
    /// `NOT_FOUND` for a run the tenant does not have.
    async fn capture_evidence(
        &self,
        ctx: &Context<'_>,
        input: CaptureEvidenceInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CaptureEvidencePayload> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        let request = parse(input)?;
        let tenant = &principal.tenant_id;
        let outcome = WriteOnce::new(state, tenant, "captureEvidence", idempotency_key, &request)?
            .run(async |txn| capture::capture(txn, tenant, &request).await)
            .await?;
        Ok(CaptureEvidencePayload {
            tenant: tenant.clone(),
            outcome,
        })
    }
}
