//! Per-key rate limit in complexity points per minute (docs/api.md §8, §9).
//!
//! After admission, a request's complexity (the same figure the complexity limit checks, lists
//! costed by `first`; computed by `admission::cost`) is charged to its API key's window: fixed
//! windows of one UTC minute, keyed by the sha256 of the presented key, so no lookup is needed
//! before charging. The limit is the key's own when it has one (`api_keys.rate_limit_per_minute`,
//! carried in the resolved principal), else the server's. A request that would exceed the limit
//! is refused whole with `RATE_LIMITED` and charges nothing. The counters live in Redis (an atomic Lua script) or, without Redis, in
//! `rate_limit_windows`, so every server process shares them. If the counter store is down the
//! request is served (the limit protects capacity; refusing all traffic when Redis blinks would
//! be worse) and a warning is logged. Requests without a key are not charged: they can only
//! introspect.
//!
//! A round trip per request is a large share of a cheap request (a_newest lost ~12 % of its
//! throughput to the Redis script, ~30 % to the SQL upsert), so a process *leases* points: when
//! its local lease for a key runs out it reserves `limit / 64` points (at least the request's
//! cost; in Redis at most a quarter of what the window has left) in one atomic step of the
//! shared counter, and spends the lease locally. Reserved points count as used, so N processes
//! together never admit more than the limit; the price is that a key can be refused while other
//! processes still hold unspent leases, at most N × `limit / 64` points early. With one process
//! the `RateLimit-Remaining` figure is exact; with several it does not see what the others spent
//! from their leases since its last reservation (docs/writes.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::{ErrorExtensionValues, ServerError};
use entity::rate_limit_windows::{Column, Entity};
use redis::Script;
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IdenStatic, QueryFilter,
    QuerySelect,
};

use crate::auth::RequestAuth;
use crate::error::{AppError, AppResult};
use crate::redis_link::RedisLink;

/// A lease is this fraction of the limit (or the request's cost, if larger).
const LEASE_FRACTION: u64 = 64;
/// Past this many keys, leases of finished windows are dropped when a lease is taken.
const LEASES_KEPT: usize = 1024;

/// The window a request was charged to, for the `RateLimit-*` response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset: u64,
    pub refused: bool,
}

/// The shared counters and this process's leases on them.
pub struct RateLimiter {
    limit: u64,
    db: DatabaseConnection,
    redis: Option<Arc<RedisLink>>,
    leases: Mutex<HashMap<String, Lease>>,
}

/// Points reserved from one key's shared window and not spent yet by this process.
#[derive(Debug, Clone, Copy)]
struct Lease {
    window_start: i64,
    unspent: u64,
    /// The shared counter (every process's spending and leases) at the last reservation.
    shared_used: u64,
}

/// What the shared counter answered to a reservation.
struct Reservation {
    /// Points reserved for this process; 0 when the request was refused.
    granted: u64,
    /// The counter after the reservation.
    used: u64,
}

impl RateLimiter {
    /// `limit` points per key per minute unless the key has its own (0: off), counted in Redis when there is one, else in
    /// the database.
    pub fn new(limit: u64, db: DatabaseConnection, redis: Option<Arc<RedisLink>>) -> Self {
        RateLimiter {
            limit,
            db,
            redis,
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// Charges a request's `points` (its complexity, computed at admission) to the caller's
    /// window. `None` when nothing was charged: the limit is off, the request presents no
    /// key, or the counter store is down (the request is then served and a warning logged).
    /// Transports call it after admission and before execution; a refused window means the
    /// request must not run.
    /// The limit is the key's own when it has one (carried in its resolved principal, so no
    /// lookup), else the server's.
    pub async fn charge_request(&self, auth: &RequestAuth, points: u64) -> Option<RateWindow> {
        let limit = auth
            .resolved()
            .and_then(|principal| principal.rate_limit_per_minute)
            .unwrap_or(self.limit);
        if limit == 0 {
            return None;
        }
        let bucket = auth.bucket()?;
        match self.charge(&bucket, points.max(1), limit).await {
            Ok(window) => Some(window),
            Err(err) => {
                tracing::warn!(error = ?err, "rate-limit counter unavailable; request served");
                None
            }
        }
    }

    /// Spends `points` from this process's lease on the current window of a key allowed
    /// `limit` points a minute, reserving more from the shared counter when the lease does not
    /// cover them.
    pub async fn charge(&self, bucket: &str, points: u64, limit: u64) -> AppResult<RateWindow> {
        let now = chrono::Utc::now().timestamp();
        let window_start = now - now.rem_euclid(60);
        let reset = (window_start + 60 - now) as u64;
        let unspent = match self.charge_locally(bucket, window_start, points, limit, reset) {
            Ok(window) => return Ok(window),
            Err(unspent) => unspent,
        };
        let reservation = if points > limit {
            // No window can admit it; the counter is read only for the headers.
            Reservation {
                granted: 0,
                used: self.used(bucket, window_start).await?,
            }
        } else {
            let need = points - unspent;
            let lease = need.max(limit / LEASE_FRACTION).min(limit);
            self.reserve(bucket, window_start, need, lease, limit)
                .await?
        };

        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.len() >= LEASES_KEPT {
            leases.retain(|_, lease| lease.window_start == window_start);
        }
        let fresh = Lease {
            window_start,
            unspent: 0,
            shared_used: 0,
        };
        let lease = leases.entry(bucket.to_owned()).or_insert(fresh);
        if lease.window_start != window_start {
            *lease = fresh;
        }
        lease.unspent += reservation.granted;
        lease.shared_used = lease.shared_used.max(reservation.used);
        // Another task of this process may have spent from the lease or added to it meanwhile.
        let refused = lease.unspent < points;
        if !refused {
            lease.unspent -= points;
        }
        Ok(window(lease, limit, reset, refused))
    }

    /// Charges `points` without the shared counter when this process knows the answer: its
    /// lease on `window_start` covers them, or the lease and all the window has left cannot.
    /// Otherwise returns what the lease still holds.
    fn charge_locally(
        &self,
        bucket: &str,
        window_start: i64,
        points: u64,
        limit: u64,
        reset: u64,
    ) -> Result<RateWindow, u64> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lease) = leases
            .get_mut(bucket)
            .filter(|lease| lease.window_start == window_start)
        else {
            return Err(0);
        };
        if lease.unspent >= points {
            lease.unspent -= points;
            return Ok(window(lease, limit, reset, false));
        }
        // `shared_used` only grows within a window, so what it leaves is an upper bound.
        let at_most_left = lease.unspent + limit.saturating_sub(lease.shared_used);
        if points > at_most_left {
            return Ok(window(lease, limit, reset, true));
        }
        Err(lease.unspent)
    }

    /// Reserves `lease` points of the shared window for a request that needs `need` more than
    /// the lease holds, or fewer (never fewer than `need`) when the window is nearly spent, or
    /// none when not even `need` fits. Redis: [`RESERVE`]. The database: the whole lease if the
    /// window has room for it, else just the need.
    async fn reserve(
        &self,
        bucket: &str,
        window_start: i64,
        need: u64,
        lease: u64,
        limit: u64,
    ) -> AppResult<Reservation> {
        if let Some(link) = &self.redis {
            let mut conn = link.connection().await?;
            let (used, granted): (u64, u64) = RESERVE
                .key(window_key(link, bucket, window_start))
                .arg(need)
                .arg(lease)
                .arg(limit)
                .invoke_async(&mut conn)
                .await
                .map_err(redis_unavailable)?;
            return Ok(Reservation { granted, used });
        }
        let db = &self.db;
        if window_start % 600 == 0 {
            // Once in a while (any process), forget windows older than the previous one.
            Entity::delete_many()
                .filter(Column::WindowStart.lt(window_start - 60))
                .exec(db)
                .await?;
        }
        // The lease, then (if it is larger) just the need.
        for granted in std::iter::once(lease).chain((lease > need).then_some(need)) {
            if let Some(used) = add_points(db, bucket, window_start, granted, limit).await? {
                return Ok(Reservation { granted, used });
            }
        }
        let used = stored_points(db, bucket, window_start).await?;
        Ok(Reservation { granted: 0, used })
    }

    /// The shared counter of one window, without charging it.
    async fn used(&self, bucket: &str, window_start: i64) -> AppResult<u64> {
        match &self.redis {
            Some(link) => {
                let mut conn = link.connection().await?;
                let used: Option<u64> = redis::cmd("GET")
                    .arg(window_key(link, bucket, window_start))
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_unavailable)?;
                Ok(used.unwrap_or(0))
            }
            None => stored_points(&self.db, bucket, window_start).await,
        }
    }
}

fn window(lease: &Lease, limit: u64, reset: u64, refused: bool) -> RateWindow {
    RateWindow {
        limit,
        remaining: (limit + lease.unspent).saturating_sub(lease.shared_used),
        reset,
        refused,
    }
}

/// The error a refused request answers with (`RATE_LIMITED`, with `retryAfter` in seconds).
pub fn refusal(window: &RateWindow, points: u64) -> ServerError {
    crate::telemetry::rate_limit_refused();
    let mut error = ServerError::new(
        format!(
            "rate limit exceeded: this API key may spend {} complexity points per minute and \
             this request costs {}; retry in {} s",
            window.limit,
            points.max(1),
            window.reset
        ),
        None,
    );
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", "RATE_LIMITED");
    extensions.set("retryAfter", window.reset);
    error.extensions = Some(extensions);
    error
}

/// The Redis key of one bucket's window.
fn window_key(link: &RedisLink, bucket: &str, window_start: i64) -> String {
    link.key(&["rl", bucket, &window_start.to_string()])
}

fn redis_unavailable(err: redis::RedisError) -> AppError {
    crate::telemetry::redis_error("rate_limit");
    AppError::Unavailable(format!("Redis: {err}"))
}

/// Reserves `ARGV[2]` points (the lease) for a request that needs `ARGV[1]` more points than
/// the process's lease holds: at most a quarter of what the window has left, never less than
/// the need; returns {points used in the window, points reserved (0: refused)}. Built once:
/// `Script::new` hashes the source.
static RESERVE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local need = tonumber(ARGV[1])
local left = tonumber(ARGV[3]) - used
if need > left then return {used, 0} end
local grant = math.max(need, math.min(tonumber(ARGV[2]), math.floor(left / 4)))
used = redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], 120)
return {used, grant}
",
    )
});

/// Adds `points` to the window unless that would pass `limit`; the new total, or `None`.
async fn add_points(
    db: &DatabaseConnection,
    bucket: &str,
    window_start: i64,
    points: u64,
    limit: u64,
) -> AppResult<Option<u64>> {
    use sea_orm::sea_query::ExprTrait;

    let (points, limit) = (points as i64, limit as i64);
    // The conditional upsert admits and counts in one statement; no row back means the window
    // has no room. A first charge of the window inserts (callers never ask for more than the
    // limit).
    let stored = Expr::col((Entity, Column::Points));
    let charged = stored
        .clone()
        .add(Expr::col((Alias::new("excluded"), Column::Points)));
    let upsert = Query::insert()
        .into_table(Entity)
        .columns([Column::Bucket, Column::WindowStart, Column::Points])
        .values_panic([bucket.into(), window_start.into(), points.into()])
        .on_conflict(
            OnConflict::columns([Column::Bucket, Column::WindowStart])
                .value(Column::Points, charged.clone())
                .action_and_where(charged.lte(limit))
                .to_owned(),
        )
        .returning_col(Column::Points)
        .to_owned();
    match db.query_one(&upsert).await? {
        Some(row) => {
            let used: i64 = row.try_get("", Column::Points.as_str())?;
            Ok(Some(used as u64))
        }
        None => Ok(None),
    }
}

async fn stored_points(db: &DatabaseConnection, bucket: &str, window_start: i64) -> AppResult<u64> {
    let used: Option<i64> = Entity::find_by_id((bucket.to_owned(), window_start))
        .select_only()
        .column(Column::Points)
        .into_tuple()
        .one(db)
        .await?;
    Ok(used.unwrap_or(0) as u64)
}
