//! The server's own system records (docs/domain.md §3.3): `logbook serve` writes, system-wide,
//! MIGRATION when the migrations it ran at start applied something, STARTUP once it is
//! listening, and SHUTDOWN when it stops gracefully (SIGTERM/SIGINT, `crate::shutdown`).
//!
//! Every process writes its own, under its own `instance` id in `details`, so several processes
//! over one database each leave their pair and nothing is shared between them: no row to claim,
//! no lock, nothing a crash could leave held. A crashed process simply has no SHUTDOWN. The
//! writes are best effort: each is bounded by [`WRITE_TIMEOUT`], and a failure is logged and
//! never delays or fails the start or the stop.
//!
//! What goes in `details` is served to every tenant, so it names the process (instance, pid),
//! the version and the database kind, never a host name, address or URL (docs/domain.md §3.1).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::write::{self, NewSystemRecord};
use super::{SystemComponent, SystemEventType, SystemRecordCause, SystemRecordSeverity};
use crate::state::AppState;

/// The longest one lifecycle write may take before it is given up (and logged).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// This server process, as its records describe it.
#[derive(Debug, Clone)]
pub struct Process {
    /// A fresh id per process: what ties a process's STARTUP to its SHUTDOWN.
    pub instance: String,
    started: Instant,
}

impl Process {
    /// The current process, started now.
    pub fn new() -> Self {
        Process {
            instance: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
        }
    }

    fn details(&self, state: &AppState, extra: Value) -> Value {
        let backend = if crate::db::is_postgres(&state.db) {
            "postgresql"
        } else {
            "sqlite"
        };
        let mut details = json!({
            "instance": self.instance,
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "backend": backend,
        });
        if let (Some(details), Value::Object(extra)) = (details.as_object_mut(), extra) {
            details.extend(extra);
        }
        details
    }
}

impl Default for Process {
    fn default() -> Self {
        Self::new()
    }
}

/// MIGRATION (when this process's start applied migrations, `AppState::migrations_applied`),
/// then STARTUP. Call it once the server listens; it never fails.
pub async fn record_started(state: &AppState, process: &Process) {
    let applied = &state.migrations_applied;
    if !applied.is_empty() {
        let summary = format!(
            "applied {} database migration{}",
            applied.len(),
            if applied.len() == 1 { "" } else { "s" }
        );
        let details = process.details(state, json!({ "migrations": applied.to_vec() }));
        record(
            &state.db,
            SystemComponent::Migration,
            SystemEventType::Migration,
            summary,
            details,
        )
        .await;
    }
    let summary = format!("logbook {} started", env!("CARGO_PKG_VERSION"));
    let details = process.details(state, json!({}));
    record(
        &state.db,
        SystemComponent::Api,
        SystemEventType::Startup,
        summary,
        details,
    )
    .await;
}

/// SHUTDOWN, after a graceful stop drained the in-flight requests. Never fails.
///
/// It goes over a connection of its own, not the shared pool. Each HTTP worker runs its own
/// runtime, and a pool connection a worker opened lives on that runtime, which is still
/// shutting down when this runs: a write over such a connection can fail mid-statement with
/// "A Tokio 1.x context was found, but it is being shutdown" (seen once in CI as a missing
/// SHUTDOWN record).
pub async fn record_stopped(state: &AppState, process: &Process) {
    let uptime = process.started.elapsed().as_secs();
    let details = process.details(state, json!({ "uptime_seconds": uptime }));
    let settings = crate::db::DbSettings {
        max_connections: 1,
        ..state.config.database.clone()
    };
    let connected = tokio::time::timeout(WRITE_TIMEOUT, crate::db::connect(&settings)).await;
    let db = match connected {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => {
            tracing::warn!(error = %e.detail(), "cannot record SHUTDOWN: no database connection; going on");
            return;
        }
        Err(_) => {
            tracing::warn!("cannot record SHUTDOWN: connecting timed out; going on");
            return;
        }
    };
    record(
        &db,
        SystemComponent::Api,
        SystemEventType::Shutdown,
        "logbook stopped gracefully".to_owned(),
        details,
    )
    .await;
    let _ = db.close().await;
}

async fn record(
    db: &impl sea_orm::ConnectionTrait,
    component: SystemComponent,
    event_type: SystemEventType,
    summary: String,
    details: Value,
) {
    let new = NewSystemRecord {
        component,
        event_type,
        severity: SystemRecordSeverity::Info,
        summary,
        details: Some(details),
        caused_by: Some(SystemRecordCause::System),
        correlation_id: None,
    };
    let written = tokio::time::timeout(WRITE_TIMEOUT, write::record_system_wide(db, new));
    match written.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(
            event = event_type.as_str(),
            error = %e.detail(),
            "recording the server's own system record failed; going on"
        ),
        Err(_) => tracing::warn!(
            event = event_type.as_str(),
            "recording the server's own system record timed out; going on"
        ),
    }
}
