//! Trace ingestion mutations (role `INGEST`): `startTrace`, `recordSteps`, `completeTrace`,
//! `abortTrace`. Resolvers parse and check the input (every problem is `BAD_USER_INPUT` naming
//! the argument path), run the write once per idempotency key, and return the stored objects.

use async_graphql::{Context, Enum, InputObject, Json, Object};
use serde::Serialize;
use serde_json::{json, Value};

use super::graphql::{Trace, TraceLoaders, TraceStep};
use super::write::{self, Finish, NewStep, NewTrace, StepsRecorded, MAX_STEPS_PER_BATCH};
use super::{store, ReplayBehavior, ReplayMode, StepSource, TraceSnapshot, TraceStatus, Violation};
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::idempotency::WriteOnce;
use crate::input::{check_id, check_opt, check_synthetic, check_text};
use crate::scalars::{BigInt, DateTime};
use crate::state::AppState;

fn check_amount(field: &str, value: f64) -> AppResult<f64> {
    if !value.is_finite() || value < 0.0 {
        return Err(AppError::bad_input(
            field,
            format!("{field} must be a finite number >= 0"),
        ));
    }
    Ok(value)
}

/// Starts a trace. A trace id is `traceId` when given, else `trace_<runId>`, else `trace_` +
/// 16 hex; the run id defaults to the trace id.
#[derive(Debug, InputObject)]
pub struct StartTraceInput {
    /// Client-chosen trace id (unique; letters, digits, `._:-`, at most 64).
    pub trace_id: Option<String>,
    /// The run the trace records (at most 58 characters when no `traceId` is given, so
    /// `trace_<runId>` fits).
    pub run_id: Option<String>,
    /// Defaults to the run id.
    pub correlation_id: Option<String>,
    pub agent_id: Option<String>,
    pub plan_id: Option<String>,
    /// Determinism seed; default 42.
    pub seed: Option<BigInt>,
    pub frozen_timestamp: Option<String>,
    pub plan_hash: Option<String>,
    /// The plan: a list of step specs (redacted before it is stored); default `[]`.
    pub plan: Option<Json<Value>>,
    pub incident_id: Option<String>,
    /// Synthetic (SDSR) data; requires `syntheticScenarioId`. Steps inherit both.
    #[graphql(default)]
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub replay_mode: Option<ReplayMode>,
    pub replay_attempt_id: Option<String>,
    pub replay_artifact_version: Option<String>,
    pub trace_completeness_status: Option<String>,
    /// Default: now.
    pub started_at: Option<DateTime>,
}

fn parse_start(input: StartTraceInput) -> AppResult<NewTrace> {
    if let Some(id) = &input.trace_id {
        check_id("input.traceId", id, 64)?;
    }
    if let Some(run) = &input.run_id {
        let max = if input.trace_id.is_some() { 64 } else { 58 };
        check_id("input.runId", run, max)?;
    }
    check_opt("input.correlationId", &input.correlation_id, 64)?;
    check_opt("input.agentId", &input.agent_id, 64)?;
    check_opt("input.planId", &input.plan_id, 64)?;
    check_opt("input.frozenTimestamp", &input.frozen_timestamp, 64)?;
    check_opt("input.planHash", &input.plan_hash, 64)?;
    check_opt("input.incidentId", &input.incident_id, 100)?;
    check_opt("input.replayAttemptId", &input.replay_attempt_id, 64)?;
    check_opt(
        "input.replayArtifactVersion",
        &input.replay_artifact_version,
        64,
    )?;
    check_opt(
        "input.traceCompletenessStatus",
        &input.trace_completeness_status,
        30,
    )?;
    check_synthetic("input.", input.is_synthetic, &input.synthetic_scenario_id)?;
    let plan = input.plan.map_or_else(|| json!([]), |p| p.0);
    if !plan.is_array() {
        return Err(AppError::bad_input(
            "input.plan",
            "input.plan must be a list of step specs",
        ));
    }
    Ok(NewTrace {
        trace_id: input.trace_id,
        run_id: input.run_id,
        correlation_id: input.correlation_id,
        agent_id: input.agent_id,
        plan_id: input.plan_id,
        seed: input.seed.map(|s| s.0),
        frozen_timestamp: input.frozen_timestamp,
        plan_hash: input.plan_hash,
        plan,
        incident_id: input.incident_id,
        is_synthetic: input.is_synthetic,
        synthetic_scenario_id: input.synthetic_scenario_id,
        replay_mode: input.replay_mode,
        replay_attempt_id: input.replay_attempt_id,
        replay_artifact_version: input.replay_artifact_version,
        trace_completeness_status: input.trace_completeness_status,
        started_at: input.started_at.map(|d| d.0),
    })
}

/// One executed step. `stepIndex` is required and unique within the trace (no default: a
/// missing index must not collide with step 0).
#[derive(Debug, InputObject)]
pub struct TraceStepInput {
    /// Position in the trace, >= 0.
    pub step_index: i32,
    /// Default: `skillName`.
    pub skill_id: Option<String>,
    pub skill_name: String,
    /// Step parameters (redacted before they are stored); default `{}`.
    pub params: Option<Json<Value>>,
    /// Usually `success`, `failure`, `retry` or `skipped`; stored verbatim. Sets the level:
    /// failure/error → `ERROR`, retry/retrying → `WARN`, else `INFO`.
    pub status: String,
    /// e.g. `SUCCESS`, `TRANSIENT`, `PERMANENT`, `execution`.
    pub outcome_category: String,
    pub outcome_code: Option<String>,
    /// The result or `{error: ...}` (redacted before it is stored).
    pub outcome_data: Option<Json<Value>>,
    /// US cents (fractional), >= 0; default 0.
    #[graphql(default)]
    pub cost_cents: f64,
    /// >= 0; default 0.
    #[graphql(default)]
    pub duration_ms: f64,
    /// >= 0; default 0.
    #[graphql(default)]
    pub retry_count: i32,
    pub input_hash: Option<String>,
    pub output_hash: Option<String>,
    pub rng_state_before: Option<String>,
    /// The step's own idempotency key (what replay enforcement looks up).
    pub idempotency_key: Option<String>,
    /// Default `EXECUTE`.
    pub replay_behavior: Option<ReplayBehavior>,
    /// Default `ENGINE`.
    pub source: Option<StepSource>,
    /// Default: now.
    pub timestamp: Option<DateTime>,
}

fn parse_step(i: usize, s: TraceStepInput) -> AppResult<NewStep> {
    let f = |name: &str| format!("steps[{i}].{name}");
    if s.step_index < 0 {
        return Err(AppError::bad_input(
            f("stepIndex"),
            format!("{} must be >= 0", f("stepIndex")),
        ));
    }
    if s.retry_count < 0 {
        return Err(AppError::bad_input(
            f("retryCount"),
            format!("{} must be >= 0", f("retryCount")),
        ));
    }
    check_text(&f("skillName"), &s.skill_name, 128)?;
    check_opt(&f("skillId"), &s.skill_id, 128)?;
    check_text(&f("status"), &s.status, 32)?;
    check_text(&f("outcomeCategory"), &s.outcome_category, 64)?;
    check_opt(&f("outcomeCode"), &s.outcome_code, 64)?;
    check_opt(&f("inputHash"), &s.input_hash, 64)?;
    check_opt(&f("outputHash"), &s.output_hash, 64)?;
    check_opt(&f("rngStateBefore"), &s.rng_state_before, 128)?;
    check_opt(&f("idempotencyKey"), &s.idempotency_key, 128)?;
    Ok(NewStep {
        step_index: s.step_index,
        skill_id: s.skill_id,
        skill_name: s.skill_name,
        params: s.params.map_or_else(|| json!({}), |p| p.0),
        status: s.status,
        outcome_category: s.outcome_category,
        outcome_code: s.outcome_code,
        outcome_data: s.outcome_data.map(|d| d.0),
        cost_cents: check_amount(&f("costCents"), s.cost_cents)?,
        duration_ms: check_amount(&f("durationMs"), s.duration_ms)?,
        retry_count: s.retry_count,
        input_hash: s.input_hash,
        output_hash: s.output_hash,
        rng_state_before: s.rng_state_before,
        idempotency_key: s.idempotency_key,
        replay_behavior: s.replay_behavior.unwrap_or(ReplayBehavior::Execute),
        source: s.source.unwrap_or(StepSource::Engine),
        timestamp: s.timestamp.map(|d| d.0),
    })
}

/// Validates a whole batch before anything is written: 1..=1000 steps, each valid, indexes
/// unique within the batch.
fn parse_steps(steps: Vec<TraceStepInput>) -> AppResult<Vec<NewStep>> {
    if steps.is_empty() {
        return Err(AppError::bad_input("steps", "steps must not be empty"));
    }
    if steps.len() > MAX_STEPS_PER_BATCH {
        return Err(AppError::bad_input(
            "steps",
            format!(
                "at most {MAX_STEPS_PER_BATCH} steps per call (got {})",
                steps.len()
            ),
        ));
    }
    let parsed = steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| parse_step(i, s))
        .collect::<AppResult<Vec<_>>>()?;
    let mut seen = std::collections::HashMap::with_capacity(parsed.len());
    for (i, step) in parsed.iter().enumerate() {
        if let Some(first) = seen.insert(step.step_index, i) {
            return Err(AppError::bad_input(
                format!("steps[{i}].stepIndex"),
                format!(
                    "step index {} appears twice in the batch (steps[{first}] and steps[{i}])",
                    step.step_index
                ),
            ));
        }
    }
    Ok(parsed)
}

/// How a trace ends in `completeTrace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize)]
#[graphql(name = "TraceCompletionStatus")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompletionStatus {
    Completed,
    Failed,
}

impl From<CompletionStatus> for TraceStatus {
    fn from(s: CompletionStatus) -> Self {
        match s {
            CompletionStatus::Completed => TraceStatus::Completed,
            CompletionStatus::Failed => TraceStatus::Failed,
        }
    }
}

/// What `recordSteps` did.
pub struct RecordStepsResult {
    recorded: StepsRecorded,
    tenant: TenantId,
}

#[Object]
impl RecordStepsResult {
    /// The trace, as it is now.
    async fn trace(&self, ctx: &Context<'_>) -> async_graphql::Result<Trace> {
        let state = ctx.data_unchecked::<AppState>();
        Ok(load_trace(state, &self.tenant, &self.recorded.trace_id).await?)
    }
    /// Step indexes this call wrote, ascending.
    async fn inserted_step_indexes(&self) -> &[i32] {
        &self.recorded.inserted
    }
    /// Step indexes of the batch that were already stored; their first version is kept
    /// (first write wins), ascending.
    async fn already_present_step_indexes(&self) -> &[i32] {
        &self.recorded.already_present
    }
    async fn inserted_count(&self) -> i32 {
        i32::try_from(self.recorded.inserted.len()).unwrap_or(i32::MAX)
    }
    /// The stored versions of the batch's steps (for already present ones, the first
    /// version), in step order.
    async fn steps(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TraceStep>> {
        let state = ctx.data_unchecked::<AppState>();
        let mut indexes = self.recorded.inserted.clone();
        indexes.extend_from_slice(&self.recorded.already_present);
        Ok(
            write::steps_by_index(&state.db, &self.tenant, &self.recorded.trace_id, &indexes)
                .await?
                .into_iter()
                .map(TraceStep)
                .collect(),
        )
    }
}

async fn stored_trace(
    state: &AppState,
    tenant: &TenantId,
    trace_id: &str,
) -> AppResult<TraceSnapshot> {
    store::get_by_trace_id(&state.db, tenant, trace_id)
        .await?
        .ok_or(AppError::NotFound("Trace"))
}

async fn load_trace(state: &AppState, tenant: &TenantId, trace_id: &str) -> AppResult<Trace> {
    let snapshot = stored_trace(state, tenant, trace_id).await?;
    Ok(Trace::new(snapshot, &TraceLoaders::new(&state.db)))
}

/// `completeTrace` and `abortTrace`: seal the trace once per idempotency key.
async fn finish_trace(
    state: &AppState,
    tenant: &TenantId,
    once: WriteOnce<'_, TraceSnapshot>,
    trace_id: &str,
    finish: Finish,
) -> async_graphql::Result<Trace> {
    let trace = once
        .publish(Topic::Traces)
        .run_with_receipt(
            async |txn| write::finish_trace(txn, tenant, trace_id, finish).await,
            |trace| trace.trace_id.clone(),
            async |trace_id: String| stored_trace(state, tenant, &trace_id).await,
        )
        .await?;
    Ok(Trace::new(trace, &TraceLoaders::new(&state.db)))
}

#[derive(Default)]
pub struct TraceMutation;

#[Object]
impl TraceMutation {
    /// Starts a `RUNNING` trace. Starting a trace id the tenant already has returns that trace
    /// unchanged; trace ids are unique per tenant (another tenant's trace ids are not taken).
    async fn start_trace(
        &self,
        ctx: &Context<'_>,
        input: StartTraceInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<Trace> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        let new = parse_start(input)?;
        let tenant = &principal.tenant_id;
        let key_id = Some(principal.key_id.as_str());
        let trace = WriteOnce::new(state, tenant, "startTrace", idempotency_key, &new)?
            .publish(Topic::Traces)
            .run_with_receipt(
                async |txn| write::start_trace(txn, tenant, key_id, new).await,
                |trace| trace.trace_id.clone(),
                async |trace_id: String| stored_trace(state, tenant, &trace_id).await,
            )
            .await?;
        Ok(Trace::new(trace, &TraceLoaders::new(&state.db)))
    }

    /// Appends up to 1000 steps to a running trace in one transaction. A step index already
    /// stored keeps its first version (reported in `alreadyPresentStepIndexes`); one invalid
    /// step rejects the whole batch. Another tenant's or an unknown trace: `NOT_FOUND`; a
    /// finished trace: `INVALID_TRANSITION`.
    async fn record_steps(
        &self,
        ctx: &Context<'_>,
        trace_id: String,
        steps: Vec<TraceStepInput>,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<RecordStepsResult> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        let steps = parse_steps(steps)?;
        let tenant = &principal.tenant_id;
        #[derive(Serialize)]
        struct Fingerprint<'a> {
            trace_id: &'a str,
            steps: &'a [NewStep],
        }
        let fingerprint = Fingerprint {
            trace_id: &trace_id,
            steps: &steps,
        };
        let recorded = WriteOnce::new(state, tenant, "recordSteps", idempotency_key, &fingerprint)?
            .publish_if(Topic::TraceSteps, |r: &StepsRecorded| {
                !r.inserted.is_empty()
            })
            .run(async |txn| {
                // One foreign-key check per step: let them share a plan.
                crate::db::reuse_plans(txn).await?;
                write::record_steps(txn, tenant, &trace_id, steps).await
            })
            .await?;
        Ok(RecordStepsResult {
            recorded,
            tenant: tenant.clone(),
        })
    }

    /// Ends a running trace as `COMPLETED` or `FAILED` and seals it: `checksum` (determinism
    /// signature) and `rootHash` (run proof) are computed from the stored steps. `metadata`
    /// (an object, redacted) replaces the stored metadata when given. A trace that is not
    /// running: `INVALID_TRANSITION`.
    async fn complete_trace(
        &self,
        ctx: &Context<'_>,
        trace_id: String,
        status: CompletionStatus,
        metadata: Option<Json<Value>>,
        #[graphql(desc = "Where a policy stopped the trace, recorded as it is sealed.")]
        violation: Option<TraceViolationInput>,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<Trace> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        let metadata = metadata.map(|m| m.0);
        if metadata.as_ref().is_some_and(|m| !m.is_object()) {
            return Err(AppError::bad_input("metadata", "metadata must be an object").into());
        }
        let violation = violation.map(TraceViolationInput::checked).transpose()?;
        let tenant = &principal.tenant_id;
        let input = json!({"traceId": trace_id, "status": status, "metadata": metadata,
                           "violation": violation.as_ref().map(violation_json)});
        let once = WriteOnce::new(state, tenant, "completeTrace", idempotency_key, &input)?;
        let finish = Finish::Complete {
            status: status.into(),
            metadata,
            violation,
        };
        finish_trace(state, tenant, once, &trace_id, finish).await
    }

    /// Ends a running trace as `ABORTED` (fail-closed: a trace never dangles), with
    /// `metadata.abort_reason` (redacted), and seals it like `completeTrace`. A trace that is
    /// not running: `INVALID_TRANSITION`.
    async fn abort_trace(
        &self,
        ctx: &Context<'_>,
        trace_id: String,
        reason: String,
        #[graphql(desc = "Where a policy stopped the trace, recorded as it is sealed.")]
        violation: Option<TraceViolationInput>,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<Trace> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        check_text("reason", &reason, 1000)?;
        let violation = violation.map(TraceViolationInput::checked).transpose()?;
        let tenant = &principal.tenant_id;
        let input = json!({"traceId": trace_id, "reason": reason,
                           "violation": violation.as_ref().map(violation_json)});
        let once = WriteOnce::new(state, tenant, "abortTrace", idempotency_key, &input)?;
        let finish = Finish::Abort { reason, violation };
        finish_trace(state, tenant, once, &trace_id, finish).await
    }
}

/// Where a policy stopped a trace (its inflection point), given when the trace is sealed. Each
/// field may be left out, not all of them; `timestamp` defaults to the step's time.
#[derive(Debug, Clone, InputObject)]
pub struct TraceViolationInput {
    /// The step the policy stopped; one of the trace's recorded steps.
    pub step_index: Option<i32>,
    pub timestamp: Option<DateTime>,
    pub policy_id: Option<String>,
    /// Why (up to 512 characters; redacted before storage).
    pub reason: Option<String>,
}

impl TraceViolationInput {
    fn checked(self) -> AppResult<Violation> {
        let v = self;
        if v.step_index.is_none()
            && v.timestamp.is_none()
            && v.policy_id.is_none()
            && v.reason.is_none()
        {
            return Err(AppError::bad_input(
                "violation",
                "a violation names at least one of stepIndex, timestamp, policyId, reason",
            ));
        }
        if v.step_index.is_some_and(|i| i < 0) {
            return Err(AppError::bad_input(
                "violation.stepIndex",
                "violation.stepIndex must not be negative",
            ));
        }
        if let Some(policy) = &v.policy_id {
            check_id("violation.policyId", policy, 64)?;
        }
        check_opt("violation.reason", &v.reason, 512)?;
        Ok(Violation {
            step_index: v.step_index,
            timestamp: v.timestamp.map(|t| crate::scalars::truncate_to_micros(t.0)),
            policy_id: v.policy_id,
            reason: v.reason,
        })
    }
}

/// A violation as the idempotency fingerprint sees it.
fn violation_json(v: &Violation) -> Value {
    json!({
        "stepIndex": v.step_index,
        "timestamp": v.timestamp.map(crate::scalars::format_utc),
        "policyId": v.policy_id,
        "reason": v.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: i32) -> TraceStepInput {
        TraceStepInput {
            step_index: index,
            skill_id: None,
            skill_name: "llm_invoke".into(),
            params: None,
            status: "success".into(),
            outcome_category: "SUCCESS".into(),
            outcome_code: None,
            outcome_data: None,
            cost_cents: 0.0,
            duration_ms: 0.0,
            retry_count: 0,
            input_hash: None,
            output_hash: None,
            rng_state_before: None,
            idempotency_key: None,
            replay_behavior: None,
            source: None,
            timestamp: None,
        }
    }

    fn field(err: AppError) -> String {
        match err {
            AppError::BadUserInput { field, .. } => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn batches_are_checked_whole() {
        assert_eq!(
            parse_steps(vec![step(0), step(1)]).map(|s| s.len()).ok(),
            Some(2)
        );
        let too_many: Vec<_> = (0..1001).map(step).collect();
        assert_eq!(field(parse_steps(too_many).unwrap_err()), "steps");
        assert_eq!(field(parse_steps(vec![]).unwrap_err()), "steps");
        assert_eq!(
            field(parse_steps(vec![step(0), step(1), step(0)]).unwrap_err()),
            "steps[2].stepIndex"
        );
        let mut bad = step(1);
        bad.skill_name = " ".into();
        assert_eq!(
            field(parse_steps(vec![step(0), bad]).unwrap_err()),
            "steps[1].skillName"
        );
        let mut negative = step(-1);
        negative.cost_cents = 1.0;
        assert_eq!(
            field(parse_steps(vec![negative]).unwrap_err()),
            "steps[0].stepIndex"
        );
    }
}
