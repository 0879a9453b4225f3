//! Facets and histograms over the exports a filter selects (docs/console.md, "Exports"). Exact
//! and computed in SQL over the tenant's export requests (a tenant asks for a few exports a
//! day; the tenant's keyset index narrows them to the filter's window). An export's status is
//! its newest row's, read with the same correlated subquery the `status` filter uses.

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use entity::log_exports::{Column, Entity};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, QuerySelect, QueryTrait, Select};

use super::store::{current_status, filtered};
use super::ExportFilter;
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::stats::sql::{counts_of_columns, counts_per_bucket, facet_of};
use crate::stats::Buckets;

/// The tenant's exports matching a filter, up to `asOf`.
#[derive(Clone)]
pub struct ExportSet {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub filter: ExportFilter,
    pub as_of: Option<DateTime<Utc>>,
}

/// The fields an export facet counts by (every export has each, so no `missingCount`).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(name = "LogExportFacetField")]
pub enum ExportFacetField {
    Scope,
    Format,
    /// The current status (at `asOf`, when given).
    Status,
    Origin,
    RequestedBy,
}

impl ExportFacetField {
    const ALL: [ExportFacetField; 5] = [
        Self::Scope,
        Self::Format,
        Self::Status,
        Self::Origin,
        Self::RequestedBy,
    ];

    /// The field's value as text, spelled as its GraphQL enum value where it is one (the
    /// stored spellings are the enum names in lower case).
    fn key(self, as_of: Option<DateTime<Utc>>) -> Expr {
        match self {
            Self::Scope => Func::upper(Expr::col(Column::Scope)).into(),
            Self::Format => Func::upper(Expr::col(Column::Format)).into(),
            Self::Status => Func::upper(current_status(as_of)).into(),
            Self::Origin => Expr::col(Column::Origin),
            Self::RequestedBy => Expr::col(Column::RequestedBy),
        }
    }
}

impl ExportSet {
    fn rows(&self) -> Select<Entity> {
        let select = filtered(&self.tenant, &self.filter, self.as_of);
        match self.as_of {
            Some(at) => select.filter(Column::CreatedAt.lte(at)),
            None => select,
        }
    }

    /// For each of `fields`: value → count over the matching exports. One statement groups by
    /// every field at once.
    pub async fn facets(
        &self,
        fields: &[ExportFacetField],
    ) -> AppResult<Vec<(Vec<(String, i64)>, i64)>> {
        let mut keyed = self.rows().select_only();
        for (i, field) in ExportFacetField::ALL.iter().enumerate() {
            keyed = keyed.column_as(field.key(self.as_of), format!("k{i}"));
        }
        let combos =
            counts_of_columns(&self.db, &keyed.into_query(), ExportFacetField::ALL.len()).await?;
        Ok(fields
            .iter()
            .map(|&field| facet_of(&combos, field as usize))
            .collect())
    }

    /// Exports per bucket of their request time.
    pub async fn histogram(&self, buckets: &Buckets) -> AppResult<Vec<i64>> {
        counts_per_bucket(
            &self.db,
            self.rows(),
            (Column::CreatedAt, "created_at"),
            buckets,
        )
        .await
    }
}
