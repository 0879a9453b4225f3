//! Idempotency claims in the `idempotency_keys` table, for deployments without Redis. The
//! primary key (tenant_id, idempotency_key) makes the claim atomic: `INSERT ... ON CONFLICT DO
//! NOTHING` succeeds for exactly one attempt. Taking over an expired claim and completing or
//! releasing one are compare-and-set updates on the owner `token`.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

use super::{new_token, now_ms, Claim, Slot, LEASE, RETENTION};
use crate::db::param;
use crate::error::AppResult;

struct Stored {
    request_hash: String,
    status: String,
    token: String,
    response: Option<String>,
    lease_until_ms: i64,
    expires_at_ms: i64,
}

async fn execute(db: &DatabaseConnection, sql: String, values: Vec<Value>) -> AppResult<u64> {
    let backend = db.get_database_backend();
    let result = db
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(result.rows_affected())
}

pub(super) async fn claim(db: &DatabaseConnection, slot: &Slot<'_>) -> AppResult<Claim> {
    let b = db.get_database_backend();
    let p = |n| param(b, n);
    loop {
        let token = new_token();
        let now = now_ms();
        let inserted = execute(
            db,
            format!(
                "INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, \
                 request_hash, status, token, response, created_at_ms, lease_until_ms, \
                 expires_at_ms) VALUES ({}, {}, {}, {}, 'pending', {}, NULL, {}, {}, {}) \
                 ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8)
            ),
            vec![
                slot.tenant.as_str().into(),
                slot.key.into(),
                slot.operation.into(),
                slot.request_hash.clone().into(),
                token.clone().into(),
                now.into(),
                (now + LEASE.as_millis() as i64).into(),
                (now + LEASE.as_millis() as i64).into(),
            ],
        )
        .await?;
        if inserted == 1 {
            return Ok(Claim::Owner { token });
        }
        let Some(stored) = read(db, slot).await? else {
            // Released between our insert and read: try again.
            continue;
        };
        let expired = if stored.status == "completed" {
            stored.expires_at_ms <= now
        } else {
            stored.lease_until_ms <= now
        };
        if expired {
            if take_over(db, slot, &stored.token, &token, now).await? {
                return Ok(Claim::Owner { token });
            }
            continue;
        }
        return Ok(match (stored.status.as_str(), stored.response) {
            ("completed", Some(response)) => Claim::Completed {
                request_hash: stored.request_hash,
                response,
            },
            _ => Claim::Pending {
                request_hash: stored.request_hash,
            },
        });
    }
}

async fn read(db: &DatabaseConnection, slot: &Slot<'_>) -> AppResult<Option<Stored>> {
    let b = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            b,
            format!(
                "SELECT request_hash, status, token, response, lease_until_ms, expires_at_ms \
                 FROM idempotency_keys WHERE tenant_id = {} AND idempotency_key = {}",
                param(b, 1),
                param(b, 2)
            ),
            [slot.tenant.as_str().into(), slot.key.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Stored {
        request_hash: row.try_get("", "request_hash")?,
        status: row.try_get("", "status")?,
        token: row.try_get("", "token")?,
        response: row.try_get("", "response")?,
        lease_until_ms: row.try_get("", "lease_until_ms")?,
        expires_at_ms: row.try_get("", "expires_at_ms")?,
    }))
}

/// Replaces an expired claim (a dead first attempt, or a result past retention) with ours.
async fn take_over(
    db: &DatabaseConnection,
    slot: &Slot<'_>,
    old_token: &str,
    token: &str,
    now: i64,
) -> AppResult<bool> {
    let b = db.get_database_backend();
    let p = |n| param(b, n);
    let lease = now + LEASE.as_millis() as i64;
    let updated = execute(
        db,
        format!(
            "UPDATE idempotency_keys SET operation = {}, request_hash = {}, status = 'pending', \
             token = {}, response = NULL, created_at_ms = {}, lease_until_ms = {}, \
             expires_at_ms = {} WHERE tenant_id = {} AND idempotency_key = {} AND token = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9)
        ),
        vec![
            slot.operation.into(),
            slot.request_hash.clone().into(),
            token.into(),
            now.into(),
            lease.into(),
            lease.into(),
            slot.tenant.as_str().into(),
            slot.key.into(),
            old_token.into(),
        ],
    )
    .await?;
    Ok(updated == 1)
}

pub(super) async fn complete(
    db: &DatabaseConnection,
    slot: &Slot<'_>,
    token: &str,
    response: &str,
) -> AppResult<()> {
    let b = db.get_database_backend();
    let p = |n| param(b, n);
    execute(
        db,
        format!(
            "UPDATE idempotency_keys SET status = 'completed', response = {}, expires_at_ms = {} \
             WHERE tenant_id = {} AND idempotency_key = {} AND token = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5)
        ),
        vec![
            response.into(),
            (now_ms() + RETENTION.as_millis() as i64).into(),
            slot.tenant.as_str().into(),
            slot.key.into(),
            token.into(),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn release(
    db: &DatabaseConnection,
    slot: &Slot<'_>,
    token: &str,
) -> AppResult<()> {
    let b = db.get_database_backend();
    execute(
        db,
        format!(
            "DELETE FROM idempotency_keys WHERE tenant_id = {} AND idempotency_key = {} \
             AND token = {}",
            param(b, 1),
            param(b, 2),
            param(b, 3)
        ),
        vec![slot.tenant.as_str().into(), slot.key.into(), token.into()],
    )
    .await?;
    Ok(())
}
