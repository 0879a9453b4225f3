//! The tenant-wide list of trace steps (`traceSteps`, docs/console.md): its filter as the store
//! applies it, its keyset order by step time, and the facets, aggregate and histogram over the
//! same filter. Exact and computed in SQL over the filtered steps, which the index
//! `(tenant_id, timestamp, id)` narrows to the filter's time window.

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use entity::aos_trace_steps::{self, Column as S, Entity as Steps};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryTrait, Select};
use serde::Serialize;

use super::store::step_snapshot;
use super::StepSnapshot;
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::list_filters::{within_ranges, within_sets, IntRange};
use crate::pagination::{created_within, Listed, Position};
use crate::stats::sql::{
    count_all, counts_per_bucket, facet_of, fractional_stats, key_counts, numeric_stats,
};
use crate::stats::{Buckets, FractionalStats, NumericStats};

/// The step list filter as the store applies it. Value lists hold stored values (levels
/// `INFO`…, sources `engine`…), sorted and deduplicated so equal filters bind equal cursors;
/// time bounds and ranges are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepListFilter {
    pub trace_id: Option<String>,
    pub level: Option<Vec<String>>,
    pub level_not_in: Option<Vec<String>>,
    pub status: Option<Vec<String>>,
    pub status_not_in: Option<Vec<String>>,
    pub skill_name: Option<Vec<String>>,
    pub skill_name_not_in: Option<Vec<String>>,
    pub outcome_category: Option<Vec<String>>,
    pub outcome_category_not_in: Option<Vec<String>>,
    pub source: Option<Vec<String>>,
    pub is_synthetic: Option<bool>,
    pub timestamp_after: Option<DateTime<Utc>>,
    pub timestamp_before: Option<DateTime<Utc>>,
    pub duration_ms: Option<IntRange>,
    pub cost_cents: Option<IntRange>,
    pub retry_count: Option<IntRange>,
}

/// The tenant's live steps matching `filter`.
pub(crate) fn filtered_steps(tenant: &TenantId, filter: &StepListFilter) -> Select<Steps> {
    let mut q = Steps::find()
        .filter(S::TenantId.eq(tenant.as_str()))
        .filter(S::ArchivedAt.is_null());
    if let Some(v) = &filter.trace_id {
        q = q.filter(S::TraceId.eq(v.as_str()));
    }
    let sets = [
        (S::Level, &filter.level, &filter.level_not_in),
        (S::Status, &filter.status, &filter.status_not_in),
        (S::SkillName, &filter.skill_name, &filter.skill_name_not_in),
        (
            S::OutcomeCategory,
            &filter.outcome_category,
            &filter.outcome_category_not_in,
        ),
        (S::Source, &filter.source, &None),
    ];
    for (column, any_of, none_of) in sets {
        q = within_sets(q, column, any_of.as_deref(), none_of.as_deref());
    }
    if let Some(v) = filter.is_synthetic {
        q = q.filter(S::IsSynthetic.eq(v));
    }
    q = within_ranges(
        q,
        [
            (S::DurationMs, filter.duration_ms),
            (S::CostCents, filter.cost_cents),
            (S::RetryCount, filter.retry_count),
        ],
    );
    created_within(
        q,
        S::Timestamp,
        filter.timestamp_after,
        filter.timestamp_before,
    )
}

/// The tenant's live steps matching a filter, newest step time first (`traceSteps`). The time is
/// the step's `timestamp`, which the writer may set: `asOf` bounds it, so a step recorded later
/// with an earlier timestamp can enter an `asOf` snapshot.
pub struct StepList;

impl Listed for StepList {
    type Entity = Steps;
    type Filter = StepListFilter;
    type Row = StepSnapshot;
    const NAME: &'static str = "traceSteps";
    const ORDER: (S, S) = (S::Timestamp, S::Id);
    const ROW: fn(aos_trace_steps::Model) -> AppResult<StepSnapshot> = step_snapshot;
    const POSITION: fn(&StepSnapshot) -> Position = |s| Position::of(s.timestamp, &s.id);

    /// Log data: only the tenant's read window (`crate::read_window`).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        Some(crate::pagination::TimeBounds {
            field: "timestampAfter",
            to: filter.timestamp_before,
            from: &mut filter.timestamp_after,
        })
    }

    fn select(
        tenant: &TenantId,
        filter: &StepListFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<Steps> {
        filtered_steps(tenant, filter)
    }
}

/// The tenant's steps matching a filter, up to `asOf`.
#[derive(Clone)]
pub struct StepSet {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub filter: StepListFilter,
    pub as_of: Option<DateTime<Utc>>,
}

/// Stats over the steps a filter selects.
pub struct StepAggregate {
    pub count: i64,
    pub duration_ms: FractionalStats,
    pub cost_cents: FractionalStats,
    pub retry_count: NumericStats,
}

/// The fields a step facet counts by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(name = "TraceStepFacetField")]
pub enum StepFacetField {
    Level,
    /// As the writer sent it (`success`, `failure`, …).
    Status,
    SkillName,
    OutcomeCategory,
    Source,
}

impl StepFacetField {
    /// The field as text, as the GraphQL enums name the values, in declaration order.
    const KEYS: [&'static str; 5] = [
        "level",
        "status",
        "skill_name",
        "outcome_category",
        "upper(source)",
    ];
}

impl StepSet {
    fn rows(&self) -> Select<Steps> {
        let select = filtered_steps(&self.tenant, &self.filter);
        match self.as_of {
            Some(at) => select.filter(S::Timestamp.lte(at)),
            None => select,
        }
    }

    /// For each of `fields`: value → count over the matching steps (and the steps without a
    /// value: none, every step has each field). One statement groups by every field at once.
    pub async fn facets(
        &self,
        fields: &[StepFacetField],
    ) -> AppResult<Vec<(Vec<(String, i64)>, i64)>> {
        let combos = key_counts(&self.db, self.rows(), &StepFacetField::KEYS, count_all()).await?;
        Ok(fields
            .iter()
            .map(|&field| facet_of(&combos, field as usize))
            .collect())
    }

    /// The matching steps' count, their duration and cost stats (stored as doubles), and their
    /// retry counts: two statements (plus, on SQLite, one per field for the percentiles).
    pub async fn aggregate(&self) -> AppResult<StepAggregate> {
        let inner = self.rows().build(self.db.get_database_backend());
        let (count, mut fractional) =
            fractional_stats(&self.db, &inner, &["duration_ms", "cost_cents"]).await?;
        let (_, mut integral) = numeric_stats(&self.db, &inner, &["retry_count"]).await?;
        let cost_cents = fractional.remove(1);
        Ok(StepAggregate {
            count,
            duration_ms: fractional.remove(0),
            cost_cents,
            retry_count: integral.remove(0),
        })
    }

    /// Steps per bucket of their time.
    pub async fn histogram(&self, buckets: &Buckets) -> AppResult<Vec<i64>> {
        counts_per_bucket(
            &self.db,
            self.rows(),
            (S::Timestamp, "\"timestamp\""),
            buckets,
        )
        .await
    }
}
