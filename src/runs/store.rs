//! SQL for `llm_run_records`. Every query is scoped to one tenant in the SQL itself.

use entity::llm_run_records::{self, Column, Entity};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Select, Set,
};

use chrono::{DateTime, Utc};

use super::{ExecutionStatus, LlmRunSnapshot, RunFilter, RunSource};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::pagination::{created_within, Listed, Position, RollupCount};

pub(crate) fn snapshot(m: llm_run_records::Model) -> AppResult<LlmRunSnapshot> {
    let execution_status = ExecutionStatus::parse(&m.execution_status).ok_or_else(|| {
        AppError::internal(format!(
            "llm run {} has unknown status {}",
            m.id, m.execution_status
        ))
    })?;
    let source = RunSource::parse(&m.source).ok_or_else(|| {
        AppError::internal(format!("llm run {} has unknown source {}", m.id, m.source))
    })?;
    Ok(LlmRunSnapshot {
        id: m.id,
        tenant_id: m.tenant_id,
        run_id: m.run_id,
        trace_id: m.trace_id,
        provider: m.provider,
        model: m.model,
        prompt_hash: m.prompt_hash,
        response_hash: m.response_hash,
        input_tokens: m.input_tokens,
        output_tokens: m.output_tokens,
        cost_cents: m.cost_cents,
        execution_status,
        started_at: m.started_at,
        completed_at: m.completed_at,
        source,
        is_synthetic: m.is_synthetic,
        synthetic_scenario_id: m.synthetic_scenario_id,
        created_at: m.created_at,
    })
}

pub(crate) fn filtered(tenant: &TenantId, filter: &RunFilter) -> Select<Entity> {
    let mut q = Entity::find().filter(Column::TenantId.eq(tenant.as_str()));
    if let Some(v) = &filter.run_id {
        q = q.filter(Column::RunId.eq(v.as_str()));
    }
    if let Some(v) = &filter.provider {
        q = q.filter(Column::Provider.eq(v.as_str()));
    }
    if let Some(v) = &filter.model {
        q = q.filter(Column::Model.eq(v.as_str()));
    }
    if let Some(statuses) = &filter.status {
        q = q.filter(Column::ExecutionStatus.is_in(statuses.iter().map(|s| s.as_str())));
    }
    if let Some(v) = filter.source {
        q = q.filter(Column::Source.eq(v.as_str()));
    }
    if let Some(v) = filter.is_synthetic {
        q = q.filter(Column::IsSynthetic.eq(v));
    }
    created_within(
        q,
        Column::CreatedAt,
        filter.created_after,
        filter.created_before,
    )
}

/// The tenant's LLM run records matching a filter, newest first (`llmRuns`).
pub struct RunList;

impl Listed for RunList {
    type Entity = Entity;
    type Filter = RunFilter;
    type Row = LlmRunSnapshot;
    const NAME: &'static str = "llmRuns";
    const ORDER: (Column, Column) = (Column::CreatedAt, Column::Id);
    const ROW: fn(llm_run_records::Model) -> AppResult<LlmRunSnapshot> = snapshot;
    const POSITION: fn(&LlmRunSnapshot) -> Position = |r| Position::of(r.created_at, &r.id);

    fn select(tenant: &TenantId, filter: &RunFilter, _: Option<DateTime<Utc>>) -> Select<Entity> {
        filtered(tenant, filter)
    }

    fn rollup_count(
        db: &DatabaseConnection,
        tenant: &TenantId,
        filter: &RunFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Option<RollupCount> {
        super::counts::rollup_count(db, tenant, filter, as_of)
    }
}

pub async fn get_by_run_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_id: &str,
) -> AppResult<Option<LlmRunSnapshot>> {
    let found = Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::RunId.eq(run_id))
        .one(db)
        .await?;
    found.map(snapshot).transpose()
}

pub async fn get_by_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<Option<LlmRunSnapshot>> {
    let found = Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::Id.eq(id))
        .one(db)
        .await?;
    found.map(snapshot).transpose()
}

pub(crate) fn active_model(run: &LlmRunSnapshot) -> llm_run_records::ActiveModel {
    llm_run_records::ActiveModel {
        id: Set(run.id.clone()),
        tenant_id: Set(run.tenant_id.clone()),
        run_id: Set(run.run_id.clone()),
        trace_id: Set(run.trace_id.clone()),
        provider: Set(run.provider.clone()),
        model: Set(run.model.clone()),
        prompt_hash: Set(run.prompt_hash.clone()),
        response_hash: Set(run.response_hash.clone()),
        input_tokens: Set(run.input_tokens),
        output_tokens: Set(run.output_tokens),
        cost_cents: Set(run.cost_cents),
        execution_status: Set(run.execution_status.as_str().to_owned()),
        started_at: Set(run.started_at),
        completed_at: Set(run.completed_at),
        source: Set(run.source.as_str().to_owned()),
        is_synthetic: Set(run.is_synthetic),
        synthetic_scenario_id: Set(run.synthetic_scenario_id.clone()),
        created_at: Set(run.created_at),
    }
}

/// Inserts records as given (ids and timestamps included), in one multi-row statement.
pub async fn insert_many(db: &impl ConnectionTrait, runs: &[LlmRunSnapshot]) -> AppResult<()> {
    if runs.is_empty() {
        return Ok(());
    }
    Entity::insert_many(runs.iter().map(active_model))
        .exec_without_returning(db)
        .await?;
    Ok(())
}
