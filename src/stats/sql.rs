//! The SQL behind facets, aggregates and histograms, over any list's filtered rows: value
//! counts per key combination, numeric stats with nearest-rank percentiles, and counts per UTC
//! minute. A domain names its columns; these build and read the statements on both backends.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, QueryTrait, Select, Statement, TryGetable,
};

use super::{key_start, nearest_rank, Buckets, FractionalStats, NumericStats};
use crate::error::{AppError, AppResult};
use crate::scalars::BigInt;

/// `COUNT(*)` as a BIGINT on both backends.
pub fn count_all() -> Expr {
    Expr::cust("CAST(COUNT(*) AS BIGINT)")
}

/// `SUM(column)` as a BIGINT, 0 over no rows.
pub fn sum(column: &str) -> Expr {
    Expr::cust(format!("CAST(COALESCE(SUM({column}), 0) AS BIGINT)"))
}

/// `SELECT <keys>, <n> … GROUP BY <keys>` over `select`: each key combination present and its
/// count. A key is an SQL expression of text (NULL where the row has no value).
pub async fn key_counts<E: EntityTrait>(
    db: &DatabaseConnection,
    select: Select<E>,
    keys: &[&str],
    n: Expr,
) -> AppResult<Vec<(Vec<Option<String>>, i64)>> {
    read_key_counts(db, &grouped(select, keys, n), keys.len()).await
}

/// The statement [`key_counts`] runs, to run as it is or united with others of the same keys
/// (`UNION ALL`, one round trip for several sources).
pub fn grouped<E: EntityTrait>(select: Select<E>, keys: &[&str], n: Expr) -> SelectStatement {
    let mut select = select.select_only();
    for (i, key) in keys.iter().enumerate() {
        select = select.column_as(Expr::cust((*key).to_owned()), format!("k{i}"));
    }
    select = select.column_as(n, "n");
    for key in keys {
        select = select.group_by(Expr::cust((*key).to_owned()));
    }
    select.into_query()
}

/// The rows of a [`grouped`] statement (or a union of them) over `keys` keys.
pub async fn read_key_counts(
    db: &DatabaseConnection,
    statement: &SelectStatement,
    keys: usize,
) -> AppResult<Vec<(Vec<Option<String>>, i64)>> {
    run_key_counts(db, db.get_database_backend().build(statement), keys).await
}

async fn run_key_counts(
    db: &DatabaseConnection,
    statement: Statement,
    keys: usize,
) -> AppResult<Vec<(Vec<Option<String>>, i64)>> {
    let rows = db.query_all_raw(statement).await?;
    rows.into_iter()
        .map(|row| {
            let mut values = Vec::with_capacity(keys);
            for i in 0..keys {
                values.push(row.try_get_by_index::<Option<String>>(i)?);
            }
            Ok((values, row.try_get_by_index::<i64>(keys)?))
        })
        .collect()
}

/// Each combination of the columns `k0`, `k1`, … of `inner` and its row count, for keys that
/// are more than an expression over one row's columns (a correlated subquery, say): `inner`
/// names them, and the grouping runs over its output.
pub async fn counts_of_columns(
    db: &DatabaseConnection,
    inner: &SelectStatement,
    keys: usize,
) -> AppResult<Vec<(Vec<Option<String>>, i64)>> {
    let backend = db.get_database_backend();
    let inner = backend.build(inner);
    let names: Vec<String> = (0..keys).map(|i| format!("k{i}")).collect();
    let names = names.join(", ");
    let sql = format!(
        "SELECT {names}, CAST(COUNT(*) AS BIGINT) AS n FROM ({}) matching GROUP BY {names}",
        inner.sql
    );
    let values = inner.values.map(|v| v.0).unwrap_or_default();
    run_key_counts(
        db,
        Statement::from_sql_and_values(backend, sql, values),
        keys,
    )
    .await
}

/// Value → count of the key at `position` over key-combination counts; `None` holds the rows
/// without a value.
pub fn facet_of(
    combos: &[(Vec<Option<String>>, i64)],
    position: usize,
) -> (Vec<(String, i64)>, i64) {
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut missing = 0;
    for (keys, n) in combos {
        match &keys[position] {
            Some(value) => *counts.entry(value.clone()).or_default() += n,
            None => missing += n,
        }
    }
    // A signed cover (`runs::cover`) can leave a value with nothing in the window.
    counts.retain(|_, n| *n != 0);
    (counts.into_iter().collect(), missing)
}

/// The row count of `inner` and the stats of each integer column of `fields` over its rows.
pub async fn numeric_stats(
    db: &DatabaseConnection,
    inner: &Statement,
    fields: &[&str],
) -> AppResult<(i64, Vec<NumericStats>)> {
    let (count, stats) = stats_of::<i64>(db, inner, fields, "BIGINT").await?;
    let stats = stats
        .into_iter()
        .map(|s| NumericStats {
            count: BigInt(s.count),
            sum: s.sum.map(BigInt),
            avg: s.avg,
            min: s.min.map(BigInt),
            max: s.max.map(BigInt),
            p50: s.p50.map(BigInt),
            p95: s.p95.map(BigInt),
        })
        .collect();
    Ok((count, stats))
}

/// The row count of `inner` and the stats of each fractional column of `fields` over its rows
/// (summed and compared as the stored doubles).
pub async fn fractional_stats(
    db: &DatabaseConnection,
    inner: &Statement,
    fields: &[&str],
) -> AppResult<(i64, Vec<FractionalStats>)> {
    let (count, stats) = stats_of::<f64>(db, inner, fields, "DOUBLE PRECISION").await?;
    let stats = stats
        .into_iter()
        .map(|s| FractionalStats {
            count: BigInt(s.count),
            sum: s.sum,
            avg: s.avg,
            min: s.min,
            max: s.max,
            p50: s.p50,
            p95: s.p95,
        })
        .collect();
    Ok((count, stats))
}

/// One column's stats as read, in the column's own number type.
struct ColumnStats<T> {
    count: i64,
    sum: Option<T>,
    avg: Option<f64>,
    min: Option<T>,
    max: Option<T>,
    p50: Option<T>,
    p95: Option<T>,
}

/// Count, sum, mean, extremes and nearest-rank percentiles of each of `fields` over `inner`'s
/// rows, the sums, extremes and percentiles cast to `sql_type` (read as `T`). One statement
/// on PostgreSQL (`percentile_disc`); SQLite reads the two ranks per field in one more.
async fn stats_of<T: TryGetable + Copy>(
    db: &DatabaseConnection,
    inner: &Statement,
    fields: &[&str],
    sql_type: &str,
) -> AppResult<(i64, Vec<ColumnStats<T>>)> {
    let backend = db.get_database_backend();
    let postgres = backend == DbBackend::Postgres;
    let mut columns = vec!["CAST(COUNT(*) AS BIGINT)".to_owned()];
    for f in fields {
        columns.push(format!("CAST(COUNT({f}) AS BIGINT)"));
        columns.push(format!("CAST(SUM({f}) AS {sql_type})"));
        columns.push(format!("CAST(AVG({f}) AS DOUBLE PRECISION)"));
        columns.push(format!("CAST(MIN({f}) AS {sql_type})"));
        columns.push(format!("CAST(MAX({f}) AS {sql_type})"));
        if postgres {
            for p in [0.5, 0.95] {
                columns.push(format!(
                    "CAST(percentile_disc({p}) WITHIN GROUP (ORDER BY {f}) AS {sql_type})"
                ));
            }
        }
    }
    let sql = format!(
        "SELECT {} FROM ({}) matching",
        columns.join(", "),
        inner.sql
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            inner.values.clone().map(|v| v.0).unwrap_or_default(),
        ))
        .await?
        .ok_or_else(|| AppError::internal("an aggregate returned no row"))?;
    let count: i64 = row.try_get_by_index(0)?;
    let per_field = if postgres { 7 } else { 5 };
    let mut stats = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let at = 1 + i * per_field;
        let n: i64 = row.try_get_by_index(at)?;
        let mut s = ColumnStats {
            count: n,
            sum: row.try_get_by_index::<Option<T>>(at + 1)?,
            avg: row.try_get_by_index(at + 2)?,
            min: row.try_get_by_index::<Option<T>>(at + 3)?,
            max: row.try_get_by_index::<Option<T>>(at + 4)?,
            p50: None,
            p95: None,
        };
        if n > 0 {
            if postgres {
                s.p50 = row.try_get_by_index::<Option<T>>(at + 5)?;
                s.p95 = row.try_get_by_index::<Option<T>>(at + 6)?;
            } else {
                let (p50, p95) = ranked::<T>(db, inner, field, n).await?;
                (s.p50, s.p95) = (Some(p50), Some(p95));
            }
        }
        stats.push(s);
    }
    Ok((count, stats))
}

/// SQLite has no `percentile_disc`: the values at the two nearest ranks, by row number.
async fn ranked<T: TryGetable + Copy>(
    db: &DatabaseConnection,
    inner: &Statement,
    field: &str,
    n: i64,
) -> AppResult<(T, T)> {
    let (k50, k95) = (nearest_rank(0.5, n), nearest_rank(0.95, n));
    let sql = format!(
        "SELECT rn, v FROM (SELECT {field} AS v, ROW_NUMBER() OVER (ORDER BY {field}) AS rn \
         FROM ({}) matching WHERE {field} IS NOT NULL) ranked WHERE rn IN ({k50}, {k95})",
        inner.sql
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            inner.values.clone().map(|v| v.0).unwrap_or_default(),
        ))
        .await?;
    let mut found = HashMap::new();
    for row in rows {
        let rank: i64 = row.try_get_by_index(0)?;
        let value: T = row.try_get_by_index(1)?;
        found.insert(rank, value);
    }
    match (found.get(&k50), found.get(&k95)) {
        (Some(a), Some(b)) => Ok((*a, *b)),
        _ => Err(AppError::internal("a percentile rank was not found")),
    }
}

/// (time, count, summed `sum_of` or 0) of the rows of `select`, grouped by the UTC hour of the
/// timestamp column `column` when every inner bound of `buckets` falls on a whole hour (an hour
/// then lies in one bucket, and a few hundred groups come back instead of one per minute), else
/// by the UTC minute. A group's time is its start, moved up to `buckets.from()` for the first
/// partial one, so [`add_into`] finds its bucket. The caller limits the rows to the buckets'
/// range (rows where `column` is NULL fall outside it).
pub async fn time_totals<E: EntityTrait>(
    db: &DatabaseConnection,
    select: Select<E>,
    column: &str,
    sum_of: Option<&str>,
    buckets: &Buckets,
) -> AppResult<Vec<(DateTime<Utc>, i64, i64)>> {
    let hourly = buckets.inner_bounds_on_hours();
    let (pg_format, sqlite_length) = if hourly {
        ("YYYY-MM-DD\"T\"HH24", 13)
    } else {
        ("YYYY-MM-DD\"T\"HH24:MI", 16)
    };
    let group = match db.get_database_backend() {
        DbBackend::Postgres => format!("to_char({column} AT TIME ZONE 'UTC', '{pg_format}')"),
        _ => format!("replace(substr({column}, 1, {sqlite_length}), ' ', 'T')"),
    };
    let summed = match sum_of {
        Some(c) => sum(c),
        None => Expr::cust("CAST(0 AS BIGINT)"),
    };
    let rows: Vec<(String, i64, i64)> = select
        .select_only()
        .column_as(Expr::cust(group.clone()), "at")
        .column_as(count_all(), "n")
        .column_as(summed, "total")
        .group_by(Expr::cust(group))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, n, total)| {
            let at = key_start(&key)?;
            Some((std::cmp::max(at, buckets.from()), n, total))
        })
        .collect())
}

/// Adds (time, count, total) rows into the buckets holding each time.
pub fn add_into(
    totals: &mut [(i64, i64)],
    buckets: &Buckets,
    rows: impl IntoIterator<Item = (DateTime<Utc>, i64, i64)>,
) {
    for (at, n, total) in rows {
        if let Some(i) = buckets.index_of(at) {
            totals[i].0 += n;
            totals[i].1 += total;
        }
    }
}

/// Rows of `select` per bucket of the timestamp `column` (`name` in SQL) over the buckets'
/// range: [`time_totals`] of the rows in range, added into the buckets.
pub async fn counts_per_bucket<E: EntityTrait, C: ColumnTrait>(
    db: &DatabaseConnection,
    select: Select<E>,
    (column, name): (C, &str),
    buckets: &Buckets,
) -> AppResult<Vec<i64>> {
    let in_range = column.gte(buckets.from()).and(column.lt(buckets.to()));
    let groups = time_totals(db, select.filter(in_range), name, None, buckets).await?;
    let mut totals = vec![(0i64, 0i64); buckets.len()];
    add_into(&mut totals, buckets, groups);
    Ok(totals.into_iter().map(|(n, _)| n).collect())
}
