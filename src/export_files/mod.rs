//! Producing export files: the edge that turns an export request into an artefact. It holds
//! the `createExport` mutation (which checks the request and records the export), the typed
//! request a job carries ([`ExportSubject`]: a list filter of runs, system records, audit
//! entries or traces, or one bundle id), the worker that claims jobs and writes files, their
//! formats, column sets and manifests, the download routes that serve them, and `export verify`.
//!
//! It sits above the domains because it reads four of them to write one file. The `exports`
//! domain below it keeps the export records, the job rows and their GraphQL types; it stores
//! the request as this edge encoded it and reads back only its watermark, so `exports` names no
//! list it might export (and `runs`, which shows a run's exports, does not depend on a module
//! that depends on `runs`).

mod bundle;
pub mod columns;
pub mod formats;
pub mod http;
pub mod ledger_file;
pub mod manifest;
pub mod mutation;
pub mod verify;
pub mod worker;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::AuditFilter;
use crate::error::{AppError, AppResult};
use crate::exports::jobs::{JobSnapshot, StoredRequest};
use crate::exports::{ExportFormat, ExportScope};
use crate::runs::RunFilter;
use crate::system::SystemFilter;
use crate::traces::TraceListFilter;

/// What an export contains: a filtered list (as of a watermark) or one bundle subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum ExportSubject {
    /// Boxed, like the trace filter: several times the size of the others.
    LlmRuns {
        filter: Box<RunFilter>,
    },
    SystemRecords {
        filter: SystemFilter,
    },
    Audit {
        filter: AuditFilter,
    },
    Traces {
        filter: Box<TraceListFilter>,
    },
    RunBundle {
        run_id: String,
    },
    TraceBundle {
        trace_id: String,
    },
    IncidentBundle {
        incident_id: String,
    },
    Compliance {
        incident_id: String,
        /// The compliance period the request gave (`from`, `to`); absent in requests stored
        /// before it existed and when none was given (then: the incident's start to `asOf`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<CompliancePeriod>,
    },
}

/// The period a COMPLIANCE bundle attests, `from` before `to`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompliancePeriod {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl ExportSubject {
    pub fn scope(&self) -> ExportScope {
        match self {
            Self::LlmRuns { .. } => ExportScope::LlmRuns,
            Self::SystemRecords { .. } => ExportScope::SystemRecords,
            Self::Audit { .. } => ExportScope::Audit,
            Self::Traces { .. } => ExportScope::Traces,
            Self::RunBundle { .. } => ExportScope::RunBundle,
            Self::TraceBundle { .. } => ExportScope::TraceBundle,
            Self::IncidentBundle { .. } => ExportScope::IncidentBundle,
            Self::Compliance { .. } => ExportScope::Compliance,
        }
    }

    /// The list filter (canonical form) of a list scope, as JSON; bundle subjects have none.
    pub fn filter_json(&self) -> Option<serde_json::Value> {
        match self {
            Self::LlmRuns { filter } => serde_json::to_value(filter).ok(),
            Self::SystemRecords { filter } => serde_json::to_value(filter).ok(),
            Self::Audit { filter } => serde_json::to_value(filter).ok(),
            Self::Traces { filter } => serde_json::to_value(filter).ok(),
            _ => None,
        }
    }
}

/// Everything a worker needs to produce the export, fixed at creation. Stored as JSON in
/// `export_jobs.request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRequest {
    pub subject: ExportSubject,
    pub format: ExportFormat,
    /// Only rows recorded at or before this instant are exported.
    pub as_of: DateTime<Utc>,
}

impl ExportRequest {
    /// The request as a job stores it.
    pub fn encode(&self) -> AppResult<String> {
        serde_json::to_string(self).map_err(|e| AppError::internal(format!("export request: {e}")))
    }

    /// What the `exports` domain stores of this request, around its JSON.
    pub fn stored<'a>(&self, json: &'a str) -> StoredRequest<'a> {
        StoredRequest {
            scope: self.subject.scope(),
            format: self.format,
            as_of: self.as_of,
            filter: self.subject.filter_json(),
            json,
        }
    }

    /// A job's request, decoded.
    pub fn of(job: &JobSnapshot) -> AppResult<Self> {
        serde_json::from_str(&job.request).map_err(|e| {
            AppError::internal(format!(
                "export job {} has a bad request ({e})",
                job.export_id
            ))
        })
    }
}
