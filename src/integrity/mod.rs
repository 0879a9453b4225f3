//! Integrity of a run's evidence (docs/domain.md §8.3): which evidence classes were captured, which
//! capture failures were recorded, and the grade. Three axes kept apart: the run's execution
//! status (elsewhere), the integrity *state* (always `SEALED` once computed) and the *grade*.
//!
//! Unlike the Python platform, the stored `resolution` of each capture failure is honoured, so a
//! permanent failure of a missing class grades `FAIL` (docs/decisions.md D13); a failure whose
//! class was nevertheless observed is superseded.

pub mod graphql;
pub mod store;

use crate::closed_set::closed_set;
use async_graphql::Enum;
use chrono::{DateTime, Utc};

// `ALL` (declaration order) is the order of the Python platform's `expected_artifacts`.
closed_set! {
    /// An evidence class counted by the grading, named after its table. `INTEGRITY_EVIDENCE` (J) is
    /// the seal itself and never counted.
    #[derive(Enum)]
    pub enum EvidenceArtifact {
        /// Class B: one row per externally consequential step. Expected.
        ActivityEvidence => "activity_evidence",
        /// Class D: policy and guardrail decisions. Expected.
        PolicyDecisions => "policy_decisions",
        /// Class G: provider responses. Expected.
        ProviderEvidence => "provider_evidence",
        /// Class H: the run's environment. Required.
        EnvironmentEvidence => "environment_evidence",
        /// The run's trace. Required.
        AosTraces => "aos_traces",
        /// The trace's steps. Required.
        AosTraceSteps => "aos_trace_steps",
    }
}

impl EvidenceArtifact {
    /// The class's table: its stored text.
    pub fn table(self) -> &'static str {
        self.as_str()
    }

    /// Missing a required class fails the run; missing an expected one degrades it.
    pub fn is_required(self) -> bool {
        matches!(
            self,
            Self::EnvironmentEvidence | Self::AosTraces | Self::AosTraceSteps
        )
    }

    /// A capture failure's `evidence_type` (a table name); unknown strings map to
    /// `ACTIVITY_EVIDENCE`, as in the Python platform.
    pub fn from_evidence_type(text: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|a| a.table().eq_ignore_ascii_case(text.trim()))
            .unwrap_or(Self::ActivityEvidence)
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|a| *a == self).unwrap_or(0)
    }
}

/// Whether evidence is still being collected or the report is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum IntegrityState {
    Pending,
    /// Final; every computed report is sealed.
    Sealed,
}

/// The quality judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum IntegrityGrade {
    Pass,
    Warn,
    Fail,
}

impl IntegrityGrade {
    pub fn legacy(self) -> LegacyIntegrityStatus {
        match self {
            Self::Pass => LegacyIntegrityStatus::Valid,
            Self::Warn => LegacyIntegrityStatus::Degraded,
            Self::Fail => LegacyIntegrityStatus::Failed,
        }
    }
}

closed_set! {
    /// The grade in the Python platform's vocabulary (stored as `integrity_status`).
    #[derive(Enum)]
    pub enum LegacyIntegrityStatus {
        Valid => "VALID",
        Degraded => "DEGRADED",
        Failed => "FAILED",
    }
}

closed_set! {
    /// How a capture failure stands.
    #[derive(Enum)]
    pub enum CaptureResolution {
        /// May recover on retry.
        Transient => "transient",
        /// Unrecoverable.
        Permanent => "permanent",
        /// A later capture succeeded; ignore.
        Superseded => "superseded",
    }
}

/// A capture failure as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFailure {
    pub evidence_type: String,
    pub failure_reason: String,
    pub error_message: Option<String>,
    pub resolution: CaptureResolution,
    pub created_at: DateTime<Utc>,
}

/// What the grading reads for one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntegrityFacts {
    pub run_id: String,
    /// Rows per class, in [`EvidenceArtifact::ALL`] order.
    pub counts: [i64; 6],
    /// In recording order.
    pub failures: Vec<StoredFailure>,
}

/// A capture failure as graded.
#[derive(Debug, Clone, PartialEq)]
pub struct GradedFailure {
    pub evidence_type: String,
    pub artifact: EvidenceArtifact,
    pub failure_reason: String,
    pub error_message: Option<String>,
    pub recorded_resolution: CaptureResolution,
    /// `SUPERSEDED` when the class was observed anyway, else as recorded.
    pub resolution: CaptureResolution,
    pub created_at: DateTime<Utc>,
}

/// The stored seal (class J), when the capture driver wrote one.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedIntegrity {
    pub status: String,
    pub score: f64,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntegrityReport {
    pub run_id: String,
    pub state: IntegrityState,
    pub grade: IntegrityGrade,
    pub score: f64,
    pub counts: Vec<(EvidenceArtifact, i64)>,
    pub observed: Vec<EvidenceArtifact>,
    pub missing: Vec<EvidenceArtifact>,
    /// For each missing class: the first recorded failure reason, else `no_records_found`.
    pub missing_reasons: Vec<(EvidenceArtifact, String)>,
    pub capture_failures: Vec<GradedFailure>,
    pub explanation: String,
    pub sealed: Option<SealedIntegrity>,
}

/// Grades one run (docs/domain.md §8.3; first matching rule wins): a required class missing → FAIL;
/// an unresolved permanent failure → FAIL; any capture failure → WARN; then by score (observed/6):
/// ≥ 0.8 PASS, ≥ 0.5 WARN, else FAIL.
pub fn evaluate(facts: IntegrityFacts, sealed: Option<SealedIntegrity>) -> IntegrityReport {
    let observed: Vec<EvidenceArtifact> = EvidenceArtifact::ALL
        .into_iter()
        .filter(|a| facts.counts[a.index()] > 0)
        .collect();
    let missing: Vec<EvidenceArtifact> = EvidenceArtifact::ALL
        .into_iter()
        .filter(|a| facts.counts[a.index()] <= 0)
        .collect();
    let failures: Vec<GradedFailure> = facts
        .failures
        .into_iter()
        .map(|f| {
            let artifact = EvidenceArtifact::from_evidence_type(&f.evidence_type);
            let resolution = if observed.contains(&artifact) {
                CaptureResolution::Superseded
            } else {
                f.resolution
            };
            GradedFailure {
                evidence_type: f.evidence_type,
                artifact,
                failure_reason: f.failure_reason,
                error_message: f.error_message,
                recorded_resolution: f.resolution,
                resolution,
                created_at: f.created_at,
            }
        })
        .collect();
    let score = observed.len() as f64 / EvidenceArtifact::ALL.len() as f64;
    let required_missing: Vec<EvidenceArtifact> = missing
        .iter()
        .copied()
        .filter(|a| a.is_required())
        .collect();
    let permanent: Vec<&GradedFailure> = failures
        .iter()
        .filter(|f| f.resolution == CaptureResolution::Permanent)
        .collect();
    let names = |items: &[EvidenceArtifact]| {
        items
            .iter()
            .map(|a| a.table())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (grade, explanation) = if !required_missing.is_empty() {
        (
            IntegrityGrade::Fail,
            format!("Critical evidence missing: {}", names(&required_missing)),
        )
    } else if !permanent.is_empty() {
        let types: Vec<&str> = permanent.iter().map(|f| f.evidence_type.as_str()).collect();
        (
            IntegrityGrade::Fail,
            format!("Permanent capture failure: {}", types.join(", ")),
        )
    } else if !failures.is_empty() || score < 0.8 {
        let grade = if failures.is_empty() && score < 0.5 {
            IntegrityGrade::Fail
        } else {
            IntegrityGrade::Warn
        };
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} evidence types missing", missing.len()));
        }
        if !failures.is_empty() {
            parts.push(format!("{} capture failures recorded", failures.len()));
        }
        (grade, parts.join("; "))
    } else {
        (
            IntegrityGrade::Pass,
            format!(
                "All evidence present ({}/{})",
                observed.len(),
                EvidenceArtifact::ALL.len()
            ),
        )
    };
    let missing_reasons = missing
        .iter()
        .map(|a| {
            let reason = failures.iter().find(|f| f.artifact == *a).map_or_else(
                || "no_records_found".to_owned(),
                |f| f.failure_reason.clone(),
            );
            (*a, reason)
        })
        .collect();
    IntegrityReport {
        run_id: facts.run_id,
        state: IntegrityState::Sealed,
        grade,
        score,
        counts: EvidenceArtifact::ALL
            .into_iter()
            .map(|a| (a, facts.counts[a.index()]))
            .collect(),
        observed,
        missing,
        missing_reasons,
        capture_failures: failures,
        explanation,
        sealed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(counts: [i64; 6], failures: Vec<(&str, &str, CaptureResolution)>) -> IntegrityFacts {
        IntegrityFacts {
            run_id: "r".into(),
            counts,
            failures: failures
                .into_iter()
                .map(|(t, r, res)| StoredFailure {
                    evidence_type: t.into(),
                    failure_reason: r.into(),
                    error_message: None,
                    resolution: res,
                    created_at: Utc::now(),
                })
                .collect(),
        }
    }

    #[test]
    fn grading_rules() {
        let all = evaluate(facts([1; 6], vec![]), None);
        assert_eq!(all.grade, IntegrityGrade::Pass);
        assert_eq!(all.explanation, "All evidence present (6/6)");
        let no_h = evaluate(facts([1, 1, 1, 0, 1, 1], vec![]), None);
        assert_eq!(no_h.grade, IntegrityGrade::Fail);
        assert_eq!(
            no_h.explanation,
            "Critical evidence missing: environment_evidence"
        );
        let only_required = evaluate(facts([0, 0, 0, 1, 1, 1], vec![]), None);
        assert_eq!(only_required.grade, IntegrityGrade::Warn);
        assert_eq!(only_required.score, 0.5);
        let permanent = evaluate(
            facts(
                [0, 1, 1, 1, 1, 1],
                vec![(
                    "activity_evidence",
                    "pre_attach",
                    CaptureResolution::Permanent,
                )],
            ),
            None,
        );
        assert_eq!(permanent.grade, IntegrityGrade::Fail);
        assert_eq!(
            permanent.missing_reasons,
            vec![(EvidenceArtifact::ActivityEvidence, "pre_attach".into())]
        );
        let superseded = evaluate(
            facts(
                [1; 6],
                vec![("weird_type", "pre_attach", CaptureResolution::Permanent)],
            ),
            None,
        );
        assert_eq!(superseded.grade, IntegrityGrade::Warn);
        assert_eq!(
            superseded.capture_failures[0].resolution,
            CaptureResolution::Superseded
        );
        assert_eq!(superseded.explanation, "1 capture failures recorded");
    }
}
