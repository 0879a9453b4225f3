//! [`KeyStore`]: the process's view of `api_keys`. A request's key is looked up by digest
//! through a per-process cache, so the hot path costs no SQL. What keeps the cache honest:
//!
//! - an entry lives at most `Config::key_cache_ttl` (30 s) and never past the key's expiry;
//! - a revocation evicts the key from every process's cache within about a second through the
//!   revocation bus, with a periodic check of the cached keys as the safety net
//!   (`auth::revocation` says why both);
//! - `lastUsedAt` is written at most once a minute per key per process, off the request's path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::keys::{self, ActiveKey};
use super::{revocation, Principal};
use crate::error::AppResult;
use crate::redis_link::RedisLink;
use crate::scalars::now;

/// Past this many entries the cache starts over (a flood of distinct valid keys).
const MAX_ENTRIES: usize = 10_000;
/// `lastUsedAt` is written at most this often per key per process.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The process's view of `api_keys`: lookups by digest, cached (see the module doc). Part of
/// `AppState`.
pub struct KeyStore {
    db: DatabaseConnection,
    redis: Option<Arc<RedisLink>>,
    ttl: Duration,
    cache: Arc<Cache>,
    /// The runtime the revocation watcher and the `lastUsedAt` writes run on (the one that
    /// built the state, which lives as long as the server; HTTP workers come and go).
    runtime: Option<tokio::runtime::Handle>,
    /// The revocation watcher, stopped with the store.
    task: Option<tokio::task::AbortHandle>,
    /// The pool without the statement counters, for the upkeep writes (`lastUsedAt`), which a
    /// request does not wait for and whose statements are not its own.
    upkeep: DatabaseConnection,
}

/// Cached keys by digest, and when each key was last recorded as used.
#[derive(Default)]
pub(super) struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
    touched: Mutex<HashMap<String, Instant>>,
    /// Bumped by every eviction: a lookup that raced one does not cache what it read.
    evictions: AtomicU64,
}

struct Entry {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
    cached_at: Instant,
}

impl Cache {
    fn get(&self, digest: &str, ttl: Duration) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(digest)?;
        let fresh = entry.cached_at.elapsed() < ttl;
        let unexpired = entry.expires_at.is_none_or(|expiry| now() < expiry);
        (fresh && unexpired).then(|| entry.principal.clone())
    }

    fn insert(&self, digest: String, key: ActiveKey, generation: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock evictions take too.
        if self.evictions.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        let entry = Entry {
            principal: key.principal,
            expires_at: key.expires_at,
            cached_at: Instant::now(),
        };
        entries.insert(digest, entry);
    }

    /// Drops the keys `ids` from the cache.
    pub(super) fn evict(&self, ids: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.evictions.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, entry| !ids.contains(&entry.principal.key_id));
    }

    /// Drops every key (the revocation bus may have missed messages).
    pub(super) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.evictions.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    /// The ids of the cached keys.
    pub(super) fn key_ids(&self) -> Vec<String> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = entries
            .values()
            .map(|entry| entry.principal.key_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Whether this process should record a use of `key_id` now (and notes that it does).
    fn should_touch(&self, key_id: &str) -> bool {
        let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        if touched
            .get(key_id)
            .is_some_and(|at| at.elapsed() < TOUCH_EVERY)
        {
            return false;
        }
        if touched.len() >= MAX_ENTRIES {
            touched.clear();
        }
        touched.insert(key_id.to_owned(), Instant::now());
        true
    }
}

impl KeyStore {
    /// The store of a server process; its revocation watcher starts now, before anything is
    /// cached, so nothing cached can predate the watcher's subscription.
    pub fn new(db: DatabaseConnection, redis: Option<Arc<RedisLink>>, ttl: Duration) -> Self {
        let cache = Arc::<Cache>::default();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let upkeep = uncounted(&db);
        let task = runtime.as_ref().map(|runtime| {
            let watcher = revocation::watch(upkeep.clone(), redis.clone(), Arc::downgrade(&cache));
            runtime.spawn(watcher).abort_handle()
        });
        KeyStore {
            upkeep,
            db,
            redis,
            ttl,
            cache,
            runtime,
            task,
        }
    }

    /// The principal of the key with this digest, unless it is unknown, revoked or expired.
    pub async fn principal_of(&self, digest: &str) -> AppResult<Option<Principal>> {
        if let Some(hit) = self.cache.get(digest, self.ttl) {
            self.touch(&hit);
            return Ok(Some(hit));
        }
        let generation = self.cache.evictions.load(Ordering::SeqCst);
        let Some(found) = keys::find_active_key(&self.db, digest).await? else {
            return Ok(None);
        };
        let principal = found.principal.clone();
        self.cache.insert(digest.to_owned(), found, generation);
        self.touch(&principal);
        Ok(Some(principal))
    }

    /// After the transaction that revoked `ids` committed: drops them here at once and tells
    /// every other process (best effort; the periodic check covers a lost message).
    pub async fn revoked(&self, ids: &[String]) {
        self.cache.evict(ids);
        revocation::announce(&self.db, self.redis.as_deref(), ids).await;
    }

    /// Records the use in the background, at most once a minute per key in this process, so
    /// the request never waits for the write.
    fn touch(&self, principal: &Principal) {
        if !self.cache.should_touch(&principal.key_id) {
            return;
        }
        let Some(runtime) = &self.runtime else { return };
        let (db, id) = (self.upkeep.clone(), principal.key_id.clone());
        runtime.spawn(async move {
            if let Err(e) = keys::touch(&db, &id, now()).await {
                tracing::warn!(error = %e.detail(), key = %id, "recording an API key's use failed");
            }
        });
    }
}

impl Drop for KeyStore {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Another handle on the same pool without the statement counters: the watcher's periodic
/// reads are the process's upkeep, not any request's statements, and tests that count a
/// request's statements must not see them.
fn uncounted(db: &DatabaseConnection) -> DatabaseConnection {
    use sea_orm::{SqlxPostgresConnector, SqlxSqliteConnector};
    if crate::db::is_postgres(db) {
        SqlxPostgresConnector::from_sqlx_postgres_pool(db.get_postgres_connection_pool().clone())
    } else {
        SqlxSqliteConnector::from_sqlx_sqlite_pool(db.get_sqlite_connection_pool().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, TenantId};

    fn key(id: &str, expires_at: Option<DateTime<Utc>>) -> ActiveKey {
        ActiveKey {
            principal: Principal {
                tenant_id: TenantId::trusted("acme"),
                role: Role::Viewer,
                actor_type: crate::auth::ActorType::Human,
                key_id: id.to_owned(),
                rate_limit_per_minute: None,
            },
            expires_at,
        }
    }

    const TTL: Duration = Duration::from_secs(30);

    #[test]
    fn evicted_keys_and_expired_keys_are_not_answered() {
        let cache = Cache::default();
        let generation = cache.evictions.load(Ordering::SeqCst);
        cache.insert("d1".into(), key("k1", None), generation);
        cache.insert("d2".into(), key("k2", None), generation);
        let past = now() - chrono::Duration::seconds(1);
        cache.insert("d3".into(), key("k3", Some(past)), generation);
        assert_eq!(cache.get("d1", TTL).map(|p| p.key_id), Some("k1".into()));
        assert!(cache.get("d3", TTL).is_none(), "expired");
        assert!(cache.get("d1", Duration::ZERO).is_none(), "past the TTL");

        cache.evict(&["k1".to_owned()]);
        assert!(cache.get("d1", TTL).is_none());
        assert!(cache.get("d2", TTL).is_some());
        assert_eq!(cache.key_ids(), ["k2", "k3"]);
        cache.clear();
        assert!(cache.key_ids().is_empty());
    }

    #[test]
    fn a_lookup_that_raced_an_eviction_is_not_cached() {
        let cache = Cache::default();
        // Read from the database before the revocation was announced, inserted after.
        let generation = cache.evictions.load(Ordering::SeqCst);
        cache.evict(&["k1".to_owned()]);
        cache.insert("d1".into(), key("k1", None), generation);
        assert!(cache.get("d1", TTL).is_none());
    }

    #[test]
    fn use_is_recorded_once_a_minute() {
        let cache = Cache::default();
        assert!(cache.should_touch("k1"));
        assert!(!cache.should_touch("k1"));
        assert!(cache.should_touch("k2"));
    }
}
