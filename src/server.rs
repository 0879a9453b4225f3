//! One server process, assembled: the shared state, the components domains keep for the life of
//! the process (the ledger's signing key, the audit append queue), the schema over them, the
//! HTTP app and the background tasks (export worker, idempotency purge, checkpoint publishers).
//! This is the composition root: the one place that wires domains to the ground and the edges.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;

use crate::audit::group::AppendQueue;
use crate::config::Config;
use crate::error::AppResult;
use crate::graphql::LogbookSchema;
use crate::ledger::signing::LedgerKey;
use crate::served::Served;
use crate::state::AppState;

/// The state and the domains' process-wide components. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub state: AppState,
    /// Signs ledger checkpoints; the same key in every process sharing the database.
    pub ledger_key: LedgerKey,
    /// Group commit of this process's audit appends (see `crate::audit::group`).
    pub audit_appends: Arc<AppendQueue>,
}

impl Services {
    /// Connects, migrates, loads the shared secrets and the ledger signing key.
    pub async fn connect(config: Config) -> AppResult<Self> {
        let state = AppState::connect(config).await?;
        let ledger_key = LedgerKey::from_config(&state.db, &state.config).await?;
        Ok(Services {
            state,
            ledger_key,
            audit_appends: Arc::default(),
        })
    }

    /// The executable schema, with everything resolvers take from the context.
    pub fn schema(&self) -> LogbookSchema {
        crate::graphql::schema_builder(&self.state.config.limits)
            .data(self.state.clone())
            .data(self.state.keys.clone())
            .data(self.ledger_key.clone())
            .data(self.audit_appends.clone())
            .finish()
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
    let served = Served::new(state.clone(), services.schema())?;
    let downloads = state.clone();
    let listening = crate::app::serve(served, bind, move |cfg| {
        crate::export_files::http::routes(cfg, &downloads)
    })?;
    let export_worker =
        crate::export_files::worker::spawn(state.clone(), services.ledger_key.clone());
    crate::idempotency::spawn_purge(state.db.clone());
    crate::runs::counts::spawn_compaction(state.db.clone());
    crate::ledger::sink::spawn(&state.db, &state.config.ledger_checkpoints);
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
