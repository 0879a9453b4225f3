//! What every HTTP and WebSocket handler shares, built once per server from the state and the
//! schema. Its own module so the transports (`graphql_http`, `ws`) and the app that routes to
//! them all import it from below.

use std::sync::Arc;

use crate::admission::{Admission, AdmissionLimits, SchemaIndex};
use crate::graphql::LogbookSchema;
use crate::state::AppState;
use crate::subscriptions::admission::Admission as SocketAdmission;

/// What every handler shares: the state, the schema, its SDL, the admission checks every
/// operation passes and this process's WebSocket counts.
pub struct Served {
    pub state: AppState,
    pub schema: LogbookSchema,
    pub sdl: String,
    pub admission: Admission,
    /// Open WebSocket connections and subscriptions of this process (`Config::subscriptions`).
    pub sockets: Arc<SocketAdmission>,
}

impl Served {
    pub fn new(state: AppState, schema: LogbookSchema) -> std::io::Result<Self> {
        let sdl = schema.sdl();
        let index = SchemaIndex::from_sdl(&sdl).map_err(|e| std::io::Error::other(e.message()))?;
        let admission = Admission::new(AdmissionLimits::from_limits(&state.config.limits), index);
        Ok(Served {
            state,
            schema,
            sdl,
            admission,
            sockets: Arc::default(),
        })
    }
}
