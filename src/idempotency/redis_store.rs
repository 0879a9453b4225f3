//! Idempotency claims in Redis: one hash per key at `{namespace}:idem:{tenant}:{key}` with
//! fields `h` (request hash), `o` (operation), `s` (`pending`|`completed`), `t` (owner token),
//! `r` (result JSON). Each step is one Lua script, so check-and-set is atomic across processes.
//! A pending claim expires with the lease; a completed one after the retention period. Any
//! Redis error is `UNAVAILABLE`: never fail open.

use redis::Script;

use super::{new_token, Claim, Slot, LEASE, RETENTION};
use crate::app::AppState;
use crate::error::{AppError, AppResult};

/// Returns nil after claiming a free key, else the stored {h, s, r}.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HMGET', KEYS[1], 'h', 's', 'r')
end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 's', 'pending', 't', ARGV[2], 'o', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return false
";

/// Records the result if the caller still owns the key.
const COMPLETE: &str = r"
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', 'completed', 'r', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// Frees the key if the caller still owns it.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

fn redis_key(state: &AppState, slot: &Slot<'_>) -> String {
    format!(
        "{}:idem:{}:{}",
        state.namespace,
        slot.tenant.as_str(),
        slot.key
    )
}

fn unavailable(err: redis::RedisError) -> AppError {
    AppError::Unavailable(format!(
        "Redis is unavailable, so writes with an idempotencyKey cannot be deduplicated; retry shortly ({err})"
    ))
}

async fn connection(state: &AppState) -> AppResult<redis::aio::ConnectionManager> {
    let link = state
        .redis
        .as_ref()
        .ok_or_else(|| AppError::internal("Redis idempotency store without Redis"))?;
    link.connection().await
}

pub(super) async fn claim(state: &AppState, slot: &Slot<'_>) -> AppResult<Claim> {
    let mut conn = connection(state).await?;
    let token = new_token();
    let stored: Option<Vec<Option<String>>> = Script::new(CLAIM)
        .key(redis_key(state, slot))
        .arg(&slot.request_hash)
        .arg(&token)
        .arg(LEASE.as_millis() as u64)
        .arg(slot.operation)
        .invoke_async(&mut conn)
        .await
        .map_err(unavailable)?;
    let Some(fields) = stored else {
        return Ok(Claim::Owner { token });
    };
    let mut fields = fields.into_iter();
    let request_hash = fields.next().flatten().unwrap_or_default();
    let status = fields.next().flatten().unwrap_or_default();
    let response = fields.next().flatten();
    Ok(match (status.as_str(), response) {
        ("completed", Some(response)) => Claim::Completed {
            request_hash,
            response,
        },
        _ => Claim::Pending { request_hash },
    })
}

pub(super) async fn complete(
    state: &AppState,
    slot: &Slot<'_>,
    token: &str,
    response: &str,
) -> AppResult<()> {
    let mut conn = connection(state).await?;
    let _: i64 = Script::new(COMPLETE)
        .key(redis_key(state, slot))
        .arg(token)
        .arg(response)
        .arg(RETENTION.as_millis() as u64)
        .invoke_async(&mut conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub(super) async fn release(state: &AppState, slot: &Slot<'_>, token: &str) -> AppResult<()> {
    let mut conn = connection(state).await?;
    let _: i64 = Script::new(RELEASE)
        .key(redis_key(state, slot))
        .arg(token)
        .invoke_async(&mut conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}
