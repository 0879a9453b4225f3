//! The DataLoaders behind `LlmRun`'s depth levels (O2–O5 and the evidence views). One set per
//! request, made on first use with the caller's tenant, so a page of runs costs one batched
//! statement per nested field, whatever its size.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::Context;
use tokio::sync::OnceCell;

use crate::audit::graphql::GovernanceEventsByRun;
use crate::auth::{self, Permission};
use crate::error::AppResult;
use crate::exports::graphql::ExportsByRun;
use crate::integrity::graphql::IntegrityLoader;
use crate::mismatches::graphql::{MismatchLoaders, MismatchesByRunLoader};
use crate::replay::graphql::ReplayWindowLoader;
use crate::state::AppState;
use crate::system::graphql::SystemRecordsByRun;
use crate::traces::graphql::{TraceByRunLoader, TraceLoaders};

pub struct RunLoaders {
    pub traces: DataLoader<TraceByRunLoader>,
    pub trace_fields: Arc<TraceLoaders>,
    pub governance: DataLoader<GovernanceEventsByRun>,
    pub system_records: DataLoader<SystemRecordsByRun>,
    pub exports: DataLoader<ExportsByRun>,
    pub integrity: DataLoader<IntegrityLoader>,
    pub replay: DataLoader<ReplayWindowLoader>,
    pub mismatches: DataLoader<MismatchesByRunLoader>,
    pub mismatch_fields: Arc<MismatchLoaders>,
}

/// Request data: the request's loaders, created at most once.
#[derive(Default)]
pub struct RunLoaderCell(OnceCell<Arc<RunLoaders>>);

/// The request's run loaders (checking the caller may read).
pub async fn run_loaders(ctx: &Context<'_>) -> AppResult<Arc<RunLoaders>> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let cell = ctx.data_unchecked::<RunLoaderCell>();
    let loaders = cell
        .0
        .get_or_init(|| async {
            let db = state.db.clone();
            let tenant = principal.tenant_id.clone();
            Arc::new(RunLoaders {
                traces: DataLoader::new(
                    TraceByRunLoader {
                        db: db.clone(),
                        tenant: tenant.clone(),
                    },
                    tokio::spawn,
                ),
                trace_fields: TraceLoaders::new(&db),
                governance: DataLoader::new(
                    GovernanceEventsByRun::new(db.clone(), tenant.clone()),
                    tokio::spawn,
                ),
                system_records: DataLoader::new(
                    SystemRecordsByRun::new(db.clone(), tenant.clone()),
                    tokio::spawn,
                ),
                exports: DataLoader::new(
                    ExportsByRun::new(db.clone(), tenant.clone()),
                    tokio::spawn,
                ),
                integrity: DataLoader::new(
                    IntegrityLoader {
                        db: db.clone(),
                        tenant: tenant.clone(),
                    },
                    tokio::spawn,
                ),
                replay: DataLoader::new(
                    ReplayWindowLoader {
                        db: db.clone(),
                        tenant: tenant.clone(),
                    },
                    tokio::spawn,
                ),
                mismatches: DataLoader::new(
                    MismatchesByRunLoader {
                        db: db.clone(),
                        tenant: tenant.clone(),
                    },
                    tokio::spawn,
                ),
                mismatch_fields: MismatchLoaders::new(&db, &tenant),
            })
        })
        .await;
    Ok(loaders.clone())
}
