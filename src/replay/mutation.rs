//! `enforceReplayStep` and `enforceTrace`: replay enforcement over GraphQL (docs/domain.md §7.2;
//! see [`super::enforce`]). A write made by replay workers (INGEST) or operators replaying a trace
//! (OPERATOR), and ADMIN.

use async_graphql::{Context, InputObject, Json, Object, SimpleObject};
use serde::Serialize;
use serde_json::Value;

use super::enforce::{
    self, Enforcement, ReplayOutcome, StepReplay, TraceEnforcement, TraceStepReplay,
};
use crate::auth::{self, Permission};
use crate::error::AppError;
use crate::idempotency::WriteOnce;
use crate::state::AppState;
use crate::traces::ReplayBehavior;

/// One replayed step and the output it produced this time.
#[derive(Debug, Clone, InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnforceReplayStepInput {
    /// One of the tenant's live traces.
    pub trace_id: String,
    pub step_index: i32,
    /// The step's new output (any JSON value except null).
    pub output: Json<Value>,
    /// Overrides the step's recorded `replayBehavior`.
    pub behavior: Option<ReplayBehavior>,
}

/// The verdict for one replayed step. A `CHECK` step whose output hash differs from the
/// recorded one is not a result but the error `REPLAY_MISMATCH`, with `extensions.expected`
/// and `extensions.actual`.
#[derive(SimpleObject)]
pub struct ReplayStepResult {
    pub trace_id: String,
    pub step_index: i32,
    /// The behaviour applied (the input's, else the step's recorded one).
    pub behavior: ReplayBehavior,
    pub outcome: ReplayOutcome,
    pub executed: bool,
    pub skipped: bool,
    pub checked: bool,
    /// `output` and `outputHash` are the replay store's recorded ones, not this call's.
    pub from_cache: bool,
    pub output: Json<Value>,
    /// First 16 hex of SHA-256 over the output's sorted-key JSON with `", "`/`": "`
    /// separators (Python `json.dumps(sort_keys=True)`); `null` hashes the text `null`.
    pub output_hash: String,
    /// What a `CHECK` step was verified against.
    pub expected_hash: Option<String>,
    /// The step's idempotency key, under which the output is recorded for 24 h; null when the
    /// step has none (then nothing is recorded and `SKIP` cannot be honoured).
    pub replay_key: Option<String>,
}

impl From<Enforcement> for ReplayStepResult {
    fn from(e: Enforcement) -> Self {
        ReplayStepResult {
            trace_id: e.trace_id,
            step_index: e.step_index,
            behavior: e.behavior,
            outcome: e.outcome,
            executed: e.executed,
            skipped: e.skipped,
            checked: e.checked,
            from_cache: e.from_cache,
            output: Json(e.output),
            output_hash: e.output_hash,
            expected_hash: e.expected_hash,
            replay_key: e.replay_key,
        }
    }
}

/// One step of a whole-trace replay.
#[derive(Debug, Clone, InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceStepOutputInput {
    pub step_index: i32,
    /// The step's new output. May be left out only for a step the replay store answers
    /// without running it (a `SKIP` step with a recorded output); otherwise `BAD_USER_INPUT`.
    pub output: Option<Json<Value>>,
    /// Overrides the step's recorded `replayBehavior`.
    pub behavior: Option<ReplayBehavior>,
}

/// A whole trace replayed: every live step of the trace, in ascending `stepIndex` order.
#[derive(Debug, Clone, InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnforceTraceInput {
    /// One of the tenant's live traces.
    pub trace_id: String,
    /// Every live step of the trace exactly once, in ascending `stepIndex` order (at most
    /// 1000).
    pub steps: Vec<TraceStepOutputInput>,
}

/// The verdicts for a whole trace, in step order, with the totals.
#[derive(SimpleObject)]
pub struct TraceReplayResult {
    pub trace_id: String,
    pub steps: Vec<ReplayStepResult>,
    pub total_steps: i32,
    pub executed: i32,
    pub skipped: i32,
    pub checked: i32,
}

impl From<TraceEnforcement> for TraceReplayResult {
    fn from(e: TraceEnforcement) -> Self {
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        TraceReplayResult {
            trace_id: e.trace_id,
            total_steps: count(e.steps.len()),
            executed: count(e.executed),
            skipped: count(e.skipped),
            checked: count(e.checked),
            steps: e.steps.into_iter().map(ReplayStepResult::from).collect(),
        }
    }
}

/// Replay enforcement is for replay workers (INGEST) and operators replaying a trace
/// (OPERATOR), and ADMIN; not for readers.
fn may_enforce(principal: &auth::Principal) -> Result<(), AppError> {
    if !(principal.role_may(Permission::Ingest) || principal.role_may(Permission::Operate)) {
        return Err(AppError::Forbidden {
            role: principal.role.as_str(),
            action: "enforce replay steps",
        });
    }
    Ok(())
}

fn check_trace_id(trace_id: &str) -> Result<(), AppError> {
    if trace_id.is_empty() || trace_id.len() > 64 {
        return Err(AppError::bad_input(
            "input.traceId",
            "traceId must be 1 to 64 characters",
        ));
    }
    Ok(())
}

#[derive(Default)]
pub struct ReplayMutation;

#[Object]
impl ReplayMutation {
    /// Enforces one step's replay behaviour (docs/domain.md §7.2): `EXECUTED`, `SKIPPED` (a `SKIP`
    /// step already recorded under its idempotency key) or `CHECKED` (a `CHECK` step whose output
    /// hash matches), else `REPLAY_MISMATCH`. Recorded outputs are kept in the database, written in
    /// the same transaction as the enforcement, so every server process sees them. Roles
    /// INGEST, OPERATOR, ADMIN.
    async fn enforce_replay_step(
        &self,
        ctx: &Context<'_>,
        input: EnforceReplayStepInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<ReplayStepResult> {
        let principal = auth::viewer(ctx).await?;
        may_enforce(&principal)?;
        let state = ctx.data_unchecked::<AppState>();
        if input.step_index < 0 {
            return Err(
                AppError::bad_input("input.stepIndex", "stepIndex must not be negative").into(),
            );
        }
        check_trace_id(&input.trace_id)?;
        let request = StepReplay {
            trace_id: input.trace_id.clone(),
            step_index: input.step_index,
            output: input.output.0.clone(),
            behavior: input.behavior,
        };
        let tenant = &principal.tenant_id;
        let result = WriteOnce::new(state, tenant, "enforceReplayStep", idempotency_key, &input)?
            .run(async |txn| enforce::enforce_step(txn, tenant, &request).await)
            .await?;
        Ok(ReplayStepResult::from(result))
    }

    /// Enforces a whole trace in step order (docs/domain.md §7.2): every live step of the
    /// trace, each as `enforceReplayStep` would, with the totals of executed, skipped and
    /// checked steps. All or nothing: a `REPLAY_MISMATCH` at any step (its message names the
    /// step) records no output for any step. Roles INGEST, OPERATOR, ADMIN.
    async fn enforce_trace(
        &self,
        ctx: &Context<'_>,
        input: EnforceTraceInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<TraceReplayResult> {
        let principal = auth::viewer(ctx).await?;
        may_enforce(&principal)?;
        check_trace_id(&input.trace_id)?;
        let steps: Vec<TraceStepReplay> = input
            .steps
            .iter()
            .map(|s| TraceStepReplay {
                step_index: s.step_index,
                output: s.output.as_ref().map(|j| j.0.clone()),
                behavior: s.behavior,
            })
            .collect();
        let state = ctx.data_unchecked::<AppState>();
        let tenant = &principal.tenant_id;
        let trace_id = input.trace_id.clone();
        let result = WriteOnce::new(state, tenant, "enforceTrace", idempotency_key, &input)?
            .run(async |txn| enforce::enforce_trace(txn, tenant, &trace_id, &steps).await)
            .await?;
        Ok(TraceReplayResult::from(result))
    }
}
