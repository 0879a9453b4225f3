//! The process's shutdown signal. `serve` triggers it on SIGTERM or SIGINT; what holds
//! long-lived work watches it: WebSocket connections close with 1001 (going away) and the export
//! worker hands its job back (see `crate::server::RunningServer::shutdown`).

use std::sync::Arc;

use tokio::sync::watch;

/// Cheap to clone; every clone sees the one trigger.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the signal is triggered (at once if it already was).
    pub async fn triggered(&self) {
        let mut receiver = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }
}
