//! The live tail behind every subscription: read the rows after a cursor with the list's own
//! keyset query, yield them oldest first, wait for a wake-up (`crate::events`), repeat.
//!
//! Catch-up after `after: cursor` and live delivery are this one loop, so a subscriber sees every
//! row once and in list order. Rows ordered by `(created_at, id)` are only delivered once they
//! are [`SETTLE`] old: a writer stamps `created_at` before its transaction commits, so a row can
//! become visible after a younger one; tailing past it would skip it for good. Holding the tail a
//! short settle delay behind the clock keeps delivery in cursor order (so a resume cursor is
//! exact) at the price of that much latency. A row whose transaction commits more than
//! `SETTLE` after its timestamp is still in the list but is not delivered live.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use crate::auth::TenantId;
use crate::error::AppResult;
use crate::events::Topic;
use crate::state::AppState;

/// How far behind the clock the tail of a time-ordered feed stays.
pub const SETTLE: Duration = Duration::from_millis(1000);

/// Rows read per statement while catching up.
const BATCH: u64 = 100;

/// One subscribable list: its keyset read forward from a cursor.
#[async_trait::async_trait]
pub trait Feed: Send + Sync + 'static {
    type Row: Send + 'static;

    /// Up to `limit` rows strictly after `cursor` (from the very first row when `None`), oldest
    /// first, each with its list cursor. A cursor of another list or filter is `BAD_CURSOR`.
    async fn after(
        &self,
        state: &AppState,
        cursor: Option<&str>,
        limit: u64,
    ) -> AppResult<Vec<(String, Self::Row)>>;

    /// The cursor of the newest row now, if any: where a subscription without `after` starts.
    async fn newest(&self, state: &AppState) -> AppResult<Option<String>>;

    /// The row's timestamp when the feed is ordered by time (rows younger than [`SETTLE`]
    /// wait); `None` for feeds ordered otherwise (trace steps, by step index).
    fn recorded_at(row: &Self::Row) -> Option<DateTime<Utc>>;
}

/// Starts a tail of `feed` for `tenant`, woken by changes to `topics`: after `after` (checked now, so a bad cursor fails the
/// subscription at once) or, without it, after the newest row at this moment.
pub async fn start<F: Feed>(
    state: AppState,
    topics: &[Topic],
    tenant: &TenantId,
    feed: F,
    after: Option<String>,
) -> AppResult<impl Stream<Item = (String, F::Row)> + Send + 'static> {
    // Listen before reading, so nothing committed in between waits for a tick.
    let wake = Box::pin(state.events.wakeups_of(topics.to_vec(), tenant));
    let position = {
        let _permit = state.events.read_permit().await;
        match after {
            Some(cursor) => {
                feed.after(&state, Some(&cursor), 1).await?;
                Some(cursor)
            }
            None => feed.newest(&state).await?,
        }
    };
    Ok(tail(state, feed, wake, position))
}

fn tail<F: Feed>(
    state: AppState,
    feed: F,
    mut wake: impl Stream<Item = ()> + Send + Unpin + 'static,
    mut position: Option<String>,
) -> impl Stream<Item = (String, F::Row)> + Send + 'static {
    async_stream::stream! {
        loop {
            // Read until caught up, or until the next row is too young to deliver.
            let mut held: Option<Duration> = None;
            loop {
                let permit = state.events.read_permit().await;
                let read = feed.after(&state, position.as_deref(), BATCH).await;
                drop(permit);
                let rows = match read {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e.message(), "subscription read failed; retrying on the next wake-up");
                        break;
                    }
                };
                let full = rows.len() as u64 == BATCH;
                let horizon = Utc::now() - SETTLE;
                for (cursor, row) in rows {
                    if let Some(at) = F::recorded_at(&row) {
                        if at > horizon {
                            held = Some((at - horizon).to_std().unwrap_or_default());
                            break;
                        }
                    }
                    position = Some(cursor.clone());
                    yield (cursor, row);
                }
                if held.is_some() || !full {
                    break;
                }
            }
            let woke = match held {
                Some(wait) => tokio::select! {
                    woke = wake.next() => woke.is_some(),
                    _ = tokio::time::sleep(wait.min(crate::events::TICK)) => true,
                },
                None => wake.next().await.is_some(),
            };
            if !woke {
                return;
            }
        }
    }
}
