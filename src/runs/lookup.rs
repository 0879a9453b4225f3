//! Runs by run id, batched per request: how the domains that link to a run (`Trace.llmRun`,
//! `AuditEntry.llmRun`, `SystemRecord.llmRun`, `LogExport.llmRun`) load it, so a page of 100
//! traces or audit entries costs one statement for their runs.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::Context;
use sea_orm::DatabaseConnection;

use super::graphql::LlmRun;
use super::{store, LlmRunSnapshot};
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The caller's tenant's runs per run id (run ids are unique per tenant).
pub struct RunByRunIdLoader {
    db: DatabaseConnection,
    tenant: TenantId,
}

impl Loader<String> for RunByRunIdLoader {
    type Value = LlmRunSnapshot;
    type Error = AppError;

    async fn load(&self, keys: &[String]) -> AppResult<HashMap<String, LlmRunSnapshot>> {
        let runs = store::get_by_run_ids(&self.db, &self.tenant, keys).await?;
        Ok(runs.into_iter().map(|r| (r.run_id.clone(), r)).collect())
    }
}

/// The run with this run id in the caller's tenant, if any (the caller must be able to read).
pub async fn run_by_run_id(ctx: &Context<'_>, run_id: Option<&str>) -> AppResult<Option<LlmRun>> {
    let Some(run_id) = run_id else {
        return Ok(None);
    };
    let principal = auth::require(ctx, Permission::Read).await?;
    let db = &ctx.data_unchecked::<AppState>().db;
    let loader = crate::request::scope(ctx)?.shared(|_| {
        crate::request::loader(RunByRunIdLoader {
            db: db.clone(),
            tenant: principal.tenant_id.clone(),
        })
    });
    let found: Option<LlmRunSnapshot> = DataLoader::load_one(&loader, run_id.to_owned()).await?;
    Ok(found.map(LlmRun))
}
