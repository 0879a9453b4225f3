//! SQL for integrity: the grouped counts of the six evidence tables (one `UNION ALL`), the capture
//! failures and the stored seals, each one statement for any number of runs (three in all). Every statement is scoped to
//! the tenant (the evidence tables carry `tenant_id`; steps through the tenant's traces).

use std::collections::HashMap;

use entity::aos_trace_steps::{self, Column as S, Entity as Steps};
use entity::aos_traces::{Column as T, Entity as Traces};
use entity::evidence_capture_failures::{Column as F, Entity as Failures};
use entity::integrity_evidence::{Column as J, Entity as Seals};
use entity::{activity_evidence, environment_evidence, policy_decisions, provider_evidence};
use sea_orm::sea_query::{Expr, IntoIden, SelectStatement, UnionType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, RelationTrait,
};

use super::{
    evaluate, CaptureResolution, EvidenceArtifact, IntegrityFacts, IntegrityReport,
    SealedIntegrity, StoredFailure,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

/// `SELECT <artifact>, run_id, COUNT(*) FROM <table> … GROUP BY run_id`: one evidence table's
/// rows per run, tagged with the artifact's index in [`EvidenceArtifact::ALL`].
fn grouped_count<E>(
    artifact: EvidenceArtifact,
    tenant_column: E::Column,
    run_column: E::Column,
    tenant: &TenantId,
    run_ids: &[String],
) -> SelectStatement
where
    E: EntityTrait,
    E::Column: IntoIden + Copy,
{
    E::find()
        .filter(tenant_column.eq(tenant.as_str()))
        .filter(run_column.is_in(run_ids.iter().map(String::as_str)))
        .select_only()
        .column_as(Expr::cust(artifact_index(artifact)), "artifact")
        .column(run_column)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(run_column)
        .into_query()
}

/// The artifact's index as an SQL literal (a constant, not a parameter: the statement's text
/// and plan stay the same for every page).
fn artifact_index(artifact: EvidenceArtifact) -> String {
    artifact.index().to_string()
}

/// Rows per run in each of the six evidence classes, in one statement (`UNION ALL` of one
/// grouped count per table). Traces and steps count live rows only: archived ones are invisible
/// to every read (docs/decisions.md D16).
async fn evidence_counts(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, [i64; 6]>> {
    use EvidenceArtifact as A;
    let mut statement = grouped_count::<activity_evidence::Entity>(
        A::ActivityEvidence,
        activity_evidence::Column::TenantId,
        activity_evidence::Column::RunId,
        tenant,
        run_ids,
    );
    let others = [
        grouped_count::<policy_decisions::Entity>(
            A::PolicyDecisions,
            policy_decisions::Column::TenantId,
            policy_decisions::Column::RunId,
            tenant,
            run_ids,
        ),
        grouped_count::<provider_evidence::Entity>(
            A::ProviderEvidence,
            provider_evidence::Column::TenantId,
            provider_evidence::Column::RunId,
            tenant,
            run_ids,
        ),
        grouped_count::<environment_evidence::Entity>(
            A::EnvironmentEvidence,
            environment_evidence::Column::TenantId,
            environment_evidence::Column::RunId,
            tenant,
            run_ids,
        ),
        Traces::find()
            .filter(T::TenantId.eq(tenant.as_str()))
            .filter(T::ArchivedAt.is_null())
            .filter(T::RunId.is_in(run_ids.iter().map(String::as_str)))
            .select_only()
            .column_as(Expr::cust(artifact_index(A::AosTraces)), "artifact")
            .column(T::RunId)
            .column_as(Expr::cust("COUNT(*)"), "n")
            .group_by(T::RunId)
            .into_query(),
        Steps::find()
            .join(JoinType::InnerJoin, aos_trace_steps::Relation::Trace.def())
            .filter(T::TenantId.eq(tenant.as_str()))
            .filter(T::ArchivedAt.is_null())
            .filter(T::RunId.is_in(run_ids.iter().map(String::as_str)))
            .filter(S::ArchivedAt.is_null())
            .select_only()
            .column_as(Expr::cust(artifact_index(A::AosTraceSteps)), "artifact")
            .column(T::RunId)
            .column_as(Expr::cust("COUNT(*)"), "n")
            .group_by(T::RunId)
            .into_query(),
    ];
    for other in others {
        statement.union(UnionType::All, other);
    }
    let mut counts: HashMap<String, [i64; 6]> = HashMap::new();
    for row in db.query_all(&statement).await? {
        let artifact: i32 = row.try_get_by_index(0)?;
        let run_id: String = row.try_get_by_index(1)?;
        let n: i64 = row.try_get_by_index(2)?;
        let slot = usize::try_from(artifact)
            .ok()
            .filter(|i| *i < EvidenceArtifact::ALL.len())
            .ok_or_else(|| AppError::internal(format!("evidence count tagged {artifact}")))?;
        counts.entry(run_id).or_default()[slot] = n;
    }
    Ok(counts)
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
    let mut counts = evidence_counts(db, tenant, run_ids).await?;

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

    let mut out = HashMap::new();
    for run_id in run_ids {
        if out.contains_key(run_id) {
            continue;
        }
        let facts = IntegrityFacts {
            run_id: run_id.clone(),
            counts: counts.remove(run_id).unwrap_or_default(),
            failures: failures.remove(run_id).unwrap_or_default(),
        };
        out.insert(run_id.clone(), evaluate(facts, seals.remove(run_id)));
    }
    Ok(out)
}
