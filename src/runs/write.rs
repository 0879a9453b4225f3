//! Writing LLM run records (docs/domain.md §2.2). One record per (tenant, run): a second record for
//! the same run is refused (docs/decisions.md D4), never overwritten — records are immutable.

use chrono::{DateTime, Utc};
use entity::llm_run_records::{Column, Entity};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, TryInsertResult};
use serde::Serialize;

use super::{ExecutionStatus, LlmRunSnapshot, RunSource};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

/// A validated `recordLlmRun` input (the tenant comes from the key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewLlmRun {
    pub run_id: String,
    pub trace_id: Option<String>,
    /// Inferred from the model when absent ([`infer_provider`]).
    pub provider: Option<String>,
    pub model: String,
    pub prompt_hash: Option<String>,
    pub response_hash: Option<String>,
    pub input_tokens: i32,
    pub output_tokens: i32,
    /// Integer US cents.
    pub cost_cents: i32,
    pub execution_status: ExecutionStatus,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub source: RunSource,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
}

/// The producer's rule: a model name containing `claude` is Anthropic's, `gpt` OpenAI's,
/// `stub` is the stub provider; anything else is `unknown`.
pub fn infer_provider(model: &str) -> &'static str {
    let lower = model.to_ascii_lowercase();
    if lower.contains("claude") {
        "anthropic"
    } else if lower.contains("gpt") {
        "openai"
    } else if lower == "stub" {
        "stub"
    } else {
        "unknown"
    }
}

/// Inserts the record; a record for the same run id already in the tenant is
/// `BAD_USER_INPUT` on `input.runId` (retries of one request should carry an idempotency key,
/// which returns the first result instead).
pub async fn record_run(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    new: NewLlmRun,
) -> AppResult<LlmRunSnapshot> {
    let run = snapshot_of(tenant, new, crate::scalars::now());
    let row = super::store::active_model(&run);
    let result = Entity::insert(row)
        .on_conflict_do_nothing_on([Column::TenantId, Column::RunId])
        .exec_without_returning(db)
        .await?;
    match result {
        TryInsertResult::Inserted(n) if n > 0 => Ok(run),
        _ => Err(AppError::bad_input(
            "input.runId",
            format!("an LLM run record for run {} already exists", run.run_id),
        )),
    }
}

/// Inserts many records in one statement, skipping any whose run id the tenant already has;
/// returns how many were inserted. For writers whose run ids are unique by construction (the
/// OTLP receiver's `<trace>-<span>`): one statement fires the run rollups' trigger once, where
/// one statement per record would fire it per record (docs/otlp.md, "Throughput").
pub async fn record_runs(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    runs: Vec<NewLlmRun>,
) -> AppResult<u64> {
    if runs.is_empty() {
        return Ok(0);
    }
    let now = crate::scalars::now();
    let rows = runs
        .into_iter()
        .map(|new| super::store::active_model(&snapshot_of(tenant, new, now)));
    if db.get_database_backend() == DbBackend::Postgres {
        let inserted = crate::db::insert_rows_as_json(
            db,
            rows.collect(),
            "ON CONFLICT (tenant_id, run_id) DO NOTHING RETURNING 1 AS inserted",
        )
        .await?;
        return Ok(inserted.len() as u64);
    }
    let result = Entity::insert_many(rows)
        .on_conflict_do_nothing_on([Column::TenantId, Column::RunId])
        .exec_without_returning(db)
        .await?;
    Ok(match result {
        TryInsertResult::Inserted(n) => n,
        _ => 0,
    })
}

/// The record `new` becomes in `tenant`, created at `created_at`.
fn snapshot_of(tenant: &TenantId, new: NewLlmRun, created_at: DateTime<Utc>) -> LlmRunSnapshot {
    let provider = new
        .provider
        .clone()
        .unwrap_or_else(|| infer_provider(&new.model).to_owned());
    LlmRunSnapshot {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.as_str().to_owned(),
        run_id: new.run_id,
        trace_id: new.trace_id,
        provider,
        model: new.model,
        prompt_hash: new.prompt_hash,
        response_hash: new.response_hash,
        input_tokens: new.input_tokens,
        output_tokens: new.output_tokens,
        cost_cents: new.cost_cents,
        execution_status: new.execution_status,
        started_at: new.started_at,
        completed_at: new.completed_at,
        source: new.source,
        is_synthetic: new.is_synthetic,
        synthetic_scenario_id: new.synthetic_scenario_id,
        created_at,
        total_tokens: i64::from(new.input_tokens) + i64::from(new.output_tokens),
        duration_ms: super::duration_ms(new.started_at, new.completed_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_inference() {
        assert_eq!(infer_provider("claude-sonnet-4-5"), "anthropic");
        assert_eq!(infer_provider("GPT-4o"), "openai");
        assert_eq!(infer_provider("stub"), "stub");
        assert_eq!(infer_provider("llama-3"), "unknown");
    }
}
