//! Facets and histograms over the mismatches a filter selects (docs/console.md). Exact and
//! computed in SQL over the tenant's filtered mismatches (a few per replayed trace; the tenant's
//! keyset index narrows them to the filter's window).

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use entity::aos_trace_mismatches::{Column as M, Entity as Mismatches};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, Select};

use super::store::filtered;
use super::MismatchListFilter;
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::stats::sql::{count_all, counts_per_bucket, facet_of, key_counts};
use crate::stats::Buckets;

/// The tenant's mismatches matching a filter, up to `asOf`.
#[derive(Clone)]
pub struct MismatchSet {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub filter: MismatchListFilter,
    pub as_of: Option<DateTime<Utc>>,
}

/// The fields a mismatch facet counts by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(name = "TraceMismatchFacetField")]
pub enum MismatchFacetField {
    /// `OPEN` or `RESOLVED`.
    Status,
    Reason,
    /// Mismatches without a reporter are its `missingCount`.
    ReportedBy,
}

impl MismatchFacetField {
    /// The field as text (NULL where a mismatch has none), in declaration order.
    const KEYS: [&'static str; 3] = [
        "CASE WHEN resolved THEN 'RESOLVED' ELSE 'OPEN' END",
        "reason",
        "reported_by",
    ];
}

/// The timestamp a mismatch histogram buckets by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "TraceMismatchTimeField")]
pub enum MismatchTimeField {
    /// When it was reported.
    #[default]
    CreatedAt,
    /// When it was resolved (open mismatches fall outside every bucket).
    ResolvedAt,
}

impl MismatchSet {
    fn rows(&self) -> Select<Mismatches> {
        let select = filtered(self.db.get_database_backend(), &self.tenant, &self.filter);
        match self.as_of {
            Some(at) => select.filter(M::CreatedAt.lte(at)),
            None => select,
        }
    }

    /// For each of `fields`: value → count over the matching mismatches, and those without a
    /// value. One statement groups by every field at once.
    pub async fn facets(
        &self,
        fields: &[MismatchFacetField],
    ) -> AppResult<Vec<(Vec<(String, i64)>, i64)>> {
        let keys = &MismatchFacetField::KEYS;
        let combos = key_counts(&self.db, self.rows(), keys, count_all()).await?;
        Ok(fields
            .iter()
            .map(|&field| facet_of(&combos, field as usize))
            .collect())
    }

    /// Mismatches per bucket of `field`.
    pub async fn histogram(
        &self,
        field: MismatchTimeField,
        buckets: &Buckets,
    ) -> AppResult<Vec<i64>> {
        let column = match field {
            MismatchTimeField::CreatedAt => (M::CreatedAt, "created_at"),
            MismatchTimeField::ResolvedAt => (M::ResolvedAt, "resolved_at"),
        };
        counts_per_bucket(&self.db, self.rows(), column, buckets).await
    }
}
