//! GraphQL for log exports: the `LogExport` node (one per export, not per lifecycle row),
//! `logExports`, `logExport`, the per-run loader behind `LlmRun.exports` and the per-export
//! loader behind `LogExport.job`.

use crate::incident_node::{incident_by_id, Incident};
use crate::runs::graphql::LlmRun;
use crate::runs::lookup::run_by_run_id;
use crate::traces::graphql::{Trace, TraceLinks};
use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, InputObject, Json, Object, SimpleObject, Union, ID};
use sea_orm::DatabaseConnection;

use super::jobs::BundleSubject;
use super::views::{ExportFacetField, ExportSet};
use super::{
    store, ExportFilter, ExportFormat, ExportRowSnapshot, ExportScope, ExportStatus,
    LogExportSnapshot,
};
use crate::audit::ActorType;
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::list_filters::text_set;
use crate::pagination::canonical;
use crate::pagination::PageRequest;
use crate::scalars::{BigInt, DateTime};
use crate::state::AppState;
use crate::stats::{Buckets, FacetValue, Histogram, HistogramInterval};
use crate::system::graphql::record_id_from;

/// One export of log data (AUDIT O5). The ledger of exports is append-only: each state of an
/// export is a new row, never an update. This type is the export as a whole: what was requested
/// (`scope`, `format`, `filter`, `requestedBy`, `requestedAt`, from its first row), where it is
/// now (`status` and the artefact's digests, from its latest row, as of the list's `asOf`), and
/// every state it went through (`history`).
#[derive(Clone)]
pub struct LogExport(pub LogExportSnapshot);

#[Object]
impl LogExport {
    /// Global object id (for `node`).
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::LogExport, &self.0.request.export_id)
    }
    /// The export's own id, shared by all its state rows.
    async fn export_id(&self) -> &str {
        &self.0.request.export_id
    }
    async fn scope(&self) -> ExportScope {
        self.0.request.scope
    }
    async fn format(&self) -> ExportFormat {
        self.0.request.format
    }
    /// The run a run-scoped export covers.
    async fn run_id(&self) -> Option<&str> {
        self.0.request.run_id.as_deref()
    }
    /// The run a run, trace or incident bundle covers (`runId`), in the caller's tenant.
    async fn llm_run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LlmRun>> {
        Ok(run_by_run_id(ctx, self.0.request.run_id.as_deref()).await?)
    }
    /// What a bundle export covers, in the caller's tenant: the run of a run bundle, the trace
    /// of a trace bundle, the incident of an incident or compliance bundle. Null for a list
    /// export, and when the subject no longer exists. Batched across a page (the jobs, then one
    /// statement per kind of subject).
    async fn subject(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ExportSubject>> {
        let request = &self.0.request;
        let subject = match request.scope {
            // The request row keeps a run bundle's run.
            ExportScope::RunBundle => request.run_id.clone().map(BundleSubject::Run),
            ExportScope::TraceBundle | ExportScope::IncidentBundle | ExportScope::Compliance => {
                let state = ctx.data_unchecked::<AppState>();
                let jobs = crate::request::scope(ctx)?
                    .shared(|_| crate::request::loader(JobsByExport::new(state.db.clone())));
                let key = (request.tenant_id.clone(), request.export_id.clone());
                jobs.load_one(key)
                    .await?
                    .and_then(|job| job.bundle_subject())
            }
            ExportScope::LlmRuns
            | ExportScope::SystemRecords
            | ExportScope::Audit
            | ExportScope::Traces => None,
        };
        Ok(match subject {
            None => None,
            Some(BundleSubject::Run(run_id)) => run_by_run_id(ctx, Some(&run_id))
                .await?
                .map(ExportSubject::LlmRun),
            Some(BundleSubject::Trace(trace_id)) => {
                let principal = auth::require(ctx, Permission::Read).await?;
                let links = TraceLinks::of(ctx, &principal.tenant_id)?;
                links
                    .traces
                    .load_one(trace_id)
                    .await?
                    .map(|t| ExportSubject::Trace(Trace::new(t, &links.trace_fields)))
            }
            Some(BundleSubject::Incident(id)) => {
                incident_by_id(ctx, &id).await?.map(ExportSubject::Incident)
            }
        })
    }
    /// Who asked for the export.
    async fn requested_by(&self) -> &str {
        &self.0.request.requested_by
    }
    /// What kind of actor asked for it.
    async fn origin(&self) -> ActorType {
        self.0.request.origin
    }
    /// The component that produces the export.
    async fn source_component(&self) -> &str {
        &self.0.request.source_component
    }
    async fn correlation_id(&self) -> Option<&str> {
        self.0.request.correlation_id.as_deref()
    }
    /// The filter of the exported list, as requested.
    async fn filter(&self) -> Option<Json<serde_json::Value>> {
        self.0.request.filter.clone().map(Json)
    }
    /// When the export was requested (its first row; the list order).
    async fn requested_at(&self) -> DateTime {
        self.0.request.created_at.into()
    }
    /// The current status (latest state).
    async fn status(&self) -> ExportStatus {
        self.0.latest().status
    }
    /// When the current state was recorded.
    async fn updated_at(&self) -> DateTime {
        self.0.latest().created_at.into()
    }
    /// Integrity checksum of the artefact, once completed.
    async fn checksum(&self) -> Option<&str> {
        self.0.latest().checksum.as_deref()
    }
    /// Rows in the artefact, once completed.
    async fn row_count(&self) -> Option<BigInt> {
        self.0.latest().row_count.map(BigInt)
    }
    /// Size of the artefact in bytes, once completed.
    async fn byte_size(&self) -> Option<BigInt> {
        self.0.latest().byte_size.map(BigInt)
    }
    /// SHA-256 (hex) of the artefact's manifest, once completed.
    async fn manifest_sha256(&self) -> Option<&str> {
        self.0.latest().manifest_sha256.as_deref()
    }
    /// Why the export failed, when it did.
    async fn error(&self) -> Option<&str> {
        self.0.latest().error.as_deref()
    }
    /// When the artefact was delivered.
    async fn delivered_at(&self) -> Option<DateTime> {
        self.0.latest().delivered_at.map(Into::into)
    }
    /// Every state the export went through, oldest first (the last one is the current state).
    async fn history(&self) -> Vec<LogExportState<'_>> {
        self.0.history.iter().map(LogExportState).collect()
    }
    /// How the export is being produced: job state, stage, percent, ETA, attempts (null for an
    /// export recorded without a job).
    async fn job(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::status::ExportJob>> {
        let state = ctx.data_unchecked::<AppState>();
        let tenant = self.0.request.tenant_id.clone();
        let export_id = self.0.request.export_id.clone();
        // Batched: one statement for every `job` of the response.
        let jobs = crate::request::scope(ctx)?
            .shared(|_| crate::request::loader(JobsByExport::new(state.db.clone())));
        let job = jobs.load_one((tenant, export_id)).await?;
        Ok(job.map(super::status::ExportJob))
    }
    /// A completed bundle's content hash: SHA-256 over its members in name order, each as
    /// `<name>\n<sha256 of its bytes>\n` (docs/domain.md §10.4); the manifest's `bundle_sha256`,
    /// which `logbook export verify` checks. Null for list exports and unfinished bundles.
    async fn bundle_hash(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(job_of(ctx, &self.0)
            .await?
            .and_then(|job| job.bundle_sha256))
    }
    /// Whether a completed bundle holds every run, trace and step it references, and what it
    /// could not include (as in its `evidence.json`). Null for list exports and unfinished
    /// bundles.
    async fn bundle_completeness(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<BundleCompleteness>> {
        Ok(job_of(ctx, &self.0)
            .await?
            .and_then(|job| job.bundle_completeness)
            .and_then(|c| serde_json::from_value(c).ok()))
    }
    /// Where the artefact is served once completed (`Authorization: Bearer` required).
    async fn download_path(&self) -> String {
        format!("/exports/{}/download", self.0.request.export_id)
    }
    /// Where the artefact's manifest is served once completed.
    async fn manifest_path(&self) -> String {
        format!("/exports/{}/manifest", self.0.request.export_id)
    }
}

/// The export's job, through the request's batched loader.
async fn job_of(
    ctx: &Context<'_>,
    export: &LogExportSnapshot,
) -> async_graphql::Result<Option<super::jobs::JobSnapshot>> {
    let state = ctx.data_unchecked::<AppState>();
    let jobs = crate::request::scope(ctx)?
        .shared(|_| crate::request::loader(JobsByExport::new(state.db.clone())));
    let key = (
        export.request.tenant_id.clone(),
        export.request.export_id.clone(),
    );
    jobs.load_one(key).await
}

/// Whether a bundle holds everything it references (`LogExport.bundleCompleteness`).
#[derive(SimpleObject, serde::Deserialize)]
pub struct BundleCompleteness {
    /// True when nothing is missing.
    pub complete: bool,
    /// What the bundle references and does not hold.
    pub missing: Vec<BundleMissing>,
}

/// One reference a bundle could not resolve.
#[derive(SimpleObject, serde::Deserialize)]
pub struct BundleMissing {
    /// `run`, `trace` or `step`.
    pub kind: String,
    /// The reference: a run or trace id, or `<trace id>#<step index>` for a step.
    #[serde(rename = "ref")]
    #[graphql(name = "ref")]
    pub reference: String,
    pub reason: String,
}

/// What a bundle export covers (`LogExport.subject`).
#[derive(Union)]
pub enum ExportSubject {
    LlmRun(LlmRun),
    Trace(Trace),
    Incident(Incident),
}

/// One recorded state of an export (one immutable `log_exports` row).
pub struct LogExportState<'a>(&'a ExportRowSnapshot);

#[Object]
impl LogExportState<'_> {
    /// The row's own id.
    async fn record_id(&self) -> &str {
        &self.0.id
    }
    async fn status(&self) -> ExportStatus {
        self.0.status
    }
    async fn checksum(&self) -> Option<&str> {
        self.0.checksum.as_deref()
    }
    async fn row_count(&self) -> Option<BigInt> {
        self.0.row_count.map(BigInt)
    }
    async fn byte_size(&self) -> Option<BigInt> {
        self.0.byte_size.map(BigInt)
    }
    async fn manifest_sha256(&self) -> Option<&str> {
        self.0.manifest_sha256.as_deref()
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn delivered_at(&self) -> Option<DateTime> {
        self.0.delivered_at.map(Into::into)
    }
    /// When this state was recorded.
    async fn recorded_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

crate::connection_types!(LogExportConnection, LogExportEdge, LogExport, views ExportSet {
    /// Value → count of each named field over the exports matching the filter and `asOf` (all
    /// pages), most frequent first; for a console's filter dropdowns.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn facets(
        &self,
        fields: Vec<ExportFacetField>,
        #[graphql(desc = "Values per field (default 20, at most 100); the rest are `otherCount`.")]
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<LogExportFacet>> {
        let limit = crate::stats::facet_args(&fields, limit, 5)?;
        let counts = self.1.facets(&fields).await?;
        Ok(crate::stats::facets_of(fields, counts, limit, |field, parts| LogExportFacet {
            field,
            values: parts.values,
            other_count: parts.other_count,
        }))
    }

    /// Exports per bucket of their `requestedAt` over `[from, to)`, zero-filled, for the exports
    /// matching the filter and `asOf`. Buckets start on the interval's boundaries in `timeZone`
    /// (an IANA name; UTC when absent); the first and last are cut at `from` and `to`.
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

/// One facet of `logExports` (every export has a value for each field).
#[derive(SimpleObject)]
pub struct LogExportFacet {
    pub field: ExportFacetField,
    pub values: Vec<FacetValue>,
    /// Exports whose value was cut by `limit`.
    pub other_count: BigInt,
}

impl crate::plain::PlainFields for LogExport {}

/// Filters for `logExports`; the same input drives the list, its `totalCount`, facets and
/// histogram. Every given condition must hold; lists hold 1 to 100 values; bounds are
/// inclusive.
#[derive(Debug, Clone, Default, InputObject)]
pub struct LogExportFilter {
    /// Any of these scopes.
    pub scope: Option<Vec<ExportScope>>,
    /// None of these scopes.
    pub scope_not_in: Option<Vec<ExportScope>>,
    /// Any of these formats.
    pub format: Option<Vec<ExportFormat>>,
    /// None of these formats.
    pub format_not_in: Option<Vec<ExportFormat>>,
    /// Any of these current statuses (as of `asOf`, when given).
    pub status: Option<Vec<ExportStatus>>,
    /// None of these current statuses (as of `asOf`, when given).
    pub status_not_in: Option<Vec<ExportStatus>>,
    /// Requested by any of these principals.
    pub requested_by: Option<Vec<String>>,
    /// Requested by none of these principals.
    pub requested_by_not_in: Option<Vec<String>>,
    /// Requested by any of these kinds of actor.
    pub origin: Option<Vec<ActorType>>,
    /// Exports of this run.
    pub run_id: Option<String>,
    /// Inclusive lower bound on `requestedAt`.
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `requestedAt`.
    pub created_before: Option<DateTime>,
}

impl TryFrom<LogExportFilter> for ExportFilter {
    type Error = AppError;

    fn try_from(f: LogExportFilter) -> AppResult<Self> {
        let scopes = |v: Option<Vec<ExportScope>>| v.map(|v| canonical(v, ExportScope::as_str));
        let formats = |v: Option<Vec<ExportFormat>>| v.map(|v| canonical(v, ExportFormat::as_str));
        let statuses = |v: Option<Vec<ExportStatus>>| v.map(|v| canonical(v, ExportStatus::as_str));
        Ok(ExportFilter {
            scope: scopes(f.scope),
            scope_not_in: scopes(f.scope_not_in),
            format: formats(f.format),
            format_not_in: formats(f.format_not_in),
            status: statuses(f.status),
            status_not_in: statuses(f.status_not_in),
            requested_by: text_set("requestedBy", f.requested_by)?,
            requested_by_not_in: text_set("requestedByNotIn", f.requested_by_not_in)?,
            origin: f.origin.map(|v| canonical(v, ActorType::as_str)),
            run_id: f.run_id,
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
        })
    }
}

/// Fetches an export by its export id for `node(id)` and `logExport`, tenant-scoped. Outside
/// the tenant's read window it is `NOT_FOUND`, like another tenant's: an export's time is its
/// request time (its first row's `createdAt`), the column `logExports` is windowed on.
pub async fn node(ctx: &Context<'_>, export_id: &str) -> AppResult<LogExport> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let found = store::get(&state.db, &principal.tenant_id, export_id).await?;
    crate::pagination::within_read_window(ctx, &principal.tenant_id, found, |e| {
        e.request.created_at
    })
    .await?
    .map(LogExport)
    .ok_or(AppError::NotFound("LogExport"))
}

/// `logExports`: a page of export requests, each with its states as of `asOf`.
/// A page of `logExports` (each export with its state as of `asOf`) and the views over the
/// same filter.
async fn log_exports_page(
    ctx: &Context<'_>,
    filter: LogExportFilter,
    request: PageRequest,
) -> AppResult<LogExportConnection> {
    let filter = ExportFilter::try_from(filter)?;
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let tenant = &principal.tenant_id;
    let (narrowed, window) = crate::pagination::read_window::<store::ExportRequests>(
        ctx,
        tenant,
        &filter,
        request.as_of,
    )
    .await?;
    let page = store::page(
        &state.db,
        &state.cursors,
        tenant,
        &filter,
        &narrowed,
        &request,
    )
    .await?;
    let views = ExportSet {
        db: state.db.clone(),
        tenant: tenant.clone(),
        filter: narrowed,
        as_of: request.as_of,
    };
    Ok(LogExportConnection(
        page.map(LogExport).with_read_window(window),
        views,
    ))
}

crate::list_field!(
    /// The tenant's exports, one node per export, newest request first (ties broken by id). An
    /// export keeps its place while its status changes; `asOf` also pins each export's state.
    LogExportsField.log_exports(LogExportFilter) -> LogExportConnection, via log_exports_page
);

/// The root fields, in schema order.
#[derive(async_graphql::MergedObject, Default)]
pub struct ExportQuery(LogExportsField, ExportLookupQuery);

#[derive(Default)]
pub struct ExportLookupQuery;

#[Object]
impl ExportLookupQuery {
    /// One export with its current state, by its `id` or its `exportId`.
    async fn log_export(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<LogExport>> {
        let export_id = record_id_from(&id, NodeKind::LogExport);
        Ok(Some(node(ctx, &export_id).await?))
    }
}

/// Batches `LlmRun.exports`: keyed by run id, one SQL statement per batch (see
/// [`store::exports_for_runs`]). Carries the request's tenant; create one per request. Every
/// requested run gets a value (an empty list when it has no exports).
pub struct ExportsByRun {
    db: DatabaseConnection,
    tenant: TenantId,
}

impl ExportsByRun {
    pub fn new(db: DatabaseConnection, tenant: TenantId) -> Self {
        ExportsByRun { db, tenant }
    }
}

impl Loader<String> for ExportsByRun {
    type Value = Vec<LogExport>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let found = store::exports_for_runs(&self.db, &self.tenant, keys).await?;
        Ok(found
            .into_iter()
            .map(|(run, exports)| (run, exports.into_iter().map(LogExport).collect()))
            .collect())
    }
}

/// Batches `LogExport.job`: keyed by (tenant id, export id), one statement per tenant and batch
/// (see [`super::jobs::get_many`]); each export's job is read under that export's own tenant.
pub struct JobsByExport {
    db: DatabaseConnection,
}

impl JobsByExport {
    pub fn new(db: DatabaseConnection) -> Self {
        JobsByExport { db }
    }
}

impl Loader<(String, String)> for JobsByExport {
    type Value = super::jobs::JobSnapshot;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Self::Value>, Self::Error> {
        let mut by_tenant: HashMap<&str, Vec<String>> = HashMap::new();
        for (tenant, export_id) in keys {
            by_tenant
                .entry(tenant.as_str())
                .or_default()
                .push(export_id.clone());
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (tenant, export_ids) in by_tenant {
            let tenant = TenantId::trusted(tenant.to_owned());
            for (export_id, job) in super::jobs::get_many(&self.db, &tenant, &export_ids).await? {
                out.insert((tenant.as_str().to_owned(), export_id), job);
            }
        }
        Ok(out)
    }
}
