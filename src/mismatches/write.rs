//! Writes to `aos_trace_mismatches` (docs/domain.md §6.2; docs/decisions.md D20): reports
//! (one or a batch, in one transaction), resolution and issue links. Every statement carries the
//! tenant predicate, so another tenant's mismatch behaves exactly like a missing one.
//!
//! Lifecycle: a report is `OPEN`; `OPEN → RESOLVED` once (the first resolver, time and note are
//! kept; resolving again is `INVALID_TRANSITION`); the issue link is orthogonal to the state
//! (allowed on open and resolved mismatches; a new link replaces the old one, as the Python
//! platform's bulk report did).
//!
//! Bulk changes (`bulkResolveMismatches`, `bulkLinkMismatchIssue`, `markMismatchesNotified`,
//! docs/writes.md "Bulk mismatch changes") name up to [`MAX_BULK_IDS`] existing mismatches and
//! are all or nothing: the tenant's rows among the ids are locked first, in id order (so two
//! overlapping calls cannot deadlock); if any id is not one of them, the call is `NOT_FOUND`
//! before anything is written. A mismatch already in the requested state is left as it is and
//! reported as unchanged, so a bulk call can be repeated safely.

use std::collections::HashSet;

use entity::aos_trace_mismatches::{self, ActiveModel, Column, Entity};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::store::{get_by_id, snapshot};
use super::MismatchSnapshot;
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::redaction::{redact_text, redacted};
use crate::scalars::{format_utc, now};

/// Most reports one `bulkReportMismatches` call may carry.
pub const MAX_BULK_REPORTS: usize = 100;
/// Most mismatch ids one bulk change (resolve, link, mark notified) may name.
pub const MAX_BULK_IDS: usize = 100;
const MAX_TRACE_ID: usize = 64;
const MAX_REASON: usize = 200;
const MAX_HASH: usize = 128;
const MAX_NOTE: usize = 4_000;
const MAX_URL: usize = 2_048;
/// Serialized size limit of `details`.
const MAX_DETAILS_BYTES: usize = 64 * 1024;

/// A mismatch to record, as the caller described it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMismatch {
    pub trace_id: String,
    pub step_index: Option<i32>,
    pub reason: String,
    pub expected_hash: Option<String>,
    pub actual_hash: Option<String>,
    /// A JSON object, stored as JSON (never a language-specific repr).
    pub details: Value,
}

/// Checks one report; `prefix` is its GraphQL argument path (`input`, `inputs.3`), so errors
/// name the exact field.
pub fn validate(item: &NewMismatch, prefix: &str) -> AppResult<()> {
    let field = |name: &str| format!("{prefix}.{name}");
    let trace_id = item.trace_id.trim();
    if trace_id.is_empty() || trace_id.len() > MAX_TRACE_ID || trace_id != item.trace_id {
        return Err(AppError::bad_input(
            field("traceId"),
            format!("traceId must be 1 to {MAX_TRACE_ID} characters without surrounding spaces"),
        ));
    }
    if item.step_index.is_some_and(|i| i < 0) {
        return Err(AppError::bad_input(
            field("stepIndex"),
            "stepIndex must not be negative",
        ));
    }
    if item.reason.trim().is_empty() || item.reason.chars().count() > MAX_REASON {
        return Err(AppError::bad_input(
            field("reason"),
            format!("reason must be 1 to {MAX_REASON} characters"),
        ));
    }
    for (name, hash) in [
        ("expectedHash", &item.expected_hash),
        ("actualHash", &item.actual_hash),
    ] {
        if hash
            .as_deref()
            .is_some_and(|h| h.is_empty() || h.len() > MAX_HASH)
        {
            return Err(AppError::bad_input(
                field(name),
                format!("{name} must be 1 to {MAX_HASH} characters"),
            ));
        }
    }
    if !item.details.is_object() {
        return Err(AppError::bad_input(
            field("details"),
            "details must be a JSON object",
        ));
    }
    if item.details.to_string().len() > MAX_DETAILS_BYTES {
        return Err(AppError::bad_input(
            field("details"),
            format!("details must serialize to at most {MAX_DETAILS_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// How a report names a trace the tenant does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingTrace {
    /// A single report: `NOT_FOUND`, like any missing object.
    NotFound,
    /// One item of a batch: `BAD_USER_INPUT` naming `inputs.<i>.traceId`, so the caller knows
    /// which item to fix.
    NameTheItem,
}

/// Records reports by `reporter` in one transaction: every trace must be one of the tenant's
/// live traces, else nothing is written. Items must already be validated; `prefixes[i]` is
/// item i's argument path.
pub async fn report(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    reporter: &str,
    items: &[NewMismatch],
    prefixes: &[String],
    missing: MissingTrace,
) -> AppResult<Vec<MismatchSnapshot>> {
    use entity::aos_traces::Column as T;
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<&str> = items.iter().map(|i| i.trace_id.as_str()).collect();
    let found: HashSet<String> = crate::traces::store::visible(tenant)
        .filter(T::TraceId.is_in(wanted))
        .select_only()
        .column(T::TraceId)
        .into_tuple::<String>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    for (i, item) in items.iter().enumerate() {
        if !found.contains(&item.trace_id) {
            return Err(match missing {
                MissingTrace::NotFound => AppError::NotFound("Trace"),
                MissingTrace::NameTheItem => AppError::bad_input(
                    format!(
                        "{}.traceId",
                        prefixes.get(i).map_or("inputs", String::as_str)
                    ),
                    format!("no trace {} in this tenant", item.trace_id),
                ),
            });
        }
    }
    let created_at = now();
    let rows: Vec<aos_trace_mismatches::Model> = items
        .iter()
        .map(|item| aos_trace_mismatches::Model {
            id: uuid::Uuid::new_v4().to_string(),
            trace_id: item.trace_id.clone(),
            tenant_id: tenant.as_str().to_owned(),
            reported_by: Some(reporter.to_owned()),
            step_index: item.step_index,
            // Producers' free text: redacted like every ingest path (docs/domain.md §12).
            reason: redact_text(&item.reason).into_owned(),
            expected_hash: item.expected_hash.clone(),
            actual_hash: item.actual_hash.clone(),
            details: redacted(item.details.clone()),
            notification_sent: false,
            issue_url: None,
            resolved: false,
            resolved_at: None,
            resolved_by: None,
            resolution_note: None,
            created_at,
        })
        .collect();
    Entity::insert_many(rows.iter().cloned().map(ActiveModel::from))
        .exec_without_returning(txn)
        .await?;
    rows.into_iter().map(snapshot).collect()
}

/// A resolution note as stored: redacted (docs/domain.md §12).
fn redacted_note(note: &str) -> String {
    redact_text(note).into_owned()
}

/// Checks a resolution note.
pub fn validate_note(note: Option<&str>, field: &str) -> AppResult<()> {
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE) {
        return Err(AppError::bad_input(
            field,
            format!("the note must be at most {MAX_NOTE} characters"),
        ));
    }
    Ok(())
}

/// Checks an issue link: an absolute http(s) URL.
pub fn validate_issue_url(url: &str, field: &str) -> AppResult<()> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let host_ok = url
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !scheme_ok || !host_ok || url.len() > MAX_URL || url.chars().any(char::is_whitespace) {
        return Err(AppError::bad_input(
            field,
            format!("issueUrl must be an http(s) URL of at most {MAX_URL} characters"),
        ));
    }
    Ok(())
}

/// `OPEN → RESOLVED`, once. The update only matches an open mismatch of the tenant; when it
/// matches nothing, the tenant's row (if any) tells `INVALID_TRANSITION` from `NOT_FOUND`.
pub async fn resolve(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    id: &str,
    resolver: &str,
    note: Option<&str>,
) -> AppResult<MismatchSnapshot> {
    let done = Entity::update_many()
        .col_expr(Column::Resolved, Expr::value(true))
        .col_expr(Column::ResolvedAt, Expr::value(now()))
        .col_expr(Column::ResolvedBy, Expr::value(resolver.to_owned()))
        .col_expr(Column::ResolutionNote, Expr::value(note.map(redacted_note)))
        .filter(Column::Id.eq(id))
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::Resolved.eq(false))
        .exec(txn)
        .await?
        .rows_affected;
    let current = get_by_id(txn, tenant, id)
        .await?
        .ok_or(AppError::NotFound("TraceMismatch"))?;
    if done == 0 {
        return Err(AppError::InvalidTransition(format!(
            "mismatch {id} is already resolved{}{}",
            current
                .resolved_by
                .as_deref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default(),
            current
                .resolved_at
                .map(|at| format!(" at {}", format_utc(at)))
                .unwrap_or_default(),
        )));
    }
    Ok(current)
}

/// Links the tenant's mismatch to a tracking issue (and marks it notified), in any state.
pub async fn link_issue(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    id: &str,
    issue_url: &str,
) -> AppResult<MismatchSnapshot> {
    let done = Entity::update_many()
        .col_expr(Column::IssueUrl, Expr::value(issue_url.to_owned()))
        .col_expr(Column::NotificationSent, Expr::value(true))
        .filter(Column::Id.eq(id))
        .filter(Column::TenantId.eq(tenant.as_str()))
        .exec(txn)
        .await?
        .rows_affected;
    if done == 0 {
        return Err(AppError::NotFound("TraceMismatch"));
    }
    read_back(txn, tenant, id).await
}

/// The change a bulk call asks for, applied to every named mismatch not already in that state.
#[derive(Debug, Clone, Copy)]
pub enum BulkChange<'a> {
    /// `OPEN → RESOLVED` with this resolver and note; a resolved mismatch keeps its first
    /// resolution.
    Resolve {
        resolver: &'a str,
        note: Option<&'a str>,
    },
    /// Sets the issue link and marks the mismatch notified, in either state; replaces another
    /// link (as `linkMismatchIssue` does).
    Link { issue_url: &'a str },
    /// `notification_sent` false → true; never back.
    MarkNotified,
}

impl BulkChange<'_> {
    /// Whether `row` already is as this change would leave it.
    fn holds_for(&self, row: &aos_trace_mismatches::Model) -> bool {
        match self {
            BulkChange::Resolve { .. } => row.resolved,
            BulkChange::Link { issue_url } => {
                row.notification_sent && row.issue_url.as_deref() == Some(*issue_url)
            }
            BulkChange::MarkNotified => row.notification_sent,
        }
    }
}

/// What a bulk change did: every named mismatch as it stands after the call, in the order first
/// named, and which of them it changed (serializable: a duplicate of an idempotency key gets it
/// back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkOutcome {
    pub rows: Vec<MismatchSnapshot>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Applies `change` to the tenant's mismatches `ids` (distinct, 1 to [`MAX_BULK_IDS`]) in the
/// caller's transaction: locks them in id order, refuses the whole call with `NOT_FOUND` if any
/// id is not one of the tenant's mismatches (another tenant's looks exactly like a missing
/// one), updates those not already in the requested state with one statement, and reads them
/// back.
pub async fn change_many(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    ids: &[String],
    change: BulkChange<'_>,
) -> AppResult<BulkOutcome> {
    let of_tenant_named = || {
        Entity::find()
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::Id.is_in(ids.iter().map(String::as_str)))
    };
    let locked = of_tenant_named()
        .order_by_asc(Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?;
    if locked.len() != ids.len() {
        return Err(AppError::NotFound("TraceMismatch"));
    }
    let pending: HashSet<&str> = locked
        .iter()
        .filter(|row| !change.holds_for(row))
        .map(|row| row.id.as_str())
        .collect();
    if !pending.is_empty() {
        let update = Entity::update_many()
            .filter(Column::TenantId.eq(tenant.as_str()))
            .filter(Column::Id.is_in(pending.iter().copied()));
        let update = match change {
            BulkChange::Resolve { resolver, note } => update
                .col_expr(Column::Resolved, Expr::value(true))
                .col_expr(Column::ResolvedAt, Expr::value(now()))
                .col_expr(Column::ResolvedBy, Expr::value(resolver.to_owned()))
                .col_expr(Column::ResolutionNote, Expr::value(note.map(redacted_note)))
                .filter(Column::Resolved.eq(false)),
            BulkChange::Link { issue_url } => update
                .col_expr(Column::IssueUrl, Expr::value(issue_url.to_owned()))
                .col_expr(Column::NotificationSent, Expr::value(true)),
            BulkChange::MarkNotified => update
                .col_expr(Column::NotificationSent, Expr::value(true))
                .filter(Column::NotificationSent.eq(false)),
        };
        let done = update.exec(txn).await?.rows_affected;
        if done != pending.len() as u64 {
            return Err(AppError::internal(format!(
                "bulk mismatch change updated {done} of {} locked rows",
                pending.len()
            )));
        }
    }
    let mut after: std::collections::HashMap<String, MismatchSnapshot> = of_tenant_named()
        .all(txn)
        .await?
        .into_iter()
        .map(|row| snapshot(row).map(|m| (m.id.clone(), m)))
        .collect::<AppResult<_>>()?;
    let mut outcome = BulkOutcome {
        rows: Vec::with_capacity(ids.len()),
        changed: Vec::new(),
        unchanged: Vec::new(),
    };
    for id in ids {
        let row = after
            .remove(id)
            .ok_or_else(|| AppError::internal("a locked mismatch vanished"))?;
        if pending.contains(id.as_str()) {
            outcome.changed.push(id.clone());
        } else {
            outcome.unchanged.push(id.clone());
        }
        outcome.rows.push(row);
    }
    Ok(outcome)
}

async fn read_back(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<MismatchSnapshot> {
    get_by_id(conn, tenant, id)
        .await?
        .ok_or(AppError::NotFound("TraceMismatch"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item() -> NewMismatch {
        NewMismatch {
            trace_id: "t1".into(),
            step_index: Some(2),
            reason: "output_mismatch".into(),
            expected_hash: Some("aa".into()),
            actual_hash: None,
            details: json!({"k": 1}),
        }
    }

    fn field_of(result: AppResult<()>) -> String {
        match result {
            Err(AppError::BadUserInput { field, .. }) => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_field_under_its_prefix() {
        assert!(validate(&item(), "input").is_ok());
        let mut bad = item();
        bad.trace_id = String::new();
        assert_eq!(field_of(validate(&bad, "inputs.3")), "inputs.3.traceId");
        let mut bad = item();
        bad.step_index = Some(-1);
        assert_eq!(field_of(validate(&bad, "input")), "input.stepIndex");
        let mut bad = item();
        bad.reason = " ".into();
        assert_eq!(field_of(validate(&bad, "input")), "input.reason");
        let mut bad = item();
        bad.details = json!([1]);
        assert_eq!(field_of(validate(&bad, "input")), "input.details");
        let mut bad = item();
        bad.actual_hash = Some(String::new());
        assert_eq!(field_of(validate(&bad, "input")), "input.actualHash");
    }

    #[test]
    fn issue_urls_must_be_http() {
        assert!(validate_issue_url("https://github.com/o/r/issues/7", "issueUrl").is_ok());
        for bad in [
            "ftp://x/y",
            "https://",
            "https:///path",
            "github.com/o/r",
            "https://a b",
        ] {
            assert!(validate_issue_url(bad, "issueUrl").is_err(), "{bad}");
        }
    }
}
