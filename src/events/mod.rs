//! Change notifications for subscriptions.
//!
//! A write publishes "tenant T has new rows on topic X" after its transaction commits; a
//! subscription waits for such a wake-up and then reads the rows after its last cursor position
//! from the database. The database is the source of truth, so catch-up after a cursor and live
//! events are the same keyset read: no gap, no duplicate. Wake-ups reach every server process
//! (Redis pub/sub or PostgreSQL LISTEN/NOTIFY); a periodic tick covers a lost notification.
//!
//! Which bus carries a notification:
//! - `REDIS_URL` set: Redis pub/sub, channel `{namespace}:events:{topic}:{tenant}`;
//! - PostgreSQL without Redis: `NOTIFY logbook_events, '{topic}:{tenant}'`;
//! - SQLite without Redis: this process's memory only (one process serves an embedded file).
//!
//! Each process runs one listener task (started with the first subscriber) that forwards what it
//! hears to an in-process broadcast channel; subscribers never hold a bus connection of their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};

use sea_orm::DatabaseConnection;

use crate::auth::TenantId;
use crate::closed_set::closed_set;
use crate::redis_link::RedisLink;

/// How often a subscriber re-reads even without a notification: the longest a lost
/// notification can delay delivery.
pub const TICK: Duration = Duration::from_secs(2);

/// The PostgreSQL channel (LISTEN/NOTIFY is scoped to one database, so one name suffices).
const PG_CHANNEL: &str = "logbook_events";

/// Pending wake-ups buffered per process; a subscriber that falls further behind just reads.
const LOCAL_CAPACITY: usize = 1024;

closed_set! {
    /// What changed.
    pub enum Topic {
        LlmRuns => "llm_runs",
        SystemRecords => "system_records",
        AuditEntries => "audit_entries",
        TraceSteps => "trace_steps",
        ExportProgress => "export_progress",
        /// A trace started or was sealed.
        Traces => "traces",
        TraceMismatches => "trace_mismatches",
        CostAnomalies => "cost_anomalies",
    }
}

/// One notification as it travels inside a process.
#[derive(Debug, Clone)]
struct Event {
    topic: Topic,
    tenant: Arc<str>,
}

/// `topic:tenant` (the PostgreSQL payload and the tail of the Redis channel name).
fn encode(topic: Topic, tenant: &str) -> String {
    format!("{}:{tenant}", topic.as_str())
}

fn decode(text: &str) -> Option<Event> {
    let (topic, tenant) = text.split_once(':')?;
    Some(Event {
        topic: Topic::parse(topic)?,
        tenant: tenant.into(),
    })
}

/// The per-process fan-out point: a broadcast channel fed by the publisher (in-process bus) or
/// by the one listener task (Redis or PostgreSQL). Part of `AppState`: it owns the handles it
/// publishes and listens with.
pub struct Hub {
    db: DatabaseConnection,
    redis: Option<Arc<RedisLink>>,
    local: broadcast::Sender<Event>,
    /// The runtime the listener runs on (the one that built the state, which lives as long as
    /// the server; HTTP workers come and go).
    runtime: Option<tokio::runtime::Handle>,
    listener: OnceLock<()>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    /// Notifications received from the shared bus (for `/metrics`-style checks and tests).
    heard: Arc<AtomicU64>,
    /// Subscription reads running at once (see [`Hub::read_permit`]).
    reads: Arc<Semaphore>,
}

impl Hub {
    /// The hub of a process whose database pool holds `pool_size` connections.
    pub fn new(db: DatabaseConnection, redis: Option<Arc<RedisLink>>, pool_size: usize) -> Self {
        Hub {
            db,
            redis,
            local: broadcast::channel(LOCAL_CAPACITY).0,
            runtime: tokio::runtime::Handle::try_current().ok(),
            listener: OnceLock::new(),
            task: Mutex::new(None),
            heard: Arc::default(),
            reads: Arc::new(Semaphore::new((pool_size / 2).max(1))),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl Hub {
    /// How many notifications this process's listener has received from Redis or PostgreSQL.
    pub fn heard(&self) -> u64 {
        self.heard.load(Ordering::Relaxed)
    }

    /// A permit to run one subscription read (a tail's keyset page, an export's progress).
    /// One notification wakes every subscriber of its tenant and topic at once, and ticks of
    /// subscriptions started together coincide: without a bound each waiting read holds its
    /// query future (about 11 KiB) while it queues for a pooled connection, and the herd takes
    /// every connection from HTTP requests. At most half the pool runs subscription reads; the
    /// rest wait here, holding only this future.
    pub async fn read_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.reads.clone().acquire_owned().await.ok()
    }

    fn dispatch(&self, event: Event) {
        // No receiver is not an error: nobody subscribes in this process.
        let _ = self.local.send(event);
    }

    /// Starts the process's listener once, on the first subscriber.
    fn ensure_listener(&self) {
        self.listener.get_or_init(|| {
            let Some(runtime) = &self.runtime else {
                return;
            };
            let sender = Forward {
                local: self.local.clone(),
                heard: self.heard.clone(),
            };
            let handle = if let Some(redis) = &self.redis {
                let pattern = redis.key(&["events", "*"]);
                runtime.spawn(listen_redis(redis.client().clone(), pattern, sender))
            } else if crate::db::is_postgres(&self.db) {
                let pool = self.db.get_postgres_connection_pool().clone();
                runtime.spawn(listen_postgres(pool, sender))
            } else {
                return;
            };
            if let Ok(mut task) = self.task.lock() {
                *task = Some(handle.abort_handle());
            }
        });
    }
}

/// What a listener task holds: where to forward, and the counter (never the hub itself, so
/// dropping the state stops the task).
struct Forward {
    local: broadcast::Sender<Event>,
    heard: Arc<AtomicU64>,
}

impl Forward {
    fn send(&self, event: Event) {
        self.heard.fetch_add(1, Ordering::Relaxed);
        let _ = self.local.send(event);
    }
}

/// Forwards Redis pub/sub messages to the local channel; reconnects with backoff.
async fn listen_redis(client: redis::Client, pattern: String, sender: Forward) {
    let prefix = pattern.trim_end_matches('*').to_owned();
    let mut backoff = Duration::from_millis(250);
    loop {
        let connected = async {
            let mut pubsub =
                tokio::time::timeout(Duration::from_secs(3), client.get_async_pubsub())
                    .await
                    .map_err(|_| {
                        redis::RedisError::from((redis::ErrorKind::IoError, "connect timed out"))
                    })??;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match connected {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(250);
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let event = message
                        .get_channel_name()
                        .strip_prefix(&prefix)
                        .and_then(decode);
                    if let Some(event) = event {
                        sender.send(event);
                    }
                }
                tracing::warn!("Redis event subscription closed; reconnecting");
            }
            Err(e) => {
                crate::telemetry::redis_error("subscribe");
                tracing::warn!(error = %e, "cannot subscribe to Redis events; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Forwards PostgreSQL notifications to the local channel; ends when the pool closes.
async fn listen_postgres(pool: sea_orm::sqlx::PgPool, sender: Forward) {
    use sea_orm::sqlx::postgres::PgListener;
    let mut backoff = Duration::from_millis(250);
    loop {
        if pool.is_closed() {
            return;
        }
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(PG_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        }
        .await;
        match listener {
            Ok(mut listener) => {
                backoff = Duration::from_millis(250);
                loop {
                    match listener.recv().await {
                        Ok(notification) => {
                            if let Some(event) = decode(notification.payload()) {
                                sender.send(event);
                            }
                        }
                        Err(sea_orm::sqlx::Error::PoolClosed) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "PostgreSQL event listener failed; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(sea_orm::sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for events; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

impl Hub {
    /// Announces new rows for `tenant` on `topic`. Call after the writing transaction committed.
    /// Best effort: a lost notification only delays subscribers until their next tick. When the
    /// shared bus fails, this process's own subscribers are still woken.
    pub async fn publish(&self, topic: Topic, tenant: &TenantId) {
        let payload = encode(topic, tenant.as_str());
        let local = || {
            self.dispatch(Event {
                topic,
                tenant: tenant.as_str().into(),
            })
        };
        if let Some(redis) = &self.redis {
            let channel = redis.key(&["events", &payload]);
            let sent = async {
                let mut connection = redis.connection().await.map_err(|e| e.message())?;
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg("")
                    .query_async::<i64>(&mut connection)
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            if let Err(e) = sent {
                crate::telemetry::redis_error("publish");
                tracing::warn!(error = %e, "publishing an event to Redis failed");
                local();
            }
        } else if crate::db::is_postgres(&self.db) {
            let statement = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [PG_CHANNEL.into(), payload.into()],
            );
            if let Err(e) = self.db.execute_raw(statement).await {
                tracing::warn!(error = %e, "NOTIFY for an event failed");
                local();
            }
        } else {
            local();
        }
    }

    /// Wake-ups for `tenant` on `topic`: one item per notification (coalesced) and one per tick.
    pub fn wakeups(&self, topic: Topic, tenant: &TenantId) -> impl Stream<Item = ()> {
        self.wakeups_of(vec![topic], tenant)
    }

    /// As [`Hub::wakeups`], on a change to any of `topics` (a feed merging several lists).
    pub fn wakeups_of(&self, topics: Vec<Topic>, tenant: &TenantId) -> impl Stream<Item = ()> {
        self.ensure_listener();
        let mut receiver = self.local.subscribe();
        let tenant: Arc<str> = tenant.as_str().into();
        async_stream::stream! {
            // A random phase, so subscriptions opened together do not all re-read at once.
            let phase = TICK.mul_f64(rand::random::<f64>());
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    received = receiver.recv() => match received {
                        Ok(event) if topics.contains(&event.topic) && event.tenant == tenant => {
                            // Coalesce whatever else is already queued.
                            while receiver.try_recv().is_ok() {}
                            yield ();
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => yield (),
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tick.tick() => yield (),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        for topic in Topic::ALL {
            let event = decode(&encode(topic, "acme:eu")).unwrap();
            assert_eq!(event.topic, topic);
            assert_eq!(&*event.tenant, "acme:eu");
        }
        assert!(decode("nonsense").is_none());
        assert!(decode("unknown:acme").is_none());
    }
}
