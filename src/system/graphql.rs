//! GraphQL for system records: the `SystemRecord` node, `systemRecords` (keyset-paged) and
//! `systemRecord`, plus the per-run loader the `LlmRun.systemRecords` field batches through.

use crate::runs::graphql::LlmRun;
use crate::runs::lookup::run_by_run_id;
use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use sea_orm::DatabaseConnection;

use super::views::{SystemRecordFacetField, SystemRecordSet};
use super::{
    store, SystemComponent, SystemEventType, SystemFilter, SystemRecordCause, SystemRecordScope,
    SystemRecordSeverity, SystemRecordSnapshot,
};
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::list_filters::{check_term, words};
use crate::pagination::{self, canonical, PageRequest};
use crate::scalars::{BigInt, DateTime};
use crate::state::AppState;
use crate::stats::{Buckets, FacetValue, Histogram, HistogramInterval};

/// An immutable infrastructure or trust event: a worker restart, a deploy, a migration, an auth
/// change (topic SYSTEM_LOGS). Records without a tenant are system-wide and shown to every
/// tenant; they describe the shared platform, so producers must keep tenant data and
/// infrastructure secrets (hostnames, addresses, credentials) out of their `summary` and
/// `details`.
#[derive(Clone)]
pub struct SystemRecord(pub SystemRecordSnapshot);

#[Object]
impl SystemRecord {
    /// Global object id (for `node`).
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::SystemRecord, &self.0.id)
    }
    /// The record's own id.
    async fn record_id(&self) -> &str {
        &self.0.id
    }
    /// The owning tenant; null for a system-wide record.
    async fn tenant_id(&self) -> Option<&str> {
        self.0.tenant_id.as_deref()
    }
    /// True when the record has no tenant and is visible to every tenant.
    async fn is_system_wide(&self) -> bool {
        self.0.tenant_id.is_none()
    }
    async fn component(&self) -> SystemComponent {
        self.0.component
    }
    async fn event_type(&self) -> SystemEventType {
        self.0.event_type
    }
    async fn severity(&self) -> SystemRecordSeverity {
        self.0.severity
    }
    /// One line for humans.
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// Structured detail as the producer wrote it. For system-wide records this is shared by
    /// every tenant: it is not redacted by Logbook, so producers must not put infrastructure
    /// details there.
    async fn details(&self) -> Option<Json<serde_json::Value>> {
        self.0.details.clone().map(Json)
    }
    async fn caused_by(&self) -> Option<SystemRecordCause> {
        self.0.caused_by
    }
    /// Correlates the record with a run: records of a run have `correlationId = runId`.
    /// The run whose run id is this record's `correlationId`, in the caller's tenant (a
    /// system-wide record's correlated run too, when it is the caller's).
    async fn llm_run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LlmRun>> {
        Ok(run_by_run_id(ctx, self.0.correlation_id.as_deref()).await?)
    }
    async fn correlation_id(&self) -> Option<&str> {
        self.0.correlation_id.as_deref()
    }
    /// When the event was recorded (immutable; the list order).
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

crate::connection_types!(SystemRecordConnection, SystemRecordEdge, SystemRecord, views SystemRecordSet {
    /// Value → count of each named field over the records matching the filter and `asOf` (all
    /// pages), most frequent first; for a console's filter dropdowns.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn facets(
        &self,
        fields: Vec<SystemRecordFacetField>,
        #[graphql(desc = "Values per field (default 20, at most 100); the rest are `otherCount`.")]
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<SystemRecordFacet>> {
        let limit = crate::stats::facet_args(&fields, limit, 5)?;
        let counts = self.1.facets(&fields).await?;
        Ok(crate::stats::facets_of(fields, counts, limit, |field, parts| SystemRecordFacet {
            field,
            values: parts.values,
            other_count: parts.other_count,
            missing_count: parts.missing_count,
        }))
    }

    /// Records per `createdAt` bucket over `[from, to)`, zero-filled, for the records matching
    /// the filter and `asOf`. Buckets start on the interval's boundaries in `timeZone` (an IANA
    /// name; UTC when absent); the first and last are cut at `from` and `to`.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn histogram(
        &self,
        interval: HistogramInterval,
        from: DateTime,
        to: DateTime,
        time_zone: Option<String>,
    ) -> async_graphql::Result<Histogram> {
        let buckets = Buckets::new(interval, from.0, to.0, time_zone.as_deref())?;
        Ok(buckets.finish_counts(&self.1.histogram(&buckets).await?))
    }
});

/// One facet of `systemRecords`.
#[derive(SimpleObject)]
pub struct SystemRecordFacet {
    pub field: SystemRecordFacetField,
    pub values: Vec<FacetValue>,
    /// Records whose value was cut by `limit`.
    pub other_count: BigInt,
    /// Records without a value for the field (no cause).
    pub missing_count: BigInt,
}

impl crate::plain::PlainFields for SystemRecord {}

/// Filters for `systemRecords`; the same input drives the list, its `totalCount`, facets and
/// histogram, an export of the list and `systemRecordAdded`. Every given condition must hold.
#[derive(Debug, Clone, Default, InputObject)]
pub struct SystemRecordFilter {
    /// The tenant's records, the system-wide ones, or both (the default).
    #[graphql(default)]
    pub scope: SystemRecordScope,
    /// Any of these components.
    pub component: Option<Vec<SystemComponent>>,
    /// None of these components.
    pub component_not_in: Option<Vec<SystemComponent>>,
    /// Any of these event types.
    pub event_type: Option<Vec<SystemEventType>>,
    /// None of these event types.
    pub event_type_not_in: Option<Vec<SystemEventType>>,
    /// Any of these severities.
    pub severity: Option<Vec<SystemRecordSeverity>>,
    /// None of these severities.
    pub severity_not_in: Option<Vec<SystemRecordSeverity>>,
    /// Any of these causes.
    pub caused_by: Option<Vec<SystemRecordCause>>,
    /// None of these causes (records without a cause are kept).
    pub caused_by_not_in: Option<Vec<SystemRecordCause>>,
    /// Exact correlation id (a run id for run-correlated records).
    pub correlation_id: Option<String>,
    /// Inclusive lower bound on `createdAt`.
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `createdAt`.
    pub created_before: Option<DateTime>,
    /// Case-insensitive substring (3 to 100 characters) of the record id, summary or
    /// correlation id, answered from a trigram index.
    pub search: Option<String>,
    /// Words of the summary and details (JSON keys and values), all of which must occur, whole
    /// and ignoring case; `word*` matches a prefix. Answered from a word index.
    pub text: Option<String>,
}

impl TryFrom<SystemRecordFilter> for SystemFilter {
    type Error = AppError;

    fn try_from(f: SystemRecordFilter) -> AppResult<Self> {
        if let Some(term) = &f.search {
            check_term("search", term)?;
        }
        Ok(SystemFilter {
            scope: f.scope,
            component: f.component.map(|v| canonical(v, SystemComponent::as_str)),
            component_not_in: f
                .component_not_in
                .map(|v| canonical(v, SystemComponent::as_str)),
            event_type: f.event_type.map(|v| canonical(v, SystemEventType::as_str)),
            event_type_not_in: f
                .event_type_not_in
                .map(|v| canonical(v, SystemEventType::as_str)),
            severity: f
                .severity
                .map(|v| canonical(v, SystemRecordSeverity::as_str)),
            severity_not_in: f
                .severity_not_in
                .map(|v| canonical(v, SystemRecordSeverity::as_str)),
            caused_by: f.caused_by.map(|v| canonical(v, SystemRecordCause::as_str)),
            caused_by_not_in: f
                .caused_by_not_in
                .map(|v| canonical(v, SystemRecordCause::as_str)),
            correlation_id: f.correlation_id,
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
            search: f.search,
            text: f.text.map(|t| words("text", &t)).transpose()?,
        })
    }
}

/// Fetches a record by its record id for `node(id)` and `systemRecord`: the tenant's own or a
/// system-wide one. Outside the tenant's read window (on `createdAt`, like `systemRecords`) it
/// is `NOT_FOUND`, like another tenant's.
pub async fn node(ctx: &Context<'_>, record_id: &str) -> AppResult<SystemRecord> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let found = store::get(&state.db, &principal.tenant_id, record_id).await?;
    pagination::within_read_window(ctx, &principal.tenant_id, found, |r| r.created_at)
        .await?
        .map(SystemRecord)
        .ok_or(AppError::NotFound("SystemRecord"))
}

/// The record id named by a lookup argument: a global id of this type, or the bare record id.
pub(crate) fn record_id_from(id: &str, kind: NodeKind) -> String {
    match ids::decode(id) {
        Some((k, record_id)) if k == kind => record_id,
        _ => id.to_owned(),
    }
}

crate::list_field!(
    /// System records the tenant may see (its own and the system-wide ones, see `scope`),
    /// newest first (ties broken by id).
    SystemRecordsField.system_records(SystemRecordFilter) -> SystemRecordConnection, via system_records_page
);

/// A page of `systemRecords` and the views over the same filter.
async fn system_records_page(
    ctx: &Context<'_>,
    filter: SystemRecordFilter,
    request: PageRequest,
) -> AppResult<SystemRecordConnection> {
    let filter = SystemFilter::try_from(filter)?;
    let listed = pagination::view_page::<store::SystemList>(ctx, filter, request).await?;
    let views = SystemRecordSet {
        db: listed.db,
        tenant: listed.tenant,
        filter: listed.filter,
        as_of: listed.as_of,
    };
    Ok(SystemRecordConnection(listed.page.map(SystemRecord), views))
}

/// The root fields, in schema order.
#[derive(async_graphql::MergedObject, Default)]
pub struct SystemQuery(SystemRecordsField, SystemLookupQuery);

#[derive(Default)]
pub struct SystemLookupQuery;

#[Object]
impl SystemLookupQuery {
    /// One system record, by its `id` or its `recordId`: the tenant's own or a system-wide one.
    async fn system_record(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<SystemRecord>> {
        let record_id = record_id_from(&id, NodeKind::SystemRecord);
        Ok(Some(node(ctx, &record_id).await?))
    }
}

/// Batches `LlmRun.systemRecords`: keyed by run id, one SQL statement per batch (see
/// [`store::system_records_for_runs`]). A request has one tenant, so the loader carries it;
/// create one per request (`crate::request::loader`). Every requested run gets a value (an empty list when it has no records).
pub struct SystemRecordsByRun {
    db: DatabaseConnection,
    tenant: TenantId,
}

impl SystemRecordsByRun {
    pub fn new(db: DatabaseConnection, tenant: TenantId) -> Self {
        SystemRecordsByRun { db, tenant }
    }
}

impl Loader<String> for SystemRecordsByRun {
    type Value = Vec<SystemRecord>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let found = store::system_records_for_runs(&self.db, &self.tenant, keys).await?;
        Ok(found
            .into_iter()
            .map(|(run, records)| (run, records.into_iter().map(SystemRecord).collect()))
            .collect())
    }
}
