//! The DataLoaders behind `LlmRun`'s depth levels (O2–O5 and the evidence views). One set per
//! request, made on first use with the caller's tenant, so a page of runs costs one batched
//! statement per nested field, whatever its size.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::Context;

use crate::audit::graphql::GovernanceEventsByRun;
use crate::auth::{self, Permission};
use crate::error::AppResult;
use crate::evidence::reads::{
    ActivityEvidence, EnvironmentEvidence, EvidenceLoader, PolicyDecision, ProviderEvidence,
};
use crate::exports::graphql::ExportsByRun;
use crate::integrity::graphql::IntegrityLoader;
use crate::mismatches::graphql::MismatchesByRunLoader;
use crate::replay::graphql::ReplayWindowLoader;
use crate::request::loader;
use crate::state::AppState;
use crate::system::graphql::SystemRecordsByRun;
use crate::traces::graphql::TraceLinks;
use crate::traces::graphql::{TraceByRunLoader, TraceByTraceIdLoader, TraceLoaders};

pub struct RunLoaders {
    pub traces: DataLoader<TraceByRunLoader>,
    /// For a run with no trace of its own run id (an OTLP GenAI span's run): the trace its
    /// `traceId` names.
    pub traces_by_trace_id: DataLoader<TraceByTraceIdLoader>,
    pub trace_fields: Arc<TraceLoaders>,
    pub governance: DataLoader<GovernanceEventsByRun>,
    pub system_records: DataLoader<SystemRecordsByRun>,
    pub exports: DataLoader<ExportsByRun>,
    pub integrity: DataLoader<IntegrityLoader>,
    pub replay: DataLoader<ReplayWindowLoader>,
    pub mismatches: DataLoader<MismatchesByRunLoader>,
    pub mismatch_fields: Arc<TraceLinks>,
    pub environment: DataLoader<EvidenceLoader<EnvironmentEvidence>>,
    pub activities: DataLoader<EvidenceLoader<ActivityEvidence>>,
    pub providers: DataLoader<EvidenceLoader<ProviderEvidence>>,
    pub policy_decisions: DataLoader<EvidenceLoader<PolicyDecision>>,
}

/// The request's run loaders (checking the caller may read), made on first use.
pub async fn run_loaders(ctx: &Context<'_>) -> AppResult<Arc<RunLoaders>> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let db = &ctx.data_unchecked::<AppState>().db;
    let tenant = &principal.tenant_id;
    let trace_fields = TraceLoaders::of(ctx)?;
    let mismatch_fields = TraceLinks::of(ctx, tenant)?;
    Ok(crate::request::scope(ctx)?.shared(|_| RunLoaders {
        traces: loader(TraceByRunLoader {
            db: db.clone(),
            tenant: tenant.clone(),
        }),
        traces_by_trace_id: loader(TraceByTraceIdLoader {
            db: db.clone(),
            tenant: tenant.clone(),
        }),
        trace_fields,
        governance: loader(GovernanceEventsByRun::new(db.clone(), tenant.clone())),
        system_records: loader(SystemRecordsByRun::new(db.clone(), tenant.clone())),
        exports: loader(ExportsByRun::new(db.clone(), tenant.clone())),
        integrity: loader(IntegrityLoader {
            db: db.clone(),
            tenant: tenant.clone(),
        }),
        replay: loader(ReplayWindowLoader {
            db: db.clone(),
            tenant: tenant.clone(),
        }),
        mismatches: loader(MismatchesByRunLoader {
            db: db.clone(),
            tenant: tenant.clone(),
        }),
        mismatch_fields,
        environment: loader(EvidenceLoader::new(db.clone(), tenant.clone())),
        activities: loader(EvidenceLoader::new(db.clone(), tenant.clone())),
        providers: loader(EvidenceLoader::new(db.clone(), tenant.clone())),
        policy_decisions: loader(EvidenceLoader::new(db.clone(), tenant.clone())),
    }))
}
