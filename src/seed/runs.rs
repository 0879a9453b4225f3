//! LLM run records and everything that hangs off a run: its trace and steps (`traces`), replay
//! mismatches, the incident a failed run opens, and evidence rows (`evidence`).
//!
//! Every run is a pure function of (seed, global run index): [`core`] regenerates the skeleton
//! of any run (id, time, status, trace and incident flags) on its own, which is how the audit,
//! system and export generators point at real runs without keeping them in memory.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::synth::{self, b, i, j, oi, os, ots, s, ts, Stream};
use super::writer::{Sink, TableDef};
use super::{evidence, traces, Plan, TenantPlan, TRACE_EVERY};
use crate::closed_set::closed_set;
use crate::error::AppResult;

/// An LLM with its list prices (USD per million tokens).
#[derive(Debug)]
pub(crate) struct Model {
    pub provider: &'static str,
    pub name: &'static str,
    pub weight: f64,
    pub input_usd: f64,
    pub output_usd: f64,
}

pub(crate) const MODELS: [Model; 10] = [
    Model {
        provider: "anthropic",
        name: "claude-sonnet-4-5",
        weight: 0.24,
        input_usd: 3.0,
        output_usd: 15.0,
    },
    Model {
        provider: "anthropic",
        name: "claude-haiku-4-5",
        weight: 0.16,
        input_usd: 1.0,
        output_usd: 5.0,
    },
    Model {
        provider: "anthropic",
        name: "claude-opus-4-1",
        weight: 0.05,
        input_usd: 15.0,
        output_usd: 75.0,
    },
    Model {
        provider: "anthropic",
        name: "claude-3-5-haiku-20241022",
        weight: 0.06,
        input_usd: 0.8,
        output_usd: 4.0,
    },
    Model {
        provider: "openai",
        name: "gpt-4o",
        weight: 0.14,
        input_usd: 2.5,
        output_usd: 10.0,
    },
    Model {
        provider: "openai",
        name: "gpt-4o-mini",
        weight: 0.165,
        input_usd: 0.15,
        output_usd: 0.6,
    },
    Model {
        provider: "openai",
        name: "gpt-4.1",
        weight: 0.08,
        input_usd: 2.0,
        output_usd: 8.0,
    },
    Model {
        provider: "openai",
        name: "gpt-4.1-mini",
        weight: 0.06,
        input_usd: 0.4,
        output_usd: 1.6,
    },
    Model {
        provider: "openai",
        name: "o3-mini",
        weight: 0.04,
        input_usd: 1.1,
        output_usd: 4.4,
    },
    Model {
        provider: "stub",
        name: "stub",
        weight: 0.005,
        input_usd: 0.0,
        output_usd: 0.0,
    },
];

pub(crate) fn pick_model(rng: &mut impl Rng) -> &'static Model {
    let weights: Vec<f64> = MODELS.iter().map(|m| m.weight).collect();
    &MODELS[synth::weighted_index(rng, &weights)]
}

/// Cost in (fractional) cents of a call.
pub(crate) fn cost_cents(model: &Model, input: i64, output: i64) -> f64 {
    (input as f64 * model.input_usd + output as f64 * model.output_usd) / 1e6 * 100.0
}

closed_set! {

    pub(crate) enum RunStatus {
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Aborted => "ABORTED",
        Timeout => "TIMEOUT",
    }
}

/// Why an unsuccessful run ended; drives its last step, incident and violation.
#[derive(Debug)]
pub(crate) struct ErrorKind {
    pub code: &'static str,
    pub status: RunStatus,
    pub weight: f64,
    /// Skill of the failing step.
    pub skill: &'static str,
    /// `outcome_code` of the failing step.
    pub step_code: &'static str,
    pub message: &'static str,
    pub category: &'static str,
    pub trigger: &'static str,
    /// Policy violation (sets the trace's inflection point).
    pub violation: bool,
    pub severity: [&'static str; 2],
}

pub(crate) const ERRORS: [ErrorKind; 8] = [
    ErrorKind {
        code: "TOOL_ERROR",
        status: RunStatus::Failed,
        weight: 0.30,
        skill: "http_call",
        step_code: "abort",
        message: "http_call failed: upstream returned 502 Bad Gateway after 3 attempts",
        category: "EXECUTION_FAILURE",
        trigger: "run_failure",
        violation: false,
        severity: ["medium", "low"],
    },
    ErrorKind {
        code: "PROVIDER_OVERLOADED",
        status: RunStatus::Failed,
        weight: 0.22,
        skill: "llm_invoke",
        step_code: "abort",
        message: "LLM provider returned 529 overloaded_error",
        category: "EXECUTION_FAILURE",
        trigger: "run_failure",
        violation: false,
        severity: ["medium", "high"],
    },
    ErrorKind {
        code: "RATE_LIMITED",
        status: RunStatus::Failed,
        weight: 0.14,
        skill: "llm_invoke",
        step_code: "abort",
        message: "429 rate_limit_error: output tokens per minute exceeded",
        category: "EXECUTION_FAILURE",
        trigger: "run_failure",
        violation: false,
        severity: ["low", "medium"],
    },
    ErrorKind {
        code: "SCHEMA_VALIDATION",
        status: RunStatus::Failed,
        weight: 0.14,
        skill: "json_transform",
        step_code: "abort",
        message: "model output failed schema validation: missing required field 'total_amount'",
        category: "EXECUTION_FAILURE",
        trigger: "run_failure",
        violation: false,
        severity: ["low", "medium"],
    },
    ErrorKind {
        code: "POLICY_BLOCK",
        status: RunStatus::Failed,
        weight: 0.20,
        skill: "send_email",
        step_code: "abort",
        message: "blocked by policy: outbound message contains unredacted PII (email address)",
        category: "POLICY_VIOLATION",
        trigger: "policy_violation",
        violation: true,
        severity: ["high", "critical"],
    },
    ErrorKind {
        code: "BUDGET_EXCEEDED",
        status: RunStatus::Aborted,
        weight: 0.65,
        skill: "llm_invoke",
        step_code: "abort",
        message: "run halted: cost budget of 500 cents exceeded",
        category: "BUDGET_EXCEEDED",
        trigger: "budget_exceeded",
        violation: true,
        severity: ["high", "medium"],
    },
    ErrorKind {
        code: "USER_ABORT",
        status: RunStatus::Aborted,
        weight: 0.35,
        skill: "llm_invoke",
        step_code: "abort",
        message: "run cancelled by operator",
        category: "USER_ABORT",
        trigger: "manual",
        violation: false,
        severity: ["low", "low"],
    },
    ErrorKind {
        code: "TIMEOUT",
        status: RunStatus::Timeout,
        weight: 1.0,
        skill: "llm_invoke",
        step_code: "timeout",
        message: "run exceeded its 120 s wall-clock limit",
        category: "TIMEOUT",
        trigger: "timeout",
        violation: false,
        severity: ["medium", "low"],
    },
];

/// The skeleton of a run, cheap to regenerate from its index alone.
#[derive(Debug, Clone)]
pub(crate) struct RunCore {
    pub k: u64,
    pub global: u64,
    pub run_id: String,
    /// Record time (the run's terminal transition); every row of the run is at or before it.
    pub created_at: DateTime<Utc>,
    pub status: RunStatus,
    pub traced: bool,
    pub incident: bool,
}

/// Run `k` of tenant `t`, and the RNG positioned for its details.
pub(crate) fn core(plan: &Plan, t: &TenantPlan, k: u64) -> (RunCore, ChaCha8Rng) {
    let global = t.global(k);
    let mut rng = plan.keys.rng(Stream::Run, global);
    let jitter: f64 = rng.random();
    let created_at = plan.time.nth(k, t.runs, jitter);
    let status = *synth::weighted(
        &mut rng,
        &[
            (RunStatus::Succeeded, 0.88),
            (RunStatus::Failed, 0.07),
            (RunStatus::Aborted, 0.03),
            (RunStatus::Timeout, 0.02),
        ],
    );
    let incident_draw: f64 = rng.random();
    let core = RunCore {
        k,
        global,
        run_id: plan.keys.run_id(global),
        created_at,
        status,
        traced: global % TRACE_EVERY == 0,
        incident: status != RunStatus::Succeeded && incident_draw < plan.knobs.incident_rate,
    };
    (core, rng)
}

/// The newest run of a tenant at or before `at` (by binary search over run times), if any.
pub(crate) fn run_before(plan: &Plan, t: &TenantPlan, at: DateTime<Utc>) -> Option<RunCore> {
    let (mut lo, mut hi) = (0u64, t.runs);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if core(plan, t, mid).0.created_at <= at {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1).map(|k| core(plan, t, k).0)
}

/// Searches back from the newest run before `at` (at most `span` runs) for one matching `want`.
pub(crate) fn find_run_before(
    plan: &Plan,
    t: &TenantPlan,
    at: DateTime<Utc>,
    span: u64,
    want: impl Fn(&RunCore) -> bool,
) -> Option<RunCore> {
    let newest = run_before(plan, t, at)?;
    let lowest = newest.k.saturating_sub(span);
    let mut k = newest.k;
    loop {
        let run = core(plan, t, k).0;
        if want(&run) {
            return Some(run);
        }
        if k == lowest {
            return None;
        }
        k -= 1;
    }
}

/// The highest traced run index of the tenant (its trace is left running).
pub(crate) fn last_traced(t: &TenantPlan) -> Option<u64> {
    let last = t.runs.checked_sub(1)?;
    let global = t.global(last);
    let back = global % TRACE_EVERY;
    (back <= last).then(|| last - back)
}

pub(crate) static LLM_RUNS: TableDef = TableDef {
    name: "llm_run_records",
    columns: &[
        "id",
        "tenant_id",
        "run_id",
        "trace_id",
        "provider",
        "model",
        "prompt_hash",
        "response_hash",
        "input_tokens",
        "output_tokens",
        "cost_cents",
        "execution_status",
        "started_at",
        "completed_at",
        "source",
        "is_synthetic",
        "synthetic_scenario_id",
        "created_at",
    ],
};

pub(crate) static INCIDENTS: TableDef = TableDef {
    name: "incidents",
    columns: &[
        "id",
        "tenant_id",
        "title",
        "severity",
        "status",
        "trigger_type",
        "source_run_id",
        "category",
        "description",
        "error_code",
        "error_message",
        "lifecycle_state",
        "cause_type",
        "inflection_step_index",
        "inflection_timestamp",
        "started_at",
        "ended_at",
        "resolved_at",
        "resolved_by",
        "is_synthetic",
        "synthetic_scenario_id",
        "created_at",
        "updated_at",
    ],
};

pub(crate) static MISMATCHES: TableDef = TableDef {
    name: "aos_trace_mismatches",
    columns: &[
        "id",
        "trace_id",
        "tenant_id",
        "reported_by",
        "step_index",
        "reason",
        "expected_hash",
        "actual_hash",
        "details",
        "notification_sent",
        "issue_url",
        "resolved",
        "resolved_at",
        "resolved_by",
        "resolution_note",
        "created_at",
    ],
};

pub(crate) static RUN_TABLES: [&TableDef; 1] = [&LLM_RUNS];

/// Index of each table in [`EXTRA_TABLES`].
pub(crate) const X_INCIDENTS: usize = 0;
pub(crate) const X_MISMATCHES: usize = 1;
pub(crate) const X_ENVIRONMENT: usize = 2;
pub(crate) const X_ACTIVITY: usize = 3;
pub(crate) const X_PROVIDER: usize = 4;
pub(crate) const X_DECISIONS: usize = 5;
pub(crate) const X_INTEGRITY: usize = 6;
pub(crate) const X_FAILURES: usize = 7;

pub(crate) static EXTRA_TABLES: [&TableDef; 8] = [
    &INCIDENTS,
    &MISMATCHES,
    &evidence::ENVIRONMENT,
    &evidence::ACTIVITY,
    &evidence::PROVIDER,
    &evidence::DECISIONS,
    &evidence::INTEGRITY,
    &evidence::FAILURES,
];

/// The three writers the run generator feeds.
pub(crate) struct RunSinks {
    pub runs: Sink,
    pub traces: Sink,
    pub extras: Sink,
}

impl RunSinks {
    pub fn fork(&self) -> RunSinks {
        RunSinks {
            runs: self.runs.fork(),
            traces: self.traces.fork(),
            extras: self.extras.fork(),
        }
    }

    fn finish(self) -> AppResult<()> {
        self.runs.finish()?;
        self.traces.finish()?;
        self.extras.finish()
    }
}

/// Everything known about a run once its details are drawn.
#[derive(Debug)]
pub(crate) struct RunDetails<'a> {
    pub tenant: &'a TenantPlan,
    pub core: RunCore,
    pub agent: &'static str,
    pub model: &'static Model,
    pub source: &'static str,
    pub synthetic_scenario: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub error: Option<&'static ErrorKind>,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
}

impl RunDetails<'_> {
    pub fn incident_id(&self, plan: &Plan) -> Option<String> {
        self.core
            .incident
            .then(|| plan.keys.incident_id(self.core.global))
    }
}

/// Per-tenant "force one of each" state for the demo profile.
#[derive(Debug, Default)]
pub(crate) struct Forced {
    pub evidence: bool,
    pub capture_failure: bool,
    pub mismatch: bool,
}

/// Generates the runs of `tenants` (indexes into the plan) in time order.
pub(crate) fn generate(plan: &Plan, tenants: &[usize], mut sinks: RunSinks) -> AppResult<()> {
    for &index in tenants {
        let Some(t) = plan.tenants.get(index) else {
            continue;
        };
        let last_traced = last_traced(t);
        let mut forced = Forced::default();
        for k in 0..t.runs {
            let (core, mut rng) = core(plan, t, k);
            let running = core.traced
                && (Some(k) == last_traced || synth::chance(&mut rng, plan.knobs.running_rate));
            one_run(plan, t, core, running, &mut rng, &mut sinks, &mut forced)?;
        }
    }
    sinks.finish()
}

fn one_run(
    plan: &Plan,
    t: &TenantPlan,
    core: RunCore,
    running: bool,
    rng: &mut ChaCha8Rng,
    sinks: &mut RunSinks,
    forced: &mut Forced,
) -> AppResult<()> {
    let agent = *synth::pick(rng, &t.agents);
    let model = pick_model(rng);
    let source = *synth::weighted(
        rng,
        &[
            ("WORKER", 0.70),
            ("SDK", 0.15),
            ("API", 0.115),
            ("SYSTEM", 0.02),
            ("SYNTHETIC", 0.015),
        ],
    );
    let synthetic_scenario =
        (source == "SYNTHETIC").then(|| format!("sdsr-{agent}-{:02}", rng.random_range(1..=12)));
    let input_tokens = synth::lognormal(rng, 1_800.0, 0.9, 40.0, 120_000.0) as i64;
    let output_tokens = synth::lognormal(rng, 320.0, 0.8, 1.0, 16_000.0) as i64;
    let cost = cost_cents(model, input_tokens, output_tokens);
    let error = if core.status == RunStatus::Succeeded {
        None
    } else {
        let kinds: Vec<&'static ErrorKind> =
            ERRORS.iter().filter(|e| e.status == core.status).collect();
        let weights: Vec<f64> = kinds.iter().map(|e| e.weight).collect();
        kinds.get(synth::weighted_index(rng, &weights)).copied()
    };
    let record_delay = synth::ms(rng.random_range(5.0..80.0));
    let completed_at = plan.time.cap(core.created_at - record_delay);

    let mut details = RunDetails {
        tenant: t,
        core,
        agent,
        model,
        source,
        synthetic_scenario,
        input_tokens,
        output_tokens,
        error,
        started_at: completed_at,
        completed_at,
    };

    let trace = if details.core.traced {
        let drafts = traces::draft_steps(rng, &details, running);
        let total: f64 = drafts.iter().map(|d| d.gap_ms + d.duration_ms).sum();
        details.started_at = completed_at - synth::ms(total);
        Some(traces::emit(
            plan,
            rng,
            &details,
            drafts,
            running,
            &mut sinks.traces,
        )?)
    } else {
        let millis = match details.core.status {
            RunStatus::Timeout => rng.random_range(120_000.0..125_000.0),
            _ => synth::lognormal(rng, 2_500.0, 0.8, 150.0, 90_000.0),
        };
        details.started_at = completed_at - synth::ms(millis);
        None
    };
    details.started_at = crate::scalars::truncate_to_micros(details.started_at);

    let hashes = source == "SDK";
    sinks.runs.push(
        0,
        vec![
            s(synth::uuid(rng)),
            s(t.id.clone()),
            s(details.core.run_id.clone()),
            os(trace.as_ref().map(|tr| tr.trace_id.clone())),
            s(model.provider),
            s(model.name),
            os(hashes.then(|| synth::digest(rng))),
            os((hashes && details.core.status == RunStatus::Succeeded).then(|| synth::digest(rng))),
            i(input_tokens.min(i32::MAX as i64) as i32),
            i(output_tokens.min(i32::MAX as i64) as i32),
            i(cost.round() as i32),
            s(details.core.status.as_str()),
            ts(details.started_at),
            ts(details.completed_at),
            s(source),
            b(details.synthetic_scenario.is_some()),
            os(details.synthetic_scenario.clone()),
            ts(details.core.created_at),
        ],
    )?;

    if details.core.incident {
        incident(plan, rng, &details, trace.as_ref(), &mut sinks.extras)?;
    }
    if let Some(trace) = &trace {
        let finished = trace.status != "running";
        let force = plan.knobs.force_rare && !forced.mismatch && finished;
        if finished
            && !trace.steps.is_empty()
            && (force || synth::chance(rng, plan.knobs.mismatch_rate))
        {
            forced.mismatch = true;
            mismatch(plan, rng, &details, trace, &mut sinks.extras)?;
        }
        let force = plan.knobs.force_rare && !forced.evidence;
        if force || synth::chance(rng, plan.knobs.evidence_rate) {
            forced.evidence = true;
            let force_failure = plan.knobs.force_rare && !forced.capture_failure;
            let failed =
                evidence::emit(plan, rng, &details, trace, force_failure, &mut sinks.extras)?;
            forced.capture_failure |= failed;
        }
    }
    Ok(())
}

fn incident(
    plan: &Plan,
    rng: &mut ChaCha8Rng,
    run: &RunDetails<'_>,
    trace: Option<&traces::TraceSummary>,
    sink: &mut Sink,
) -> AppResult<()> {
    let Some(error) = run.error else {
        return Ok(());
    };
    let started = run.completed_at;
    let created = plan
        .time
        .cap(started + Duration::seconds(rng.random_range(1..30)));
    let age = plan.anchor - created;
    let roll: f64 = rng.random();
    let status = if age > Duration::days(3) {
        if roll < 0.85 {
            "resolved"
        } else if roll < 0.95 {
            "acknowledged"
        } else {
            "open"
        }
    } else if age > Duration::days(1) {
        if roll < 0.5 {
            "resolved"
        } else if roll < 0.8 {
            "acknowledged"
        } else {
            "open"
        }
    } else if roll < 0.1 {
        "resolved"
    } else if roll < 0.4 {
        "acknowledged"
    } else {
        "open"
    };
    let room = (plan.anchor - created).num_seconds().max(2);
    let (lifecycle, resolved_at, updated_at) = match status {
        "resolved" => {
            let at = plan.time.cap(
                created + Duration::seconds(rng.random_range(600.min(room - 1)..room.min(172_800))),
            );
            ("RESOLVED", Some(at), at)
        }
        "acknowledged" => {
            let at = plan.time.cap(
                created + Duration::seconds(rng.random_range(60.min(room - 1)..room.min(14_400))),
            );
            ("ACKED", None, at)
        }
        _ => ("ACTIVE", None, created),
    };
    let severity = error.severity[usize::from(synth::chance(rng, 0.3))];
    let resolver = resolved_at.map(|_| synth::pick(rng, &run.tenant.users).clone());
    let (step_index, step_at) = trace
        .and_then(|tr| tr.failing_step)
        .map_or((None, None), |(idx, at)| (Some(idx), Some(at)));
    sink.push(
        X_INCIDENTS,
        vec![
            s(plan.keys.incident_id(run.core.global)),
            s(run.tenant.id.clone()),
            s(format!(
                "{}: {}",
                run.agent,
                error.code.to_lowercase().replace('_', " ")
            )),
            s(severity),
            s(status),
            s(error.trigger),
            s(run.core.run_id.clone()),
            s(error.category),
            s(format!(
                "Run {} of agent {} ended {}: {}",
                run.core.run_id,
                run.agent,
                run.core.status.as_str(),
                error.message
            )),
            s(error.code),
            s(error.message),
            s(lifecycle),
            s("LLM_RUN"),
            oi(step_index),
            ots(step_at),
            ts(started),
            ots(resolved_at),
            ots(resolved_at),
            os(resolver),
            b(run.synthetic_scenario.is_some()),
            os(run.synthetic_scenario.clone()),
            ts(created),
            ts(updated_at),
        ],
    )
}

const MISMATCH_REASONS: [(&str, f64); 4] = [
    ("output_mismatch", 0.5),
    ("hash_mismatch", 0.3),
    ("param_drift", 0.12),
    ("status_mismatch", 0.08),
];

fn mismatch(
    plan: &Plan,
    rng: &mut ChaCha8Rng,
    run: &RunDetails<'_>,
    trace: &traces::TraceSummary,
    sink: &mut Sink,
) -> AppResult<()> {
    let step = synth::pick(rng, &trace.steps);
    let finished = trace.completed_at.unwrap_or(run.completed_at);
    let room = (plan.anchor - finished).num_seconds().max(2);
    let created = plan
        .time
        .cap(finished + Duration::seconds(rng.random_range(1..room.min(3 * 86_400))));
    let reason = *synth::weighted(rng, &MISMATCH_REASONS);
    let github = synth::chance(rng, 0.3);
    let notified = github || synth::chance(rng, 0.3);
    let age = plan.anchor - created;
    let resolved = age > Duration::hours(6) && synth::chance(rng, 0.55);
    let resolved_at = resolved.then(|| {
        let room = (plan.anchor - created).num_seconds().max(2);
        plan.time
            .cap(created + Duration::seconds(rng.random_range(1..room.min(5 * 86_400))))
    });
    let replay_attempt = format!("ra_{}", synth::hex_id(rng, 8));
    let details = json!({
        "replay_attempt_id": replay_attempt,
        "skill_name": step.skill,
        "original_signature": trace.checksum,
        "replay_signature": synth::hex_id(rng, 16),
        "divergence_reason": match reason {
            "param_drift" => "params differ".to_owned(),
            "status_mismatch" => format!("status: {} vs failure", step.status),
            _ => "hash mismatch".to_owned(),
        },
        "replay_mode": if synth::chance(rng, 0.5) { "FULL" } else { "TRACE_ONLY" },
    });
    sink.push(
        X_MISMATCHES,
        vec![
            s(synth::uuid(rng)),
            s(trace.trace_id.clone()),
            s(run.tenant.id.clone()),
            s(synth::pick(rng, &run.tenant.users).clone()),
            i(step.index),
            s(reason),
            s(step.hash.clone()),
            s(synth::hex_id(rng, 8)),
            j(details),
            b(notified),
            os(github.then(|| {
                format!(
                    "https://github.com/acme-ai/agent-runtime/issues/{}",
                    rng.random_range(100..5_000)
                )
            })),
            b(resolved),
            ots(resolved_at),
            os(resolved.then(|| synth::pick(rng, &run.tenant.users).clone())),
            os(resolved.then_some(
                "Non-deterministic tool output; pinned the upstream API version and re-ran the replay.",
            )),
            ts(created),
        ],
    )
}
