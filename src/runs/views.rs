//! Facets, aggregates and histograms over the runs a filter selects: the numbers a console's
//! filter dropdowns, summary cards and charts show beside the page (docs/console.md). Each is
//! exact and computed in SQL; facets and creation-time histograms read the rollups
//! (`super::rollups`) when the filter names only what they are keyed by.

use std::collections::HashMap;

use async_graphql::Enum;
use chrono::{DateTime, NaiveDateTime, Utc};
use entity::llm_run_records::{Column as R, Entity as Runs};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, QueryFilter, QuerySelect,
    QueryTrait, Select, Statement,
};

use super::rollups::{self, WindowPlan};
use super::store::filtered;
use super::RunFilter;
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::scalars::BigInt;
use crate::stats::{nearest_rank, Buckets, NumericStats};

/// What one query over the runs is about: the tenant's rows matching a filter, up to `asOf`.
#[derive(Clone)]
pub struct RunSet {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub filter: RunFilter,
    pub as_of: Option<DateTime<Utc>>,
}

/// The fields a run facet counts by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(name = "LlmRunFacetField")]
pub enum FacetField {
    Provider,
    Model,
    ExecutionStatus,
    Source,
    IsSynthetic,
}

/// The five keys as text, on the runs and on the rollups alike (same column names), in
/// [`FacetField::position`] order.
const KEY_VALUES: [&str; 5] = [
    "provider",
    "model",
    "execution_status",
    "source",
    "CASE WHEN is_synthetic THEN 'true' ELSE 'false' END",
];

impl FacetField {
    fn position(self) -> usize {
        match self {
            FacetField::Provider => 0,
            FacetField::Model => 1,
            FacetField::ExecutionStatus => 2,
            FacetField::Source => 3,
            FacetField::IsSynthetic => 4,
        }
    }
}

/// The timestamp a run histogram buckets by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "LlmRunTimeField")]
pub enum TimeField {
    #[default]
    CreatedAt,
    StartedAt,
    CompletedAt,
}

impl TimeField {
    fn column(self) -> R {
        match self {
            TimeField::CreatedAt => R::CreatedAt,
            TimeField::StartedAt => R::StartedAt,
            TimeField::CompletedAt => R::CompletedAt,
        }
    }
}

/// The numeric fields a run aggregate summarises, in `Aggregate` order.
pub const NUMERIC_FIELDS: [&str; 5] = [
    "cost_cents",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "duration_ms",
];

impl RunSet {
    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// The matching runs (filter and `asOf`).
    fn rows(&self) -> Select<Runs> {
        let select = filtered(self.backend(), &self.tenant, &self.filter);
        match self.as_of {
            Some(at) => select.filter(R::CreatedAt.lte(at)),
            None => select,
        }
    }

    /// The rows of the plan's partial hours (`[start, end)` each).
    fn edge_rows(&self, plan: &WindowPlan) -> Select<Runs> {
        let mut edges = Condition::any();
        for (start, end) in &plan.rows {
            edges = edges.add(R::CreatedAt.gte(*start).and(R::CreatedAt.lt(*end)));
        }
        filtered(self.backend(), &self.tenant, &self.filter).filter(edges)
    }

    /// Value → count of each of `fields` over the matching runs. One statement counts the runs
    /// per combination of all five keys (a few dozen rows), and every facet is summed from it.
    pub async fn facets(&self, fields: &[FacetField]) -> AppResult<Vec<Vec<(String, i64)>>> {
        let combos = if self.filter.on_rollup_keys() {
            let plan = WindowPlan::of(rollups::created_span(&self.filter, self.as_of), true);
            let mut combos = Vec::new();
            if plan.reads_rollups() {
                let select = rollups::filtered(&self.tenant, &self.filter)
                    .filter(plan.rollup_condition(&self.tenant, false))
                    .select_only();
                combos.extend(key_counts(&self.db, select, rollups::sum("runs")).await?);
            }
            if !plan.rows.is_empty() {
                let select = self.edge_rows(&plan).select_only();
                combos.extend(key_counts(&self.db, select, count_all()).await?);
            }
            combos
        } else {
            key_counts(&self.db, self.rows().select_only(), count_all()).await?
        };
        Ok(fields
            .iter()
            .map(|field| {
                let mut counts: HashMap<String, i64> = HashMap::new();
                for (keys, n) in &combos {
                    *counts.entry(keys[field.position()].clone()).or_default() += n;
                }
                counts.into_iter().collect()
            })
            .collect())
    }

    /// Count and cost per bucket of `field` over the matching runs.
    pub async fn histogram(
        &self,
        field: TimeField,
        buckets: &Buckets,
    ) -> AppResult<Vec<(i64, i64)>> {
        let mut totals = vec![(0i64, 0i64); buckets.len()];
        let column = field.column();
        let in_range = column.gte(buckets.from()).and(column.lt(buckets.to()));
        // No key named: the totals rows, one per hour.
        let all_keys = self.filter.names_no_rollup_key();
        let rollup_ready = field == TimeField::CreatedAt
            && self.filter.on_rollup_keys()
            && buckets.inner_bounds_on_hours();
        if !rollup_ready {
            let minutes = self
                .minute_totals(self.rows().filter(in_range), column)
                .await?;
            add_into(&mut totals, buckets, minutes);
            return Ok(totals);
        }
        let (after, before) = rollups::created_span(&self.filter, self.as_of);
        let start = after.map_or(buckets.from(), |a| std::cmp::max(a, buckets.from()));
        let end = before.map_or(buckets.to(), |b| std::cmp::min(b, buckets.to()));
        if start >= end {
            return Ok(totals);
        }
        let plan = WindowPlan::of((Some(start), Some(end)), false);
        if plan.reads_rollups() {
            let hours: Vec<(String, i64, i64)> = rollups::filtered(&self.tenant, &self.filter)
                .filter(plan.rollup_condition(&self.tenant, all_keys))
                .select_only()
                .column(entity::llm_run_rollups::Column::Bucket)
                .column_as(rollups::sum("runs"), "n")
                .column_as(rollups::sum("cost_cents"), "cost")
                .group_by(entity::llm_run_rollups::Column::Bucket)
                .into_tuple()
                .all(&self.db)
                .await?;
            let hours = hours
                .into_iter()
                .filter_map(|(key, n, cost)| Some((rollups::hour_start(&key)?, n, cost)));
            add_into(&mut totals, buckets, hours);
        }
        if !plan.rows.is_empty() {
            let minutes = self.minute_totals(self.edge_rows(&plan), column).await?;
            add_into(&mut totals, buckets, minutes);
        }
        Ok(totals)
    }

    /// (UTC minute, count, cost) of the rows of `select`, grouped by `column`'s minute.
    async fn minute_totals(
        &self,
        select: Select<Runs>,
        column: R,
    ) -> AppResult<Vec<(DateTime<Utc>, i64, i64)>> {
        let name = match column {
            R::StartedAt => "started_at",
            R::CompletedAt => "completed_at",
            _ => "created_at",
        };
        let minute = match self.backend() {
            DbBackend::Postgres => {
                format!("to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')")
            }
            _ => format!("replace(substr({name}, 1, 16), ' ', 'T')"),
        };
        let rows: Vec<(String, i64, i64)> = select
            .select_only()
            .column_as(Expr::cust(minute.clone()), "minute")
            .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "n")
            .column_as(rollups::sum("cost_cents"), "cost")
            .group_by(Expr::cust(minute))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, n, cost)| {
                let at = NaiveDateTime::parse_from_str(&key, "%Y-%m-%dT%H:%M").ok()?;
                Some((at.and_utc(), n, cost))
            })
            .collect())
    }

    /// The matching runs' count and the stats of each of [`NUMERIC_FIELDS`].
    pub async fn aggregate(&self) -> AppResult<(i64, Vec<NumericStats>)> {
        let backend = self.backend();
        let inner = self.rows().build(backend);
        let mut columns = vec!["CAST(COUNT(*) AS BIGINT)".to_owned()];
        for f in NUMERIC_FIELDS {
            columns.push(format!("CAST(COUNT({f}) AS BIGINT)"));
            columns.push(format!("CAST(SUM({f}) AS BIGINT)"));
            columns.push(format!("CAST(AVG({f}) AS DOUBLE PRECISION)"));
            columns.push(format!("CAST(MIN({f}) AS BIGINT)"));
            columns.push(format!("CAST(MAX({f}) AS BIGINT)"));
            if backend == DbBackend::Postgres {
                for p in [0.5, 0.95] {
                    columns.push(format!(
                        "CAST(percentile_disc({p}) WITHIN GROUP (ORDER BY {f}) AS BIGINT)"
                    ));
                }
            }
        }
        let sql = format!(
            "SELECT {} FROM ({}) matching",
            columns.join(", "),
            inner.sql
        );
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                inner.values.clone().map(|v| v.0).unwrap_or_default(),
            ))
            .await?
            .ok_or_else(|| AppError::internal("an aggregate returned no row"))?;
        let count: i64 = row.try_get_by_index(0)?;
        let per_field = if backend == DbBackend::Postgres { 7 } else { 5 };
        let mut stats = Vec::with_capacity(NUMERIC_FIELDS.len());
        for (i, field) in NUMERIC_FIELDS.iter().enumerate() {
            let at = 1 + i * per_field;
            let n: i64 = row.try_get_by_index(at)?;
            let mut s = NumericStats {
                count: BigInt(n),
                sum: row.try_get_by_index::<Option<i64>>(at + 1)?.map(BigInt),
                avg: row.try_get_by_index(at + 2)?,
                min: row.try_get_by_index::<Option<i64>>(at + 3)?.map(BigInt),
                max: row.try_get_by_index::<Option<i64>>(at + 4)?.map(BigInt),
                p50: None,
                p95: None,
            };
            if n > 0 {
                if backend == DbBackend::Postgres {
                    s.p50 = row.try_get_by_index::<Option<i64>>(at + 5)?.map(BigInt);
                    s.p95 = row.try_get_by_index::<Option<i64>>(at + 6)?.map(BigInt);
                } else {
                    let (p50, p95) = self.ranked(&inner, field, n).await?;
                    (s.p50, s.p95) = (Some(BigInt(p50)), Some(BigInt(p95)));
                }
            }
            stats.push(s);
        }
        Ok((count, stats))
    }

    /// SQLite has no `percentile_disc`: the values at the two nearest ranks, by row number.
    async fn ranked(&self, inner: &Statement, field: &str, n: i64) -> AppResult<(i64, i64)> {
        let (k50, k95) = (nearest_rank(0.5, n), nearest_rank(0.95, n));
        let sql = format!(
            "SELECT rn, v FROM (SELECT {field} AS v, ROW_NUMBER() OVER (ORDER BY {field}) AS rn \
             FROM ({}) matching WHERE {field} IS NOT NULL) ranked WHERE rn IN ({k50}, {k95})",
            inner.sql
        );
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                self.backend(),
                sql,
                inner.values.clone().map(|v| v.0).unwrap_or_default(),
            ))
            .await?;
        let mut found = HashMap::new();
        for row in rows {
            let rank: i64 = row.try_get_by_index(0)?;
            let value: i64 = row.try_get_by_index(1)?;
            found.insert(rank, value);
        }
        match (found.get(&k50), found.get(&k95)) {
            (Some(a), Some(b)) => Ok((*a, *b)),
            _ => Err(AppError::internal("a percentile rank was not found")),
        }
    }
}

/// Adds (time, count, cost) totals into the buckets holding each time.
fn add_into(
    totals: &mut [(i64, i64)],
    buckets: &Buckets,
    rows: impl IntoIterator<Item = (DateTime<Utc>, i64, i64)>,
) {
    for (at, n, cost) in rows {
        if let Some(i) = buckets.index_of(at) {
            totals[i].0 += n;
            totals[i].1 += cost;
        }
    }
}

fn count_all() -> Expr {
    Expr::cust("CAST(COUNT(*) AS BIGINT)")
}

/// `SELECT <the five keys>, n … GROUP BY <the five keys>` over `select` (runs or rollups).
async fn key_counts<E: sea_orm::EntityTrait>(
    db: &DatabaseConnection,
    select: Select<E>,
    n: Expr,
) -> AppResult<Vec<([String; 5], i64)>> {
    let mut select = select;
    for (i, key) in KEY_VALUES.iter().enumerate() {
        select = select.column_as(Expr::cust(*key), format!("k{i}"));
    }
    select = select.column_as(n, "n");
    for key in KEY_VALUES {
        select = select.group_by(Expr::cust(key));
    }
    let rows: Vec<(String, String, String, String, String, i64)> =
        select.into_tuple().all(db).await?;
    Ok(rows
        .into_iter()
        .map(|(a, b, c, d, e, n)| ([a, b, c, d, e], n))
        .collect())
}
