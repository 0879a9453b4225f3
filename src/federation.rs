//! Apollo Federation v2 subgraph (`serve --federation`, off by default): `_service { sdl }` and
//! `_entities`, with `@key(fields: "id")` on `LlmRun`, `Trace`, `AuditEntry` and `LogExport`, so
//! a BFF's router can compose Logbook into its supergraph (docs/federation.md).
//!
//! An entity's key is its Relay global id, and each entity is fetched exactly as `node(id)`
//! fetches it: read permission, the caller's tenant in SQL, and `NOT_FOUND` for another
//! tenant's object as for a missing one. async-graphql adds the federation fields to any schema
//! whose query root has entity resolvers, so they live on their own root,
//! `graphql::FederatedQuery`, used only when the flag is on.

use async_graphql::{Context, Object, ID};

use crate::audit::graphql::AuditEntry;
use crate::error::AppError;
use crate::exports::graphql::LogExport;
use crate::ids::{self, NodeKind};
use crate::runs::graphql::LlmRun;
use crate::traces::graphql::Trace;

/// At most this many representations in one `_entities` call, like `nodes(ids:)`.
pub const MAX_REPRESENTATIONS: usize = 100;

#[derive(Default)]
pub struct EntityQuery;

/// The record id an entity key names, when it is an id of `kind`.
fn record_id(id: &ID, kind: NodeKind) -> Result<String, AppError> {
    match ids::decode(id) {
        Some((found, record_id)) if found == kind => Ok(record_id),
        _ => Err(AppError::NotFound(kind.as_str())),
    }
}

#[Object]
impl EntityQuery {
    #[graphql(entity)]
    async fn find_llm_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<LlmRun> {
        let record_id = record_id(&id, NodeKind::LlmRun)?;
        Ok(crate::runs::graphql::node(ctx, &record_id).await?)
    }

    #[graphql(entity)]
    async fn find_trace(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Trace> {
        let record_id = record_id(&id, NodeKind::Trace)?;
        Ok(crate::traces::graphql::node(ctx, &record_id).await?)
    }

    #[graphql(entity)]
    async fn find_audit_entry(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<AuditEntry> {
        let record_id = record_id(&id, NodeKind::AuditEntry)?;
        Ok(crate::audit::graphql::node(ctx, &record_id).await?)
    }

    #[graphql(entity)]
    async fn find_log_export(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<LogExport> {
        let record_id = record_id(&id, NodeKind::LogExport)?;
        Ok(crate::exports::graphql::node(ctx, &record_id).await?)
    }
}
