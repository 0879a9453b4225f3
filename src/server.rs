//! One server process, assembled: the shared state, the components domains keep for the life of
//! the process (the ledger's signing key, the audit append queue), the schema over them, the
//! HTTP app and the background tasks (export worker, idempotency purge, checkpoint publishers).
//! This is the composition root: the one place that wires domains to the ground and the edges.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;

use crate::audit::group::AppendQueue;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use async_graphql::{ObjectType, SchemaBuilder};

use crate::graphql::{LogbookSchema, Mutation, SchemaSetup, Subscription};
use crate::ledger::signing::LedgerKey;
use crate::served::Served;
use crate::state::AppState;
use crate::trusted::TrustedDocuments;

/// The state and the domains' process-wide components. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub state: AppState,
    /// Signs ledger checkpoints; the same key in every process sharing the database.
    pub ledger_key: LedgerKey,
    /// Group commit of this process's audit appends (see `crate::audit::group`).
    pub audit_appends: Arc<AppendQueue>,
    /// The allow-list, in trusted-documents mode (`Config::trusted_documents`).
    pub trusted: Option<Arc<TrustedDocuments>>,
}

impl Services {
    /// Connects, migrates, loads the shared secrets and the ledger signing key.
    pub async fn connect(config: Config) -> AppResult<Self> {
        // Read before connecting: a bad list stops the server before it touches anything.
        let trusted = match &config.trusted_documents {
            Some(path) => Some(Arc::new(load_trusted(path, &config).await?)),
            None => None,
        };
        let state = AppState::connect(config).await?;
        let ledger_key = LedgerKey::from_config(&state.db, &state.config).await?;
        Ok(Services {
            state,
            ledger_key,
            audit_appends: Arc::default(),
            trusted,
        })
    }

    /// The executable schema, with everything resolvers take from the context.
    pub fn schema(&self) -> LogbookSchema {
        let config = &self.state.config;
        LogbookSchema::build(&config.limits, config.federation, self)
    }
}

impl SchemaSetup for Services {
    fn apply<Q: ObjectType + 'static>(
        &self,
        builder: SchemaBuilder<Q, Mutation, Subscription>,
    ) -> SchemaBuilder<Q, Mutation, Subscription> {
        let builder = builder
            .data(self.state.clone())
            .data(self.state.keys.clone())
            .data(self.ledger_key.clone())
            .data(self.audit_appends.clone())
            // Per schema, so per process: tenants' tiers for the lists' read windows.
            .data(crate::read_window::TierCache::default());
        // In trusted-documents mode every document that can run was validated at startup
        // (`load_trusted`): async-graphql's rules are not run again per request, only its
        // fragment-cycle check and depth count.
        let builder = if self.trusted.is_some() {
            builder.validation_mode(async_graphql::ValidationMode::Fast)
        } else {
            builder
        };
        if crate::otel::enabled() {
            builder.extension(crate::otel::GraphqlSpans)
        } else {
            builder
        }
    }
}

/// Reads the trusted documents, passes each through admission and validates each operation
/// with async-graphql's own rules, on a schema whose one extension ends every request after
/// validation, so nothing is executed: a document that does not validate stops the server, with
/// its hash.
async fn load_trusted(path: &std::path::Path, config: &Config) -> AppResult<TrustedDocuments> {
    use crate::admission::{Admission, AdmissionLimits, SchemaIndex};
    let limits = &config.limits;
    let refuse = |message: String| AppError::bad_input("trusted-documents", message);
    let entries = TrustedDocuments::read(path).map_err(refuse)?;
    let bare = LogbookSchema::build(limits, config.federation, &ValidateOnly);
    let index = SchemaIndex::from_sdl(&bare.sdl())?;
    let admission = Admission::new(AdmissionLimits::from_limits(limits), index);
    let trusted =
        TrustedDocuments::prepare(entries, |text| admission.parse(text)).map_err(refuse)?;
    let mut failures = Vec::new();
    for (hash, text) in trusted.texts() {
        let Ok(document) = async_graphql::parser::parse_query(text) else {
            continue; // parsed by `prepare` already
        };
        for (name, operation) in document.operations.iter() {
            let mut request = async_graphql::Request::new(text);
            if let Some(name) = name {
                request = request.operation_name(name.as_str());
            }
            // Boxed: the query root's future is deep, and this one sits inside `connect`'s.
            let response = Box::pin(bare.execute(request)).await;
            // Complexity is priced during validation, and a list's `first: $n` has no value
            // here: that is the request's to give, not a fault of the document.
            let unvalued: Vec<String> = operation
                .node
                .variable_definitions
                .iter()
                .map(|v| format!("Variable {} is not defined.", v.node.name.node))
                .collect();
            let invalid: Vec<String> = response
                .errors
                .iter()
                .filter(|e| e.message != VALIDATED && !unvalued.contains(&e.message))
                .map(|e| e.message.clone())
                .collect();
            if !invalid.is_empty() {
                failures.push(format!("{hash}: {}", invalid.join("; ")));
            }
        }
    }
    if failures.is_empty() {
        tracing::info!(documents = trusted.len(), "trusted documents loaded");
        Ok(trusted)
    } else {
        Err(refuse(format!(
            "trusted documents that do not validate against the schema:\n  {}",
            failures.join("\n  ")
        )))
    }
}

/// What [`ValidateOnly`] answers a document that passed validation.
const VALIDATED: &str = "validated; not executed";

/// Ends every request once async-graphql has validated it.
struct ValidateOnly;

impl SchemaSetup for ValidateOnly {
    fn apply<Q: ObjectType + 'static>(
        &self,
        builder: SchemaBuilder<Q, Mutation, Subscription>,
    ) -> SchemaBuilder<Q, Mutation, Subscription> {
        builder.extension(ValidateOnly)
    }
}

impl async_graphql::extensions::ExtensionFactory for ValidateOnly {
    fn create(&self) -> Arc<dyn async_graphql::extensions::Extension> {
        Arc::new(ValidateOnly)
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for ValidateOnly {
    async fn validation(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextValidation<'_>,
    ) -> Result<async_graphql::ValidationResult, Vec<async_graphql::ServerError>> {
        next.run(ctx).await?;
        Err(vec![async_graphql::ServerError::new(VALIDATED, None)])
    }
}

/// A running server.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The process's WebSocket counts.
    pub sockets: Arc<crate::subscriptions::admission::Admission>,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// This process's export worker (none when disabled); abort it to play a crashed worker.
    pub export_worker: Option<tokio::task::JoinHandle<()>>,
    pub shutdown: crate::shutdown::Shutdown,
}

impl RunningServer {
    /// A graceful stop (SIGTERM/SIGINT): stop accepting, close WebSockets with 1001 and hand the
    /// export worker's job back at once, and give in-flight requests `Config::shutdown_grace` to
    /// finish before their connections are closed.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.shutdown.trigger();
        let stopping = self.handle.stop(true);
        if let Some(worker) = self.export_worker {
            let _ = worker.await;
        }
        stopping.await;
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Binds `bind`, serves in the background of the current tokio runtime and starts the
/// process's background tasks.
pub fn start(services: &Services, bind: &str) -> std::io::Result<RunningServer> {
    let state = services.state.clone();
    let served = Served::new(state.clone(), services.schema(), services.trusted.clone())?;
    let downloads = state.clone();
    let listening = crate::app::serve(served, bind, move |cfg| {
        crate::export_files::http::routes(cfg, &downloads);
        crate::otlp::routes(cfg, &downloads);
    })?;
    let export_worker =
        crate::export_files::worker::spawn(state.clone(), services.ledger_key.clone());
    crate::idempotency::spawn_purge(state.db.clone());
    crate::runs::counts::spawn_compaction(state.db.clone());
    crate::ledger::sink::spawn(&state.db, &state.config.ledger_checkpoints);
    crate::mismatches::webhook::spawn(&state);
    crate::otlp::spawn_sealer(&state);
    if let Some(every) = state.config.cost_anomaly_sweep {
        crate::cost::anomaly_detect::spawn_sweep(&state, every);
    }
    crate::retention::spawn(
        state.db.clone(),
        state.config.retention.clone(),
        state.config.exports.dir.clone(),
    );
    crate::telemetry::spawn_upkeep();
    Ok(RunningServer {
        addr: listening.addr,
        sockets: listening.sockets,
        handle: listening.handle,
        task: listening.task,
        export_worker,
        shutdown: state.shutdown.clone(),
    })
}
