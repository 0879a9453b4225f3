//! The schema root: each domain's `Query` merged into one, plus `node`/`nodes`.

use async_graphql::{
    Context, Interface, MergedObject, MergedSubscription, Object, Schema, SchemaBuilder, ID,
};

use crate::audit::graphql::{AuditEntry, AuditQuery};
use crate::config::Limits;
use crate::error::AppError;
use crate::exports::graphql::{ExportQuery, LogExport};
use crate::ids::{self, NodeKind};
use crate::runs::graphql::{LlmRun, RunQuery};
use crate::system::graphql::{SystemQuery, SystemRecord};
use crate::tenants::graphql::TenantQuery;

pub type LogbookSchema = Schema<Query, Mutation, Subscription>;

/// An object with a global id (Relay).
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    LlmRun(LlmRun),
    SystemRecord(SystemRecord),
    AuditEntry(AuditEntry),
    LogExport(LogExport),
    Trace(crate::traces::graphql::Trace),
    TraceMismatch(crate::mismatches::graphql::TraceMismatch),
}

#[derive(Default)]
pub struct NodeQuery;

async fn resolve_node(ctx: &Context<'_>, id: &ID) -> Result<Node, AppError> {
    let (kind, record_id) = ids::decode(id).ok_or(AppError::NotFound("node"))?;
    match kind {
        NodeKind::LlmRun => Ok(Node::LlmRun(
            crate::runs::graphql::node(ctx, &record_id).await?,
        )),
        NodeKind::SystemRecord => Ok(Node::SystemRecord(
            crate::system::graphql::node(ctx, &record_id).await?,
        )),
        NodeKind::AuditEntry => Ok(Node::AuditEntry(
            crate::audit::graphql::node(ctx, &record_id).await?,
        )),
        NodeKind::LogExport => Ok(Node::LogExport(
            crate::exports::graphql::node(ctx, &record_id).await?,
        )),
        NodeKind::Trace => Ok(Node::Trace(
            crate::traces::graphql::node(ctx, &record_id).await?,
        )),
        NodeKind::TraceMismatch => Ok(Node::TraceMismatch(
            crate::mismatches::graphql::node(ctx, &record_id).await?,
        )),
    }
}

#[Object]
impl NodeQuery {
    /// Any object by its global id. Another tenant's object is `NOT_FOUND`, like a missing one.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        Ok(Some(resolve_node(ctx, &id).await?))
    }

    /// Several objects by global id, in the order given; a missing one is null with an error.
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        if ids.len() > 100 {
            return Err(AppError::bad_input("ids", "at most 100 ids per request").into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(resolve_node(ctx, id).await.ok());
        }
        Ok(out)
    }
}

#[derive(MergedObject, Default)]
pub struct Query(
    TenantQuery,
    NodeQuery,
    RunQuery,
    SystemQuery,
    AuditQuery,
    ExportQuery,
    crate::cost::graphql::CostRootQuery,
    crate::panel::graphql::PanelQuery,
    crate::traces::graphql::TraceQuery,
    crate::mismatches::graphql::MismatchQuery,
    crate::replay::graphql::ReplayQuery,
    crate::integrity::graphql::IntegrityQuery,
    crate::ledger::graphql::LedgerQuery,
);

/// Every domain's mutations.
#[derive(MergedObject, Default)]
pub struct Mutation(
    crate::traces::mutation::TraceMutation,
    crate::runs::mutation::RunMutation,
    crate::system::mutation::SystemMutation,
    crate::export_files::mutation::ExportMutation,
    crate::audit::mutation::AuditMutation,
    crate::mismatches::mutation::MismatchMutation,
    crate::replay::mutation::ReplayMutation,
    crate::cost::mutation::CostMutation,
    crate::evidence::mutation::EvidenceMutation,
    crate::tenants::api_keys::ApiKeyMutation,
);

/// Live tails of the logs over WebSocket (`graphql-transport-ws`): each event is a new row with
/// its list cursor, to resume with `after`.
#[derive(MergedSubscription, Default)]
pub struct Subscription(
    crate::subscriptions::LogSubscription,
    crate::exports::subscription::ExportSubscription,
);

/// The schema with its limits (and no extensions: the transports charge the rate limit and
/// classify errors, see `graphql_http`; an extension hooking field resolution would not see the
/// fields of a `plain::PlainList`); `crate::server` adds the context data (the state
/// and the domains' process components), the resolver spans when spans are exported, and
/// finishes it.
pub fn schema_builder(limits: &Limits) -> SchemaBuilder<Query, Mutation, Subscription> {
    let builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    // Admission (`crate::admission`) holds data fields to `max_depth` and introspection to its
    // own bound before a document gets here; this is the backstop for both.
    .limit_depth(limits.max_depth.max(crate::limits::INTROSPECTION_MAX_DEPTH))
    .limit_complexity(limits.max_complexity);
    if limits.introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// The SDL served at `/schema.graphql` and printed by `logbook print-schema`.
pub fn sdl() -> String {
    schema_builder(&Limits::default()).finish().sdl()
}
