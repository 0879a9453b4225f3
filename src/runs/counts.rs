//! Exact run counts from `llm_run_day_counts`: runs per tenant and UTC day, kept by triggers on
//! `llm_run_records` whatever writes them (migration `m20261204_020000_llm_run_day_counts`).
//!
//! `llmRuns { totalCount }` with no filter but a time window sums the whole days inside the
//! window and counts rows only for the partial days at its edges (an index range of at most
//! two days), so the answer is exact and its cost no longer grows with the tenant's history.
//! Any other filter (status, provider, …), or a window shorter than two days, counts rows as
//! before. See docs/domain.md §2.2.1.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use entity::llm_run_day_counts::{Column as D, Entity as DayCounts};
use entity::llm_run_records::{Column as R, Entity as Runs};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};

use super::RunFilter;
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::pagination::RollupCount;

/// How often a process folds the PostgreSQL deltas of each (tenant, day) into one row.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

/// The part of a time window the day counts answer, and its edges counted row by row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DayPlan {
    /// Whole days summed from the counts, inclusive; `None`: unbounded on that side.
    first_day: Option<NaiveDate>,
    last_day: Option<NaiveDate>,
    /// `[lower, start of first_day)`, counted row by row when the window starts mid-day.
    head: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// `[start of upper's day, upper]`, counted row by row.
    tail: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

impl DayPlan {
    /// The plan for `lower ≤ created_at ≤ upper`, or `None` when no whole day lies inside.
    fn of(lower: Option<DateTime<Utc>>, upper: Option<DateTime<Utc>>) -> Option<Self> {
        let (first_day, head) = match lower {
            None => (None, None),
            Some(lower) if lower == start_of(lower.date_naive()) => {
                (Some(lower.date_naive()), None)
            }
            Some(lower) => {
                let next = lower.date_naive().succ_opt()?;
                (Some(next), Some((lower, start_of(next))))
            }
        };
        let (last_day, tail) = match upper {
            None => (None, None),
            Some(upper) => {
                let day = upper.date_naive();
                (Some(day.pred_opt()?), Some((start_of(day), upper)))
            }
        };
        if let (Some(first), Some(last)) = (first_day, last_day) {
            if first > last {
                return None;
            }
        }
        Some(DayPlan {
            first_day,
            last_day,
            head,
            tail,
        })
    }
}

/// A count of the tenant's runs matching `filter` up to `as_of` from the day counts, or `None`
/// when they cannot answer it ([`crate::pagination::Listed::rollup_count`]).
pub fn rollup_count(
    db: &DatabaseConnection,
    tenant: &TenantId,
    filter: &RunFilter,
    as_of: Option<DateTime<Utc>>,
) -> Option<RollupCount> {
    if !filter.only_created_window() {
        return None;
    }
    let (created_after, created_before) = (&filter.created_after, &filter.created_before);
    let upper = match (*created_before, as_of) {
        (Some(before), Some(as_of)) => Some(before.min(as_of)),
        (bound, None) | (None, bound) => bound,
    };
    let plan = DayPlan::of(*created_after, upper)?;
    let (db, tenant) = (db.clone(), tenant.clone());
    Some(Box::new(move || {
        let (db, tenant) = (db.clone(), tenant.clone());
        Box::pin(async move { count(&db, &tenant, plan).await })
    }))
}

async fn count(db: &DatabaseConnection, tenant: &TenantId, plan: DayPlan) -> AppResult<i64> {
    let mut days = DayCounts::find().filter(D::TenantId.eq(tenant.as_str()));
    if let Some(first) = plan.first_day {
        days = days.filter(D::Day.gte(first.format("%Y-%m-%d").to_string()));
    }
    if let Some(last) = plan.last_day {
        days = days.filter(D::Day.lte(last.format("%Y-%m-%d").to_string()));
    }
    let whole_days: Option<i64> = days
        .select_only()
        .column_as(Expr::cust("CAST(COALESCE(SUM(runs), 0) AS BIGINT)"), "runs")
        .into_tuple()
        .one(db)
        .await?;
    let mut total = whole_days.unwrap_or(0);
    if let Some((from, until)) = plan.head {
        total += rows_between(db, tenant, from, until, false).await?;
    }
    if let Some((from, through)) = plan.tail {
        total += rows_between(db, tenant, from, through, true).await?;
    }
    Ok(total)
}

/// Runs with `from ≤ created_at < end` (`≤ end` when `inclusive`).
async fn rows_between(
    db: &DatabaseConnection,
    tenant: &TenantId,
    from: DateTime<Utc>,
    end: DateTime<Utc>,
    inclusive: bool,
) -> AppResult<i64> {
    let rows = Runs::find()
        .filter(R::TenantId.eq(tenant.as_str()))
        .filter(R::CreatedAt.gte(from))
        .filter(if inclusive {
            R::CreatedAt.lte(end)
        } else {
            R::CreatedAt.lt(end)
        });
    Ok(rows.count(db).await? as i64)
}

/// Folds the deltas of each (tenant, day) that has several into one row, in one statement:
/// readers see the rows before or after, never a mix, and a delta a writer appends meanwhile is
/// outside the statement's snapshot and stays. PostgreSQL only (SQLite keeps one row per day).
pub async fn compact(db: &impl ConnectionTrait) -> AppResult<u64> {
    // A data-modifying CTE, which the query builder cannot express.
    let folded = db
        .execute_unprepared(
            "WITH folded AS (
                DELETE FROM llm_run_day_counts
                WHERE (tenant_id, day) IN (
                    SELECT tenant_id, day FROM llm_run_day_counts
                    GROUP BY tenant_id, day HAVING COUNT(*) > 1)
                RETURNING tenant_id, day, runs)
            INSERT INTO llm_run_day_counts (tenant_id, day, runs)
            SELECT tenant_id, day, SUM(runs) FROM folded
            GROUP BY tenant_id, day HAVING SUM(runs) <> 0 ORDER BY tenant_id, day",
        )
        .await?;
    Ok(folded.rows_affected())
}

/// Compacts the day counts and the rollups (`super::rollups`) every minute, on PostgreSQL.
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
            if let Err(err) = compact(&db).await {
                tracing::debug!(error = ?err, "run day counts not compacted this time");
            }
            if let Err(err) = super::rollups::compact(&db).await {
                tracing::debug!(error = ?err, "run rollups not compacted this time");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn a_window_is_whole_days_and_two_partial_edges() {
        let plan = DayPlan::of(Some(at(3, 10, 0)), Some(at(7, 9, 30))).unwrap();
        assert_eq!(plan.first_day, Some(day(4)));
        assert_eq!(plan.last_day, Some(day(6)));
        assert_eq!(plan.head, Some((at(3, 10, 0), at(4, 0, 0))));
        assert_eq!(plan.tail, Some((at(7, 0, 0), at(7, 9, 30))));
    }

    #[test]
    fn a_window_starting_at_midnight_has_no_head() {
        let plan = DayPlan::of(Some(at(3, 0, 0)), None).unwrap();
        assert_eq!((plan.first_day, plan.last_day), (Some(day(3)), None));
        assert_eq!((plan.head, plan.tail), (None, None));
        let unbounded = DayPlan::of(None, None).unwrap();
        assert_eq!((unbounded.first_day, unbounded.last_day), (None, None));
    }

    #[test]
    fn a_window_without_a_whole_day_is_left_to_row_counts() {
        assert_eq!(DayPlan::of(Some(at(3, 10, 0)), Some(at(4, 9, 0))), None);
        assert_eq!(DayPlan::of(Some(at(3, 10, 0)), Some(at(3, 11, 0))), None);
        assert_eq!(DayPlan::of(Some(at(5, 0, 0)), Some(at(3, 0, 0))), None);
        assert!(DayPlan::of(Some(at(3, 0, 0)), Some(at(4, 0, 0))).is_some());
    }
}
