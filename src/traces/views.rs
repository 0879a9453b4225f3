//! Facets, aggregates and histograms over the traces a filter selects (docs/console.md). Each is
//! exact and computed in SQL over the filtered traces, which the tenant's indexes narrow (a
//! trace is one row per agent run, about a fifth as many as runs; no rollups yet).

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use entity::aos_traces::{Column as T, Entity as Traces};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, QueryTrait, Select};

use super::store::filtered;
use super::TraceListFilter;
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::stats::sql::{count_all, counts_per_bucket, facet_of, key_counts, numeric_stats};
use crate::stats::{Buckets, NumericStats};

/// The tenant's live traces matching a filter, up to `asOf`.
#[derive(Clone)]
pub struct TraceSet {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub filter: TraceListFilter,
    pub as_of: Option<DateTime<Utc>>,
}

/// The fields a trace facet counts by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(name = "TraceFacetField")]
pub enum TraceFacetField {
    Status,
    AgentId,
    IsSynthetic,
    SyntheticScenarioId,
}

impl TraceFacetField {
    /// The field as text (NULL where a trace has none), as [`TraceFacetField::ALL`] orders them.
    const KEYS: [&'static str; 4] = [
        "upper(status)",
        "agent_id",
        "CASE WHEN is_synthetic THEN 'true' ELSE 'false' END",
        "synthetic_scenario_id",
    ];

    fn position(self) -> usize {
        match self {
            TraceFacetField::Status => 0,
            TraceFacetField::AgentId => 1,
            TraceFacetField::IsSynthetic => 2,
            TraceFacetField::SyntheticScenarioId => 3,
        }
    }
}

/// The timestamp a trace histogram buckets by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "TraceTimeField")]
pub enum TraceTimeField {
    #[default]
    CreatedAt,
    StartedAt,
    CompletedAt,
}

impl TraceTimeField {
    fn column(self) -> (T, &'static str) {
        match self {
            TraceTimeField::CreatedAt => (T::CreatedAt, "created_at"),
            TraceTimeField::StartedAt => (T::StartedAt, "started_at"),
            TraceTimeField::CompletedAt => (T::CompletedAt, "completed_at"),
        }
    }
}

/// The numeric fields a trace aggregate summarises, in `TraceAggregate` order.
pub const NUMERIC_FIELDS: [&str; 2] = ["step_count", "duration_ms"];

impl TraceSet {
    /// The matching traces (filter and `asOf`).
    fn rows(&self) -> Select<Traces> {
        let select = filtered(self.db.get_database_backend(), &self.tenant, &self.filter);
        match self.as_of {
            Some(at) => select.filter(T::CreatedAt.lte(at)),
            None => select,
        }
    }

    /// For each of `fields`: value → count over the matching traces, and the traces without a
    /// value. One statement groups by every field at once.
    pub async fn facets(
        &self,
        fields: &[TraceFacetField],
    ) -> AppResult<Vec<(Vec<(String, i64)>, i64)>> {
        let combos = key_counts(&self.db, self.rows(), &TraceFacetField::KEYS, count_all()).await?;
        Ok(fields
            .iter()
            .map(|field| facet_of(&combos, field.position()))
            .collect())
    }

    /// Traces per bucket of `field` (grouped by UTC hour or minute in SQL, then into the buckets).
    pub async fn histogram(&self, field: TraceTimeField, buckets: &Buckets) -> AppResult<Vec<i64>> {
        counts_per_bucket(&self.db, self.rows(), field.column(), buckets).await
    }

    /// The matching traces' count and the stats of each of [`NUMERIC_FIELDS`] (traces still
    /// running have neither and are not counted in them).
    pub async fn aggregate(&self) -> AppResult<(i64, Vec<NumericStats>)> {
        let inner = self.rows().build(self.db.get_database_backend());
        numeric_stats(&self.db, &inner, &NUMERIC_FIELDS).await
    }
}
