//! The mismatch workflow's mutations: `reportMismatch`, `bulkReportMismatches`,
//! `resolveMismatch`, `linkMismatchIssue` and the bulk changes over existing ids,
//! `bulkResolveMismatches`, `bulkLinkMismatchIssue` and `markMismatchesNotified`
//! (docs/domain.md §6.2, docs/writes.md). Thin: check the role, parse and validate the input,
//! run the store write through the idempotency store.
//!
//! Roles: reporting is a write made by replay workers (INGEST keys) or by people (OPERATOR),
//! so INGEST, OPERATOR and ADMIN may report; resolving and linking are operator actions
//! (OPERATOR, ADMIN), and so is marking mismatches notified. No audit entry is written on resolve: the ledger's event types
//! (docs/domain.md §4.2) cover policies, limits, incidents and signals, not mismatches, and the
//! resolution is recorded on the mismatch itself (resolver, time and note).

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{Context, InputObject, Json, Object, ID};
use serde::Serialize;
use serde_json::{json, Value};

use super::graphql::TraceMismatch;
use super::webhook;
use super::write::{
    self, BulkChange, BulkOutcome, MissingTrace, NewMismatch, MAX_BULK_IDS, MAX_BULK_REPORTS,
};
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
    if !matches!(principal.role, Role::Ingest | Role::Operator | Role::Admin) {
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

/// The distinct record ids of a bulk call's `ids`, in the order first named: 1 to
/// [`MAX_BULK_IDS`] entries (`BAD_USER_INPUT` on `ids` otherwise). A global id of another type
/// names no mismatch (`NOT_FOUND` for the whole call).
fn bulk_record_ids(ids: &[ID]) -> AppResult<Vec<String>> {
    if ids.is_empty() || ids.len() > MAX_BULK_IDS {
        return Err(AppError::bad_input(
            "ids",
            format!("ids must hold 1 to {MAX_BULK_IDS} mismatch ids"),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let record_id = mismatch_record_id(id)?;
        if seen.insert(record_id.clone()) {
            out.push(record_id);
        }
    }
    Ok(out)
}

/// What a bulk change over existing mismatch ids did.
pub struct MismatchBulkResult {
    outcome: BulkOutcome,
    loaders: Arc<TraceLinks>,
}

#[Object]
impl MismatchBulkResult {
    /// Every named mismatch once, in the order first named, as it stands after the call.
    async fn mismatches(&self) -> Vec<TraceMismatch> {
        self.outcome
            .rows
            .iter()
            .map(|m| TraceMismatch::new(m.clone(), &self.loaders))
            .collect()
    }
    /// The `mismatchId`s this call changed, in the order first named.
    async fn changed_ids(&self) -> &[String] {
        &self.outcome.changed
    }
    /// The `mismatchId`s that already were in the requested state and were left as they were
    /// (already resolved, already linked to this URL and notified, already notified).
    async fn unchanged_ids(&self) -> &[String] {
        &self.outcome.unchanged
    }
}

fn bulk_result(
    state: &AppState,
    principal: &Principal,
    outcome: BulkOutcome,
) -> MismatchBulkResult {
    MismatchBulkResult {
        outcome,
        loaders: TraceLinks::new(&state.db, &principal.tenant_id),
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
        let webhook = &state.config.mismatch_webhook;
        let mut rows = WriteOnce::new(state, tenant, "reportMismatch", idempotency_key, &input)?
            .publish(Topic::TraceMismatches)
            .after_commit(webhook::wake)
            .run(async |txn| {
                let items = std::slice::from_ref(&item);
                let prefixes = ["input".to_owned()];
                let rows = write::report(
                    txn,
                    tenant,
                    &reporter,
                    items,
                    &prefixes,
                    MissingTrace::NotFound,
                )
                .await?;
                webhook::enqueue(txn, webhook, &rows).await?;
                Ok(rows)
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
        .after_commit(webhook::wake)
        .run(async |txn| {
            let rows = write::report(txn, tenant, &reporter, &items, &prefixes, missing).await?;
            webhook::enqueue(txn, &state.config.mismatch_webhook, &rows).await?;
            Ok(rows)
        })
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

    /// Resolves up to 100 of the tenant's mismatches in one transaction, with one optional
    /// note. All or nothing: if any id is not one of the tenant's mismatches, the call is
    /// `NOT_FOUND` and nothing is written. Mismatches already resolved keep their first
    /// resolution and are listed in `unchangedIds` (not an error, unlike `resolveMismatch`).
    /// Each `id` is a global `id` or a `mismatchId`; repeated ids count once. Every mismatch it
    /// resolves arrives on `traceMismatchResolved`. Roles OPERATOR, ADMIN.
    async fn bulk_resolve_mismatches(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        note: Option<String>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<MismatchBulkResult> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let record_ids = bulk_record_ids(&ids)?;
        write::validate_note(note.as_deref(), "note")?;
        let resolver = actor(&principal);
        let input = json!({ "ids": record_ids, "note": note });
        let tenant = &principal.tenant_id;
        let change = BulkChange::Resolve {
            resolver: &resolver,
            note: note.as_deref(),
        };
        let outcome = WriteOnce::new(
            state,
            tenant,
            "bulkResolveMismatches",
            idempotency_key,
            &input,
        )?
        .publish_if(Topic::TraceMismatches, |o: &BulkOutcome| {
            !o.changed.is_empty()
        })
        .run(async |txn| write::change_many(txn, tenant, &record_ids, change).await)
        .await?;
        Ok(bulk_result(state, &principal, outcome))
    }

    /// Links up to 100 of the tenant's mismatches to one tracking issue and marks them
    /// notified, in one transaction, whatever their state; a new link replaces a previous one
    /// (as `linkMismatchIssue` does). All or nothing: an id that is not one of the tenant's
    /// mismatches makes the call `NOT_FOUND` and nothing is written. Mismatches already linked
    /// to this URL are listed in `unchangedIds`. Roles OPERATOR, ADMIN.
    async fn bulk_link_mismatch_issue(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        issue_url: String,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<MismatchBulkResult> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let record_ids = bulk_record_ids(&ids)?;
        write::validate_issue_url(&issue_url, "issueUrl")?;
        let input = json!({ "ids": record_ids, "issueUrl": issue_url });
        let tenant = &principal.tenant_id;
        let change = BulkChange::Link {
            issue_url: &issue_url,
        };
        let outcome = WriteOnce::new(
            state,
            tenant,
            "bulkLinkMismatchIssue",
            idempotency_key,
            &input,
        )?
        .run(async |txn| write::change_many(txn, tenant, &record_ids, change).await)
        .await?;
        Ok(bulk_result(state, &principal, outcome))
    }

    /// Marks up to 100 of the tenant's mismatches notified (`notificationSent: true`), in one
    /// transaction; one way, nothing sets it back. All or nothing: an id that is not one of the
    /// tenant's mismatches makes the call `NOT_FOUND` and nothing is written. Mismatches already
    /// notified are listed in `unchangedIds`. Roles OPERATOR, ADMIN.
    async fn mark_mismatches_notified(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<MismatchBulkResult> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let record_ids = bulk_record_ids(&ids)?;
        let input = json!({ "ids": record_ids });
        let tenant = &principal.tenant_id;
        let outcome = WriteOnce::new(
            state,
            tenant,
            "markMismatchesNotified",
            idempotency_key,
            &input,
        )?
        .run(async |txn| {
            write::change_many(txn, tenant, &record_ids, BulkChange::MarkNotified).await
        })
        .await?;
        Ok(bulk_result(state, &principal, outcome))
    }
}
