//! What every HTTP and WebSocket handler shares, built once per server from the state and the
//! schema. Its own module so the transports (`graphql_http`, `ws`) and the app that routes to
//! them all import it from below.

use std::sync::Arc;

use crate::admission::{Admission, AdmissionLimits, SchemaIndex};
use crate::graphql::LogbookSchema;
use crate::state::AppState;
use crate::subscriptions::admission::Admission as SocketAdmission;
use crate::telemetry::OperationNames;
use crate::trusted::TrustedDocuments;

/// What every handler shares: the state, the schema, its SDL, the admission checks every
/// operation passes and this process's WebSocket counts.
pub struct Served {
    pub state: AppState,
    pub schema: LogbookSchema,
    pub sdl: String,
    pub admission: Admission,
    /// Open WebSocket connections and subscriptions of this process (`Config::subscriptions`).
    pub sockets: Arc<SocketAdmission>,
    /// The allow-list, in trusted-documents mode.
    pub trusted: Option<Arc<TrustedDocuments>>,
    /// The bounded operation-name labels of this server's request metric.
    pub operation_names: OperationNames,
}

impl Served {
    pub fn new(
        state: AppState,
        schema: LogbookSchema,
        trusted: Option<Arc<TrustedDocuments>>,
    ) -> std::io::Result<Self> {
        let sdl = schema.sdl();
        let index = SchemaIndex::from_sdl(&sdl).map_err(|e| std::io::Error::other(e.message()))?;
        let admission = Admission::new(AdmissionLimits::from_limits(&state.config.limits), index);
        Ok(Served {
            state,
            schema,
            sdl,
            admission,
            sockets: Arc::default(),
            trusted,
            operation_names: OperationNames::default(),
        })
    }
}
