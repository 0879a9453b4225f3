//! Exact run counts from the rollups (`super::rollups`): `llmRuns { totalCount }` whose filter
//! names only rollup keys (provider, model, status, source, synthetic) and a creation-time
//! window sums the signed units of the window's cover (`super::cover`: months, days, hours)
//! and counts rows only in the cover's partial hours, so the answer is exact and its cost no
//! longer grows with the tenant's history. Any other filter counts rows. See docs/console.md.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryFilter, QuerySelect, QueryTrait};

use super::cover::Cover;
use super::{rollups, store, RunFilter};
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::pagination::RollupCount;

/// How often a process folds the PostgreSQL deltas of each rollup key into one row.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

/// A count of the tenant's runs matching `filter` up to `as_of` from the rollups, or `None`
/// when they cannot answer it ([`crate::pagination::Listed::rollup_count`]).
pub fn rollup_count(
    db: &DatabaseConnection,
    tenant: &TenantId,
    filter: &RunFilter,
    as_of: Option<DateTime<Utc>>,
) -> Option<RollupCount> {
    if !filter.on_rollup_keys() {
        return None;
    }
    let (start, end) = rollups::created_span(filter, as_of);
    let cover = Cover::of(start, end);
    let (db, tenant, filter) = (db.clone(), tenant.clone(), filter.clone());
    Some(Box::new(move || {
        let (db, tenant, filter, cover) =
            (db.clone(), tenant.clone(), filter.clone(), cover.clone());
        Box::pin(async move { count(&db, &tenant, &filter, &cover).await })
    }))
}

async fn count(
    db: &DatabaseConnection,
    tenant: &TenantId,
    filter: &RunFilter,
    cover: &Cover,
) -> AppResult<i64> {
    let keyed = !filter.names_no_rollup_key();
    // `SELECT (units) + (row ranges)`: one statement, each part a sum that is 0 over no rows.
    let mut parts = Vec::new();
    if !cover.units.is_empty() {
        let units = rollups::filtered(tenant, filter)
            .filter(cover.rollup_condition(tenant, keyed))
            .select_only()
            .column_as(cover.signed_runs(tenant, keyed), "n");
        parts.push(units.into_query());
    }
    if !cover.rows.is_empty() {
        // The ranges reach outside the window: only the key conditions apply.
        let rows = store::filtered(db.get_database_backend(), tenant, &filter.rollup_keys())
            .filter(cover.row_condition())
            .select_only()
            .column_as(cover.signed_row_count(), "n");
        parts.push(rows.into_query());
    }
    let Some(total) = parts
        .into_iter()
        .map(|part| Expr::SubQuery(None, Box::new(part.into())))
        .reduce(|a, b| a.add(b))
    else {
        return Ok(0);
    };
    let statement = Query::select().expr_as(total, "n").to_owned();
    let row = db
        .query_one_raw(db.get_database_backend().build(&statement))
        .await?;
    Ok(match row {
        Some(row) => row.try_get_by_index::<i64>(0)?,
        None => 0,
    })
}

/// Folds the rollups' deltas (`super::rollups::compact`) every minute, on PostgreSQL.
pub fn spawn_compaction(db: DatabaseConnection) {
    if !crate::db::is_postgres(&db) {
        return;
    }
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + COMPACT_EVERY;
        let mut every = tokio::time::interval_at(first, COMPACT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // Two processes folding the same rows may deadlock; one loses and tries again.
            if let Err(err) = super::rollups::compact(&db).await {
                tracing::debug!(error = ?err, "run rollups not compacted this time");
            }
        }
    });
}
