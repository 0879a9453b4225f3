//! Log exports (AUDIT O5, docs/domain.md §10.1). `log_exports` is append-only, so an export's
//! lifecycle is a series of rows sharing `export_id`, one per state (pending, running, then
//! completed, failed or cancelled). Logbook reads them as one export each: the first row is the request
//! (what, in which format, by whom, when), the latest row is the current state, and every row
//! is the export's history.

pub mod graphql;
pub mod jobs;
pub mod settings {
    //! Export settings live with the rest of the configuration (`crate::config`).
    pub use crate::config::{ExportSettings, RetryPolicy, RetryStrategy};
}
pub mod status;
pub mod store;
pub mod subscription;
pub mod views;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::ActorType;
use crate::closed_set::closed_set;

closed_set! {
    /// What an export contains.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ExportScope {
        LlmRuns => "llm_runs",
        SystemRecords => "system_records",
        Audit => "audit",
        Traces => "traces",
        /// Everything about one run.
        RunBundle => "run_bundle",
        /// One trace with its steps.
        TraceBundle => "trace_bundle",
        /// Everything about one incident.
        IncidentBundle => "incident_bundle",
        Compliance => "compliance",
    }
}

closed_set! {
    /// The file format of an export.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ExportFormat {
        Json => "json",
        Ndjson => "ndjson",
        Csv => "csv",
        Zip => "zip",
    }
}

closed_set! {
    /// Where an export is in its lifecycle.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ExportStatus {
        /// Requested, not started.
        Pending => "pending",
        /// Being produced.
        Running => "running",
        /// Produced; checksum and manifest are set.
        Completed => "completed",
        /// Gave up; `error` says why.
        Failed => "failed",
        /// Cancelled (`cancelExport`) before it completed; no artefact is kept.
        Cancelled => "cancelled",
    }
}

/// One `log_exports` row: one state of one export. Immutable.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRowSnapshot {
    pub id: String,
    pub export_id: String,
    pub tenant_id: String,
    pub scope: ExportScope,
    pub run_id: Option<String>,
    pub requested_by: String,
    pub format: ExportFormat,
    pub origin: ActorType,
    pub source_component: String,
    pub correlation_id: Option<String>,
    pub checksum: Option<String>,
    pub status: ExportStatus,
    pub delivered_at: Option<DateTime<Utc>>,
    pub filter: Option<serde_json::Value>,
    pub row_count: Option<i64>,
    pub byte_size: Option<i64>,
    pub manifest_sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One export: its request row and its rows oldest first (the request row included).
#[derive(Debug, Clone, PartialEq)]
pub struct LogExportSnapshot {
    pub request: ExportRowSnapshot,
    pub history: Vec<ExportRowSnapshot>,
}

impl LogExportSnapshot {
    /// The current state: the newest row.
    pub fn latest(&self) -> &ExportRowSnapshot {
        self.history.last().unwrap_or(&self.request)
    }
}

/// Groups rows (any order, several exports) into exports; each export's history is sorted by
/// `(created_at, id)` and its first row is the request. Exports come back newest request
/// first.
pub fn assemble(rows: Vec<ExportRowSnapshot>) -> Vec<LogExportSnapshot> {
    let mut by_export: std::collections::HashMap<String, Vec<ExportRowSnapshot>> =
        std::collections::HashMap::new();
    for row in rows {
        by_export
            .entry(row.export_id.clone())
            .or_default()
            .push(row);
    }
    let mut exports: Vec<LogExportSnapshot> = by_export
        .into_values()
        .filter_map(|mut history| {
            history.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            let request = history.first()?.clone();
            Some(LogExportSnapshot { request, history })
        })
        .collect();
    exports.sort_by(|a, b| {
        (b.request.created_at, &b.request.id).cmp(&(a.request.created_at, &a.request.id))
    });
    exports
}

/// The list filter, as the store applies it. `scope`, `format`, `run_id`, `requested_by` and
/// `origin` are properties of the request; `status` is the export's current status (at `asOf`
/// when given); the time bounds apply to the request time and are inclusive. Lists mean "any
/// of" (`*_not_in`: "none of") and are kept sorted and deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExportFilter {
    pub scope: Option<Vec<ExportScope>>,
    pub scope_not_in: Option<Vec<ExportScope>>,
    pub format: Option<Vec<ExportFormat>>,
    pub format_not_in: Option<Vec<ExportFormat>>,
    pub status: Option<Vec<ExportStatus>>,
    pub status_not_in: Option<Vec<ExportStatus>>,
    pub requested_by: Option<Vec<String>>,
    pub requested_by_not_in: Option<Vec<String>>,
    pub origin: Option<Vec<ActorType>>,
    pub run_id: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}
