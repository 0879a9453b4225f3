//! GraphQL for integrity: `integrity(runId)` and the loader behind `LlmRun.integrity`.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, Object, SimpleObject};
use sea_orm::DatabaseConnection;

use super::{
    store, CaptureResolution, EvidenceArtifact, GradedFailure, IntegrityGrade, IntegrityReport,
    IntegrityState, LegacyIntegrityStatus, SealedIntegrity,
};
use crate::auth::{self, Permission, TenantId};
use crate::error::AppError;
use crate::scalars::DateTime;
use crate::state::AppState;
use crate::traces::graphql::LoadError;

/// Integrity reports by run id (every key gets one; the caller knows the runs exist).
pub struct IntegrityLoader {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
}

impl Loader<String> for IntegrityLoader {
    type Value = IntegrityReport;
    type Error = LoadError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, IntegrityReport>, LoadError> {
        Ok(store::integrity_for_runs(&self.db, &self.tenant, keys).await?)
    }
}

/// Rows found for one evidence class.
#[derive(SimpleObject)]
pub struct EvidenceArtifactCount {
    pub artifact: EvidenceArtifact,
    pub count: i32,
}

/// Why an evidence class is missing.
#[derive(SimpleObject)]
pub struct MissingArtifactReason {
    pub artifact: EvidenceArtifact,
    /// The first recorded capture failure's reason for the class, else `no_records_found`.
    pub reason: String,
}

/// A recorded failure to capture evidence.
#[derive(SimpleObject)]
pub struct EvidenceCaptureFailure {
    /// As recorded (a table name).
    pub evidence_type: String,
    /// The class it counts against (unknown types count against `ACTIVITY_EVIDENCE`).
    pub artifact: EvidenceArtifact,
    /// e.g. `capture_failed`, `provider_timeout`, `pre_attach`, `database_error`.
    pub failure_reason: String,
    pub error_message: Option<String>,
    /// `SUPERSEDED` when the class was captured anyway, else as recorded.
    pub resolution: CaptureResolution,
    /// The resolution stored with the failure.
    pub recorded_resolution: CaptureResolution,
    pub created_at: DateTime,
}

impl From<&GradedFailure> for EvidenceCaptureFailure {
    fn from(f: &GradedFailure) -> Self {
        EvidenceCaptureFailure {
            evidence_type: f.evidence_type.clone(),
            artifact: f.artifact,
            failure_reason: f.failure_reason.clone(),
            error_message: f.error_message.clone(),
            resolution: f.resolution,
            recorded_resolution: f.recorded_resolution,
            created_at: f.created_at.into(),
        }
    }
}

/// The integrity seal (class J) the capture driver stored at the run's end.
#[derive(SimpleObject)]
pub struct SealedIntegrityEvidence {
    /// As stored: `VALID`, `DEGRADED` or `FAILED`.
    pub status: String,
    /// 0..1.
    pub score: f64,
    pub verified_at: Option<DateTime>,
    pub created_at: DateTime,
}

impl From<&SealedIntegrity> for SealedIntegrityEvidence {
    fn from(s: &SealedIntegrity) -> Self {
        SealedIntegrityEvidence {
            status: s.status.clone(),
            score: s.score,
            verified_at: s.verified_at.map(Into::into),
            created_at: s.created_at.into(),
        }
    }
}

/// Evidence completeness of one run, graded now from the evidence tables.
pub struct IntegrityReportNode(pub IntegrityReport);

#[Object(name = "IntegrityReport")]
impl IntegrityReportNode {
    async fn run_id(&self) -> &str {
        &self.0.run_id
    }
    /// Always `SEALED`: the report is computed from what is stored.
    async fn state(&self) -> IntegrityState {
        self.0.state
    }
    /// Required class missing or an unresolved permanent capture failure → `FAIL`; any capture
    /// failure → `WARN`; else by score: ≥ 0.8 `PASS`, ≥ 0.5 `WARN`, below `FAIL`.
    async fn grade(&self) -> IntegrityGrade {
        self.0.grade
    }
    /// `PASS` → `VALID`, `WARN` → `DEGRADED`, `FAIL` → `FAILED`.
    async fn legacy_status(&self) -> LegacyIntegrityStatus {
        self.0.grade.legacy()
    }
    /// Observed classes / 6.
    async fn score(&self) -> f64 {
        self.0.score
    }
    /// The six counted classes, in order.
    async fn expected_artifacts(&self) -> Vec<EvidenceArtifact> {
        EvidenceArtifact::ALL.to_vec()
    }
    async fn observed_artifacts(&self) -> &[EvidenceArtifact] {
        &self.0.observed
    }
    async fn missing_artifacts(&self) -> &[EvidenceArtifact] {
        &self.0.missing
    }
    /// Rows found per class.
    async fn artifact_counts(&self) -> Vec<EvidenceArtifactCount> {
        self.0
            .counts
            .iter()
            .map(|(artifact, n)| EvidenceArtifactCount {
                artifact: *artifact,
                count: i32::try_from(*n).unwrap_or(i32::MAX),
            })
            .collect()
    }
    async fn missing_reasons(&self) -> Vec<MissingArtifactReason> {
        self.0
            .missing_reasons
            .iter()
            .map(|(artifact, reason)| MissingArtifactReason {
                artifact: *artifact,
                reason: reason.clone(),
            })
            .collect()
    }
    /// Every recorded capture failure, oldest first.
    async fn capture_failures(&self) -> Vec<EvidenceCaptureFailure> {
        self.0.capture_failures.iter().map(Into::into).collect()
    }
    /// e.g. "All evidence present (6/6)", "2 evidence types missing; 1 capture failures
    /// recorded", "Critical evidence missing: environment_evidence".
    async fn explanation(&self) -> &str {
        &self.0.explanation
    }
    /// The stored seal, when one was written.
    async fn sealed_evidence(&self) -> Option<SealedIntegrityEvidence> {
        self.0.sealed.as_ref().map(Into::into)
    }
}

#[derive(Default)]
pub struct IntegrityQuery;

#[Object]
impl IntegrityQuery {
    /// Evidence integrity of one of the tenant's runs. `NOT_FOUND` when the tenant has no run
    /// record with this run id, or only one outside its read window (like `llmRun`).
    async fn integrity(
        &self,
        ctx: &Context<'_>,
        run_id: String,
    ) -> async_graphql::Result<Option<IntegrityReportNode>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let recorded =
            crate::runs::store::run_created_at(&state.db, &principal.tenant_id, &run_id).await?;
        crate::pagination::within_read_window(ctx, &principal.tenant_id, recorded, |at| *at)
            .await?
            .ok_or(AppError::NotFound("LlmRun"))?;
        let mut reports = store::integrity_for_runs(
            &state.db,
            &principal.tenant_id,
            std::slice::from_ref(&run_id),
        )
        .await?;
        let report = reports
            .remove(&run_id)
            .ok_or_else(|| AppError::internal("integrity report missing for a requested run"))?;
        Ok(Some(IntegrityReportNode(report)))
    }
}
