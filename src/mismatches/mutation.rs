//! The mismatch workflow's mutations: `reportMismatch`, `bulkReportMismatches`,
//! `resolveMismatch` and `linkMismatchIssue` (docs/domain.md §6.2). Thin: check the role,
//! parse and validate the input, run the store write through the idempotency store.
//!
//! Roles: reporting is a write made by replay workers (INGEST keys) or by people (OPERATOR),
//! so INGEST, OPERATOR and ADMIN may report; resolving and linking are operator actions
//! (OPERATOR, ADMIN). No audit entry is written on resolve: the ledger's event types
//! (docs/domain.md §4.2) cover policies, limits, incidents and signals, not mismatches, and the
//! resolution is recorded on the mismatch itself (resolver, time and note).

use async_graphql::{Context, InputObject, Json, Object, ID};
use serde::Serialize;
use serde_json::{json, Value};

use super::graphql::TraceMismatch;
use super::write::{self, MissingTrace, NewMismatch, MAX_BULK_REPORTS};
use super::MismatchSnapshot;
use crate::auth::{self, Permission, Principal, Role};
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::idempotency::WriteOnce;
use crate::ids::{self, NodeKind};
use crate::state::AppState;
use crate::traces::graphql::TraceLinks;

/// One replay mismatch to report against one of the tenant's traces.
#[derive(Debug, Clone, InputObject, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportMismatchInput {
    pub trace_id: String,
    /// The step that diverged, when known.
    pub step_index: Option<i32>,
    /// e.g. `output_mismatch`, `hash_mismatch`.
    pub reason: String,
    pub expected_hash: Option<String>,
    pub actual_hash: Option<String>,
    /// A JSON object with whatever helps to investigate (default `{}`); stored as JSON.
    pub details: Option<Json<Value>>,
}

impl From<&ReportMismatchInput> for NewMismatch {
    fn from(input: &ReportMismatchInput) -> Self {
        NewMismatch {
            trace_id: input.trace_id.clone(),
            step_index: input.step_index,
            reason: input.reason.clone(),
            expected_hash: input.expected_hash.clone(),
            actual_hash: input.actual_hash.clone(),
            details: input
                .details
                .as_ref()
                .map_or_else(|| json!({}), |d| d.0.clone()),
        }
    }
}

/// INGEST, OPERATOR or ADMIN.
async fn require_reporter(ctx: &Context<'_>) -> AppResult<Principal> {
    let principal = auth::viewer(ctx).await?;
    if matches!(principal.role, Role::Viewer) {
        return Err(AppError::Forbidden {
            role: principal.role.as_str(),
            action: "report mismatches",
        });
    }
    Ok(principal)
}

/// Who did it, as stored in `reported_by` / `resolved_by`: the API key's id.
fn actor(principal: &Principal) -> String {
    format!("key:{}", principal.key_id)
}

/// The mismatch id from either its global `id` or its `mismatchId`. A global id of another
/// type names no mismatch (`NOT_FOUND`).
fn mismatch_record_id(id: &ID) -> AppResult<String> {
    match ids::decode(id) {
        Some((NodeKind::TraceMismatch, record_id)) => Ok(record_id),
        Some(_) => Err(AppError::NotFound("TraceMismatch")),
        None => Ok(id.to_string()),
    }
}

fn to_graphql(
    state: &AppState,
    principal: &Principal,
    rows: Vec<MismatchSnapshot>,
) -> Vec<TraceMismatch> {
    let loaders = TraceLinks::new(&state.db, &principal.tenant_id);
    rows.into_iter()
        .map(|m| TraceMismatch::new(m, &loaders))
        .collect()
}

#[derive(Default)]
pub struct MismatchMutation;

#[Object]
impl MismatchMutation {
    /// Reports a replay mismatch on one of the tenant's live traces (`NOT_FOUND` otherwise).
    /// Roles INGEST, OPERATOR, ADMIN.
    async fn report_mismatch(
        &self,
        ctx: &Context<'_>,
        input: ReportMismatchInput,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<TraceMismatch> {
        let principal = require_reporter(ctx).await?;
        let state = ctx.data_unchecked::<AppState>();
        let item = NewMismatch::from(&input);
        write::validate(&item, "input")?;
        let reporter = actor(&principal);
        let tenant = &principal.tenant_id;
        let mut rows = WriteOnce::new(state, tenant, "reportMismatch", idempotency_key, &input)?
            .publish(Topic::TraceMismatches)
            .run(async |txn| {
                let items = std::slice::from_ref(&item);
                let prefixes = ["input".to_owned()];
                write::report(
                    txn,
                    tenant,
                    &reporter,
                    items,
                    &prefixes,
                    MissingTrace::NotFound,
                )
                .await
            })
            .await?;
        let one = rows
            .pop()
            .ok_or_else(|| AppError::internal("reportMismatch stored no row"))?;
        Ok(to_graphql(state, &principal, vec![one])
            .pop()
            .ok_or_else(|| AppError::internal("reportMismatch lost its row"))?)
    }

    /// Reports up to 100 mismatches in one transaction: if any item is invalid or names a trace
    /// the tenant does not have, nothing is written and the error names the item's field
    /// (`inputs.<i>.<field>`). Returned in input order. Roles INGEST, OPERATOR, ADMIN.
    async fn bulk_report_mismatches(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<ReportMismatchInput>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<Vec<TraceMismatch>> {
        let principal = require_reporter(ctx).await?;
        let state = ctx.data_unchecked::<AppState>();
        if inputs.is_empty() || inputs.len() > MAX_BULK_REPORTS {
            return Err(AppError::bad_input(
                "inputs",
                format!("inputs must hold 1 to {MAX_BULK_REPORTS} mismatches"),
            )
            .into());
        }
        let items: Vec<NewMismatch> = inputs.iter().map(NewMismatch::from).collect();
        let prefixes: Vec<String> = (0..items.len()).map(|i| format!("inputs.{i}")).collect();
        for (item, prefix) in items.iter().zip(&prefixes) {
            write::validate(item, prefix)?;
        }
        let reporter = actor(&principal);
        let tenant = &principal.tenant_id;
        let missing = MissingTrace::NameTheItem;
        let rows = WriteOnce::new(
            state,
            tenant,
            "bulkReportMismatches",
            idempotency_key,
            &inputs,
        )?
        .publish(Topic::TraceMismatches)
        .run(async |txn| write::report(txn, tenant, &reporter, &items, &prefixes, missing).await)
        .await?;
        Ok(to_graphql(state, &principal, rows))
    }

    /// Resolves an open mismatch of the tenant and stores the note. Resolving a resolved one is
    /// `INVALID_TRANSITION` (the first resolver, time and note stay). `id` is the mismatch's
    /// global `id` or its `mismatchId`. Roles OPERATOR, ADMIN.
    async fn resolve_mismatch(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: Option<String>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<TraceMismatch> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let record_id = mismatch_record_id(&id)?;
        write::validate_note(note.as_deref(), "note")?;
        let resolver = actor(&principal);
        let input = json!({ "id": record_id, "note": note });
        let tenant = &principal.tenant_id;
        let note = note.as_deref();
        let row = WriteOnce::new(state, tenant, "resolveMismatch", idempotency_key, &input)?
            .publish(Topic::TraceMismatches)
            .run(async |txn| write::resolve(txn, tenant, &record_id, &resolver, note).await)
            .await?;
        Ok(TraceMismatch::new(
            row,
            &TraceLinks::new(&state.db, &principal.tenant_id),
        ))
    }

    /// Links a mismatch of the tenant to its tracking issue and marks it notified, whether open
    /// or resolved; a new link replaces the previous one. Roles OPERATOR, ADMIN.
    async fn link_mismatch_issue(
        &self,
        ctx: &Context<'_>,
        id: ID,
        issue_url: String,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<TraceMismatch> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let record_id = mismatch_record_id(&id)?;
        write::validate_issue_url(&issue_url, "issueUrl")?;
        let input = json!({ "id": record_id, "issueUrl": issue_url });
        let tenant = &principal.tenant_id;
        let row = WriteOnce::new(state, tenant, "linkMismatchIssue", idempotency_key, &input)?
            .run(async |txn| write::link_issue(txn, tenant, &record_id, &issue_url).await)
            .await?;
        Ok(TraceMismatch::new(
            row,
            &TraceLinks::new(&state.db, &principal.tenant_id),
        ))
    }
}
