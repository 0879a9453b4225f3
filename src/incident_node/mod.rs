//! GraphQL for incidents: the `Incident` node with the run that opened it, the audit entries
//! about it and the cost anomalies escalated to it (each batched across a page), `incidents`
//! (keyset-paged) and `incident(id)`. It sits above the `incidents` domain (its store, snapshots
//! and writer) because `Incident.costAnomalies` reaches the `cost` domain, whose anomaly
//! escalation opens incidents through `incidents::store`.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, InputObject, Object, ID};
use sea_orm::DatabaseConnection;

use crate::audit::graphql::AuditEntry;
use crate::audit::{AuditEntityType, AuditEntrySnapshot};
use crate::auth::{self, Permission, TenantId};
use crate::cost::graphql::CostAnomaly;
use crate::cost::AnomalySnapshot;
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::incidents::store::{self, IncidentList};
use crate::incidents::{
    IncidentCause, IncidentFilter, IncidentLifecycle, IncidentSeverity, IncidentSnapshot,
    IncidentStatus,
};
use crate::runs::graphql::LlmRun;
use crate::runs::lookup::run_by_run_id;
use crate::scalars::DateTime;
use crate::state::AppState;

/// Audit entries about incidents, by incident id.
pub struct AuditAboutIncidents {
    db: DatabaseConnection,
    tenant: TenantId,
}

impl Loader<String> for AuditAboutIncidents {
    type Value = Vec<AuditEntrySnapshot>;
    type Error = AppError;

    async fn load(&self, keys: &[String]) -> AppResult<HashMap<String, Vec<AuditEntrySnapshot>>> {
        crate::audit::store::entries_about(&self.db, &self.tenant, AuditEntityType::Incident, keys)
            .await
    }
}

/// Cost anomalies escalated to incidents, by incident id.
pub struct AnomaliesOfIncidents {
    db: DatabaseConnection,
    tenant: TenantId,
}

impl Loader<String> for AnomaliesOfIncidents {
    type Value = Vec<AnomalySnapshot>;
    type Error = AppError;

    async fn load(&self, keys: &[String]) -> AppResult<HashMap<String, Vec<AnomalySnapshot>>> {
        crate::cost::store::anomalies_for_incidents(&self.db, &self.tenant, keys).await
    }
}

/// Incidents by id, in one tenant.
pub struct IncidentsById {
    db: DatabaseConnection,
    tenant: TenantId,
}

impl Loader<String> for IncidentsById {
    type Value = IncidentSnapshot;
    type Error = AppError;

    async fn load(&self, keys: &[String]) -> AppResult<HashMap<String, IncidentSnapshot>> {
        let found = store::get_many(&self.db, &self.tenant, keys).await?;
        Ok(found.into_iter().map(|i| (i.id.clone(), i)).collect())
    }
}

/// The caller's incident with this id, if any, batched across the request (how other domains
/// link to an incident, e.g. `LogExport.subject`).
pub async fn incident_by_id(ctx: &Context<'_>, id: &str) -> AppResult<Option<Incident>> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let db = &ctx.data_unchecked::<AppState>().db;
    let loader = crate::request::scope(ctx)?.shared(|_| {
        crate::request::loader(IncidentsById {
            db: db.clone(),
            tenant: principal.tenant_id.clone(),
        })
    });
    let found: Option<IncidentSnapshot> = DataLoader::load_one(&loader, id.to_owned()).await?;
    Ok(found.map(Incident))
}

/// The request's incident loaders (one set per request, in the caller's tenant).
pub struct IncidentLoaders {
    audit: DataLoader<AuditAboutIncidents>,
    anomalies: DataLoader<AnomaliesOfIncidents>,
}

impl IncidentLoaders {
    async fn of(ctx: &Context<'_>) -> AppResult<std::sync::Arc<Self>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let db = &ctx.data_unchecked::<AppState>().db;
        let tenant = &principal.tenant_id;
        Ok(crate::request::scope(ctx)?.shared(|_| IncidentLoaders {
            audit: crate::request::loader(AuditAboutIncidents {
                db: db.clone(),
                tenant: tenant.clone(),
            }),
            anomalies: crate::request::loader(AnomaliesOfIncidents {
                db: db.clone(),
                tenant: tenant.clone(),
            }),
        }))
    }
}

/// An incident: what a failed or blocked run (or the system, or a person) opened.
pub struct Incident(pub IncidentSnapshot);

#[Object]
impl Incident {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::Incident, &self.0.id)
    }
    /// The incident's own id (what audit entries and cost anomalies name).
    async fn incident_id(&self) -> &str {
        &self.0.id
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn severity(&self) -> IncidentSeverity {
        self.0.severity
    }
    async fn status(&self) -> IncidentStatus {
        self.0.status
    }
    async fn lifecycle_state(&self) -> IncidentLifecycle {
        self.0.lifecycle_state
    }
    async fn cause_type(&self) -> IncidentCause {
        self.0.cause_type
    }
    /// As stored, e.g. `run_failure`, `policy_violation`, `budget_exceeded`, `manual`.
    async fn trigger_type(&self) -> &str {
        &self.0.trigger_type
    }
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn error_code(&self) -> Option<&str> {
        self.0.error_code.as_deref()
    }
    async fn error_message(&self) -> Option<&str> {
        self.0.error_message.as_deref()
    }
    async fn source_run_id(&self) -> Option<&str> {
        self.0.source_run_id.as_deref()
    }
    /// The run that opened the incident, in the caller's tenant (batched per request).
    async fn source_run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LlmRun>> {
        Ok(run_by_run_id(ctx, self.0.source_run_id.as_deref()).await?)
    }
    /// The step where the run went wrong, when known.
    async fn inflection_step_index(&self) -> Option<i32> {
        self.0.inflection_step_index
    }
    async fn inflection_timestamp(&self) -> Option<DateTime> {
        self.0.inflection_timestamp.map(Into::into)
    }
    async fn started_at(&self) -> DateTime {
        self.0.started_at.into()
    }
    async fn ended_at(&self) -> Option<DateTime> {
        self.0.ended_at.map(Into::into)
    }
    async fn resolved_at(&self) -> Option<DateTime> {
        self.0.resolved_at.map(Into::into)
    }
    async fn resolved_by(&self) -> Option<&str> {
        self.0.resolved_by.as_deref()
    }
    async fn is_synthetic(&self) -> bool {
        self.0.is_synthetic
    }
    async fn synthetic_scenario_id(&self) -> Option<&str> {
        self.0.synthetic_scenario_id.as_deref()
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
    /// Audit entries about this incident (acknowledged, resolved, closed, ...), newest first, at
    /// most 100; the complete history is `auditEntityHistory(entityType: INCIDENT, ...)`.
    async fn audit_entries(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AuditEntry>> {
        let loaders = IncidentLoaders::of(ctx).await?;
        let found = loaders.audit.load_one(self.0.id.clone()).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(AuditEntry)
            .collect())
    }
    /// Cost anomalies escalated to this incident, newest detection first.
    async fn cost_anomalies(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CostAnomaly>> {
        let loaders = IncidentLoaders::of(ctx).await?;
        let found = loaders.anomalies.load_one(self.0.id.clone()).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(CostAnomaly)
            .collect())
    }
}

crate::connection_types!(IncidentConnection, IncidentEdge, Incident from IncidentSnapshot);

impl crate::plain::PlainFields for Incident {}

/// Filters for `incidents`; the same input drives the list and its `totalCount`.
#[derive(Debug, Clone, Default, InputObject)]
pub struct IncidentListFilter {
    /// Any of these severities.
    pub severity: Option<Vec<IncidentSeverity>>,
    /// Any of these statuses.
    pub status: Option<Vec<IncidentStatus>>,
    /// Any of these lifecycle states.
    pub lifecycle_state: Option<Vec<IncidentLifecycle>>,
    pub cause_type: Option<IncidentCause>,
    pub trigger_type: Option<String>,
    pub category: Option<String>,
    pub source_run_id: Option<String>,
    pub is_synthetic: Option<bool>,
    /// Inclusive bounds on `startedAt`.
    pub started_after: Option<DateTime>,
    pub started_before: Option<DateTime>,
    /// Inclusive bounds on `createdAt`.
    pub created_after: Option<DateTime>,
    pub created_before: Option<DateTime>,
}

impl From<IncidentListFilter> for IncidentFilter {
    fn from(f: IncidentListFilter) -> Self {
        use crate::pagination::canonical;
        IncidentFilter {
            severity: f.severity.map(|v| canonical(v, IncidentSeverity::as_str)),
            status: f.status.map(|v| canonical(v, IncidentStatus::as_str)),
            lifecycle_state: f
                .lifecycle_state
                .map(|v| canonical(v, IncidentLifecycle::as_str)),
            cause_type: f.cause_type,
            trigger_type: f.trigger_type,
            category: f.category,
            source_run_id: f.source_run_id,
            is_synthetic: f.is_synthetic,
            started_after: f.started_after.map(|d| d.0),
            started_before: f.started_before.map(|d| d.0),
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
        }
    }
}

crate::list_field!(
    /// The tenant's incidents, newest first (ties broken by id).
    IncidentsField.incidents(IncidentListFilter) -> IncidentConnection = IncidentList
);

/// Fetches an incident by its record id for `node(id)`, tenant-scoped.
pub async fn node(ctx: &Context<'_>, record_id: &str) -> AppResult<Incident> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    store::get(&state.db, &principal.tenant_id, record_id)
        .await?
        .map(Incident)
        .ok_or(AppError::NotFound("Incident"))
}

#[derive(Default)]
pub struct IncidentLookupQuery;

#[Object]
impl IncidentLookupQuery {
    /// The tenant's incident with this incident id.
    async fn incident(
        &self,
        ctx: &Context<'_>,
        incident_id: String,
    ) -> async_graphql::Result<Option<Incident>> {
        Ok(Some(node(ctx, &incident_id).await?))
    }
}

/// The root fields, in schema order.
#[derive(async_graphql::MergedObject, Default)]
pub struct IncidentQuery(IncidentsField, IncidentLookupQuery);
