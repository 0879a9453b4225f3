//! The schema root: each domain's `Query` merged into one, plus `node`/`nodes`.

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::{
    Context, Data, Interface, MergedObject, MergedSubscription, Object, ObjectType, Request,
    Response, Schema, SchemaBuilder, ID,
};

use crate::audit::graphql::{AuditEntry, AuditQuery};
use crate::config::Limits;
use crate::error::AppError;
use crate::exports::graphql::{ExportQuery, LogExport};
use crate::ids::{self, NodeKind};
use crate::runs::graphql::{LlmRun, RunQuery};
use crate::system::graphql::{SystemQuery, SystemRecord};
use crate::tenants::graphql::TenantQuery;

/// The executable schema: standalone (the default), or an Apollo Federation subgraph
/// (`crate::federation`), whose query root is a different type.
#[derive(Clone)]
pub enum LogbookSchema {
    Standalone(Schema<Query, Mutation, Subscription>),
    Federated(Schema<FederatedQuery, Mutation, Subscription>),
}

/// What a server adds to either schema before finishing it (context data, extensions).
pub trait SchemaSetup {
    fn apply<Q: ObjectType + 'static>(
        &self,
        builder: SchemaBuilder<Q, Mutation, Subscription>,
    ) -> SchemaBuilder<Q, Mutation, Subscription>;
}

impl LogbookSchema {
    pub fn build(limits: &Limits, federation: bool, setup: &impl SchemaSetup) -> Self {
        if federation {
            LogbookSchema::Federated(
                setup
                    .apply(schema_builder(limits).enable_federation())
                    .finish(),
            )
        } else {
            LogbookSchema::Standalone(setup.apply(schema_builder(limits)).finish())
        }
    }

    pub async fn execute(&self, request: Request) -> Response {
        match self {
            LogbookSchema::Standalone(schema) => schema.execute(request).await,
            LogbookSchema::Federated(schema) => schema.execute(request).await,
        }
    }

    pub fn execute_stream_with_session_data(
        &self,
        request: Request,
        session_data: std::sync::Arc<Data>,
    ) -> BoxStream<'static, Response> {
        use async_graphql::futures_util::StreamExt as _;
        match self {
            LogbookSchema::Standalone(schema) => schema
                .execute_stream_with_session_data(request, session_data)
                .boxed(),
            LogbookSchema::Federated(schema) => schema
                .execute_stream_with_session_data(request, session_data)
                .boxed(),
        }
    }

    /// The SDL (a subgraph's includes `_service`, `_entities` and their types).
    pub fn sdl(&self) -> String {
        match self {
            LogbookSchema::Standalone(schema) => schema.sdl(),
            LogbookSchema::Federated(schema) => schema.sdl(),
        }
    }
}

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
    Incident(crate::incident_node::Incident),
    PolicyActivation(crate::policies::graphql::PolicyActivation),
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
        NodeKind::Incident => Ok(Node::Incident(
            crate::incident_node::node(ctx, &record_id).await?,
        )),
        NodeKind::PolicyActivation => Ok(Node::PolicyActivation(
            crate::policies::graphql::node(ctx, &record_id).await?,
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
        if ids.len() > crate::limits::MAX_IDS_PER_REQUEST {
            return Err(AppError::bad_input(
                "ids",
                format!(
                    "at most {} ids per request",
                    crate::limits::MAX_IDS_PER_REQUEST
                ),
            )
            .into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(resolve_node(ctx, id).await.ok());
        }
        Ok(out)
    }
}

/// The query root, and the same root with the entity resolvers for a federated server (one
/// list of parts, so the two cannot drift apart).
macro_rules! query_roots {
    ($($part:ty),* $(,)?) => {
        #[derive(MergedObject, Default)]
        pub struct Query($($part),*);

        /// `Query` plus `crate::federation::EntityQuery`, whose resolvers async-graphql keeps
        /// off the type (they answer `_entities`). Under the same GraphQL name; never in the
        /// same schema as `Query`.
        #[derive(MergedObject, Default)]
        #[graphql(name = "Query")]
        pub struct FederatedQuery($($part),*, crate::federation::EntityQuery);
    };
}

query_roots!(
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
    crate::incident_node::IncidentQuery,
    crate::replay::graphql::ReplayQuery,
    crate::integrity::graphql::IntegrityQuery,
    crate::ledger::graphql::LedgerQuery,
    crate::activity::graphql::ActivityQuery,
    crate::policies::graphql::PolicyQuery,
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
    crate::policies::mutation::PolicyMutation,
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
pub fn schema_builder<Q: ObjectType + Default + 'static>(
    limits: &Limits,
) -> SchemaBuilder<Q, Mutation, Subscription> {
    let builder = Schema::build(Q::default(), Mutation::default(), Subscription::default())
        // Admission (`crate::admission`) holds data fields to `max_depth` and introspection to its
        // own bound before a document gets here; this is the backstop for both. Complexity is
        // admission's alone to refuse: it prices lists with the configured default page size.
        .limit_depth(limits.max_depth.max(crate::limits::INTROSPECTION_MAX_DEPTH));
    if limits.introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// The SDL served at `/schema.graphql` and printed by `logbook print-schema`.
pub fn sdl() -> String {
    schema_builder::<Query>(&Limits::default()).finish().sdl()
}

/// The subgraph SDL a federated server answers `_service { sdl }` with (Federation v2:
/// `@link`, `@key`), for composing a supergraph offline (`logbook print-schema --federation`).
pub fn subgraph_sdl() -> String {
    schema_builder::<FederatedQuery>(&Limits::default())
        .enable_federation()
        .finish()
        .sdl_with_options(
            async_graphql::SDLExportOptions::new()
                .federation()
                .compose_directive(),
        )
}
