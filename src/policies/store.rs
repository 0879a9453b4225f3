//! SQL for `policy_activation_audit`: the keyset list, lookups and the upsert. Every read is
//! scoped in SQL to the caller's tenant; the upsert touches only the caller's own row.

use chrono::{DateTime, Utc};
use entity::policy_activation_audit::{self, Column, Entity};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select};

use super::confidence::{self, ConfidenceBand};
use super::{ActivationFilter, ApprovalKind, ApprovalPath, PolicyActivationSnapshot, HUMAN_PREFIX};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::pagination::{created_within, Listed, Position};

pub(crate) fn snapshot(m: policy_activation_audit::Model) -> AppResult<PolicyActivationSnapshot> {
    let approval_path = ApprovalPath::parse(&m.approval_path).ok_or_else(|| {
        AppError::internal(format!(
            "policy activation {} has unknown approval path {}",
            m.policy_id, m.approval_path
        ))
    })?;
    Ok(PolicyActivationSnapshot {
        policy_id: m.policy_id,
        tenant_id: m.tenant_id,
        source_pattern_id: m.source_pattern_id,
        source_recovery_id: m.source_recovery_id,
        confidence_at_activation: m.confidence_at_activation,
        confidence_version: m.confidence_version,
        approval_path,
        loop_trace_id: m.loop_trace_id,
        activated_at: m.activated_at,
        created_at: m.created_at,
    })
}

/// The rows of one confidence band.
fn in_band(band: ConfidenceBand) -> Condition {
    let c = Column::ConfidenceAtActivation;
    match band {
        ConfidenceBand::StrongMatch => {
            Condition::all().add(c.gte(confidence::STRONG_MATCH_THRESHOLD))
        }
        ConfidenceBand::WeakMatch => Condition::all()
            .add(c.gte(confidence::WEAK_MATCH_THRESHOLD))
            .add(c.lt(confidence::STRONG_MATCH_THRESHOLD)),
        ConfidenceBand::Novel => Condition::all().add(c.lt(confidence::WEAK_MATCH_THRESHOLD)),
    }
}

/// The rows of one approval kind.
fn of_kind(kind: ApprovalKind) -> Condition {
    let c = Column::ApprovalPath;
    Condition::all().add(match kind {
        ApprovalKind::Human => c.starts_with(HUMAN_PREFIX),
        ApprovalKind::Auto | ApprovalKind::Threshold => c.eq(kind.as_str()),
    })
}

/// The tenant's activations matching `filter`.
pub(crate) fn filtered(tenant: &TenantId, filter: &ActivationFilter) -> Select<Entity> {
    let mut q = Entity::find().filter(Column::TenantId.eq(tenant.as_str()));
    let exact = [
        (Column::PolicyId, &filter.policy_id),
        (Column::SourcePatternId, &filter.source_pattern_id),
        (Column::SourceRecoveryId, &filter.source_recovery_id),
        (Column::LoopTraceId, &filter.loop_trace_id),
    ];
    for (column, value) in exact {
        if let Some(v) = value {
            q = q.filter(column.eq(v.as_str()));
        }
    }
    if let Some(user) = &filter.approved_by {
        q = q.filter(Column::ApprovalPath.eq(format!("{HUMAN_PREFIX}{user}")));
    }
    if let Some(kinds) = &filter.approval_kind {
        q = q.filter(
            kinds
                .iter()
                .fold(Condition::any(), |any, k| any.add(of_kind(*k))),
        );
    }
    if let Some(bands) = &filter.band {
        q = q.filter(
            bands
                .iter()
                .fold(Condition::any(), |any, b| any.add(in_band(*b))),
        );
    }
    let q = created_within(
        q,
        Column::ActivatedAt,
        filter.activated_after,
        filter.activated_before,
    );
    created_within(
        q,
        Column::CreatedAt,
        filter.created_after,
        filter.created_before,
    )
}

/// The tenant's activations matching a filter, newest first activation first (`createdAt`, which
/// a re-record never moves; ties by policy id): `policyActivations`.
pub struct ActivationList;

impl Listed for ActivationList {
    type Entity = Entity;
    type Filter = ActivationFilter;
    type Row = PolicyActivationSnapshot;
    const NAME: &'static str = "policyActivations";
    const ORDER: (Column, Column) = (Column::CreatedAt, Column::PolicyId);
    const ROW: fn(policy_activation_audit::Model) -> AppResult<PolicyActivationSnapshot> = snapshot;
    const POSITION: fn(&PolicyActivationSnapshot) -> Position =
        |a| Position::of(a.created_at, &a.policy_id);

    fn select(
        tenant: &TenantId,
        filter: &ActivationFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        filtered(tenant, filter)
    }
}

/// The tenant's activation of `policy_id`, if it has one.
pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    policy_id: &str,
) -> AppResult<Option<PolicyActivationSnapshot>> {
    Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::PolicyId.eq(policy_id))
        .one(db)
        .await?
        .map(snapshot)
        .transpose()
}

/// A validated `recordPolicyActivation` input.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewActivation {
    pub policy_id: String,
    pub source_pattern_id: String,
    pub source_recovery_id: Option<String>,
    pub confidence: f64,
    pub approval_path: ApprovalPath,
    pub loop_trace_id: Option<String>,
}

/// What [`record`] did.
pub enum Recorded {
    /// The tenant's row, inserted or re-recorded.
    Stored(PolicyActivationSnapshot),
    /// The policy id is another tenant's: nothing was written.
    TakenElsewhere,
}

/// Records an activation in one statement: inserts it (version [`confidence::VERSION`],
/// activated and created now) or, when the tenant already recorded the policy, updates only its
/// confidence, approval path and activation time. A row of another tenant under the same policy
/// id is left alone (the update's `WHERE` fails, nothing is returned).
pub async fn record(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    new: &NewActivation,
) -> AppResult<Recorded> {
    let now = crate::scalars::now();
    let insert = Query::insert()
        .into_table(Entity)
        .columns([
            Column::PolicyId,
            Column::SourcePatternId,
            Column::SourceRecoveryId,
            Column::ConfidenceAtActivation,
            Column::ConfidenceVersion,
            Column::ApprovalPath,
            Column::LoopTraceId,
            Column::ActivatedAt,
            Column::TenantId,
            Column::CreatedAt,
        ])
        .values_panic([
            new.policy_id.clone().into(),
            new.source_pattern_id.clone().into(),
            new.source_recovery_id.clone().into(),
            new.confidence.into(),
            confidence::VERSION.into(),
            new.approval_path.as_str().into(),
            new.loop_trace_id.clone().into(),
            now.into(),
            tenant.as_str().into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::column(Column::PolicyId)
                .update_columns([
                    Column::ConfidenceAtActivation,
                    Column::ApprovalPath,
                    Column::ActivatedAt,
                ])
                .action_and_where(Expr::col((Entity, Column::TenantId)).eq(tenant.as_str()))
                .to_owned(),
        )
        .returning_all()
        .to_owned();
    let statement = db.get_database_backend().build(&insert);
    let row = Entity::find().from_raw_sql(statement).one(db).await?;
    match row {
        Some(row) => Ok(Recorded::Stored(snapshot(row)?)),
        None => Ok(Recorded::TakenElsewhere),
    }
}
