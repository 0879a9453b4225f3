//! Facets and histograms over the audit entries a filter selects (docs/console.md). Exact and
//! computed in SQL over the tenant's filtered entries, which its keyset index narrows to the
//! filter's time window.

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use entity::audit_ledger::{Column as A, Entity as Entries};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, Select};

use super::store::filtered;
use super::{AuditEventType, AuditFilter};
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::stats::sql::{count_all, counts_per_bucket, facet_of, key_counts};
use crate::stats::{enum_name, Buckets};

/// The tenant's audit entries matching a filter, up to `asOf`.
#[derive(Clone)]
pub struct AuditEntrySet {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
    pub filter: AuditFilter,
    pub as_of: Option<DateTime<Utc>>,
}

/// The fields an audit facet counts by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditFacetField {
    EventType,
    EntityType,
    ActorType,
    /// Entries without an actor id are its `missingCount`.
    ActorId,
}

impl AuditFacetField {
    /// The stored columns, in declaration order.
    const KEYS: [&'static str; 4] = ["event_type", "entity_type", "actor_type", "actor_id"];
}

impl AuditEntrySet {
    fn rows(&self) -> Select<Entries> {
        let select = filtered(self.db.get_database_backend(), &self.tenant, &self.filter);
        match self.as_of {
            Some(at) => select.filter(A::CreatedAt.lte(at)),
            None => select,
        }
    }

    /// For each of `fields`: value → count over the matching entries (enum values as the
    /// GraphQL enums name them, so a client can filter by them), and the entries without a
    /// value. One statement groups by every field at once.
    pub async fn facets(
        &self,
        fields: &[AuditFacetField],
    ) -> AppResult<Vec<(Vec<(String, i64)>, i64)>> {
        let combos = key_counts(&self.db, self.rows(), &AuditFacetField::KEYS, count_all()).await?;
        Ok(fields
            .iter()
            .map(|&field| {
                let (counts, missing) = facet_of(&combos, field as usize);
                let counts = match field {
                    // Stored as written by the platform (`PolicyRuleCreated`).
                    AuditFacetField::EventType => counts
                        .into_iter()
                        .map(|(stored, n)| match AuditEventType::parse(&stored) {
                            Some(event) => (enum_name(&event), n),
                            None => (stored, n),
                        })
                        .collect(),
                    _ => counts,
                };
                (counts, missing)
            })
            .collect())
    }

    /// Entries per bucket of their creation time.
    pub async fn histogram(&self, buckets: &Buckets) -> AppResult<Vec<i64>> {
        counts_per_bucket(&self.db, self.rows(), (A::CreatedAt, "created_at"), buckets).await
    }
}
