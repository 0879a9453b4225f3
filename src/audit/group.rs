//! Group commit for audit appends that need no caller transaction (`recordAuditEvent`).
//!
//! A tenant's appends are serialised on its chain head until their transaction commits, and a
//! commit waits for the WAL flush, so one append per transaction caps a tenant's chain at one
//! flush per entry. Here concurrent appends of one tenant in this process share transactions:
//! each request queues its entry, and whoever holds the tenant's writer lock appends everything
//! queued (up to [`MAX_BATCH`]) in one transaction and hands every request its own entry. The
//! database head lock still orders batches of several processes; this only batches.
//!
//! The batch runs in a task of its own, so a request dropped mid-commit (client gone) cannot
//! abandon the other requests' entries with an unknown outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;

use super::append::{append_committed, append_committed_many, NewAuditEntry};
use super::AuditEntrySnapshot;
use crate::error::{AppError, AppResult};

/// Most entries appended in one transaction.
pub const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<AppResult<AuditEntrySnapshot>>;

#[derive(Default)]
struct TenantQueue {
    pending: Mutex<Vec<(NewAuditEntry, Reply)>>,
    writer: tokio::sync::Mutex<()>,
}

/// This process's per-tenant append queues (one per `AppState`, i.e. per database).
#[derive(Default)]
pub struct AppendQueue {
    tenants: Mutex<HashMap<String, Arc<TenantQueue>>>,
}

impl AppendQueue {
    /// Appends `entry` and commits it, sharing the transaction with concurrent appends of the
    /// same tenant. Validation errors come back before anything is queued.
    pub async fn append(
        &self,
        db: &DatabaseConnection,
        entry: NewAuditEntry,
    ) -> AppResult<AuditEntrySnapshot> {
        entry.validate("auditEntry")?;
        let queue = self.queue(entry.tenant_id.as_str())?;
        let (reply, mut result) = oneshot::channel();
        lock(&queue.pending)?.push((entry, reply));
        let _writer = queue.writer.lock().await;
        loop {
            match result.try_recv() {
                Ok(done) => return done,
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(AppError::internal("audit append batch abandoned"))
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch: Vec<_> = {
                let mut pending = lock(&queue.pending)?;
                let n = pending.len().min(MAX_BATCH);
                pending.drain(..n).collect()
            };
            if batch.is_empty() {
                // Taken by a writer whose request was dropped while its batch ran on.
                return result
                    .await
                    .unwrap_or_else(|_| Err(AppError::internal("audit append batch abandoned")));
            }
            let db = db.clone();
            tokio::spawn(commit_batch(db, batch))
                .await
                .map_err(|e| AppError::internal(format!("audit append batch failed: {e}")))?;
        }
    }

    fn queue(&self, tenant: &str) -> AppResult<Arc<TenantQueue>> {
        Ok(lock(&self.tenants)?
            .entry(tenant.to_owned())
            .or_default()
            .clone())
    }
}

fn lock<T>(m: &Mutex<T>) -> AppResult<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| AppError::internal("audit append queue poisoned"))
}

/// Appends the batch in one transaction; should that fail, each entry alone, so one entry's
/// failure is not another's.
async fn commit_batch(db: DatabaseConnection, batch: Vec<(NewAuditEntry, Reply)>) {
    let (entries, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    if entries.len() > 1 {
        if let Ok(snapshots) = append_committed_many(&db, entries.clone()).await {
            for (reply, snapshot) in replies.into_iter().zip(snapshots) {
                let _ = reply.send(Ok(snapshot));
            }
            return;
        }
    }
    for (entry, reply) in entries.into_iter().zip(replies) {
        let _ = reply.send(append_committed(&db, entry).await);
    }
}
