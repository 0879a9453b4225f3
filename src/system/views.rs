//! Facets and histograms over the system records a filter selects (docs/console.md). Exact and
//! computed in SQL over the filtered records (the tenant's own and, per the scope, the
//! system-wide ones), which the keyset indexes narrow to the filter's time window.

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use entity::system_records::{Column as S, Entity as Records};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, Select};

use super::store::filtered;
use super::SystemFilter;
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::stats::sql::{count_all, counts_per_bucket, facet_of, key_counts};
use crate::stats::Buckets;

/// The system records a tenant may see matching a filter, up to `asOf`.
#[derive(Clone)]
pub struct SystemRecordSet {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub filter: SystemFilter,
    pub as_of: Option<DateTime<Utc>>,
}

/// The fields a system record facet counts by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemRecordFacetField {
    Component,
    EventType,
    Severity,
    /// Records without a cause are its `missingCount`.
    CausedBy,
    /// `true` for system-wide records, `false` for the tenant's own.
    IsSystemWide,
}

impl SystemRecordFacetField {
    /// The field as text, as the GraphQL enums name the values (NULL where a record has none),
    /// in declaration order.
    const KEYS: [&'static str; 5] = [
        "upper(component)",
        "event_type",
        "severity",
        "caused_by",
        "CASE WHEN tenant_id IS NULL THEN 'true' ELSE 'false' END",
    ];
}

impl SystemRecordSet {
    fn rows(&self) -> Select<Records> {
        let select = filtered(self.db.get_database_backend(), &self.tenant, &self.filter);
        match self.as_of {
            Some(at) => select.filter(S::CreatedAt.lte(at)),
            None => select,
        }
    }

    /// For each of `fields`: value → count over the matching records, and the records without
    /// a value. One statement groups by every field at once.
    pub async fn facets(
        &self,
        fields: &[SystemRecordFacetField],
    ) -> AppResult<Vec<(Vec<(String, i64)>, i64)>> {
        let keys = &SystemRecordFacetField::KEYS;
        let combos = key_counts(&self.db, self.rows(), keys, count_all()).await?;
        Ok(fields
            .iter()
            .map(|&field| facet_of(&combos, field as usize))
            .collect())
    }

    /// Records per bucket of their creation time.
    pub async fn histogram(&self, buckets: &Buckets) -> AppResult<Vec<i64>> {
        counts_per_bucket(&self.db, self.rows(), (S::CreatedAt, "created_at"), buckets).await
    }
}
