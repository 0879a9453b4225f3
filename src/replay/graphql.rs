//! GraphQL for replay windows: `replayWindow(runId)` and the loader behind `LlmRun.replayWindow`.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, Object, SimpleObject};
use sea_orm::DatabaseConnection;

use super::{store, InflectionSource, ReplayEvent, ReplayEventSource, ReplayWindowSnapshot};
use crate::auth::{self, Permission, TenantId};
use crate::error::AppError;
use crate::scalars::DateTime;
use crate::state::AppState;
use crate::traces::graphql::LoadError;

/// Replay windows of the tenant's runs, by run id (runs without a record are absent).
pub struct ReplayWindowLoader {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
}

impl Loader<String> for ReplayWindowLoader {
    type Value = ReplayWindowSnapshot;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, ReplayWindowSnapshot>, LoadError> {
        Ok(store::replay_windows_for_runs(&self.db, &self.tenant, keys).await?)
    }
}

/// One event of a replay window.
#[derive(SimpleObject)]
pub struct ReplayWindowEvent {
    pub source: ReplayEventSource,
    pub timestamp: DateTime,
    /// Set for `LLM` events (the trace step).
    pub step_index: Option<i32>,
    /// Skill name (LLM) or event type (SYSTEM, POLICY).
    pub action: String,
    /// Outcome category (LLM), severity (SYSTEM) or entity type (POLICY).
    pub outcome: String,
    /// Id of the underlying step, system record or audit entry.
    pub record_id: String,
}

impl From<&ReplayEvent> for ReplayWindowEvent {
    fn from(e: &ReplayEvent) -> Self {
        ReplayWindowEvent {
            source: e.source,
            timestamp: e.timestamp.into(),
            step_index: e.step_index,
            action: e.action.clone(),
            outcome: e.outcome.clone(),
            record_id: e.record_id.clone(),
        }
    }
}

/// What happened around a run's inflection point (LLM O4): ±30 s, from the trace's steps,
/// system records and policy/limit audit entries. Computed on read, never stored.
pub struct ReplayWindow(pub ReplayWindowSnapshot);

#[Object]
impl ReplayWindow {
    async fn run_id(&self) -> &str {
        &self.0.run_id
    }
    /// The trace whose steps are merged; null when the run has no live trace.
    async fn trace_id(&self) -> Option<&str> {
        self.0.trace_id.as_deref()
    }
    /// The trace's violation time when recorded, else the run's completion (or start) time.
    async fn inflection_timestamp(&self) -> DateTime {
        self.0.inflection.into()
    }
    async fn inflection_source(&self) -> InflectionSource {
        self.0.inflection_source
    }
    /// Inclusive.
    async fn window_start(&self) -> DateTime {
        self.0.window_start.into()
    }
    /// Inclusive.
    async fn window_end(&self) -> DateTime {
        self.0.window_end.into()
    }
    /// Ordered by timestamp (ties: LLM, SYSTEM, POLICY, then step index and record id). At most
    /// 1000 per source, the earliest.
    async fn events(&self) -> Vec<ReplayWindowEvent> {
        self.0.events.iter().map(Into::into).collect()
    }
    /// True when some source had more events than were returned.
    async fn truncated(&self) -> bool {
        self.0.truncated
    }
}

#[derive(Default)]
pub struct ReplayQuery;

#[Object]
impl ReplayQuery {
    /// The replay window of one of the tenant's runs. `NOT_FOUND` when the tenant has no run
    /// record with this run id, or only one outside its read window (like `llmRun`).
    async fn replay_window(
        &self,
        ctx: &Context<'_>,
        run_id: String,
    ) -> async_graphql::Result<Option<ReplayWindow>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let recorded =
            crate::runs::store::run_created_at(&state.db, &principal.tenant_id, &run_id).await?;
        crate::pagination::within_read_window(ctx, &principal.tenant_id, recorded, |at| *at)
            .await?
            .ok_or(AppError::NotFound("LlmRun"))?;
        let mut windows = store::replay_windows_for_runs(
            &state.db,
            &principal.tenant_id,
            std::slice::from_ref(&run_id),
        )
        .await?;
        let window = windows
            .remove(&run_id)
            .ok_or(AppError::NotFound("LlmRun"))?;
        Ok(Some(ReplayWindow(window)))
    }
}
