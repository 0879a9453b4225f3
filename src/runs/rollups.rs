//! `llm_run_rollups`: runs, cost and tokens per tenant, UTC hour and UTC day and (provider,
//! model, status, source, synthetic), kept by triggers on `llm_run_records` whatever writes them
//! (migration `m20261205_000000_run_console_reads`).
//!
//! A time window splits into whole UTC days (summed from the day rows), whole hours at its
//! edges (hour rows) and at most two partial hours (read from the runs themselves, an index
//! range of under an hour each), so a facet or histogram over 30 days reads a few thousand
//! rollup rows, not the tenant's runs. See docs/console.md.

use chrono::{DateTime, Duration, DurationRound, Utc};
use entity::llm_run_records::Column as R;
use entity::llm_run_rollups::{Column as U, Entity as Rollups};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select};

use super::cover::{Cover, Units};
use super::RunFilter;
use crate::auth::TenantId;
use crate::error::AppResult;

const HOUR_KEY: &str = "%Y-%m-%dT%H";
const DAY_KEY: &str = "%Y-%m-%d";

/// A half-open time range `[start, end)`; `None` is unbounded on that side.
pub type Span = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// How a window `[start, end)` is read: rollup keys for the whole days and whole hours inside
/// it, rows for the partial hours at its edges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowPlan {
    /// Whole UTC days, as an inclusive range of day keys (either side open).
    pub days: Option<(Option<String>, Option<String>)>,
    /// Whole UTC hours, as inclusive ranges of hour keys (either side open).
    pub hours: Vec<(Option<String>, Option<String>)>,
    /// Partial hours, read row by row: `[start, end)`.
    pub rows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

fn floor(at: DateTime<Utc>, unit: Duration) -> DateTime<Utc> {
    at.duration_trunc(unit).unwrap_or(at)
}

fn ceil(at: DateTime<Utc>, unit: Duration) -> DateTime<Utc> {
    let down = floor(at, unit);
    if down == at {
        at
    } else {
        down + unit
    }
}

/// Inclusive key range of the units in `[start, end)` (open sides stay open).
fn keys(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    unit: Duration,
    format: &str,
) -> Option<(Option<String>, Option<String>)> {
    if let (Some(s), Some(e)) = (start, end) {
        if s >= e {
            return None;
        }
    }
    Some((
        start.map(|s| s.format(format).to_string()),
        end.map(|e| (e - unit).format(format).to_string()),
    ))
}

impl WindowPlan {
    /// The plan of `[start, end)`; `days` false reads every whole hour from the hour rows (what a
    /// histogram needs: one row per hour).
    pub fn of(span: Span, days: bool) -> WindowPlan {
        let (hour, day) = (Duration::hours(1), Duration::days(1));
        let (start, end) = span;
        let mut plan = WindowPlan::default();
        let whole_start = start.map(|s| ceil(s, hour));
        let whole_end = end.map(|e| floor(e, hour));
        if let (Some(s), Some(e)) = (whole_start, whole_end) {
            if s >= e {
                if let (Some(a), Some(b)) = (start, end) {
                    if a < b {
                        plan.rows.push((a, b));
                    }
                }
                return plan;
            }
        }
        if let (Some(a), Some(s)) = (start, whole_start) {
            if a < s {
                plan.rows.push((a, s));
            }
        }
        if let (Some(e), Some(b)) = (whole_end, end) {
            if e < b {
                plan.rows.push((e, b));
            }
        }
        let day_start = whole_start.map(|s| ceil(s, day));
        let day_end = whole_end.map(|e| floor(e, day));
        let has_days = days
            && match (day_start, day_end) {
                (Some(s), Some(e)) => s < e,
                _ => true,
            };
        if !has_days {
            plan.hours
                .extend(keys(whole_start, whole_end, hour, HOUR_KEY));
            return plan;
        }
        plan.days = keys(day_start, day_end, day, DAY_KEY);
        if let (Some(s), Some(d)) = (whole_start, day_start) {
            plan.hours.extend(keys(Some(s), Some(d), hour, HOUR_KEY));
        }
        if let (Some(d), Some(e)) = (day_end, whole_end) {
            plan.hours.extend(keys(Some(d), Some(e), hour, HOUR_KEY));
        }
        plan
    }

    /// The tenant's rollup rows of the plan's days and hours: keyed rows, or the totals rows
    /// (`totals`, grains `d`/`h`) when the filter names no rollup key. Each arm names the tenant,
    /// so PostgreSQL reads each range from the `(tenant_id, grain, bucket)` index.
    pub fn rollup_condition(&self, tenant: &TenantId, totals: bool) -> Condition {
        let (day, hour) = if totals { ("d", "h") } else { ("D", "H") };
        let range = |grain: &str, (low, high): &(Option<String>, Option<String>)| {
            let mut c = Condition::all()
                .add(U::TenantId.eq(tenant.as_str()))
                .add(U::Grain.eq(grain));
            if let Some(low) = low {
                c = c.add(U::Bucket.gte(low.as_str()));
            }
            if let Some(high) = high {
                c = c.add(U::Bucket.lte(high.as_str()));
            }
            c
        };
        let mut any = Condition::any();
        if let Some(days) = &self.days {
            any = any.add(range(day, days));
        }
        for hours in &self.hours {
            any = any.add(range(hour, hours));
        }
        // No days or hours: `Condition::any()` of nothing is false, as wanted.
        any
    }

    pub fn reads_rollups(&self) -> bool {
        self.days.is_some() || !self.hours.is_empty()
    }
}

impl Cover {
    /// The rollup rows of one term: the tenant's rows of its grain and bucket range.
    fn unit_condition(tenant: &TenantId, units: &Units, keyed: bool) -> Condition {
        let mut c = Condition::all()
            .add(U::TenantId.eq(tenant.as_str()))
            .add(U::Grain.eq(units.grain.column_value(keyed)));
        let (first, last) = units.keys();
        if let Some(first) = first {
            c = c.add(U::Bucket.gte(first));
        }
        if let Some(last) = last {
            c = c.add(U::Bucket.lte(last));
        }
        c
    }

    /// The tenant's rollup rows of the cover's units: keyed rows, or the totals rows when
    /// `keyed` is false. Each arm names the tenant and one grain, so PostgreSQL reads each as a
    /// range of the `(tenant_id, grain, bucket)` index.
    pub fn rollup_condition(&self, tenant: &TenantId, keyed: bool) -> Condition {
        self.units.iter().fold(Condition::any(), |any, u| {
            any.add(Self::unit_condition(tenant, u, keyed))
        })
    }

    /// `SUM(runs)` over the rollup rows of [`Cover::rollup_condition`], each signed by its term.
    pub fn signed_runs(&self, tenant: &TenantId, keyed: bool) -> Expr {
        let negative = self
            .units
            .iter()
            .filter(|u| u.sign < 0)
            .fold(Condition::any(), |any, u| {
                any.add(Self::unit_condition(tenant, u, keyed))
            });
        signed_sum(negative, Expr::col(U::Runs))
    }

    /// The runs of the cover's row ranges.
    pub fn row_condition(&self) -> Condition {
        self.rows.iter().fold(Condition::any(), |any, r| {
            any.add(R::CreatedAt.gte(r.start).and(R::CreatedAt.lt(r.end)))
        })
    }

    /// The count of the runs of [`Cover::row_condition`], each signed by its range.
    pub fn signed_row_count(&self) -> Expr {
        let negative = self
            .rows
            .iter()
            .filter(|r| r.sign < 0)
            .fold(Condition::any(), |any, r| {
                any.add(R::CreatedAt.gte(r.start).and(R::CreatedAt.lt(r.end)))
            });
        signed_sum(negative, Expr::val(1))
    }
}

/// `SUM(value)`, negated where `negative` holds, as a BIGINT (0 over no rows). Built from
/// functions, not custom SQL, whose placeholders differ between the backends.
fn signed_sum(negative: Condition, value: Expr) -> Expr {
    let summed: Expr = if negative.is_empty() {
        value
    } else {
        Expr::case(negative, value.clone().mul(-1))
            .finally(value)
            .into()
    };
    let total = Func::coalesce([Expr::from(Func::sum(summed)), Expr::val(0)]);
    Func::cast_as(total, "BIGINT").into()
}

/// The creation-time window of a filter and `asOf`, half-open.
pub fn created_span(filter: &RunFilter, as_of: Option<DateTime<Utc>>) -> Span {
    let upper = match (filter.created_before, as_of) {
        (Some(before), Some(as_of)) => Some(std::cmp::min(before, as_of)),
        (bound, None) | (None, bound) => bound,
    };
    (
        filter.created_after,
        upper.map(|u| u + Duration::microseconds(1)),
    )
}

/// Parses an hour key (`YYYY-MM-DDTHH`) back to its start.
pub fn hour_start(key: &str) -> Option<DateTime<Utc>> {
    crate::stats::key_start(key).filter(|_| key.len() == 13)
}

/// The tenant's rollup rows matching the filter's rollup keys (the caller checked
/// [`RunFilter::on_rollup_keys`]).
pub fn filtered(tenant: &TenantId, filter: &RunFilter) -> Select<Rollups> {
    let keys = KeyColumns {
        provider: U::Provider,
        model: U::Model,
        status: U::ExecutionStatus,
        source: U::Source,
        synthetic: U::IsSynthetic,
    };
    keys.narrow(
        Rollups::find().filter(U::TenantId.eq(tenant.as_str())),
        filter,
    )
}

/// The columns the rollups are keyed by, in a table that has them (the runs or the rollups):
/// one place applies the filter's conditions on them to both.
pub struct KeyColumns<C> {
    pub provider: C,
    pub model: C,
    pub status: C,
    pub source: C,
    pub synthetic: C,
}

impl<C: ColumnTrait> KeyColumns<C> {
    /// `select` narrowed by the filter's provider, model, status, source and synthetic
    /// conditions.
    pub fn narrow<E: EntityTrait<Column = C>>(
        &self,
        select: Select<E>,
        filter: &RunFilter,
    ) -> Select<E> {
        let mut q = select;
        for (column, value) in [
            (self.provider, &filter.provider),
            (self.model, &filter.model),
        ] {
            if let Some(v) = value {
                q = q.filter(column.eq(v.as_str()));
            }
        }
        let sets = [
            (self.provider, &filter.provider_in, &filter.provider_not_in),
            (self.model, &filter.model_in, &filter.model_not_in),
        ];
        for (column, any, none) in sets {
            if let Some(values) = any {
                q = q.filter(column.is_in(values.iter().map(String::as_str)));
            }
            if let Some(values) = none {
                q = q.filter(column.is_not_in(values.iter().map(String::as_str)));
            }
        }
        if let Some(statuses) = &filter.status {
            q = q.filter(self.status.is_in(statuses.iter().map(|s| s.as_str())));
        }
        if let Some(statuses) = &filter.status_not_in {
            q = q.filter(self.status.is_not_in(statuses.iter().map(|s| s.as_str())));
        }
        if let Some(v) = filter.source {
            q = q.filter(self.source.eq(v.as_str()));
        }
        if let Some(sources) = &filter.source_in {
            q = q.filter(self.source.is_in(sources.iter().map(|s| s.as_str())));
        }
        if let Some(sources) = &filter.source_not_in {
            q = q.filter(self.source.is_not_in(sources.iter().map(|s| s.as_str())));
        }
        if let Some(v) = filter.is_synthetic {
            q = q.filter(self.synthetic.eq(v));
        }
        q
    }
}

/// Folds the deltas of each rollup key that has several into one row, in one statement (see
/// `runs::counts::compact`, which does the same for the day counts). PostgreSQL only.
pub async fn compact(db: &impl ConnectionTrait) -> AppResult<u64> {
    let folded = db
        .execute_unprepared(
            "WITH folded AS (
                DELETE FROM llm_run_rollups
                WHERE (tenant_id, grain, bucket, provider, model, execution_status, source,
                        is_synthetic) IN (
                    SELECT tenant_id, grain, bucket, provider, model, execution_status, source,
                        is_synthetic
                    FROM llm_run_rollups
                    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 HAVING COUNT(*) > 1)
                RETURNING *)
            INSERT INTO llm_run_rollups
            SELECT tenant_id, grain, bucket, provider, model, execution_status, source,
                is_synthetic, SUM(runs), SUM(cost_cents), SUM(input_tokens), SUM(output_tokens)
            FROM folded
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 HAVING SUM(runs) <> 0
            ORDER BY 1, 2, 3, 4, 5, 6, 7, 8",
        )
        .await?;
    Ok(folded.rows_affected())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn range(a: &str, b: &str) -> Option<(Option<String>, Option<String>)> {
        Some((Some(a.into()), Some(b.into())))
    }

    #[test]
    fn a_window_is_days_hours_and_two_partial_hours() {
        let plan = WindowPlan::of((Some(at(3, 10, 30)), Some(at(7, 9, 15))), true);
        assert_eq!(plan.days, range("2026-11-04", "2026-11-06"));
        assert_eq!(
            plan.hours,
            vec![
                range("2026-11-03T11", "2026-11-03T23").unwrap(),
                range("2026-11-07T00", "2026-11-07T08").unwrap()
            ]
        );
        assert_eq!(
            plan.rows,
            vec![(at(3, 10, 30), at(3, 11, 0)), (at(7, 9, 0), at(7, 9, 15))]
        );
    }

    #[test]
    fn a_histogram_plan_reads_hours_only() {
        let plan = WindowPlan::of((Some(at(3, 0, 0)), Some(at(5, 0, 0))), false);
        assert_eq!(plan.days, None);
        assert_eq!(
            plan.hours,
            vec![range("2026-11-03T00", "2026-11-04T23").unwrap()]
        );
        assert!(plan.rows.is_empty());
    }

    #[test]
    fn short_and_open_windows() {
        let short = WindowPlan::of((Some(at(3, 10, 5)), Some(at(3, 10, 50))), true);
        assert_eq!(short.rows, vec![(at(3, 10, 5), at(3, 10, 50))]);
        assert!(!short.reads_rollups());
        let open = WindowPlan::of((None, Some(at(3, 10, 5))), true);
        assert_eq!(open.days, Some((None, Some("2026-11-02".into()))));
        assert_eq!(
            open.hours,
            vec![range("2026-11-03T00", "2026-11-03T09").unwrap()]
        );
        assert_eq!(open.rows, vec![(at(3, 10, 0), at(3, 10, 5))]);
        let all = WindowPlan::of((None, None), true);
        assert_eq!(all.days, Some((None, None)));
        assert!(all.hours.is_empty() && all.rows.is_empty());
    }
}
