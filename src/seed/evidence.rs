//! Evidence capture rows for a sample of traced runs (docs/domain.md §8.1): environment (H),
//! activity (B) and provider (G) evidence per LLM step, policy decisions (D), the integrity seal
//! (J), and capture failures — a failed class is then missing from the seal, which is graded
//! DEGRADED.

use chrono::Duration;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::runs::{
    RunDetails, X_ACTIVITY, X_DECISIONS, X_ENVIRONMENT, X_FAILURES, X_INTEGRITY, X_PROVIDER,
};
use super::synth::{self, b, f, i, j, ob, of, oi, oj, os, ots, s, ts};
use super::traces::TraceSummary;
use super::writer::{Sink, TableDef};
use super::Plan;
use crate::error::AppResult;

pub(crate) static ENVIRONMENT: TableDef = TableDef {
    name: "environment_evidence",
    columns: &[
        "id",
        "tenant_id",
        "run_id",
        "sdk_mode",
        "sdk_version",
        "environment",
        "telemetry_enabled",
        "telemetry_delivery_status",
        "trace_sampling_rate",
        "metrics_enabled",
        "client_ip",
        "client_user_agent",
        "client_origin",
        "active_feature_flags",
        "debug_mode",
        "dry_run",
        "capture_confidence_score",
        "firewall_proxy_detected",
        "is_synthetic",
        "synthetic_scenario_id",
        "created_at",
    ],
};

pub(crate) static ACTIVITY: TableDef = TableDef {
    name: "activity_evidence",
    columns: &[
        "id",
        "tenant_id",
        "run_id",
        "step_index",
        "skill_id",
        "model_name",
        "prompt_fingerprint",
        "prompt_token_length",
        "prompt_template_id",
        "prompt_template_version",
        "response_fingerprint",
        "response_token_length",
        "completion_type",
        "sensitivity_class",
        "redaction_status",
        "provider_safety_flags",
        "evidence_source",
        "is_synthetic",
        "synthetic_scenario_id",
        "created_at",
    ],
};

pub(crate) static PROVIDER: TableDef = TableDef {
    name: "provider_evidence",
    columns: &[
        "id",
        "tenant_id",
        "run_id",
        "step_index",
        "provider_name",
        "provider_request_id",
        "model_name",
        "model_version",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_creation_tokens",
        "total_tokens",
        "api_version",
        "endpoint",
        "provider_latency_ms",
        "provider_http_status",
        "provider_error_code",
        "provider_retry_count",
        "provider_safety_signals",
        "requested_at",
        "responded_at",
        "is_synthetic",
        "synthetic_scenario_id",
        "created_at",
    ],
};

pub(crate) static DECISIONS: TableDef = TableDef {
    name: "policy_decisions",
    columns: &[
        "id",
        "tenant_id",
        "run_id",
        "policy_type",
        "policy_rule_id",
        "policy_version",
        "decision",
        "decision_reason",
        "decision_confidence",
        "policies_evaluated",
        "policy_results",
        "evaluation_order",
        "thresholds_used",
        "customer_guardrail_result",
        "provider_moderation_result",
        "decision_reason_codes",
        "approval_request_id",
        "required_approval_level",
        "current_approval_level",
        "evaluated_by",
        "evaluated_at",
        "is_synthetic",
        "synthetic_scenario_id",
        "created_at",
    ],
};

pub(crate) static INTEGRITY: TableDef = TableDef {
    name: "integrity_evidence",
    columns: &[
        "id",
        "tenant_id",
        "run_id",
        "expected_artifacts",
        "expected_artifact_schema",
        "observed_artifacts",
        "missing_artifacts",
        "missing_reasons",
        "integrity_score",
        "integrity_status",
        "verification_method",
        "verification_timestamp",
        "divergence_details",
        "recovery_action",
        "coverage_metrics",
        "is_synthetic",
        "synthetic_scenario_id",
        "created_at",
    ],
};

pub(crate) static FAILURES: TableDef = TableDef {
    name: "evidence_capture_failures",
    columns: &[
        "id",
        "tenant_id",
        "run_id",
        "evidence_type",
        "failure_reason",
        "error_message",
        "resolution",
        "created_at",
    ],
};

const EXPECTED: [&str; 5] = [
    "environment_evidence",
    "activity_evidence",
    "provider_evidence",
    "policy_decisions",
    "aos_traces",
];

const FAILURE_REASONS: [(&str, &str); 4] = [
    ("timeout", "capture write timed out after 2000 ms"),
    (
        "db_unavailable",
        "could not acquire a database connection for evidence capture",
    ),
    (
        "serialization_error",
        "provider response could not be serialised: unexpected content block type",
    ),
    (
        "payload_too_large",
        "evidence payload exceeds 256 KiB and was dropped",
    ),
];

/// Writes the evidence of one run; returns whether it includes a capture failure.
pub(crate) fn emit(
    plan: &Plan,
    rng: &mut ChaCha8Rng,
    run: &RunDetails<'_>,
    trace: &TraceSummary,
    force_failure: bool,
    sink: &mut Sink,
) -> AppResult<bool> {
    let tenant = run.tenant.id.clone();
    let run_id = run.core.run_id.clone();
    let synthetic = run.synthetic_scenario.clone();
    let sdsr = |row: &mut Vec<sea_orm::Value>| {
        row.push(b(synthetic.is_some()));
        row.push(os(synthetic.clone()));
    };

    // Which classes failed to capture (at most one per class and reason).
    let failed_class =
        (force_failure || synth::chance(rng, plan.knobs.capture_failure_rate)).then(|| {
            *synth::pick(
                rng,
                &["activity_evidence", "provider_evidence", "policy_decisions"],
            )
        });

    // H: environment, captured at run start.
    let env_at = plan
        .time
        .cap(run.started_at + Duration::milliseconds(rng.random_range(1..40)));
    let sdk_mode = *synth::weighted(
        rng,
        &[
            ("inline", 0.55),
            ("async", 0.3),
            ("api", 0.08),
            ("degraded", 0.05),
            ("offline", 0.02),
        ],
    );
    let mut row = vec![
        s(format!("ee-{run_id}")),
        s(tenant.clone()),
        s(run_id.clone()),
        s(sdk_mode),
        s(*synth::pick(
            rng,
            &["1.8.2", "1.8.3", "1.9.0", "2.0.0-rc.1"],
        )),
        s(*synth::weighted(
            rng,
            &[
                ("prod", 0.75),
                ("staging", 0.15),
                ("dev", 0.07),
                ("sandbox", 0.03),
            ],
        )),
        ob(Some(sdk_mode != "offline")),
        os(Some(match sdk_mode {
            "offline" => "buffered",
            "degraded" => "dropped",
            _ => "sent",
        })),
        of(Some(*synth::pick(rng, &[1.0, 1.0, 0.5, 0.1]))),
        ob(Some(true)),
        os(Some(format!(
            "10.{}.{}.{}",
            rng.random_range(0..256),
            rng.random_range(0..256),
            rng.random_range(1..255)
        ))),
        os(Some(*synth::pick(
            rng,
            &[
                "aos-sdk-python/1.8.2 CPython/3.12.7",
                "aos-sdk-node/1.9.0 node/22.11.0",
                "aos-worker/2026.11 rust/1.85",
            ],
        ))),
        os(Some("https://console.example.com")),
        oj(Some(json!(["streaming", "tool_cache"]))),
        ob(Some(false)),
        ob(Some(synth::chance(rng, 0.02))),
        of(Some(synth::round_to(rng.random_range(0.6..1.0), 3))),
        ob(Some(synth::chance(rng, 0.05))),
    ];
    sdsr(&mut row);
    row.push(ts(env_at));
    sink.push(X_ENVIRONMENT, row)?;

    // B and G: one row per LLM step.
    let mut observed: Vec<&str> = vec!["environment_evidence", "aos_traces"];
    for step in trace.steps.iter().filter(|st| st.skill == "llm_invoke") {
        let (input, output) = step.tokens.unwrap_or((0, 0));
        if failed_class != Some("activity_evidence") {
            let mut row = vec![
                s(format!("ae-{run_id}-{}", step.index)),
                s(tenant.clone()),
                s(run_id.clone()),
                i(step.index),
                s("llm_invoke"),
                s(run.model.name),
                s(synth::digest(rng)),
                i(input.min(i64::from(i32::MAX)) as i32),
                os(Some(format!("tpl_{}", synth::hex_id(rng, 4)))),
                os(Some(*synth::pick(rng, &["3", "5", "7", "2.1"]))),
                os((step.status == "success").then(|| synth::digest(rng))),
                oi((step.status == "success").then(|| output.min(i64::from(i32::MAX)) as i32)),
                os(Some(if step.status == "success" {
                    "final"
                } else {
                    "partial"
                })),
                os(Some(*synth::weighted(
                    rng,
                    &[
                        ("internal", 0.55),
                        ("public", 0.15),
                        ("pii", 0.2),
                        ("regulated", 0.05),
                        ("code", 0.05),
                    ],
                ))),
                os(Some(*synth::pick(rng, &["redacted", "hashed", "raw"]))),
                oj(Some(json!({"flagged": false}))),
                s(*synth::pick(
                    rng,
                    &["sdk", "worker", "provider", "reconciler"],
                )),
            ];
            sdsr(&mut row);
            row.push(ts(step.ended_at));
            sink.push(X_ACTIVITY, row)?;
        }
        if failed_class != Some("provider_evidence") {
            let anthropic = run.model.provider == "anthropic";
            let ok = step.status == "success";
            let latency = (step.ended_at - step.started_at).num_milliseconds();
            let cache_read = if synth::chance(rng, 0.3) {
                input / 2
            } else {
                0
            };
            let mut row = vec![
                s(format!("pe-{run_id}-{}", step.index)),
                s(tenant.clone()),
                s(run_id.clone()),
                i(step.index),
                s(run.model.provider),
                os(Some(if anthropic {
                    format!("msg_{}", synth::hex_id(rng, 12))
                } else {
                    format!("chatcmpl-{}", synth::hex_id(rng, 12))
                })),
                s(run.model.name),
                os(Some(run.model.name)),
                oi(Some(input.min(i64::from(i32::MAX)) as i32)),
                oi(Some(if ok {
                    output.min(i64::from(i32::MAX)) as i32
                } else {
                    0
                })),
                oi(Some(cache_read.min(i64::from(i32::MAX)) as i32)),
                oi(Some(0)),
                oi(Some(
                    (input + if ok { output } else { 0 }).min(i64::from(i32::MAX)) as i32,
                )),
                os(Some(if anthropic { "2023-06-01" } else { "v1" })),
                os(Some(if anthropic {
                    "https://api.anthropic.com/v1/messages"
                } else {
                    "https://api.openai.com/v1/chat/completions"
                })),
                oi(Some(latency.clamp(0, i64::from(i32::MAX)) as i32)),
                oi(Some(if ok {
                    200
                } else {
                    *synth::pick(rng, &[429, 500, 529])
                })),
                os((!ok).then_some("overloaded_error")),
                oi(Some(if ok { 0 } else { rng.random_range(1..4) })),
                oj(None),
                ts(step.started_at),
                ots(Some(step.ended_at)),
            ];
            sdsr(&mut row);
            row.push(ts(step.ended_at));
            sink.push(X_PROVIDER, row)?;
        }
    }
    if failed_class != Some("activity_evidence") {
        observed.push("activity_evidence");
    }
    if failed_class != Some("provider_evidence") {
        observed.push("provider_evidence");
    }

    // D: policy decisions before the first step.
    if failed_class != Some("policy_decisions") {
        observed.push("policy_decisions");
        let denied = run.error.is_some_and(|e| e.violation);
        let n = rng.random_range(1..=3);
        for k in 0..n {
            let policy_type = ["budget", "rate_limit", "capability", "permission"][k % 4];
            let (policy_id, _) = synth::pick(rng, &run.tenant.policies).clone();
            let deny_this = denied && k == 0;
            let at = plan
                .time
                .cap(run.started_at + Duration::microseconds(rng.random_range(100..5_000)));
            let mut row = vec![
                s(format!(
                    "pd-{run_id}-{policy_type}-{}",
                    synth::hex_id(rng, 4)
                )),
                s(tenant.clone()),
                s(run_id.clone()),
                s(policy_type),
                os(Some(policy_id.clone())),
                oi(Some(rng.random_range(1..6))),
                s(if deny_this { "DENIED" } else { "GRANTED" }),
                os(Some(if deny_this {
                    run.error.map_or("denied", |e| e.message)
                } else {
                    "within configured limits"
                })),
                of(Some(synth::round_to(rng.random_range(0.8..1.0), 3))),
                oj(Some(json!([policy_id]))),
                os(Some(if deny_this { "fail" } else { "pass" })),
                oj(Some(json!([policy_type]))),
                oj(Some(json!({"max_cost_cents": 500, "max_tokens": 200000}))),
                oj(None),
                oj(None),
                oj(Some(if deny_this {
                    json!([run.error.map_or("DENIED", |e| e.code)])
                } else {
                    json!([])
                })),
                os(None::<String>),
                oi(None),
                oi(None),
                os(Some("policy-engine")),
                ts(at),
            ];
            sdsr(&mut row);
            row.push(ts(at));
            sink.push(X_DECISIONS, row)?;
        }
    }

    // Capture failure row(s).
    if let Some(class) = failed_class {
        let (reason, message) = *synth::pick(rng, &FAILURE_REASONS);
        let at = plan
            .time
            .cap(run.completed_at - Duration::milliseconds(rng.random_range(0..50)));
        sink.push(
            X_FAILURES,
            vec![
                s(format!("ecf-{run_id}-{class}-{}", synth::hex_id(rng, 4))),
                s(tenant.clone()),
                s(run_id.clone()),
                s(class),
                s(reason),
                os(Some(message)),
                s(*synth::weighted(
                    rng,
                    &[("transient", 0.7), ("permanent", 0.2), ("superseded", 0.1)],
                )),
                ts(at),
            ],
        )?;
    }

    // J: the terminal integrity seal.
    let missing: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|e| !observed.contains(e))
        .collect();
    let observed_list: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|e| observed.contains(e))
        .collect();
    let score = observed_list.len() as f64 / EXPECTED.len() as f64;
    let status = if missing.is_empty() {
        "VALID"
    } else if score >= 0.6 {
        "DEGRADED"
    } else {
        "FAILED"
    };
    let sealed_at = plan
        .time
        .cap(run.completed_at + Duration::milliseconds(rng.random_range(1..30)));
    let seal_at = sealed_at.min(run.core.created_at);
    let mut row = vec![
        s(format!("ie-{run_id}")),
        s(tenant),
        s(run_id),
        j(json!(EXPECTED)),
        oj(Some(json!({"version": 1}))),
        j(json!(observed_list)),
        oj(Some(json!(missing))),
        oj((!missing.is_empty()).then(|| {
            json!(missing
                .iter()
                .map(|m| (m.to_string(), "capture_failed"))
                .collect::<std::collections::BTreeMap<_, _>>())
        })),
        f(score),
        s(status),
        os(Some("evidence_table_scan")),
        ots(Some(seal_at)),
        os((!missing.is_empty())
            .then(|| format!("{} missing: capture failed", missing.join(", ")))),
        os((!missing.is_empty()).then_some("re-capture from provider logs")),
        oj(Some(
            json!({"classes_expected": EXPECTED.len(), "classes_observed": observed_list.len(), "steps": trace.steps.len()}),
        )),
    ];
    sdsr(&mut row);
    row.push(ts(seal_at));
    sink.push(X_INTEGRITY, row)?;
    Ok(failed_class.is_some())
}
