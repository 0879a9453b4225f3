//! The daily cost rollup `cost_daily_aggregates`: written with the raw cost records, read by
//! every cost panel.
//!
//! # Design
//!
//! Each raw cost record adds to four rollup rows of its tenant and UTC day, one per *grain*;
//! the group columns not part of a grain hold `''` ("all"), as the table's unique key
//! `(tenant_id, date, feature_tag, user_id, model)` requires:
//!
//! | grain   | feature_tag | user_id | model | serves |
//! |---------|-------------|---------|-------|--------|
//! | total   | ''          | ''      | ''    | summary, series, projection, tenant budgets |
//! | feature | tag         | ''      | ''    | byFeature, feature budgets |
//! | user    | ''          | user    | ''    | byUser, user budgets |
//! | model   | ''          | ''      | model | byModel |
//!
//! A full-detail grain (feature × user × model) was rejected: its row count grows with the
//! product of the three cardinalities, so "cost by model, 30 days" would read many rows per day;
//! with one grain per panel a panel reads `days × (groups + 1)` rows. Partial indexes on
//! `(tenant_id, date)`, one per grain (migration `m20261128_041500`), make each read an index
//! range over exactly those rows.
//!
//! Sentinels: a record without a feature tag, or with an unknown or inactive one, is stored and
//! rolled up as [`UNCLASSIFIED`] (so it appears once, docs/decisions.md D30); a record without a
//! user is rolled up as [`ANONYMOUS`] (a user id `''` is treated as none). An empty model is
//! refused on write; [`rebuild_rollups`] maps one found in raw rows to `unknown`. Money stays
//! fractional cents (`f64`), never truncated.
//!
//! Writes upsert with `ON CONFLICT … DO UPDATE SET total = total + excluded.total` (PostgreSQL
//! and SQLite), one multi-row statement per chunk, deltas pre-summed per key and sorted so
//! concurrent writers lock rows in the same order.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use entity::{cost_daily_aggregates as cda, cost_records, feature_tags};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Set, Statement, TransactionTrait, Value,
};

use super::{CostTotals, ANONYMOUS, UNCLASSIFIED};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::scalars::{now, truncate_to_micros};

/// Rows per multi-row INSERT (13 columns: well under both backends' parameter limits).
const CHUNK: usize = 1_000;

/// One cost record to write. `created_at` defaults to now; it decides the UTC day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewCostRecord {
    pub user_id: Option<String>,
    pub feature_tag: Option<String>,
    pub request_id: Option<String>,
    pub workflow_id: Option<String>,
    pub skill_id: Option<String>,
    pub model: String,
    pub input_tokens: i32,
    pub output_tokens: i32,
    /// Fractional US cents, stored as given.
    pub cost_cents: f64,
    pub is_retry: bool,
    pub created_at: Option<DateTime<Utc>>,
}

/// A rollup row key: (day, feature_tag, user_id, model), `''` meaning "all".
type RollupKey = (NaiveDate, String, String, String);

/// The four grain keys a record with these (resolved) values adds to.
fn grain_keys(day: NaiveDate, feature: &str, user: &str, model: &str) -> [RollupKey; 4] {
    let all = String::new;
    [
        (day, all(), all(), all()),
        (day, feature.to_owned(), all(), all()),
        (day, all(), user.to_owned(), all()),
        (day, all(), all(), model.to_owned()),
    ]
}

pub(crate) fn new_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &hex[..16])
}

fn check_len(field: &str, value: Option<&str>, max: usize) -> AppResult<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(AppError::bad_input(
            field,
            format!("`{field}` is longer than {max} characters"),
        )),
        _ => Ok(()),
    }
}

fn validate(row: &NewCostRecord) -> AppResult<()> {
    if row.model.is_empty() {
        return Err(AppError::bad_input("model", "`model` must not be empty"));
    }
    check_len("model", Some(&row.model), 64)?;
    check_len("userId", row.user_id.as_deref(), 64)?;
    check_len("featureTag", row.feature_tag.as_deref(), 128)?;
    check_len("requestId", row.request_id.as_deref(), 64)?;
    check_len("workflowId", row.workflow_id.as_deref(), 64)?;
    check_len("skillId", row.skill_id.as_deref(), 64)?;
    if !row.cost_cents.is_finite() || row.cost_cents < 0.0 {
        return Err(AppError::bad_input(
            "costCents",
            "`costCents` must be a finite number ≥ 0",
        ));
    }
    if row.input_tokens < 0 {
        return Err(AppError::bad_input(
            "inputTokens",
            "`inputTokens` must be ≥ 0",
        ));
    }
    if row.output_tokens < 0 {
        return Err(AppError::bad_input(
            "outputTokens",
            "`outputTokens` must be ≥ 0",
        ));
    }
    Ok(())
}

/// The tenant's active feature tags among `tags`.
async fn active_tags(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    tags: &BTreeSet<&str>,
) -> AppResult<HashSet<String>> {
    let mut found = HashSet::new();
    let tags: Vec<&str> = tags.iter().copied().collect();
    for chunk in tags.chunks(CHUNK) {
        let rows: Vec<String> = feature_tags::Entity::find()
            .select_only()
            .column(feature_tags::Column::Tag)
            .filter(feature_tags::Column::TenantId.eq(tenant.as_str()))
            .filter(feature_tags::Column::IsActive.eq(true))
            .filter(feature_tags::Column::Tag.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// Writes cost records and adds them to the rollup. Call it inside a transaction (`txn`) so the
/// raw rows and the rollup commit together; [`record_costs_atomic`] opens one itself. On SQLite
/// call it before other reads of that transaction (it takes the write lock before its own read).
///
/// A missing, unknown or inactive feature tag is stored as `unclassified`; `cost_cents` is kept
/// as given. Returns the new records' ids (`cr_` + 16 hex), in input order.
pub async fn record_costs(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    rows: &[NewCostRecord],
) -> AppResult<Vec<String>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    for row in rows {
        validate(row)?;
    }
    let wanted: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r.feature_tag.as_deref())
        .filter(|t| !t.is_empty() && *t != UNCLASSIFIED)
        .collect();
    let active = if wanted.is_empty() {
        HashSet::new()
    } else {
        if txn.get_database_backend() == DbBackend::Sqlite {
            // Take the write lock before reading: a SQLite transaction that reads first and
            // writes later fails at once with SQLITE_BUSY when another writer got in between,
            // whereas acquiring the lock up front waits out the busy timeout.
            txn.execute_unprepared("UPDATE cost_daily_aggregates SET id = id WHERE 0")
                .await?;
        }
        active_tags(txn, tenant, &wanted).await?
    };

    let written_at = now();
    let mut ids = Vec::with_capacity(rows.len());
    let mut records = Vec::with_capacity(rows.len());
    let mut deltas: BTreeMap<RollupKey, CostTotals> = BTreeMap::new();
    for row in rows {
        let id = new_id("cr_");
        let created_at = row.created_at.map_or(written_at, truncate_to_micros);
        let feature = match row.feature_tag.as_deref() {
            Some(tag) if active.contains(tag) => tag.to_owned(),
            _ => UNCLASSIFIED.to_owned(),
        };
        let user = row.user_id.as_deref().filter(|u| !u.is_empty());
        for key in grain_keys(
            created_at.date_naive(),
            &feature,
            user.unwrap_or(ANONYMOUS),
            &row.model,
        ) {
            let sum = deltas.entry(key).or_default();
            sum.cost_cents += row.cost_cents;
            sum.input_tokens += i64::from(row.input_tokens);
            sum.output_tokens += i64::from(row.output_tokens);
            sum.requests += 1;
        }
        records.push(cost_records::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.as_str().to_owned()),
            user_id: Set(user.map(str::to_owned)),
            feature_tag: Set(Some(feature)),
            request_id: Set(row.request_id.clone()),
            workflow_id: Set(row.workflow_id.clone()),
            skill_id: Set(row.skill_id.clone()),
            model: Set(row.model.clone()),
            input_tokens: Set(row.input_tokens),
            output_tokens: Set(row.output_tokens),
            cost_cents: Set(row.cost_cents),
            is_retry: Set(row.is_retry),
            created_at: Set(created_at),
        });
        ids.push(id);
    }

    let mut records = records.into_iter().peekable();
    while records.peek().is_some() {
        let chunk: Vec<_> = records.by_ref().take(CHUNK).collect();
        cost_records::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    upsert_rollup(txn, tenant, &deltas, written_at).await?;
    Ok(ids)
}

/// [`record_costs`] in its own transaction.
pub async fn record_costs_atomic(
    db: &DatabaseConnection,
    tenant: &TenantId,
    rows: &[NewCostRecord],
) -> AppResult<Vec<String>> {
    let txn = db.begin().await?;
    let ids = record_costs(&txn, tenant, rows).await?;
    txn.commit().await?;
    Ok(ids)
}

/// Adds `deltas` to the tenant's rollup rows, creating missing ones.
async fn upsert_rollup(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    deltas: &BTreeMap<RollupKey, CostTotals>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    use cda::Column as C;
    let entries: Vec<_> = deltas.iter().collect();
    for chunk in entries.chunks(CHUNK) {
        let mut insert = Query::insert();
        insert.into_table(cda::Entity).columns([
            C::Id,
            C::TenantId,
            C::Date,
            C::FeatureTag,
            C::UserId,
            C::Model,
            C::TotalCostCents,
            C::TotalInputTokens,
            C::TotalOutputTokens,
            C::RequestCount,
            C::CreatedAt,
            C::UpdatedAt,
        ]);
        for ((day, feature, user, model), totals) in chunk {
            let requests = i32::try_from(totals.requests)
                .map_err(|_| AppError::bad_input("records", "too many records in one batch"))?;
            insert
                .values([
                    new_id("cda_").into(),
                    tenant.as_str().into(),
                    (*day).into(),
                    feature.as_str().into(),
                    user.as_str().into(),
                    model.as_str().into(),
                    totals.cost_cents.into(),
                    totals.input_tokens.into(),
                    totals.output_tokens.into(),
                    requests.into(),
                    at.into(),
                    at.into(),
                ])
                .map_err(AppError::internal)?;
        }
        let add = |col: &str| Expr::cust(format!("cost_daily_aggregates.{col} + excluded.{col}"));
        insert.on_conflict(
            OnConflict::columns([C::TenantId, C::Date, C::FeatureTag, C::UserId, C::Model])
                .values([
                    (C::TotalCostCents, add("total_cost_cents")),
                    (C::TotalInputTokens, add("total_input_tokens")),
                    (C::TotalOutputTokens, add("total_output_tokens")),
                    (C::RequestCount, add("request_count")),
                    (C::UpdatedAt, Expr::cust("excluded.updated_at")),
                ])
                .to_owned(),
        );
        db.execute(&insert).await?;
    }
    Ok(())
}

/// Recomputes the rollup from the raw `cost_records` of one tenant (or of all tenants), in one
/// transaction: deletes the rollup rows, then one `INSERT … SELECT … GROUP BY` per grain. Used
/// after bulk loads that bypass [`record_costs`]. Raw rows with a NULL or empty feature tag
/// count as `unclassified`, a NULL or empty user as `anonymous`, an empty model as `unknown`.
/// Returns the number of rollup rows written.
pub async fn rebuild_rollups(db: &DatabaseConnection, tenant: Option<&TenantId>) -> AppResult<u64> {
    let backend = db.get_database_backend();
    let (day, id) = match backend {
        DbBackend::Postgres => (
            "(created_at AT TIME ZONE 'UTC')::date",
            "'cda_' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)",
        ),
        _ => ("date(created_at)", "'cda_' || lower(hex(randomblob(8)))"),
    };
    let p = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    };
    let feature = format!("COALESCE(NULLIF(feature_tag, ''), '{UNCLASSIFIED}')");
    let user = format!("COALESCE(NULLIF(user_id, ''), '{ANONYMOUS}')");
    let model = "COALESCE(NULLIF(model, ''), 'unknown')";
    let grains = [
        ("''", "''".to_owned(), "''"),
        (feature.as_str(), "''".to_owned(), "''"),
        ("''", user, "''"),
        ("''", "''".to_owned(), model),
    ];
    let at = now();
    let (scope, values): (String, Vec<Value>) = match tenant {
        Some(t) => (
            format!(" WHERE tenant_id = {}", p(2)),
            vec![at.into(), t.as_str().into()],
        ),
        None => (String::new(), vec![at.into()]),
    };
    let txn = db.begin().await?;
    if backend == DbBackend::Postgres {
        // Writers block at their rollup upsert until the rebuild commits, then add their
        // deltas to the rebuilt rows; their raw rows are not in the rebuild's snapshot.
        txn.execute_unprepared("LOCK TABLE cost_daily_aggregates IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    let delete_scope = match tenant {
        Some(_) => format!(" WHERE tenant_id = {}", p(1)),
        None => String::new(),
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("DELETE FROM cost_daily_aggregates{delete_scope}"),
        values.iter().skip(1).cloned(),
    ))
    .await?;
    let mut written = 0;
    for (f, u, m) in &grains {
        let sql = format!(
            "INSERT INTO cost_daily_aggregates (id, tenant_id, date, feature_tag, user_id, model, \
             total_cost_cents, total_input_tokens, total_output_tokens, request_count, \
             created_at, updated_at) \
             SELECT {id}, tenant_id, d, f, u, m, SUM(cost_cents), SUM(input_tokens), \
             SUM(output_tokens), COUNT(*), {now}, {now} \
             FROM (SELECT tenant_id, {day} AS d, {f} AS f, {u} AS u, {m} AS m, cost_cents, \
             input_tokens, output_tokens FROM cost_records{scope}) g \
             GROUP BY tenant_id, d, f, u, m",
            now = p(1),
        );
        let result = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                values.iter().cloned(),
            ))
            .await?;
        written += result.rows_affected();
    }
    txn.commit().await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_feeds_four_grains() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).expect("date");
        let keys = grain_keys(day, "chat.reply", "u1", "gpt-4o");
        assert_eq!(keys[0], (day, String::new(), String::new(), String::new()));
        assert_eq!(keys[1].1, "chat.reply");
        assert_eq!(keys[2].2, "u1");
        assert_eq!(keys[3].3, "gpt-4o");
    }

    #[test]
    fn validation_names_the_field() {
        let bad = NewCostRecord {
            model: "m".into(),
            cost_cents: f64::NAN,
            ..Default::default()
        };
        match validate(&bad) {
            Err(AppError::BadUserInput { field, .. }) => assert_eq!(field, "costCents"),
            other => panic!("unexpected {other:?}"),
        }
        let empty_model = NewCostRecord::default();
        assert!(matches!(
            validate(&empty_model),
            Err(AppError::BadUserInput { field, .. }) if field == "model"
        ));
    }
}
