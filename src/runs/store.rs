//! SQL for `llm_run_records`. Every query is scoped to one tenant in the SQL itself.

use entity::llm_run_records::{self, Column, Entity};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, NotSet, QueryFilter,
    QuerySelect, Select, Set,
};

use chrono::{DateTime, Utc};

use super::rollups::KeyColumns;
use super::search::RUN_SEARCH;
use super::{ExecutionStatus, LlmRunSnapshot, RunFilter, RunSource};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::list_filters::within_ranges;
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
        total_tokens: m.total_tokens,
        duration_ms: m.duration_ms,
    })
}

pub(crate) fn filtered(
    backend: DbBackend,
    tenant: &TenantId,
    filter: &RunFilter,
) -> Select<Entity> {
    let mut q = Entity::find().filter(Column::TenantId.eq(tenant.as_str()));
    for (column, value) in [
        (Column::RunId, &filter.run_id),
        (Column::TraceId, &filter.trace_id),
        (Column::SyntheticScenarioId, &filter.synthetic_scenario_id),
    ] {
        if let Some(v) = value {
            q = q.filter(column.eq(v.as_str()));
        }
    }
    let keys = KeyColumns {
        provider: Column::Provider,
        model: Column::Model,
        status: Column::ExecutionStatus,
        source: Column::Source,
        synthetic: Column::IsSynthetic,
    };
    let mut q = within_ranges(
        keys.narrow(q, filter),
        [
            (Column::CostCents, filter.cost_cents),
            (Column::InputTokens, filter.input_tokens),
            (Column::OutputTokens, filter.output_tokens),
            (Column::TotalTokens, filter.total_tokens),
            (Column::DurationMs, filter.duration_ms),
        ],
    );
    if let Some(term) = &filter.search {
        q = q.filter(RUN_SEARCH.matches(backend, term));
    }
    let q = created_within(
        q,
        Column::StartedAt,
        filter.started_after,
        filter.started_before,
    );
    let q = created_within(
        q,
        Column::CompletedAt,
        filter.completed_after,
        filter.completed_before,
    );
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

    /// Log data: only the tenant's read window (`crate::read_window`).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        Some(crate::pagination::TimeBounds {
            field: "createdAfter",
            to: filter.created_before,
            from: &mut filter.created_after,
        })
    }

    /// Only a search term needs the backend; every caller goes through `select_on` with the
    /// connection's. Without one, the PostgreSQL form.
    fn select(
        tenant: &TenantId,
        filter: &RunFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        Self::select_on(DbBackend::Postgres, tenant, filter, as_of)
    }

    fn select_on(
        backend: DbBackend,
        tenant: &TenantId,
        filter: &RunFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        filtered(backend, tenant, filter)
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

/// When the tenant's run `run_id` was recorded (`None`: the tenant has no such run): what the
/// lookups keyed by a run id (`replayWindow`, `integrity`) hold against the read window.
pub async fn run_created_at(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_id: &str,
) -> AppResult<Option<DateTime<Utc>>> {
    Ok(Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::RunId.eq(run_id))
        .select_only()
        .column(Column::CreatedAt)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?)
}

/// The tenant's runs with any of these run ids (one statement).
pub async fn get_by_run_ids(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<Vec<LlmRunSnapshot>> {
    let found = Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::RunId.is_in(run_ids.iter().map(String::as_str)))
        .all(db)
        .await?;
    found.into_iter().map(snapshot).collect()
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
        // Generated by the database.
        total_tokens: NotSet,
        duration_ms: NotSet,
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
