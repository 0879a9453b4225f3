//! SQL for integrity: one grouped count per evidence table, the capture failures and the stored
//! seals, each one statement for any number of runs (eight in all). Every statement is scoped to
//! the tenant (the evidence tables carry `tenant_id`; steps through the tenant's traces).

use std::collections::HashMap;

use entity::aos_trace_steps::{self, Column as S, Entity as Steps};
use entity::aos_traces::{Column as T, Entity as Traces};
use entity::evidence_capture_failures::{Column as F, Entity as Failures};
use entity::integrity_evidence::{Column as J, Entity as Seals};
use entity::{activity_evidence, environment_evidence, policy_decisions, provider_evidence};
use sea_orm::sea_query::{Expr, IntoIden};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};

use super::{
    evaluate, CaptureResolution, EvidenceArtifact, IntegrityFacts, IntegrityReport,
    SealedIntegrity, StoredFailure,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

/// Rows per run in one evidence table: `SELECT run_id, COUNT(*) … GROUP BY run_id`.
async fn grouped_counts<E>(
    db: &impl ConnectionTrait,
    tenant_column: E::Column,
    run_column: E::Column,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, i64>>
where
    E: EntityTrait,
    E::Column: IntoIden + Copy,
{
    let rows: Vec<(String, i64)> = E::find()
        .filter(tenant_column.eq(tenant.as_str()))
        .filter(run_column.is_in(run_ids.iter().map(String::as_str)))
        .select_only()
        .column(run_column)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(run_column)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Whether the tenant has a run record with this run id.
pub async fn run_exists(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_id: &str,
) -> AppResult<bool> {
    use entity::llm_run_records::{Column as R, Entity as Runs};
    let found: Option<String> = Runs::find()
        .filter(R::TenantId.eq(tenant.as_str()))
        .filter(R::RunId.eq(run_id))
        .select_only()
        .column(R::RunId)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// Integrity reports of these runs, keyed by run id (every run id gets one; a run without any
/// evidence grades FAIL). The caller decides whether the runs exist.
pub async fn integrity_for_runs(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, IntegrityReport>> {
    if run_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let activity = grouped_counts::<activity_evidence::Entity>(
        db,
        activity_evidence::Column::TenantId,
        activity_evidence::Column::RunId,
        tenant,
        run_ids,
    )
    .await?;
    let decisions = grouped_counts::<policy_decisions::Entity>(
        db,
        policy_decisions::Column::TenantId,
        policy_decisions::Column::RunId,
        tenant,
        run_ids,
    )
    .await?;
    let provider = grouped_counts::<provider_evidence::Entity>(
        db,
        provider_evidence::Column::TenantId,
        provider_evidence::Column::RunId,
        tenant,
        run_ids,
    )
    .await?;
    let environment = grouped_counts::<environment_evidence::Entity>(
        db,
        environment_evidence::Column::TenantId,
        environment_evidence::Column::RunId,
        tenant,
        run_ids,
    )
    .await?;
    // Live traces only: archived ones are invisible to every read (docs/decisions.md D16).
    let traces: HashMap<String, i64> = Traces::find()
        .filter(T::TenantId.eq(tenant.as_str()))
        .filter(T::ArchivedAt.is_null())
        .filter(T::RunId.is_in(run_ids.iter().map(String::as_str)))
        .select_only()
        .column(T::RunId)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(T::RunId)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let steps: HashMap<String, i64> = Steps::find()
        .join(JoinType::InnerJoin, aos_trace_steps::Relation::Trace.def())
        .filter(T::TenantId.eq(tenant.as_str()))
        .filter(T::ArchivedAt.is_null())
        .filter(T::RunId.is_in(run_ids.iter().map(String::as_str)))
        .filter(S::ArchivedAt.is_null())
        .select_only()
        .column(T::RunId)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(T::RunId)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();

    let failure_rows = Failures::find()
        .filter(F::TenantId.eq(tenant.as_str()))
        .filter(F::RunId.is_in(run_ids.iter().map(String::as_str)))
        .order_by_asc(F::CreatedAt)
        .order_by_asc(F::Id)
        .all(db)
        .await?;
    let mut failures: HashMap<String, Vec<StoredFailure>> = HashMap::new();
    for row in failure_rows {
        let resolution = CaptureResolution::parse(&row.resolution).ok_or_else(|| {
            AppError::internal(format!(
                "capture failure {} has unknown resolution {}",
                row.id, row.resolution
            ))
        })?;
        failures.entry(row.run_id).or_default().push(StoredFailure {
            evidence_type: row.evidence_type,
            failure_reason: row.failure_reason,
            error_message: row.error_message,
            resolution,
            created_at: row.created_at,
        });
    }

    let mut seals: HashMap<String, SealedIntegrity> = HashMap::new();
    for row in Seals::find()
        .filter(J::TenantId.eq(tenant.as_str()))
        .filter(J::RunId.is_in(run_ids.iter().map(String::as_str)))
        .all(db)
        .await?
    {
        seals.insert(
            row.run_id,
            SealedIntegrity {
                status: row.integrity_status,
                score: row.integrity_score,
                verified_at: row.verification_timestamp,
                created_at: row.created_at,
            },
        );
    }

    let count = |map: &HashMap<String, i64>, run: &str| map.get(run).copied().unwrap_or(0);
    let mut out = HashMap::new();
    for run_id in run_ids {
        if out.contains_key(run_id) {
            continue;
        }
        let mut counts = [0i64; 6];
        for (slot, artifact) in counts.iter_mut().zip(EvidenceArtifact::ALL) {
            let map = match artifact {
                EvidenceArtifact::ActivityEvidence => &activity,
                EvidenceArtifact::PolicyDecisions => &decisions,
                EvidenceArtifact::ProviderEvidence => &provider,
                EvidenceArtifact::EnvironmentEvidence => &environment,
                EvidenceArtifact::AosTraces => &traces,
                EvidenceArtifact::AosTraceSteps => &steps,
            };
            *slot = count(map, run_id);
        }
        let facts = IntegrityFacts {
            run_id: run_id.clone(),
            counts,
            failures: failures.remove(run_id).unwrap_or_default(),
        };
        out.insert(run_id.clone(), evaluate(facts, seals.remove(run_id)));
    }
    Ok(out)
}
