//! Idempotent writes: a write mutation with an `idempotencyKey` takes effect at most once per
//! (tenant, key), across retries, server processes, crashes and Redis restarts.
//!
//! The key's record lives in the database table `idempotency_keys` and is written **in the same
//! transaction as the effect** ([`begin`] → the effect's statements on [`Write::txn`] →
//! [`Write::commit`]), so the effect and the key commit together or not at all:
//! - first use of a key: the transaction claims it (an insert on the primary key), the effect
//!   runs, and the result is stored with the claim when the transaction commits;
//! - a concurrent duplicate waits on the claim's row lock (PostgreSQL) or on the write lock
//!   (SQLite `BEGIN IMMEDIATE`) until the first transaction ends: if it committed, the stored
//!   result comes back ([`Begun::Replayed`]) and the effect does not run again; if it rolled
//!   back (an error, a crash, a dropped connection), the duplicate runs the effect itself;
//! - same key, other input or another mutation: `IDEMPOTENCY_CONFLICT`;
//! - a completed key answers duplicates for [`RETENTION`] (24 h), after which it may be reused;
//!   expired rows are purged by [`purge_expired`].
//!
//! Nothing about a key lives in process memory or in Redis, so a Redis restart loses nothing and
//! there is no lease to expire: a crash before the commit leaves no trace of the attempt. See
//! `docs/writes.md`.

mod canonical;
mod once;

use entity::idempotency_keys::{ActiveModel, Column, Entity};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::input::IdempotencyKey;

pub use canonical::{canonical_json, request_hash};
pub use once::WriteOnce;

/// How long a completed key answers duplicates with its first result.
pub const RETENTION: std::time::Duration = std::time::Duration::from_secs(86_400);
/// `status` of a key claimed by a transaction that has not committed yet.
const PENDING: &str = "pending";
/// `status` of a key whose effect committed, with its `response`.
const COMPLETED: &str = "completed";

/// A write's idempotency key with what a duplicate must match: the mutation and the hash of its
/// input.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub operation: &'static str,
    pub key: IdempotencyKey,
    pub request_hash: String,
}

impl Keyed {
    /// `input` is the mutation's whole input: with `operation` it makes the request hash.
    pub fn new(
        operation: &'static str,
        key: IdempotencyKey,
        input: &impl Serialize,
    ) -> AppResult<Self> {
        Ok(Self {
            operation,
            request_hash: request_hash(operation, input)?,
            key,
        })
    }

    /// The `idempotencyKey` argument as given (checked here), if any, with its request.
    pub fn optional(
        operation: &'static str,
        key: Option<String>,
        input: &impl Serialize,
    ) -> AppResult<Option<Self>> {
        IdempotencyKey::optional(key)?
            .map(|key| Self::new(operation, key, input))
            .transpose()
    }
}

/// What [`begin`] found.
pub enum Begun<T> {
    /// The effect should run, on [`Write::txn`].
    Fresh(Write),
    /// The key already completed with this input: its stored result.
    Replayed(T),
}

/// A write transaction, holding the claim on its idempotency key (if any) until it commits.
/// Dropped without [`Write::commit`], it rolls back: effect and claim alike.
pub struct Write {
    txn: DatabaseTransaction,
    claim: Option<Claim>,
}

/// One claimed key of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    tenant: String,
    key: String,
}

/// What a claim attempt inside a transaction found.
pub enum ClaimOutcome {
    /// The key is this transaction's.
    Claimed(Claim),
    /// Completed earlier with the same input: its stored result (JSON).
    Completed(String),
}

impl Write {
    /// The transaction the effect runs in.
    pub fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Stores `result` under the key (when there is one) and commits effect and key together.
    /// `result` is what a duplicate gets back.
    pub async fn commit<T: Serialize>(self, result: &T) -> AppResult<()> {
        if let Some(claim) = &self.claim {
            complete(&self.txn, claim, result).await?;
        }
        self.txn.commit().await?;
        Ok(())
    }
}

/// A write transaction: `BEGIN IMMEDIATE` on SQLite, so the transaction holds the write lock
/// from its first statement (a deferred transaction that read first could not upgrade), a plain
/// `BEGIN` on PostgreSQL.
pub async fn begin_write(db: &DatabaseConnection) -> AppResult<DatabaseTransaction> {
    Ok(db
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?)
}

/// Opens the write transaction of one mutation and, with a key, claims it (see the module
/// doc).
pub async fn begin<T: DeserializeOwned>(
    db: &DatabaseConnection,
    tenant: &TenantId,
    keyed: Option<&Keyed>,
) -> AppResult<Begun<T>> {
    let txn = begin_write(db).await?;
    let Some(keyed) = keyed else {
        return Ok(Begun::Fresh(Write { txn, claim: None }));
    };
    match claim(&txn, tenant, keyed).await? {
        ClaimOutcome::Claimed(claim) => Ok(Begun::Fresh(Write {
            txn,
            claim: Some(claim),
        })),
        ClaimOutcome::Completed(response) => {
            txn.rollback().await?;
            let stored = serde_json::from_str(&response).map_err(|e| {
                AppError::internal(format!("stored idempotent result unreadable: {e}"))
            })?;
            Ok(Begun::Replayed(stored))
        }
    }
}

/// Claims `keyed` inside `txn` (whose first write this should be). Same key with another input:
/// `IDEMPOTENCY_CONFLICT`.
pub async fn claim<C: ConnectionTrait>(
    txn: &C,
    tenant: &TenantId,
    keyed: &Keyed,
) -> AppResult<ClaimOutcome> {
    let (operation, key, hash) = (
        keyed.operation,
        keyed.key.as_str(),
        keyed.request_hash.as_str(),
    );
    let claim = Claim {
        tenant: tenant.as_str().to_owned(),
        key: key.to_owned(),
    };
    loop {
        let now = now_ms();
        let expires = now + RETENTION.as_millis() as i64;
        // Waits for a concurrent first attempt holding the same key to end (its row lock).
        let inserted = Entity::insert(ActiveModel {
            tenant_id: Set(tenant.as_str().to_owned()),
            idempotency_key: Set(key.to_owned()),
            operation: Set(operation.to_owned()),
            request_hash: Set(hash.to_owned()),
            status: Set(PENDING.to_owned()),
            response: Set(None),
            created_at_ms: Set(now),
            expires_at_ms: Set(expires),
        })
        .on_conflict(
            OnConflict::columns([Column::TenantId, Column::IdempotencyKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        if inserted == 1 {
            crate::telemetry::idempotency("new");
            return Ok(ClaimOutcome::Claimed(claim));
        }
        let Some(stored) = read(txn, tenant, key).await? else {
            continue; // purged in between: claim again
        };
        if stored.expires_at_ms > now && stored.status == COMPLETED {
            if stored.request_hash != hash {
                crate::telemetry::idempotency("conflict");
                return Err(AppError::IdempotencyConflict(format!(
                    "idempotencyKey {key:?} was already used with a different input or operation"
                )));
            }
            let response = stored
                .response
                .ok_or_else(|| AppError::internal("completed idempotency key without a result"))?;
            crate::telemetry::idempotency("duplicate");
            return Ok(ClaimOutcome::Completed(response));
        }
        // Past its retention (or a row an older version left pending): take it over, unless
        // another transaction did first (compare-and-set on what we read).
        let taken = Entity::update_many()
            .col_expr(Column::Operation, Expr::value(operation))
            .col_expr(Column::RequestHash, Expr::value(hash))
            .col_expr(Column::Status, Expr::value(PENDING))
            .col_expr(Column::Response, Expr::value(Option::<String>::None))
            .col_expr(Column::CreatedAtMs, Expr::value(now))
            .col_expr(Column::ExpiresAtMs, Expr::value(expires))
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::IdempotencyKey.eq(key))
            .filter(Column::ExpiresAtMs.eq(stored.expires_at_ms))
            .filter(Column::Status.eq(stored.status))
            .exec(txn)
            .await?
            .rows_affected;
        if taken == 1 {
            crate::telemetry::idempotency("new");
            return Ok(ClaimOutcome::Claimed(claim));
        }
    }
}

/// Stores the result of a claimed key, inside the claiming transaction.
pub async fn complete<C: ConnectionTrait, T: Serialize>(
    txn: &C,
    claim: &Claim,
    result: &T,
) -> AppResult<()> {
    let response = serde_json::to_string(result)
        .map_err(|e| AppError::internal(format!("result not serializable: {e}")))?;
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(COMPLETED))
        .col_expr(Column::Response, Expr::value(response))
        .filter(Column::TenantId.eq(claim.tenant.as_str()))
        .filter(Column::IdempotencyKey.eq(claim.key.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Deletes up to `limit` keys past their retention; returns how many.
pub async fn purge_expired(db: &DatabaseConnection, limit: u64) -> AppResult<u64> {
    // A DELETE has no LIMIT on PostgreSQL: pick the rows by their physical id in a subquery.
    let row_id = Alias::new(match db.get_database_backend() {
        DbBackend::Postgres => "ctid",
        _ => "rowid",
    });
    let purge = Query::delete()
        .from_table(Entity)
        .and_where(
            Expr::col(row_id.clone()).in_subquery(
                Query::select()
                    .column(row_id)
                    .from(Entity)
                    .and_where(Expr::col(Column::ExpiresAtMs).lt(now_ms()))
                    .limit(limit)
                    .to_owned(),
            ),
        )
        .to_owned();
    Ok(db.execute(&purge).await?.rows_affected())
}

/// How often each server process deletes expired keys.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes expired keys every [`PURGE_EVERY`], in batches, for as long as the returned task
/// runs. Every process does it; concurrent deletes of the same rows are harmless.
pub fn spawn_purge(db: DatabaseConnection) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.tick().await; // the first tick is immediate; start after one period
        loop {
            tick.tick().await;
            loop {
                match purge_expired(&db, 1_000).await {
                    Ok(1_000) => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = ?err, "expired idempotency keys not purged");
                        break;
                    }
                }
            }
        }
    })
    .abort_handle()
}

/// A key's stored row, read inside the claiming transaction.
async fn read<C: ConnectionTrait>(
    txn: &C,
    tenant: &TenantId,
    key: &str,
) -> AppResult<Option<entity::idempotency_keys::Model>> {
    Ok(
        Entity::find_by_id((tenant.as_str().to_owned(), key.to_owned()))
            .one(txn)
            .await?,
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
