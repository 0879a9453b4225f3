//! Facets, aggregates and histograms over the runs a filter selects: the numbers a console's
//! filter dropdowns, summary cards and charts show beside the page (docs/console.md). Each is
//! exact and computed in SQL; facets and creation-time histograms read the rollups
//! (`super::rollups`) when the filter names only what they are keyed by.

use std::sync::Arc;

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use entity::llm_run_records::{Column as R, Entity as Runs};
use sea_orm::sea_query::{Condition, ExprTrait, UnionType};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, QueryFilter, QuerySelect, QueryTrait, Select,
};
use tokio::sync::OnceCell;

use super::cover::Cover;
use super::rollups::{self, WindowPlan};
use super::store::filtered;
use super::RunFilter;
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::pagination::TotalCount;
use crate::stats::sql::{
    add_into, count_all, facet_of, grouped, key_counts, numeric_stats, read_key_counts, sum,
    time_totals,
};
use crate::stats::{Buckets, NumericStats};

/// Runs per combination of the five keys (values in [`FacetField::position`] order).
type Combos = Vec<(Vec<Option<String>>, i64)>;

/// What one query over the runs is about: the tenant's rows matching a filter, up to `asOf`.
/// Its key combinations are read once per request and shared by every facet (and by
/// `totalCount`, when the page is counted by them).
#[derive(Clone)]
pub struct RunSet {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub filter: RunFilter,
    pub as_of: Option<DateTime<Utc>>,
    combos: Arc<OnceCell<Combos>>,
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

/// Every run falls in exactly one key combination (the keys are NOT NULL), so their counts sum
/// to the runs matching the filter: the page's `totalCount` when the facets are asked too.
#[async_trait::async_trait]
impl TotalCount for RunSet {
    async fn count(&self) -> AppResult<i64> {
        Ok(self.combos().await?.iter().map(|(_, n)| n).sum())
    }
}

impl RunSet {
    pub fn new(
        db: DatabaseConnection,
        tenant: TenantId,
        filter: RunFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Self {
        RunSet {
            db,
            tenant,
            filter,
            as_of,
            combos: Arc::default(),
        }
    }

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
    /// per combination of all five keys (a few dozen rows), and every facet is summed from it;
    /// on the rollups, its `UNION ALL` counts the row ranges of the window's cover ([`Cover`]).
    pub async fn facets(&self, fields: &[FacetField]) -> AppResult<Vec<Vec<(String, i64)>>> {
        let combos = self.combos().await?;
        // Every key is NOT NULL: nothing is missing.
        Ok(fields
            .iter()
            .map(|field| facet_of(combos, field.position()).0)
            .collect())
    }

    /// The runs per key combination, read on first use.
    async fn combos(&self) -> AppResult<&Combos> {
        self.combos.get_or_try_init(|| self.read_combos()).await
    }

    async fn read_combos(&self) -> AppResult<Combos> {
        Ok(if self.filter.on_rollup_keys() {
            let (start, end) = rollups::created_span(&self.filter, self.as_of);
            let cover = Cover::of(start, end);
            // The units' rollup rows and the row ranges, in one statement.
            let mut parts = Vec::new();
            if !cover.units.is_empty() {
                let select = rollups::filtered(&self.tenant, &self.filter)
                    .filter(cover.rollup_condition(&self.tenant, true));
                let n = cover.signed_runs(&self.tenant, true);
                parts.push(grouped(select, &KEY_VALUES, n));
            }
            if !cover.rows.is_empty() {
                // The ranges reach outside the window: only the key conditions apply.
                let keys = self.filter.rollup_keys();
                let select =
                    filtered(self.backend(), &self.tenant, &keys).filter(cover.row_condition());
                parts.push(grouped(select, &KEY_VALUES, cover.signed_row_count()));
            }
            let mut parts = parts.into_iter();
            match parts.next() {
                None => Vec::new(),
                Some(mut statement) => {
                    for part in parts {
                        statement.union(UnionType::All, part);
                    }
                    read_key_counts(&self.db, &statement, KEY_VALUES.len()).await?
                }
            }
        } else {
            key_counts(&self.db, self.rows(), &KEY_VALUES, count_all()).await?
        })
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
            let groups = self
                .time_totals(self.rows().filter(in_range), column, buckets)
                .await?;
            add_into(&mut totals, buckets, groups);
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
                .column_as(sum("runs"), "n")
                .column_as(sum("cost_cents"), "cost")
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
            let groups = self
                .time_totals(self.edge_rows(&plan), column, buckets)
                .await?;
            add_into(&mut totals, buckets, groups);
        }
        Ok(totals)
    }

    /// (time, count, cost) of the rows of `select`, grouped by `column`'s UTC hour or minute
    /// ([`time_totals`]).
    async fn time_totals(
        &self,
        select: Select<Runs>,
        column: R,
        buckets: &Buckets,
    ) -> AppResult<Vec<(DateTime<Utc>, i64, i64)>> {
        let name = match column {
            R::StartedAt => "started_at",
            R::CompletedAt => "completed_at",
            _ => "created_at",
        };
        time_totals(&self.db, select, name, Some("cost_cents"), buckets).await
    }

    /// The matching runs' count and the stats of each of [`NUMERIC_FIELDS`].
    pub async fn aggregate(&self) -> AppResult<(i64, Vec<NumericStats>)> {
        let inner = self.rows().build(self.backend());
        numeric_stats(&self.db, &inner, &NUMERIC_FIELDS).await
    }
}
