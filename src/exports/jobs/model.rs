//! What a job is: its request, its state and stage, and the snapshots of its rows.

use chrono::{DateTime, TimeZone, Utc};
use entity::{export_job_events, export_jobs};
use serde::Deserialize;

use crate::closed_set::closed_set;
use crate::error::{AppError, AppResult};
use crate::exports::settings::{RetryPolicy, RetryStrategy};
use crate::exports::{ExportFormat, ExportScope};

/// The part of a job's stored request the domain reads: its watermark, and a bundle's subject
/// id ([`JobSnapshot::bundle_subject`]). The rest (a list filter) belongs to the producer of
/// export files, which decodes [`JobSnapshot::request`] itself, so this domain names no list it
/// might export.
#[derive(Deserialize)]
struct Watermark {
    as_of: DateTime<Utc>,
}

/// What a bundle export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSubject {
    /// A run bundle's run id.
    Run(String),
    /// A trace bundle's trace id.
    Trace(String),
    /// An incident or compliance bundle's incident id.
    Incident(String),
}

/// The ids a stored request's subject may carry (`{"subject": {"scope": …, "<x>_id": …}}`).
#[derive(Deserialize)]
struct SubjectIds {
    subject: Ids,
}

#[derive(Deserialize)]
struct Ids {
    run_id: Option<String>,
    trace_id: Option<String>,
    incident_id: Option<String>,
}

impl JobSnapshot {
    /// The subject of a bundle export; `None` for a list export.
    pub fn bundle_subject(&self) -> Option<BundleSubject> {
        let ids = serde_json::from_str::<SubjectIds>(&self.request)
            .ok()?
            .subject;
        match self.scope {
            ExportScope::RunBundle => ids.run_id.map(BundleSubject::Run),
            ExportScope::TraceBundle => ids.trace_id.map(BundleSubject::Trace),
            ExportScope::IncidentBundle | ExportScope::Compliance => {
                ids.incident_id.map(BundleSubject::Incident)
            }
            ExportScope::LlmRuns
            | ExportScope::SystemRecords
            | ExportScope::Audit
            | ExportScope::Traces => None,
        }
    }
}

closed_set! {
    /// Where a job is in its execution.
    #[derive(async_graphql::Enum)]
    pub enum JobState {
        /// Waiting for its first attempt.
        Queued => "queued",
        /// Claimed by a worker.
        Running => "running",
        /// An attempt failed; the next one is due at `nextAttemptAt`.
        RetryWait => "retry_wait",
        Completed => "completed",
        /// Every attempt failed, or one failed with an error no retry can cure.
        Failed => "failed",
        /// Cancelled by `cancelExport`; a running attempt stops at its next batch.
        Cancelled => "cancelled",
    }
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

closed_set! {
    /// Progress stage (docs/domain.md §10.2).
    #[derive(async_graphql::Enum)]
    pub enum JobStage {
        Queued => "queued",
        Starting => "starting",
        Running => "running",
        Completing => "completing",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

/// One `export_jobs` row.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    pub export_id: String,
    pub tenant_id: String,
    pub scope: ExportScope,
    pub format: ExportFormat,
    /// The request as stored (JSON), decoded by the producer of export files.
    pub request: String,
    /// Only rows recorded at or before this instant are exported.
    pub as_of: DateTime<Utc>,
    pub state: JobState,
    pub stage: JobStage,
    pub percent: f64,
    pub eta_seconds: Option<i64>,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub attempt: i32,
    pub retry: RetryPolicy,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Whether a retry could cure `last_error` (`None` while no attempt failed).
    pub last_error_retryable: Option<bool>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub artefact_path: Option<String>,
    /// A completed bundle's content hash over its members.
    pub bundle_sha256: Option<String>,
    /// A completed bundle's completeness (`{"complete": bool, "missing": [...]}`).
    pub bundle_completeness: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<export_jobs::Model> for JobSnapshot {
    type Error = AppError;

    fn try_from(m: export_jobs::Model) -> AppResult<Self> {
        let bad = |what: &str| AppError::internal(format!("export job row has a bad {what}"));
        let watermark: Watermark =
            serde_json::from_str(&m.request).map_err(|e| bad(&format!("request ({e})")))?;
        let millis = |ms: i64| std::time::Duration::from_millis(ms.max(0) as u64);
        Ok(JobSnapshot {
            scope: ExportScope::parse(&m.scope).ok_or_else(|| bad("scope"))?,
            format: ExportFormat::parse(&m.format).ok_or_else(|| bad("format"))?,
            as_of: watermark.as_of,
            request: m.request,
            state: JobState::parse(&m.state).ok_or_else(|| bad("state"))?,
            stage: JobStage::parse(&m.stage).ok_or_else(|| bad("stage"))?,
            percent: m.percent,
            eta_seconds: m.eta_seconds,
            rows_done: m.rows_done,
            rows_total: m.rows_total,
            attempt: m.attempt,
            retry: RetryPolicy {
                max_attempts: m.max_attempts.max(1) as u32,
                strategy: RetryStrategy::parse(&m.retry_strategy)
                    .ok_or_else(|| bad("retry strategy"))?,
                base_delay: millis(m.base_delay_ms),
                max_delay: millis(m.max_delay_ms),
                jitter_factor: m.jitter_factor,
            },
            next_attempt_at: from_ms(m.next_attempt_ms),
            last_error: m.last_error,
            last_error_retryable: m.last_error_retryable,
            lease_owner: m.lease_owner,
            lease_expires_at: m.lease_expires_ms.map(from_ms),
            heartbeat_at: m.heartbeat_ms.map(from_ms),
            started_at: m.started_ms.map(from_ms),
            finished_at: m.finished_ms.map(from_ms),
            artefact_path: m.artefact_path,
            bundle_sha256: m.bundle_sha256,
            bundle_completeness: m
                .bundle_completeness
                .and_then(|c| serde_json::from_str(&c).ok()),
            created_at: from_ms(m.created_ms),
            updated_at: from_ms(m.updated_ms),
            export_id: m.export_id,
            tenant_id: m.tenant_id,
        })
    }
}

/// One `export_job_events` row.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEventSnapshot {
    pub id: String,
    pub seq: i64,
    pub event_type: String,
    pub attempt: i32,
    pub worker: Option<String>,
    pub error: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub previous_event_hash: Option<String>,
    pub integrity_hash: String,
    pub created_at: DateTime<Utc>,
}

impl From<export_job_events::Model> for JobEventSnapshot {
    fn from(m: export_job_events::Model) -> Self {
        JobEventSnapshot {
            id: m.id,
            seq: m.seq,
            event_type: m.event_type,
            attempt: m.attempt,
            worker: m.worker,
            error: m.error,
            metadata: m.metadata.and_then(|m| serde_json::from_str(&m).ok()),
            previous_event_hash: m.previous_event_hash,
            integrity_hash: m.integrity_hash,
            created_at: from_ms(m.created_ms),
        }
    }
}

pub fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
