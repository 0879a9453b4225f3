//! `recordLlmRun` (role `INGEST`): writes one immutable LLM run record for the key's tenant.

use async_graphql::{Context, InputObject, Object};

use super::graphql::LlmRun;
use super::write::{self, NewLlmRun};
use super::{store, ExecutionStatus, RunSource};
use crate::auth::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::idempotency::WriteOnce;
use crate::input::{check_id, check_opt, check_sha256, check_synthetic, check_text, non_negative};
use crate::scalars::DateTime;
use crate::state::AppState;

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

fn parse(input: RecordLlmRunInput) -> AppResult<NewLlmRun> {
    check_id("input.runId", &input.run_id, 64)?;
    if let Some(trace_id) = &input.trace_id {
        check_id("input.traceId", trace_id, 64)?;
    }
    check_opt("input.provider", &input.provider, 64)?;
    check_text("input.model", &input.model, 128)?;
    if let Some(hash) = &input.prompt_hash {
        check_sha256("input.promptHash", hash)?;
    }
    if let Some(hash) = &input.response_hash {
        check_sha256("input.responseHash", hash)?;
    }
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
        let run = WriteOnce::new(state, tenant, "recordLlmRun", idempotency_key, &new)?
            .publish(Topic::LlmRuns)
            .run_with_receipt(
                async |txn| write::record_run(txn, tenant, new).await,
                |run| run.id.clone(),
                async |id: String| stored_run(state, tenant, &id).await,
            )
            .await?;
        Ok(LlmRun(run))
    }
}
