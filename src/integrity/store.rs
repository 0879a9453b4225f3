//! SQL for integrity: the grouped counts of the six evidence tables (one `UNION ALL`) and the
//! capture failures with the stored seals (another), two statements for any number of runs. Every statement is scoped to
//! the tenant (the evidence tables carry `tenant_id`; steps through the tenant's traces).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::aos_trace_steps::{self, Column as S, Entity as Steps};
use entity::aos_traces::{Column as T, Entity as Traces};
use entity::evidence_capture_failures::{Column as F, Entity as Failures};
use entity::integrity_evidence::{Column as J, Entity as Seals};
use entity::{activity_evidence, environment_evidence, policy_decisions, provider_evidence};
use sea_orm::sea_query::{Expr, Order, SelectStatement, UnionType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QuerySelect, QueryTrait,
    RelationTrait, Select,
};

use super::{
    evaluate, CaptureResolution, EvidenceArtifact, IntegrityFacts, IntegrityReport,
    SealedIntegrity, StoredFailure,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

/// `SELECT <artifact>, run_id, COUNT(*) … GROUP BY run_id` over `rows` (already filtered to the
/// tenant and the runs): one evidence class's rows per run, tagged with the artifact's index in
/// [`EvidenceArtifact::ALL`] as an SQL literal (a constant, not a parameter, so the statement's
/// text and plan stay the same for every page).
fn tagged_count<E: EntityTrait>(
    rows: Select<E>,
    artifact: EvidenceArtifact,
    run_column: impl ColumnTrait,
) -> SelectStatement {
    rows.select_only()
        .column_as(Expr::cust(artifact.index().to_string()), "artifact")
        .column(run_column)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(run_column)
        .into_query()
}

/// One evidence table's rows of the tenant's runs, counted per run.
fn evidence_count<E>(
    artifact: EvidenceArtifact,
    tenant_column: E::Column,
    run_column: E::Column,
    tenant: &TenantId,
    run_ids: &[String],
) -> SelectStatement
where
    E: EntityTrait,
{
    let rows = E::find()
        .filter(tenant_column.eq(tenant.as_str()))
        .filter(run_column.is_in(run_ids.iter().map(String::as_str)));
    tagged_count(rows, artifact, run_column)
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
    let live_traces = Traces::find()
        .filter(T::TenantId.eq(tenant.as_str()))
        .filter(T::ArchivedAt.is_null())
        .filter(T::RunId.is_in(run_ids.iter().map(String::as_str)));
    let mut statement = evidence_count::<activity_evidence::Entity>(
        A::ActivityEvidence,
        activity_evidence::Column::TenantId,
        activity_evidence::Column::RunId,
        tenant,
        run_ids,
    );
    let live_steps = Steps::find()
        .join(JoinType::InnerJoin, aos_trace_steps::Relation::Trace.def())
        .filter(T::TenantId.eq(tenant.as_str()))
        .filter(T::ArchivedAt.is_null())
        .filter(T::RunId.is_in(run_ids.iter().map(String::as_str)))
        .filter(S::ArchivedAt.is_null());
    let others = [
        evidence_count::<policy_decisions::Entity>(
            A::PolicyDecisions,
            policy_decisions::Column::TenantId,
            policy_decisions::Column::RunId,
            tenant,
            run_ids,
        ),
        evidence_count::<provider_evidence::Entity>(
            A::ProviderEvidence,
            provider_evidence::Column::TenantId,
            provider_evidence::Column::RunId,
            tenant,
            run_ids,
        ),
        evidence_count::<environment_evidence::Entity>(
            A::EnvironmentEvidence,
            environment_evidence::Column::TenantId,
            environment_evidence::Column::RunId,
            tenant,
            run_ids,
        ),
        tagged_count(live_traces, A::AosTraces, T::RunId),
        tagged_count(live_steps, A::AosTraceSteps, T::RunId),
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

/// Failures of these runs, oldest first.
type FailuresByRun = HashMap<String, Vec<StoredFailure>>;
/// The stored seal of each sealed run.
type SealsByRun = HashMap<String, SealedIntegrity>;

/// The runs' capture failures (oldest first) and stored seals in one statement: a `UNION ALL` of
/// both tables into one row shape, `kind` 0 for a failure and 1 for a seal, each leaving the
/// other's columns NULL.
async fn failures_and_seals(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<(FailuresByRun, SealsByRun)> {
    let mut statement = Failures::find()
        .filter(F::TenantId.eq(tenant.as_str()))
        .filter(F::RunId.is_in(run_ids.iter().map(String::as_str)))
        .select_only()
        .column_as(Expr::cust("0"), "kind")
        .column(F::RunId)
        .column(F::CreatedAt)
        .column(F::Id)
        .column_as(F::EvidenceType, "label")
        .column(F::FailureReason)
        .column(F::ErrorMessage)
        .column(F::Resolution)
        .column_as(Expr::cust("CAST(NULL AS DOUBLE PRECISION)"), "score")
        .column_as(Expr::cust("CAST(NULL AS TIMESTAMPTZ)"), "verified_at")
        .into_query();
    let seals = Seals::find()
        .filter(J::TenantId.eq(tenant.as_str()))
        .filter(J::RunId.is_in(run_ids.iter().map(String::as_str)))
        .select_only()
        .column_as(Expr::cust("1"), "kind")
        .column(J::RunId)
        .column(J::CreatedAt)
        .column(J::Id)
        .column_as(J::IntegrityStatus, "label")
        .column_as(Expr::cust("NULL"), "failure_reason")
        .column_as(Expr::cust("NULL"), "error_message")
        .column_as(Expr::cust("NULL"), "resolution")
        .column(J::IntegrityScore)
        .column(J::VerificationTimestamp)
        .into_query();
    statement.union(UnionType::All, seals);
    // Positions, as a compound statement orders by its output columns: kind, created_at, id.
    for position in ["1", "3", "4"] {
        statement.order_by_expr(Expr::cust(position), Order::Asc);
    }

    let (mut failures, mut sealed) = (FailuresByRun::new(), SealsByRun::new());
    for row in db.query_all(&statement).await? {
        let kind: i32 = row.try_get_by_index(0)?;
        let run_id: String = row.try_get_by_index(1)?;
        let created_at: DateTime<Utc> = row.try_get_by_index(2)?;
        let id: String = row.try_get_by_index(3)?;
        let label: String = row.try_get_by_index(4)?;
        if kind == 0 {
            let stored: String = row.try_get_by_index(7)?;
            let resolution = CaptureResolution::parse(&stored).ok_or_else(|| {
                AppError::internal(format!(
                    "capture failure {id} has unknown resolution {stored}"
                ))
            })?;
            failures.entry(run_id).or_default().push(StoredFailure {
                evidence_type: label,
                failure_reason: row.try_get_by_index(5)?,
                error_message: row.try_get_by_index(6)?,
                resolution,
                created_at,
            });
        } else {
            let seal = SealedIntegrity {
                status: label,
                score: row.try_get_by_index(8)?,
                verified_at: row.try_get_by_index(9)?,
                created_at,
            };
            sealed.insert(run_id, seal);
        }
    }
    Ok((failures, sealed))
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

    let (mut failures, mut seals) = failures_and_seals(db, tenant, run_ids).await?;

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
