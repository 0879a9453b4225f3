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

use super::append::{append_entries, NewAuditEntry};
use super::AuditEntrySnapshot;
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::idempotency::{self, ClaimOutcome, Keyed};

/// Most entries appended in one transaction.
pub const MAX_BATCH: usize = 256;

/// The idempotency mutation name appends are claimed under.
pub const OPERATION: &str = "recordAuditEvent";

/// What an append did.
#[derive(Debug, Clone)]
pub enum Appended {
    /// The entry this request appended (or, for a duplicate in the same batch, the entry the
    /// first request with its key appended).
    New(Box<AuditEntrySnapshot>),
    /// The key completed earlier: the id of the entry it appended then.
    Replayed(String),
}

type Reply = oneshot::Sender<AppResult<Appended>>;

struct Pending {
    entry: NewAuditEntry,
    keyed: Option<Keyed>,
    reply: Reply,
}

#[derive(Default)]
struct TenantQueue {
    pending: Mutex<Vec<Pending>>,
    writer: tokio::sync::Mutex<()>,
}

/// This process's per-tenant append queues (one per `AppState`, i.e. per database).
#[derive(Default)]
pub struct AppendQueue {
    tenants: Mutex<HashMap<String, Arc<TenantQueue>>>,
}

impl AppendQueue {
    /// Appends `entry` and commits it, sharing the transaction with concurrent appends of the
    /// same tenant. With `keyed`, the key is claimed in that transaction, so the entry and the
    /// key commit together (`crate::idempotency`). Validation errors come back before anything
    /// is queued.
    pub async fn append(
        &self,
        db: &DatabaseConnection,
        entry: NewAuditEntry,
        keyed: Option<Keyed>,
    ) -> AppResult<Appended> {
        entry.validate("auditEntry")?;
        let queue = self.queue(entry.tenant_id.as_str())?;
        let (reply, mut result) = oneshot::channel();
        lock(&queue.pending)?.push(Pending {
            entry,
            keyed,
            reply,
        });
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
async fn commit_batch(db: DatabaseConnection, batch: Vec<Pending>) {
    crate::telemetry::ledger_batch(batch.len());
    let (items, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|p| ((p.entry, p.keyed), p.reply))
        .unzip();
    if items.len() > 1 {
        if let Ok(results) = with_retries(&db, &items).await {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            return;
        }
    }
    for (item, reply) in items.into_iter().zip(replies) {
        let result = match with_retries(&db, std::slice::from_ref(&item)).await {
            Ok(mut results) => results
                .pop()
                .unwrap_or_else(|| Err(AppError::internal("audit append returned nothing"))),
            Err(err) => Err(err),
        };
        let _ = reply.send(result);
    }
}

/// How often a SQLite batch that found the database locked is tried.
const SQLITE_ATTEMPTS: u32 = 8;

/// [`append_batch`], retried on SQLite when another process held the write lock past the busy
/// timeout; on PostgreSQL the row locks queue writers, so nothing is retried there.
async fn with_retries(
    db: &DatabaseConnection,
    items: &[(NewAuditEntry, Option<Keyed>)],
) -> AppResult<Vec<AppResult<Appended>>> {
    let retry = !crate::db::is_postgres(db);
    let mut attempt = 1;
    loop {
        match append_batch(db, items).await {
            Err(AppError::Unavailable(_)) if retry && attempt < SQLITE_ATTEMPTS => {
                let jitter = rand::random::<u64>() % 20;
                tokio::time::sleep(std::time::Duration::from_millis(
                    10 * u64::from(attempt) + jitter,
                ))
                .await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One transaction: the batch's keys are claimed first (in key order, so two processes'
/// batches never wait on each other in a cycle), then every entry whose key is new (or that
/// has none) is appended, and each claim records its entry's id. A key that completed earlier
/// answers with that entry; a second request with a key already in this batch gets the first
/// one's entry (or `IDEMPOTENCY_CONFLICT` for another input). An `Err` means nothing was
/// committed.
async fn append_batch(
    db: &DatabaseConnection,
    items: &[(NewAuditEntry, Option<Keyed>)],
) -> AppResult<Vec<AppResult<Appended>>> {
    let Some((first, _)) = items.first() else {
        return Ok(Vec::new());
    };
    let tenant = TenantId::trusted(first.tenant_id.as_str());
    let txn = idempotency::begin_write(db).await?;
    let mut outcomes: Vec<Option<AppResult<Appended>>> = vec![None; items.len()];
    let mut claims = vec![None; items.len()];
    // Index of the request that owns each key in this batch.
    let mut owners: HashMap<&str, usize> = HashMap::new();
    let mut followers: Vec<(usize, usize)> = Vec::new();
    let mut keyed: Vec<usize> = (0..items.len()).filter(|&i| items[i].1.is_some()).collect();
    keyed.sort_by(|&a, &b| {
        items[a]
            .1
            .as_ref()
            .map(|k| k.key.as_str())
            .cmp(&items[b].1.as_ref().map(|k| k.key.as_str()))
    });
    for i in keyed {
        let Some(key) = &items[i].1 else { continue };
        if let Some(&owner) = owners.get(key.key.as_str()) {
            let same = items[owner]
                .1
                .as_ref()
                .is_some_and(|k| k.request_hash == key.request_hash);
            if same {
                followers.push((i, owner));
            } else {
                outcomes[i] = Some(Err(AppError::IdempotencyConflict(format!(
                    "idempotencyKey {:?} was already used with a different input or operation",
                    key.key.as_str()
                ))));
            }
            continue;
        }
        match idempotency::claim(&txn, &tenant, key).await {
            Ok(ClaimOutcome::Claimed(claim)) => {
                owners.insert(key.key.as_str(), i);
                claims[i] = Some(claim);
            }
            Ok(ClaimOutcome::Completed(response)) => {
                outcomes[i] = Some(
                    serde_json::from_str::<String>(&response)
                        .map(Appended::Replayed)
                        .map_err(|e| {
                            AppError::internal(format!("stored idempotent result unreadable: {e}"))
                        }),
                );
            }
            Err(err @ AppError::IdempotencyConflict(_)) => outcomes[i] = Some(Err(err)),
            Err(err) => return Err(err),
        }
    }
    let follower_set: std::collections::HashSet<usize> = followers.iter().map(|f| f.0).collect();
    let to_append: Vec<usize> = (0..items.len())
        .filter(|i| outcomes[*i].is_none() && !follower_set.contains(i))
        .collect();
    let snapshots = append_entries(
        &txn,
        to_append.iter().map(|&i| items[i].0.clone()).collect(),
    )
    .await?;
    let mut appended: HashMap<usize, AuditEntrySnapshot> = HashMap::new();
    for (&i, snapshot) in to_append.iter().zip(snapshots) {
        if let Some(claim) = &claims[i] {
            idempotency::complete(&txn, claim, &snapshot.id).await?;
        }
        appended.insert(i, snapshot);
    }
    txn.commit().await?;
    for (&i, snapshot) in &appended {
        outcomes[i] = Some(Ok(Appended::New(Box::new(snapshot.clone()))));
    }
    for (i, owner) in followers {
        outcomes[i] = Some(match appended.get(&owner) {
            Some(snapshot) => Ok(Appended::New(Box::new(snapshot.clone()))),
            None => Err(AppError::internal("audit append batch lost an entry")),
        });
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(AppError::internal("audit append batch lost an entry"))))
        .collect())
}
