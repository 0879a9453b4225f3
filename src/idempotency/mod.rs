//! Idempotent writes (DOMAIN.md 3.3, with the flaws of 5 #11 fixed).
//!
//! Every write mutation that takes an `idempotencyKey` runs its effect through [`once`]:
//! - first use of a key in a tenant: the effect runs and its result is stored;
//! - same key, same input: the first result is returned again and the effect does not run;
//!   a concurrent duplicate waits for the first attempt to finish, then returns its result;
//! - same key, other input (or another mutation): `IDEMPOTENCY_CONFLICT`;
//! - a first attempt that fails releases the key, so a retry with the same key runs again.
//!
//! The store is Redis when `REDIS_URL` is configured (atomic Lua scripts, [`redis_store`]),
//! otherwise the `idempotency_keys` table ([`db_store`]): never process memory, so it holds
//! across server processes. When Redis is configured but down, a write with a key fails with
//! `UNAVAILABLE` rather than risk a double effect (the original failed open).
//!
//! A claim is a lease ([`LEASE`]): if a process dies between claiming and recording the result,
//! the key frees itself when the lease ends and a retry runs the effect. Completed results are
//! kept for [`RETENTION`], like the original's 24 h TTL.

mod canonical;
mod db_store;
mod redis_store;

use std::future::Future;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::AppState;
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

pub use canonical::{canonical_json, request_hash};

/// How long a first attempt owns its key before another attempt may take over.
pub const LEASE: Duration = Duration::from_secs(60);
/// How long a completed result answers duplicates.
pub const RETENTION: Duration = Duration::from_secs(86_400);
/// How long a duplicate waits for an in-flight first attempt before giving up.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);
const MAX_KEY_LEN: usize = 255;

/// What the store says about a key when asked to claim it.
#[derive(Debug)]
enum Claim {
    /// The key was free; this attempt owns it under `token` and must complete or release it.
    Owner { token: String },
    /// Another attempt holds it and has not finished.
    Pending { request_hash: String },
    /// A first attempt finished; its result, as JSON.
    Completed {
        request_hash: String,
        response: String,
    },
}

/// Where claims live: Redis or the database.
enum Store<'a> {
    Redis(&'a AppState),
    Database(&'a AppState),
}

/// Which key, for whom, for which input.
struct Slot<'a> {
    tenant: &'a TenantId,
    operation: &'static str,
    key: &'a str,
    request_hash: String,
}

impl Store<'_> {
    fn of(state: &AppState) -> Store<'_> {
        if state.redis.is_some() {
            Store::Redis(state)
        } else {
            Store::Database(state)
        }
    }

    async fn claim(&self, slot: &Slot<'_>) -> AppResult<Claim> {
        match self {
            Store::Redis(state) => redis_store::claim(state, slot).await,
            Store::Database(state) => db_store::claim(&state.db, slot).await,
        }
    }

    async fn complete(&self, slot: &Slot<'_>, token: &str, response: &str) -> AppResult<()> {
        match self {
            Store::Redis(state) => redis_store::complete(state, slot, token, response).await,
            Store::Database(state) => db_store::complete(&state.db, slot, token, response).await,
        }
    }

    async fn release(&self, slot: &Slot<'_>, token: &str) -> AppResult<()> {
        match self {
            Store::Redis(state) => redis_store::release(state, slot, token).await,
            Store::Database(state) => db_store::release(&state.db, slot, token).await,
        }
    }
}

/// Runs `effect` at most once per (tenant, key). `input` is the mutation's whole input (its
/// canonical JSON, with `operation`, is the request hash); `T` is the mutation's result
/// snapshot, stored as JSON and returned again to duplicates. Without a key, `effect` just runs.
pub async fn once<T, F, Fut>(
    state: &AppState,
    tenant: &TenantId,
    operation: &'static str,
    key: Option<&str>,
    input: &impl Serialize,
    effect: F,
) -> AppResult<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let Some(key) = key else {
        return effect().await;
    };
    validate_key(key)?;
    let slot = Slot {
        tenant,
        operation,
        key,
        request_hash: request_hash(operation, input)?,
    };
    let store = Store::of(state);
    let give_up_at = Instant::now() + WAIT_FOR_FIRST;
    let mut pause = Duration::from_millis(10);
    loop {
        match store.claim(&slot).await? {
            Claim::Owner { token } => return run_as_owner(&store, &slot, &token, effect).await,
            Claim::Completed {
                request_hash,
                response,
            } => {
                check_same_request(&slot, &request_hash)?;
                return serde_json::from_str(&response).map_err(|e| {
                    AppError::internal(format!("stored idempotent result unreadable: {e}"))
                });
            }
            Claim::Pending { request_hash } => {
                check_same_request(&slot, &request_hash)?;
                if Instant::now() >= give_up_at {
                    return Err(AppError::Unavailable(
                        "a request with this idempotencyKey is still in progress; retry shortly"
                            .into(),
                    ));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

async fn run_as_owner<T, F, Fut>(
    store: &Store<'_>,
    slot: &Slot<'_>,
    token: &str,
    effect: F,
) -> AppResult<T>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let outcome = effect().await;
    match &outcome {
        Ok(value) => {
            let response = serde_json::to_string(value)
                .map_err(|e| AppError::internal(format!("result not serializable: {e}")))?;
            // The effect has happened: report it even if recording fails. The key then frees
            // itself when the lease ends, the only window in which a retry could repeat it.
            if let Err(err) = store.complete(slot, token, &response).await {
                tracing::warn!(key = slot.key, error = ?err, "idempotent result not recorded");
            }
        }
        Err(_) => {
            if let Err(err) = store.release(slot, token).await {
                tracing::warn!(key = slot.key, error = ?err, "idempotency key not released");
            }
        }
    }
    outcome
}

fn check_same_request(slot: &Slot<'_>, stored_hash: &str) -> AppResult<()> {
    if stored_hash == slot.request_hash {
        Ok(())
    } else {
        Err(AppError::IdempotencyConflict(format!(
            "idempotencyKey {:?} was already used with a different input or operation",
            slot.key
        )))
    }
}

fn validate_key(key: &str) -> AppResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "idempotencyKey",
            format!("idempotencyKey must be 1 to {MAX_KEY_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("abc-123").is_ok());
        assert_eq!(validate_key("").unwrap_err().code(), "BAD_USER_INPUT");
        assert_eq!(validate_key("a\nb").unwrap_err().code(), "BAD_USER_INPUT");
        assert!(validate_key(&"k".repeat(256)).is_err());
    }
}
