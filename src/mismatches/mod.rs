//! Trace mismatches: operator-reported divergences found when replaying a trace
//! (docs/domain.md §6). Every read is scoped to the caller's tenant (the Python platform listed
//! them system-wide; docs/decisions.md D20).

pub mod graphql;
pub mod mutation;
pub mod store;
pub mod views;
pub mod webhook;
pub mod write;

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `OPEN` until resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MismatchStatus {
    Open,
    Resolved,
}

impl MismatchStatus {
    pub fn of(resolved: bool) -> Self {
        if resolved {
            Self::Resolved
        } else {
            Self::Open
        }
    }
}

/// A mismatch report as stored (serializable: idempotent writes store it as their result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MismatchSnapshot {
    pub id: String,
    pub trace_id: String,
    pub tenant_id: String,
    pub reported_by: Option<String>,
    pub step_index: Option<i32>,
    pub reason: String,
    pub expected_hash: Option<String>,
    pub actual_hash: Option<String>,
    pub details: Value,
    pub notification_sent: bool,
    pub issue_url: Option<String>,
    pub status: MismatchStatus,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The list filter as the store applies it; time bounds and ranges are inclusive. Its
/// serialized form binds cursors; fields added after the first release are skipped when
/// absent, so earlier cursors stay valid.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MismatchListFilter {
    pub trace_id: Option<String>,
    pub status: Option<MismatchStatus>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_in: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_not_in: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_by_in: Option<Vec<String>>,
    /// Mismatches without a reporter are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_by_not_in: Option<Vec<String>>,
    /// Mismatches without a step index fall outside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_index: Option<crate::list_filters::IntRange>,
    /// Open mismatches have no resolution time and fall outside these bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_after: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_before: Option<DateTime<Utc>>,
    /// A substring of the mismatch id, trace id, reason or reporter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
}

/// Open and resolved counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MismatchCounts {
    pub open: i64,
    pub resolved: i64,
}
