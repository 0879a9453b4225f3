//! Per-key rate limit in complexity points per minute (docs/api.md §8, §9).
//!
//! After admission, a request's complexity (the same figure the complexity limit checks, lists
//! costed by `first`; computed by `admission::cost`) is charged to its API key's window: fixed windows of one UTC minute,
//! keyed by the sha256 of the presented key, so no lookup is needed before charging. A request
//! that would exceed the limit is refused whole with `RATE_LIMITED` and charges nothing. The
//! counters live in Redis (an atomic Lua script) or, without Redis, in `rate_limit_windows`,
//! so every server process shares them. If the counter store is down the request is served
//! (the limit protects capacity; refusing all traffic when Redis blinks would be worse) and a
//! warning is logged. Requests without a key are not charged: they can only introspect.

use async_graphql::{ErrorExtensionValues, ServerError};
use entity::rate_limit_windows::{Column, Entity};
use redis::Script;
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IdenStatic, QueryFilter, QuerySelect};

use crate::auth::RequestAuth;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The window a request was charged to, for the `RateLimit-*` response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset: u64,
    pub refused: bool,
}

/// Charges a request's `points` (its complexity, computed at admission) to the caller's
/// window. `None` when nothing was charged: the limit is off, the request presents no key, or
/// the counter store is down (the request is then served and a warning logged). Transports call
/// it after admission and before execution; a refused window means the request must not run.
pub async fn charge_request(
    state: &AppState,
    auth: &RequestAuth,
    points: u64,
) -> Option<RateWindow> {
    let limit = state.config.limits.rate_limit_per_minute;
    if limit == 0 {
        return None;
    }
    let bucket = auth.bucket()?;
    match charge(state, &bucket, points.max(1), limit).await {
        Ok(window) => Some(window),
        Err(err) => {
            tracing::warn!(error = ?err, "rate-limit counter unavailable; request served");
            None
        }
    }
}

/// The error a refused request answers with (`RATE_LIMITED`, with `retryAfter` in seconds).
pub fn refusal(window: &RateWindow, points: u64) -> ServerError {
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

/// Adds `points` to the current window unless that would pass `limit`.
pub async fn charge(
    state: &AppState,
    bucket: &str,
    points: u64,
    limit: u64,
) -> AppResult<RateWindow> {
    let now = chrono::Utc::now().timestamp();
    let window_start = now - now.rem_euclid(60);
    let reset = (window_start + 60 - now) as u64;
    let (used, refused) = match &state.redis {
        Some(link) => {
            let mut conn = link.connection().await?;
            let key = link.key(&["rl", bucket, &window_start.to_string()]);
            let (used, admitted): (u64, u64) = Script::new(CHARGE)
                .key(key)
                .arg(points)
                .arg(limit)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| AppError::Unavailable(format!("Redis: {e}")))?;
            (used, admitted == 0)
        }
        None => charge_in_database(state, bucket, window_start, points, limit).await?,
    };
    Ok(RateWindow {
        limit,
        remaining: limit.saturating_sub(used),
        reset,
        refused,
    })
}

/// Returns {points used in the window, 1 if admitted else 0}.
const CHARGE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local points = tonumber(ARGV[1])
if used + points > tonumber(ARGV[2]) then return {used, 0} end
used = redis.call('INCRBY', KEYS[1], points)
redis.call('EXPIRE', KEYS[1], 120)
return {used, 1}
";

async fn charge_in_database(
    state: &AppState,
    bucket: &str,
    window_start: i64,
    points: u64,
    limit: u64,
) -> AppResult<(u64, bool)> {
    use sea_orm::sea_query::ExprTrait;

    let db = &state.db;
    let (points, limit) = (points as i64, limit as i64);
    // The conditional upsert admits the request and counts it in one statement; no row back
    // means the window is full.
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
    let admitted = db.query_one(&upsert).await?;
    if window_start % 600 == 0 {
        // Once in a while (any process), forget windows older than the previous one.
        Entity::delete_many()
            .filter(Column::WindowStart.lt(window_start - 60))
            .exec(db)
            .await?;
    }
    match admitted {
        Some(row) => {
            let used: i64 = row.try_get("", Column::Points.as_str())?;
            Ok((used as u64, false))
        }
        None => {
            let used: Option<i64> = Entity::find_by_id((bucket.to_owned(), window_start))
                .select_only()
                .column(Column::Points)
                .into_tuple()
                .one(db)
                .await?;
            Ok((used.unwrap_or(0) as u64, true))
        }
    }
}
