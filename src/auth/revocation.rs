//! Revocation reaches every server process within about a second (docs/api.md §2.1).
//!
//! Each process caches resolved keys (`KeyStore`), so a revoked key would otherwise keep working
//! there until its entry ages out. The process that revokes (a `revokeApiKey` mutation, or
//! `logbook keys revoke|rotate`) announces the key's id after its transaction commits, over the
//! same kind of bus `crate::events` uses for subscriptions, and every process's watcher evicts
//! it:
//! - `REDIS_URL` set: Redis pub/sub on `{namespace}:keys:revoked`;
//! - PostgreSQL without Redis: `NOTIFY logbook_key_revocations, '<key id>'`;
//! - SQLite: no bus. One process normally serves an embedded file, but `keys revoke` runs in
//!   another, so the watcher polls instead (every [`SQLITE_CHECK`]: one indexed read of the
//!   cached ids on a local file, and only while keys are cached).
//!
//! A bus loses messages: a publish that fails, a listener that was reconnecting. Two things
//! bound that. The watcher starts with the process, before anything is cached, and drops the
//! whole cache whenever it resubscribes, so nothing announced while it was away survives; and
//! it asks the database which of its cached keys are revoked every [`SHARED_CHECK`], a read of
//! a handful of rows by primary key. A lost announcement therefore delays a revocation by at
//! most that period (and never past the cache TTL). The check alone would do, but only at a
//! cost per process per second; the bus makes the common case immediate and the check cheap.
//! The checks go through a handle without the statement counters (`KeyStore`): they are the
//! process's upkeep, not a request's statements.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::cache::Cache;
use super::keys;
use crate::redis_link::RedisLink;

/// How often a process checks its cached keys when a bus carries revocations.
pub const SHARED_CHECK: Duration = Duration::from_secs(10);
/// How often a process checks its cached keys on SQLite, where nothing carries them.
pub const SQLITE_CHECK: Duration = Duration::from_millis(250);

/// The PostgreSQL channel (LISTEN/NOTIFY is scoped to one database).
const PG_CHANNEL: &str = "logbook_key_revocations";

fn redis_channel(redis: &RedisLink) -> String {
    redis.key(&["keys", "revoked"])
}

/// Tells every process that the keys `ids` are revoked. Best effort: a failure is logged, and
/// the watchers' periodic check still evicts the keys.
pub async fn announce(db: &DatabaseConnection, redis: Option<&RedisLink>, ids: &[String]) {
    for id in ids {
        let sent = if let Some(redis) = redis {
            publish_redis(redis, id).await
        } else if crate::db::is_postgres(db) {
            let statement = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [PG_CHANNEL.into(), id.as_str().into()],
            );
            db.execute_raw(statement)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            Ok(())
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, key = %id, "announcing an API key's revocation failed");
        }
    }
}

async fn publish_redis(redis: &RedisLink, id: &str) -> Result<(), String> {
    let mut connection = redis.connection().await.map_err(|e| e.message())?;
    redis::cmd("PUBLISH")
        .arg(redis_channel(redis))
        .arg(id)
        .query_async::<i64>(&mut connection)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The watcher of one process: evicts announced keys and checks the cached ones periodically.
/// Ends when the cache is gone (the state was dropped) or the pool is closed.
pub(super) async fn watch(
    db: DatabaseConnection,
    redis: Option<std::sync::Arc<RedisLink>>,
    cache: Weak<Cache>,
) {
    let mut backoff = Duration::from_millis(250);
    // The first subscription precedes anything cached; a later one follows a gap.
    let mut resubscribing = false;
    loop {
        let outcome = match &redis {
            Some(redis) => watch_redis(&db, redis, &cache, resubscribing).await,
            None if crate::db::is_postgres(&db) => watch_postgres(&db, &cache, resubscribing).await,
            None => watch_database(&db, &cache, SQLITE_CHECK).await,
        };
        match outcome {
            Ended::Stop => return,
            Ended::Lost(reason) => {
                resubscribing = true;
                tracing::warn!(error = %reason, "API key revocation listener lost; reconnecting");
            }
        }
        // While away, the periodic check is the only guard.
        if check(&db, &cache).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

enum Ended {
    /// The state is gone or the pool closed.
    Stop,
    /// The bus connection failed or closed.
    Lost(String),
}

/// Evicts the revoked keys among the cached ones. `Err` when the watcher should stop.
async fn check(db: &DatabaseConnection, cache: &Weak<Cache>) -> Result<(), ()> {
    let Some(cache) = cache.upgrade() else {
        return Err(());
    };
    if pool_closed(db) {
        return Err(());
    }
    let ids = cache.key_ids();
    if ids.is_empty() {
        return Ok(());
    }
    match keys::revoked_among(db, &ids).await {
        Ok(revoked) if !revoked.is_empty() => cache.evict(&revoked),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e.detail(), "checking cached API keys failed"),
    }
    Ok(())
}

fn pool_closed(db: &DatabaseConnection) -> bool {
    if crate::db::is_postgres(db) {
        db.get_postgres_connection_pool().is_closed()
    } else {
        db.get_sqlite_connection_pool().is_closed()
    }
}

/// Evicts `id`; `Err` when the watcher should stop.
fn evict(cache: &Weak<Cache>, id: String) -> Result<(), ()> {
    cache.upgrade().ok_or(())?.evict(&[id]);
    Ok(())
}

/// After a resubscription, drops everything cached: what was announced during the gap was
/// missed.
fn start_over(cache: &Weak<Cache>, resubscribing: bool) -> Result<(), ()> {
    let cache = cache.upgrade().ok_or(())?;
    if resubscribing {
        cache.clear();
    }
    Ok(())
}

fn interval(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

async fn watch_database(db: &DatabaseConnection, cache: &Weak<Cache>, period: Duration) -> Ended {
    let mut tick = interval(period);
    loop {
        tick.tick().await;
        if check(db, cache).await.is_err() {
            return Ended::Stop;
        }
    }
}

async fn watch_redis(
    db: &DatabaseConnection,
    redis: &RedisLink,
    cache: &Weak<Cache>,
    resubscribing: bool,
) -> Ended {
    let connected = async {
        let mut pubsub =
            tokio::time::timeout(Duration::from_secs(3), redis.client().get_async_pubsub())
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        pubsub
            .subscribe(redis_channel(redis))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(pubsub)
    }
    .await;
    let mut pubsub = match connected {
        Ok(pubsub) => pubsub,
        Err(e) => return Ended::Lost(e),
    };
    if start_over(cache, resubscribing).is_err() {
        return Ended::Stop;
    }
    let mut messages = pubsub.on_message();
    let mut tick = interval(SHARED_CHECK);
    loop {
        let stop = tokio::select! {
            message = messages.next() => match message {
                Some(message) => match message.get_payload::<String>() {
                    Ok(id) => evict(cache, id),
                    Err(_) => Ok(()),
                },
                None => return Ended::Lost("Redis subscription closed".into()),
            },
            _ = tick.tick() => check(db, cache).await,
        };
        if stop.is_err() {
            return Ended::Stop;
        }
    }
}

async fn watch_postgres(
    db: &DatabaseConnection,
    cache: &Weak<Cache>,
    resubscribing: bool,
) -> Ended {
    use sea_orm::sqlx::postgres::PgListener;
    use sea_orm::sqlx::Error;

    let pool = db.get_postgres_connection_pool();
    if pool.is_closed() {
        return Ended::Stop;
    }
    let listener = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(PG_CHANNEL).await?;
        Ok::<_, Error>(listener)
    }
    .await;
    let mut listener = match listener {
        Ok(listener) => listener,
        Err(Error::PoolClosed) => return Ended::Stop,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    if start_over(cache, resubscribing).is_err() {
        return Ended::Stop;
    }
    let mut tick = interval(SHARED_CHECK);
    loop {
        let stop = tokio::select! {
            notification = listener.recv() => match notification {
                Ok(notification) => evict(cache, notification.payload().to_owned()),
                Err(Error::PoolClosed) => return Ended::Stop,
                Err(e) => return Ended::Lost(e.to_string()),
            },
            _ = tick.tick() => check(db, cache).await,
        };
        if stop.is_err() {
            return Ended::Stop;
        }
    }
}
