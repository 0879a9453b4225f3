//! SQL for `incidents`. Every read is scoped to one tenant in the SQL itself. The one writer is
//! [`open`], through which other domains' findings (escalated cost anomalies, docs/domain.md
//! §9.5) become incidents.

use chrono::{DateTime, Utc};
use entity::incidents::{self, Column as I, Entity as Incidents};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select, Set};

use super::{
    IncidentCause, IncidentFilter, IncidentLifecycle, IncidentSeverity, IncidentSnapshot,
    IncidentStatus,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::pagination::{created_within, Listed, Position};

fn snapshot(m: incidents::Model) -> AppResult<IncidentSnapshot> {
    let bad = |what: &str, value: &str| {
        AppError::internal(format!("incident {} has unknown {what} {value}", m.id))
    };
    Ok(IncidentSnapshot {
        severity: IncidentSeverity::parse(&m.severity)
            .ok_or_else(|| bad("severity", &m.severity))?,
        status: IncidentStatus::parse(&m.status).ok_or_else(|| bad("status", &m.status))?,
        lifecycle_state: IncidentLifecycle::parse(&m.lifecycle_state)
            .ok_or_else(|| bad("lifecycle state", &m.lifecycle_state))?,
        cause_type: IncidentCause::parse(&m.cause_type)
            .ok_or_else(|| bad("cause", &m.cause_type))?,
        id: m.id,
        tenant_id: m.tenant_id,
        title: m.title,
        trigger_type: m.trigger_type,
        source_run_id: m.source_run_id,
        category: m.category,
        description: m.description,
        error_code: m.error_code,
        error_message: m.error_message,
        inflection_step_index: m.inflection_step_index,
        inflection_timestamp: m.inflection_timestamp,
        started_at: m.started_at,
        ended_at: m.ended_at,
        resolved_at: m.resolved_at,
        resolved_by: m.resolved_by,
        is_synthetic: m.is_synthetic,
        synthetic_scenario_id: m.synthetic_scenario_id,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn filtered(tenant: &TenantId, filter: &IncidentFilter) -> Select<Incidents> {
    let mut q = Incidents::find().filter(I::TenantId.eq(tenant.as_str()));
    if let Some(v) = &filter.severity {
        q = q.filter(I::Severity.is_in(v.iter().map(|s| s.as_str())));
    }
    if let Some(v) = &filter.status {
        q = q.filter(I::Status.is_in(v.iter().map(|s| s.as_str())));
    }
    if let Some(v) = &filter.lifecycle_state {
        q = q.filter(I::LifecycleState.is_in(v.iter().map(|s| s.as_str())));
    }
    if let Some(v) = filter.cause_type {
        q = q.filter(I::CauseType.eq(v.as_str()));
    }
    for (column, value) in [
        (I::TriggerType, &filter.trigger_type),
        (I::Category, &filter.category),
        (I::SourceRunId, &filter.source_run_id),
    ] {
        if let Some(v) = value {
            q = q.filter(column.eq(v.as_str()));
        }
    }
    if let Some(v) = filter.is_synthetic {
        q = q.filter(I::IsSynthetic.eq(v));
    }
    let q = created_within(q, I::StartedAt, filter.started_after, filter.started_before);
    created_within(q, I::CreatedAt, filter.created_after, filter.created_before)
}

/// The tenant's incidents matching a filter, newest first (`incidents`).
pub struct IncidentList;

impl Listed for IncidentList {
    type Entity = Incidents;
    type Filter = IncidentFilter;
    type Row = IncidentSnapshot;
    const NAME: &'static str = "incidents";
    const ORDER: (I, I) = (I::CreatedAt, I::Id);
    const ROW: fn(incidents::Model) -> AppResult<IncidentSnapshot> = snapshot;
    const POSITION: fn(&IncidentSnapshot) -> Position = |i| Position::of(i.created_at, &i.id);

    fn select(
        tenant: &TenantId,
        filter: &IncidentFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<Incidents> {
        filtered(tenant, filter)
    }
}

/// The tenant's incident with this id.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<Option<IncidentSnapshot>> {
    Incidents::find()
        .filter(I::TenantId.eq(tenant.as_str()))
        .filter(I::Id.eq(id))
        .one(db)
        .await?
        .map(snapshot)
        .transpose()
}

/// The tenant's incidents with these ids, in one statement.
pub async fn get_many(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: &[String],
) -> AppResult<Vec<IncidentSnapshot>> {
    Incidents::find()
        .filter(I::TenantId.eq(tenant.as_str()))
        .filter(I::Id.is_in(ids.iter().map(String::as_str)))
        .all(db)
        .await?
        .into_iter()
        .map(snapshot)
        .collect()
}

/// An incident another domain opens from one of its findings.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub severity: IncidentSeverity,
    /// What raised it, e.g. `cost_anomaly`.
    pub trigger_type: &'static str,
    pub category: Option<String>,
    pub description: Option<String>,
    pub cause_type: IncidentCause,
    pub started_at: DateTime<Utc>,
}

/// Opens an incident of the tenant (status `open`, lifecycle `ACTIVE`) and returns its id
/// (`inc_` + 16 hex). Call it inside the transaction that records the link to it.
pub async fn open(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    new: NewIncident,
) -> AppResult<String> {
    let id = format!("inc_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let at = crate::scalars::now();
    let title: String = new.title.chars().take(255).collect();
    Incidents::insert(incidents::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.as_str().to_owned()),
        title: Set(title),
        severity: Set(new.severity.as_str().to_owned()),
        status: Set(IncidentStatus::Open.as_str().to_owned()),
        trigger_type: Set(new.trigger_type.to_owned()),
        source_run_id: Set(None),
        category: Set(new.category),
        description: Set(new.description),
        error_code: Set(None),
        error_message: Set(None),
        lifecycle_state: Set(IncidentLifecycle::Active.as_str().to_owned()),
        cause_type: Set(new.cause_type.as_str().to_owned()),
        inflection_step_index: Set(None),
        inflection_timestamp: Set(None),
        started_at: Set(new.started_at),
        ended_at: Set(None),
        resolved_at: Set(None),
        resolved_by: Set(None),
        is_synthetic: Set(false),
        synthetic_scenario_id: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .exec_without_returning(db)
    .await?;
    Ok(id)
}
