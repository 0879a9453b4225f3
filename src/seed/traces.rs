//! Traces and steps of traced runs. Steps are drafted first (skills, params, outcomes,
//! durations), then laid out in time from the run's start; finished traces carry the real
//! `root_hash` (run proof) and `checksum` (determinism signature) of their steps.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::runs::{RunDetails, RunStatus};
use super::synth::{self, b, big, f, i, j, oi, oj, os, ots, s, ts};
use super::writer::{Sink, TableDef};
use super::Plan;
use crate::error::AppResult;
use crate::traces::hashing::{python_json, run_proof_root, step_hash, trace_signature};

pub(crate) static AOS_TRACES: TableDef = TableDef {
    name: "aos_traces",
    columns: &[
        "id",
        "trace_id",
        "run_id",
        "correlation_id",
        "tenant_id",
        "agent_id",
        "plan_id",
        "seed",
        "frozen_timestamp",
        "root_hash",
        "plan_hash",
        "schema_version",
        "plan",
        "trace",
        "metadata",
        "status",
        "started_at",
        "completed_at",
        "created_at",
        "stored_by",
        "checksum",
        "incident_id",
        "is_synthetic",
        "synthetic_scenario_id",
        "violation_step_index",
        "violation_timestamp",
        "violation_policy_id",
        "violation_reason",
        "replay_mode",
        "replay_attempt_id",
        "replay_artifact_version",
        "trace_completeness_status",
        "step_count",
    ],
};

pub(crate) static AOS_TRACE_STEPS: TableDef = TableDef {
    name: "aos_trace_steps",
    columns: &[
        "id",
        "trace_id",
        "step_index",
        "skill_id",
        "skill_name",
        "params",
        "status",
        "outcome_category",
        "outcome_code",
        "outcome_data",
        "cost_cents",
        "duration_ms",
        "retry_count",
        "input_hash",
        "output_hash",
        "rng_state_before",
        "idempotency_key",
        "replay_behavior",
        "timestamp",
        "source",
        "level",
        "is_synthetic",
        "synthetic_scenario_id",
        "tenant_id",
    ],
};

/// Traces before steps: steps reference their trace.
pub(crate) static TRACE_TABLES: [&TableDef; 2] = [&AOS_TRACES, &AOS_TRACE_STEPS];

/// The step level of a status, case-insensitive (docs/domain.md §5.2).
pub(crate) fn status_to_level(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "failure" | "error" => "ERROR",
        "retry" | "retrying" => "WARN",
        _ => "INFO",
    }
}

/// A step before it is placed in time.
#[derive(Debug)]
pub(crate) struct StepDraft {
    pub skill: &'static str,
    pub params: Value,
    pub status: &'static str,
    pub category: &'static str,
    pub code: Option<&'static str>,
    pub data: Option<Value>,
    pub cost_cents: f64,
    pub duration_ms: f64,
    pub gap_ms: f64,
    pub retry_count: i32,
    /// (input, output) tokens of an LLM call.
    pub tokens: Option<(i64, i64)>,
}

/// What the rest of the run generator needs to know about an emitted step.
#[derive(Debug, Clone)]
pub(crate) struct StepSummary {
    pub index: i32,
    pub skill: &'static str,
    pub status: &'static str,
    pub hash: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub tokens: Option<(i64, i64)>,
}

#[derive(Debug)]
pub(crate) struct TraceSummary {
    pub trace_id: String,
    pub status: &'static str,
    pub steps: Vec<StepSummary>,
    pub checksum: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    /// (step_index, timestamp) of the step that failed the run.
    pub failing_step: Option<(i32, DateTime<Utc>)>,
}

const SKILLS: [(&str, f64); 8] = [
    ("llm_invoke", 0.40),
    ("http_call", 0.15),
    ("json_transform", 0.15),
    ("db_query", 0.08),
    ("vector_search", 0.07),
    ("send_email", 0.05),
    ("slack_notify", 0.05),
    ("code_exec", 0.05),
];
const FIRST_SKILLS: [&str; 4] = ["vector_search", "db_query", "file_read", "web_search"];

const HOSTS: [&str; 6] = [
    "api.stripe.com",
    "api.hubspot.com",
    "graph.microsoft.com",
    "api.zendesk.com",
    "hooks.slack.com",
    "api.github.com",
];
const TEMPLATES: [&str; 6] = [
    "triage.v3",
    "summarize.v7",
    "extract_invoice.v2",
    "reply_draft.v5",
    "classify_intent.v4",
    "review_diff.v1",
];

fn params_for(rng: &mut ChaCha8Rng, skill: &str, run: &RunDetails<'_>) -> Value {
    match skill {
        "llm_invoke" => json!({
            "model": run.model.name,
            "temperature": *synth::pick(rng, &[0.0, 0.2, 0.3, 0.7]),
            "max_tokens": *synth::pick(rng, &[512, 1024, 2048, 4096]),
            "prompt_template": *synth::pick(rng, &TEMPLATES),
        }),
        "http_call" => json!({
            "method": *synth::pick(rng, &["GET", "GET", "POST", "PATCH"]),
            "url": format!("https://{}/v2/{}", synth::pick(rng, &HOSTS), synth::pick(rng, &["customers", "tickets", "invoices", "search", "messages"])),
            "timeout_s": 30,
        }),
        "json_transform" => json!({
            "schema": *synth::pick(rng, &["invoice_v2", "ticket_v1", "lead_v3", "summary_v1"]),
            "strict": synth::chance(rng, 0.7),
        }),
        "db_query" => json!({
            "table": *synth::pick(rng, &["orders", "customers", "tickets", "events"]),
            "limit": *synth::pick(rng, &[10, 50, 100]),
        }),
        "vector_search" => json!({
            "index": *synth::pick(rng, &["kb-articles", "past-tickets", "contracts", "code-chunks"]),
            "top_k": *synth::pick(rng, &[4, 8, 16]),
            "min_score": *synth::pick(rng, &[0.65, 0.72, 0.8]),
        }),
        "send_email" => json!({
            "template": *synth::pick(rng, &["reply_draft", "invoice_reminder", "escalation_notice"]),
            "to": "customer",
        }),
        "slack_notify" => json!({
            "channel": *synth::pick(rng, &["#ops-alerts", "#support-escalations", "#finance-bots"]),
        }),
        "file_read" => json!({
            "path": format!("s3://{}-inbox/{}.pdf", run.tenant.id, synth::hex_id(rng, 6)),
        }),
        "code_exec" => json!({
            "runtime": "python3.12",
            "timeout_s": 20,
        }),
        "web_search" => json!({
            "query_hash": synth::hex_id(rng, 8),
            "max_results": 5,
        }),
        _ => json!({}),
    }
}

fn duration_for(rng: &mut ChaCha8Rng, skill: &str) -> f64 {
    let (median, sigma, lo, hi) = match skill {
        "llm_invoke" => (1_800.0, 0.6, 200.0, 60_000.0),
        "http_call" => (180.0, 0.8, 10.0, 10_000.0),
        "json_transform" => (4.0, 0.7, 0.2, 200.0),
        "db_query" => (25.0, 0.9, 1.0, 3_000.0),
        "vector_search" => (60.0, 0.6, 5.0, 2_000.0),
        "send_email" => (350.0, 0.5, 50.0, 5_000.0),
        "slack_notify" => (150.0, 0.5, 20.0, 3_000.0),
        "file_read" => (40.0, 0.8, 2.0, 3_000.0),
        "code_exec" => (900.0, 0.9, 50.0, 30_000.0),
        _ => (700.0, 0.6, 100.0, 8_000.0),
    };
    synth::round_to(synth::lognormal(rng, median, sigma, lo, hi), 3)
}

fn success_data(rng: &mut ChaCha8Rng, skill: &str, tokens: Option<(i64, i64)>) -> Option<Value> {
    Some(match skill {
        "llm_invoke" => {
            let (input, output) = tokens.unwrap_or((0, 0));
            json!({
                "input_tokens": input,
                "output_tokens": output,
                "stop_reason": *synth::pick(rng, &["end_turn", "end_turn", "stop", "max_tokens"]),
            })
        }
        "http_call" => json!({"status_code": 200, "bytes": rng.random_range(200..40_000)}),
        "json_transform" => json!({"fields": rng.random_range(3..40)}),
        "db_query" => json!({"rows": rng.random_range(0..100)}),
        "vector_search" => json!({
            "hits": rng.random_range(1..16),
            "top_score": synth::round_to(rng.random_range(0.7..0.98), 4),
        }),
        "send_email" => {
            json!({"message_id": format!("<{}@mail.example.com>", synth::hex_id(rng, 8))})
        }
        "slack_notify" => json!({"ok": true}),
        "file_read" => {
            json!({"bytes": rng.random_range(2_000..2_000_000), "content_type": "application/pdf"})
        }
        "code_exec" => json!({"exit_code": 0, "stdout_bytes": rng.random_range(0..20_000)}),
        "web_search" => json!({"results": 5}),
        _ => return None,
    })
}

/// Splits `total` into `parts` positive-ish integer shares.
fn split(rng: &mut ChaCha8Rng, total: i64, parts: usize) -> Vec<i64> {
    if parts == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = (0..parts).map(|_| rng.random_range(0.5..1.5)).collect();
    let sum: f64 = weights.iter().sum();
    let mut shares: Vec<i64> = weights
        .iter()
        .map(|w| (total as f64 * w / sum).floor() as i64)
        .collect();
    let assigned: i64 = shares.iter().sum();
    if let Some(last) = shares.last_mut() {
        *last += total - assigned;
    }
    shares
}

/// Draws the steps of the run's trace (only the first half when it is still running).
pub(crate) fn draft_steps(
    rng: &mut ChaCha8Rng,
    run: &RunDetails<'_>,
    running: bool,
) -> Vec<StepDraft> {
    let n = rng.random_range(5..=15usize);
    let mut skills: Vec<&'static str> = Vec::with_capacity(n);
    skills.push(*synth::pick(rng, &FIRST_SKILLS));
    for step in 1..n {
        skills.push(if step == 1 {
            "llm_invoke"
        } else {
            *synth::weighted(rng, &SKILLS)
        });
    }
    let failing = if running { None } else { run.error };
    if let (Some(error), Some(last)) = (failing, skills.last_mut()) {
        *last = error.skill;
    }
    if running {
        skills.truncate(n.div_ceil(2));
    }
    let llm_steps = skills.iter().filter(|s| **s == "llm_invoke").count();
    let mut input_shares = split(rng, run.input_tokens, llm_steps).into_iter();
    let mut output_shares = split(rng, run.output_tokens, llm_steps).into_iter();
    let last = skills.len().saturating_sub(1);
    let mut drafts = Vec::with_capacity(skills.len());
    for (index, skill) in skills.into_iter().enumerate() {
        let tokens = (skill == "llm_invoke").then(|| {
            (
                input_shares.next().unwrap_or(0),
                output_shares.next().unwrap_or(0),
            )
        });
        let params = params_for(rng, skill, run);
        let mut duration_ms = duration_for(rng, skill);
        let gap_ms = synth::round_to(rng.random_range(0.5..15.0), 3);
        let cost_cents = tokens.map_or(0.0, |(input, output)| {
            synth::round_to(super::runs::cost_cents(run.model, input, output), 6)
        });
        let (status, category, code, data, retry_count) = match failing {
            Some(error) if index == last => {
                if error.status == RunStatus::Timeout {
                    duration_ms = 120_000.0;
                }
                let message: String = error.message.chars().take(500).collect();
                (
                    "failure",
                    "execution",
                    Some(error.step_code),
                    Some(json!({"error": message})),
                    rng.random_range(0..3),
                )
            }
            _ => {
                let roll: f64 = rng.random();
                if roll < 0.03 && index > 0 {
                    let retries = rng.random_range(1..3);
                    (
                        "retry",
                        "TRANSIENT",
                        Some(*synth::pick(
                            rng,
                            &["rate_limited", "timeout", "upstream_503"],
                        )),
                        Some(
                            json!({"error": "transient upstream error; retried", "attempts": retries + 1}),
                        ),
                        retries,
                    )
                } else if roll < 0.05 && index > 0 {
                    duration_ms = synth::round_to(rng.random_range(0.0..0.5), 3);
                    ("skipped", "SKIPPED", Some("condition_false"), None, 0)
                } else {
                    let data = success_data(rng, skill, tokens);
                    ("success", "SUCCESS", None, data, 0)
                }
            }
        };
        drafts.push(StepDraft {
            skill,
            params,
            status,
            category,
            code,
            data,
            cost_cents,
            duration_ms,
            gap_ms,
            retry_count,
            tokens,
        });
    }
    drafts
}

/// Writes the trace and its steps, starting at `run.started_at`.
pub(crate) fn emit(
    plan: &Plan,
    rng: &mut ChaCha8Rng,
    run: &RunDetails<'_>,
    drafts: Vec<StepDraft>,
    running: bool,
    sink: &mut Sink,
) -> AppResult<TraceSummary> {
    let trace_id = format!("trace_{}", run.core.run_id);
    let status = if running {
        "running"
    } else {
        match run.core.status {
            RunStatus::Succeeded => "completed",
            RunStatus::Failed | RunStatus::Timeout => "failed",
            RunStatus::Aborted => "aborted",
        }
    };
    let synthetic = run.synthetic_scenario.clone();

    // Lay the steps out in time and hash them.
    let mut cursor = run.started_at;
    let mut steps = Vec::with_capacity(drafts.len());
    let mut rows = Vec::with_capacity(drafts.len());
    let mut total_ms = 0.0;
    for (index, draft) in drafts.into_iter().enumerate() {
        let index = index as i32;
        let started_at = plan.time.cap(cursor + synth::ms(draft.gap_ms));
        let ended_at = plan.time.cap(started_at + synth::ms(draft.duration_ms));
        cursor = ended_at;
        total_ms += draft.gap_ms + draft.duration_ms;
        let hash = step_hash(
            index,
            draft.skill,
            &draft.params,
            draft.status,
            draft.category,
            draft.code,
            draft.retry_count,
        );
        let external = matches!(draft.skill, "http_call" | "send_email" | "slack_notify");
        rows.push(vec![
            s(synth::uuid(rng)),
            s(trace_id.clone()),
            i(index),
            s(draft.skill),
            s(draft.skill),
            j(draft.params),
            s(draft.status),
            s(draft.category),
            os(draft.code),
            oj(draft.data),
            f(draft.cost_cents),
            f(draft.duration_ms),
            i(draft.retry_count),
            s(synth::digest(rng)),
            os((draft.status == "success").then(|| synth::digest(rng))),
            os(synth::chance(rng, 0.1).then(|| synth::hex_id(rng, 16))),
            os(external.then(|| format!("idem_{}", synth::hex_id(rng, 12)))),
            s("execute"),
            ts(started_at),
            s(if external { "external" } else { "engine" }),
            s(status_to_level(draft.status)),
            b(synthetic.is_some()),
            os(synthetic.clone()),
            s(run.tenant.id.clone()),
        ]);
        steps.push(StepSummary {
            index,
            skill: draft.skill,
            status: draft.status,
            hash,
            started_at,
            ended_at,
            tokens: draft.tokens,
        });
    }

    let finished = !running;
    let completed_at = finished.then(|| steps.last().map_or(run.completed_at, |st| st.ended_at));
    let checksum = finished.then(|| {
        let hashes: Vec<&str> = steps.iter().map(|st| st.hash.as_str()).collect();
        trace_signature(&hashes)
    });
    let root_hash = finished.then(|| {
        let chain: Vec<(i32, &str, &str)> = steps
            .iter()
            .map(|st| (st.index, st.skill, st.status))
            .collect();
        run_proof_root(&run.core.run_id, &chain)
    });
    let failing_step = steps
        .iter()
        .rev()
        .find(|st| st.status == "failure")
        .map(|st| (st.index, st.started_at));
    let violation = run
        .error
        .filter(|e| e.violation && finished)
        .and(failing_step);
    let violation_policy = run.error.filter(|_| violation.is_some()).map(|e| {
        let which = usize::from(e.code != "POLICY_BLOCK");
        run.tenant
            .policies
            .get(which)
            .map(|(id, _)| id.clone())
            .unwrap_or_default()
    });
    let plan_doc = Value::Array(
        steps
            .iter()
            .map(|st| json!({"step": st.index, "skill": st.skill}))
            .collect(),
    );
    let plan_hash = hex::encode(Sha256::digest(python_json(&plan_doc).as_bytes()));
    let metadata = if running {
        None
    } else {
        let duration = synth::round_to(total_ms, 3);
        Some(match (status, run.error) {
            ("failed", Some(e)) => json!({
                "duration_ms": duration,
                "error": e.message.chars().take(200).collect::<String>(),
            }),
            ("aborted", Some(e)) => json!({
                "duration_ms": duration,
                "abort_reason": format!("{}: {}", e.code.to_lowercase(), e.message)
                    .chars()
                    .take(200)
                    .collect::<String>(),
            }),
            _ => json!({"duration_ms": duration}),
        })
    };
    let sdk = run.source == "SDK";
    let replay = synth::chance(rng, 0.04) && finished;
    let seed: i64 = if synth::chance(rng, 0.9) {
        42
    } else {
        rng.random_range(1..i64::from(u32::MAX))
    };
    sink.push(
        0,
        vec![
            s(synth::uuid(rng)),
            s(trace_id.clone()),
            s(run.core.run_id.clone()),
            s(run.core.run_id.clone()),
            s(run.tenant.id.clone()),
            s(run.agent),
            s(format!("plan_{}", synth::hex_id(rng, 8))),
            big(seed),
            s(synth::iso(run.started_at)),
            os(root_hash),
            s(plan_hash),
            s(if sdk { "1.1" } else { "1.0" }),
            j(plan_doc),
            j(json!({"steps": []})),
            oj(metadata),
            s(status),
            ts(run.started_at),
            ots(completed_at),
            ts(run.started_at),
            os(sdk.then(|| synth::pick(rng, &run.tenant.users).clone())),
            os(checksum.clone()),
            os(run.incident_id(plan)),
            b(synthetic.is_some()),
            os(synthetic),
            oi(violation.map(|(idx, _)| idx)),
            ots(violation.map(|(_, at)| at)),
            os(violation_policy),
            os(violation.and(run.error).map(|e| e.message)),
            os(replay.then(|| *synth::pick(rng, &["FULL", "TRACE_ONLY"]))),
            os(replay.then(|| format!("ra_{}", synth::hex_id(rng, 8)))),
            os(replay.then_some("replay-artifact/v2")),
            s(if finished { "COMPLETE" } else { "IN_PROGRESS" }),
            oi(finished.then_some(steps.len() as i32)),
        ],
    )?;
    for row in rows {
        sink.push(1, row)?;
    }
    Ok(TraceSummary {
        trace_id,
        status,
        steps,
        checksum,
        completed_at,
        failing_step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_status() {
        assert_eq!(status_to_level("failure"), "ERROR");
        assert_eq!(status_to_level("ERROR"), "ERROR");
        assert_eq!(status_to_level("retry"), "WARN");
        assert_eq!(status_to_level("Retrying"), "WARN");
        assert_eq!(status_to_level("success"), "INFO");
        assert_eq!(status_to_level("skipped"), "INFO");
    }
}
