//! `recordLlmRun` (role `INGEST`): writes one immutable LLM run record for the key's tenant.

use async_graphql::{Context, InputObject, Object};

use super::graphql::LlmRun;
use super::write::{self, NewLlmRun};
use super::{store, ExecutionStatus, RunSource};
use crate::auth::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::idempotency::{self, Begun};
use crate::scalars::DateTime;
use crate::state::AppState;
use crate::traces::mutation::{check_id, check_opt, check_synthetic, check_text};

/// One LLM run's execution record. Written once per run; immutable.
#[derive(Debug, InputObject)]
pub struct RecordLlmRunInput {
    /// Unique within the tenant: a second record for a run is `BAD_USER_INPUT`.
    pub run_id: String,
    pub trace_id: Option<String>,
    /// Default: inferred from the model (`claude` → `anthropic`, `gpt` → `openai`, `stub`,
    /// else `unknown`).
    pub provider: Option<String>,
    pub model: String,
    /// SHA-256 hex of the prompt (64 lower-case hex characters).
    pub prompt_hash: Option<String>,
    /// SHA-256 hex of the response (64 lower-case hex characters).
    pub response_hash: Option<String>,
    /// >= 0; default 0.
    #[graphql(default)]
    pub input_tokens: i32,
    /// >= 0; default 0.
    #[graphql(default)]
    pub output_tokens: i32,
    /// Cost in integer US cents (not dollars, not fractions of cents), >= 0; default 0.
    #[graphql(default)]
    pub cost_cents: i32,
    pub execution_status: ExecutionStatus,
    pub started_at: DateTime,
    /// Not before `startedAt`.
    pub completed_at: Option<DateTime>,
    /// Default `API`.
    pub source: Option<RunSource>,
    /// Synthetic (SDSR) data; requires `syntheticScenarioId`.
    #[graphql(default)]
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
}

fn check_sha256(field: &str, value: &Option<String>) -> AppResult<()> {
    match value {
        Some(v) if v.len() != 64 || !v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Err(AppError::bad_input(
                field,
                format!("{field} must be a SHA-256 digest: 64 lower-case hex characters"),
            ))
        }
        _ => Ok(()),
    }
}

fn non_negative(field: &str, value: i32) -> AppResult<i32> {
    if value < 0 {
        return Err(AppError::bad_input(field, format!("{field} must be >= 0")));
    }
    Ok(value)
}

fn parse(input: RecordLlmRunInput) -> AppResult<NewLlmRun> {
    check_id("input.runId", &input.run_id, 64)?;
    if let Some(trace_id) = &input.trace_id {
        check_id("input.traceId", trace_id, 64)?;
    }
    check_opt("input.provider", &input.provider, 64)?;
    check_text("input.model", &input.model, 128)?;
    check_sha256("input.promptHash", &input.prompt_hash)?;
    check_sha256("input.responseHash", &input.response_hash)?;
    check_synthetic("input.", input.is_synthetic, &input.synthetic_scenario_id)?;
    if let Some(done) = input.completed_at {
        if done.0 < input.started_at.0 {
            return Err(AppError::bad_input(
                "input.completedAt",
                "input.completedAt must not be before input.startedAt",
            ));
        }
    }
    Ok(NewLlmRun {
        run_id: input.run_id,
        trace_id: input.trace_id,
        provider: input.provider,
        model: input.model,
        prompt_hash: input.prompt_hash,
        response_hash: input.response_hash,
        input_tokens: non_negative("input.inputTokens", input.input_tokens)?,
        output_tokens: non_negative("input.outputTokens", input.output_tokens)?,
        cost_cents: non_negative("input.costCents", input.cost_cents)?,
        execution_status: input.execution_status,
        started_at: input.started_at.0,
        completed_at: input.completed_at.map(|d| d.0),
        source: input.source.unwrap_or(RunSource::Api),
        is_synthetic: input.is_synthetic,
        synthetic_scenario_id: input.synthetic_scenario_id,
    })
}

/// The record a completed idempotency key points at.
async fn stored_run(
    state: &AppState,
    tenant: &crate::auth::TenantId,
    id: &str,
) -> AppResult<super::LlmRunSnapshot> {
    store::get_by_id(&state.db, tenant, id)
        .await?
        .ok_or(AppError::NotFound("LlmRun"))
}

#[derive(Default)]
pub struct RunMutation;

#[Object]
impl RunMutation {
    /// Records an LLM run for the key's tenant. A second record for the same `runId` is
    /// `BAD_USER_INPUT` (records are write-once); retry with an `idempotencyKey` to get the
    /// first result back instead.
    async fn record_llm_run(
        &self,
        ctx: &Context<'_>,
        input: RecordLlmRunInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<LlmRun> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        let new = parse(input)?;
        let tenant = &principal.tenant_id;
        let key = idempotency_key.as_deref();
        let write = match idempotency::begin::<String>(&state.db, tenant, "recordLlmRun", key, &new)
            .await?
        {
            Begun::Fresh(write) => write,
            Begun::Replayed(id) => return Ok(LlmRun(stored_run(state, tenant, &id).await?)),
        };
        let run = write::record_run(write.txn(), tenant, new).await?;
        write.commit(&run.id).await?;
        // Committed: from here on nothing may turn the answer into an error.
        state.events.publish(Topic::LlmRuns, tenant).await;
        Ok(LlmRun(run))
    }
}
