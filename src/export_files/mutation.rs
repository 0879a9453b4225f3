//! `createExport` (OPERATOR or ADMIN): records the request (a `pending` `log_exports` row), its
//! job and the job's `job_created` event in one transaction, and wakes this process's worker.
//! A list scope takes the same filter input as its list and an `asOf` watermark (default: the
//! creation time), so the artefact holds exactly the rows that list showed.
//!
//! `cancelExport` (OPERATOR or ADMIN) cancels a pending or running export
//! ([`crate::exports::jobs::cancel`]).

use async_graphql::{Context, InputObject, Object, OneofObject, ID};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use super::{CompliancePeriod, ExportRequest, ExportSubject};
use crate::audit::graphql::AuditEntryFilter;
use crate::auth::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::exports::graphql::LogExport;
use crate::exports::jobs::{self, NewExport};
use crate::exports::{store, ExportFormat, ExportScope, LogExportSnapshot};
use crate::idempotency::WriteOnce;
use crate::ids::NodeKind;
use crate::runs::graphql::LlmRunFilter;
use crate::scalars::DateTime;
use crate::state::AppState;
use crate::system::graphql::{record_id_from, SystemRecordFilter};
use crate::traces::list::TraceFilter;

/// The filter of the exported list: the same input type as the list's own `filter`, one of
/// them, matching `scope`.
#[derive(Debug, Clone, OneofObject)]
pub enum ExportListFilter {
    /// For `LLM_RUNS` (as `llmRuns(filter:)`).
    LlmRuns(Box<LlmRunFilter>),
    /// For `SYSTEM_RECORDS` (as `systemRecords(filter:)`).
    SystemRecords(SystemRecordFilter),
    /// For `AUDIT` (as `auditEntries(filter:)`).
    AuditEntries(AuditEntryFilter),
    /// For `TRACES` (as `traces(filter:)`).
    Traces(Box<TraceFilter>),
}

#[derive(Debug, Clone, InputObject)]
pub struct CreateExportInput {
    pub scope: ExportScope,
    /// `JSON`, `NDJSON` or `CSV` for list scopes; `ZIP` for bundle scopes (`RUN_BUNDLE`,
    /// `TRACE_BUNDLE`, `INCIDENT_BUNDLE`, `COMPLIANCE`).
    pub format: ExportFormat,
    /// List scopes: the list's filter (omitted: everything).
    pub filter: Option<ExportListFilter>,
    /// Only rows recorded at or before this instant (default: the creation time).
    pub as_of: Option<DateTime>,
    /// `RUN_BUNDLE`: the run.
    pub run_id: Option<String>,
    /// `TRACE_BUNDLE`: the trace.
    pub trace_id: Option<String>,
    /// `INCIDENT_BUNDLE` and `COMPLIANCE`: the incident.
    pub incident_id: Option<String>,
    /// `COMPLIANCE`: the start of the period the bundle attests (with `to`; `from` < `to`).
    /// Both omitted: from the incident's start to `asOf`.
    pub from: Option<DateTime>,
    /// `COMPLIANCE`: the end of the period (with `from`).
    pub to: Option<DateTime>,
    /// Free correlation id recorded with the export.
    pub correlation_id: Option<String>,
}

fn is_list(scope: ExportScope) -> bool {
    matches!(
        scope,
        ExportScope::LlmRuns
            | ExportScope::SystemRecords
            | ExportScope::Audit
            | ExportScope::Traces
    )
}

/// Checks the input and builds the request (without its watermark).
fn subject(input: &CreateExportInput) -> AppResult<ExportSubject> {
    let scope = input.scope;
    let list = is_list(scope);
    if list && input.format == ExportFormat::Zip {
        return Err(AppError::bad_input(
            "input.format",
            "list scopes export as JSON, NDJSON or CSV; ZIP is for bundle scopes",
        ));
    }
    if !list && input.format != ExportFormat::Zip {
        return Err(AppError::bad_input(
            "input.format",
            "bundle scopes export as ZIP",
        ));
    }
    if !list && input.filter.is_some() {
        return Err(AppError::bad_input(
            "input.filter",
            "bundle scopes take no list filter",
        ));
    }
    let unexpected = |field: &str, given: bool| -> AppResult<()> {
        if given {
            return Err(AppError::bad_input(
                format!("input.{field}"),
                format!("`{field}` does not apply to scope {}", scope.as_str()),
            ));
        }
        Ok(())
    };
    let required = |field: &str, value: &Option<String>| -> AppResult<String> {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() && v.len() <= 64 => Ok(v.to_owned()),
            _ => Err(AppError::bad_input(
                format!("input.{field}"),
                format!(
                    "scope {} needs `{field}` (1 to 64 characters)",
                    scope.as_str()
                ),
            )),
        }
    };
    let mismatch = || {
        AppError::bad_input(
            "input.filter",
            format!("the filter does not belong to scope {}", scope.as_str()),
        )
    };
    if scope != ExportScope::Compliance {
        unexpected("from", input.from.is_some())?;
        unexpected("to", input.to.is_some())?;
    }
    if list {
        unexpected("runId", input.run_id.is_some())?;
        unexpected("traceId", input.trace_id.is_some())?;
        unexpected("incidentId", input.incident_id.is_some())?;
    }
    let filter = input.filter.clone();
    Ok(match scope {
        ExportScope::LlmRuns => match filter {
            None => ExportSubject::LlmRuns {
                filter: Default::default(),
            },
            Some(ExportListFilter::LlmRuns(f)) => ExportSubject::LlmRuns {
                filter: Box::new((*f).try_into()?),
            },
            Some(_) => return Err(mismatch()),
        },
        ExportScope::SystemRecords => match filter {
            None => ExportSubject::SystemRecords {
                filter: Default::default(),
            },
            Some(ExportListFilter::SystemRecords(f)) => ExportSubject::SystemRecords {
                filter: f.try_into()?,
            },
            Some(_) => return Err(mismatch()),
        },
        ExportScope::Audit => match filter {
            None => ExportSubject::Audit {
                filter: Default::default(),
            },
            Some(ExportListFilter::AuditEntries(f)) => ExportSubject::Audit {
                filter: f.try_into()?,
            },
            Some(_) => return Err(mismatch()),
        },
        ExportScope::Traces => match filter {
            None => ExportSubject::Traces {
                filter: Default::default(),
            },
            Some(ExportListFilter::Traces(f)) => ExportSubject::Traces {
                filter: Box::new((*f).try_into()?),
            },
            Some(_) => return Err(mismatch()),
        },
        ExportScope::RunBundle => {
            unexpected("traceId", input.trace_id.is_some())?;
            unexpected("incidentId", input.incident_id.is_some())?;
            ExportSubject::RunBundle {
                run_id: required("runId", &input.run_id)?,
            }
        }
        ExportScope::TraceBundle => {
            unexpected("runId", input.run_id.is_some())?;
            unexpected("incidentId", input.incident_id.is_some())?;
            ExportSubject::TraceBundle {
                trace_id: required("traceId", &input.trace_id)?,
            }
        }
        ExportScope::IncidentBundle | ExportScope::Compliance => {
            unexpected("runId", input.run_id.is_some())?;
            unexpected("traceId", input.trace_id.is_some())?;
            let incident_id = required("incidentId", &input.incident_id)?;
            if scope == ExportScope::Compliance {
                let period = match (input.from, input.to) {
                    (None, None) => None,
                    (Some(from), Some(to)) if from.0 < to.0 => Some(CompliancePeriod {
                        from: from.0,
                        to: to.0,
                    }),
                    (Some(_), Some(_)) => {
                        return Err(AppError::bad_input(
                            "input.from",
                            "the compliance period's `from` must be before its `to`",
                        ))
                    }
                    (from, _) => {
                        let field = if from.is_some() {
                            "input.to"
                        } else {
                            "input.from"
                        };
                        return Err(AppError::bad_input(
                            field,
                            "a compliance period needs both `from` and `to`",
                        ));
                    }
                };
                ExportSubject::Compliance {
                    incident_id,
                    period,
                }
            } else {
                ExportSubject::IncidentBundle { incident_id }
            }
        }
    })
}

/// The bundle's subject must exist for the tenant (another tenant's is `NOT_FOUND` too); the
/// run id it concerns, when there is one, is recorded on the export.
async fn check_subject(
    state: &AppState,
    tenant: &crate::auth::TenantId,
    subject: &ExportSubject,
) -> AppResult<Option<String>> {
    let db = &state.db;
    match subject {
        ExportSubject::RunBundle { run_id } => {
            crate::runs::store::get_by_run_id(db, tenant, run_id)
                .await?
                .ok_or(AppError::NotFound("LlmRun"))?;
            Ok(Some(run_id.clone()))
        }
        ExportSubject::TraceBundle { trace_id } => {
            let trace = crate::traces::store::get_by_trace_id(db, tenant, trace_id)
                .await?
                .ok_or(AppError::NotFound("Trace"))?;
            Ok(Some(trace.run_id))
        }
        ExportSubject::IncidentBundle { incident_id }
        | ExportSubject::Compliance { incident_id, .. } => {
            let incident = entity::incidents::Entity::find()
                .filter(entity::incidents::Column::TenantId.eq(tenant.as_str()))
                .filter(entity::incidents::Column::Id.eq(incident_id.as_str()))
                .one(db)
                .await?
                .ok_or(AppError::NotFound("Incident"))?;
            Ok(incident.source_run_id)
        }
        _ => Ok(None),
    }
}

#[derive(Default)]
pub struct ExportMutation;

/// Narrows a list subject's filter to the tenant's read window (bundles are not lists).
async fn windowed(
    ctx: &Context<'_>,
    tenant: &crate::auth::TenantId,
    subject: &mut ExportSubject,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> crate::error::AppResult<()> {
    use crate::pagination::read_window;
    match subject {
        ExportSubject::LlmRuns { filter } => {
            **filter = read_window::<crate::runs::store::RunList>(ctx, tenant, filter, as_of)
                .await?
                .0;
        }
        ExportSubject::SystemRecords { filter } => {
            *filter = read_window::<crate::system::store::SystemList>(ctx, tenant, filter, as_of)
                .await?
                .0;
        }
        ExportSubject::Audit { filter } => {
            *filter = read_window::<crate::audit::store::AuditList>(ctx, tenant, filter, as_of)
                .await?
                .0;
        }
        ExportSubject::Traces { filter } => {
            **filter = read_window::<crate::traces::store::TraceList>(ctx, tenant, filter, as_of)
                .await?
                .0;
        }
        _ => {}
    }
    Ok(())
}

#[Object]
impl ExportMutation {
    /// Requests an export (role OPERATOR or ADMIN). Returns it `PENDING`; a worker produces the
    /// artefact (`exportProgress(id)` follows it; `GET /exports/{exportId}/download` serves it).
    async fn create_export(
        &self,
        ctx: &Context<'_>,
        input: CreateExportInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<LogExport> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let subject = subject(&input)?;
        let now = crate::scalars::now();
        if input.as_of.is_some_and(|at| at.0 > now) {
            return Err(
                AppError::bad_input("input.asOf", "`asOf` must not be in the future").into(),
            );
        }
        // A list export reads no further back than the list itself (docs/api.md §4.1): the
        // stored filter is narrowed to the tenant's read window, and a range before it is
        // refused, exactly as the list would refuse it.
        // The idempotency fingerprint stays the client's subject: the window moves.
        let mut stored = subject.clone();
        windowed(
            ctx,
            &principal.tenant_id,
            &mut stored,
            input.as_of.map(|d| d.0),
        )
        .await
        .map_err(|e| match e {
            AppError::BadUserInput { field, message } => AppError::BadUserInput {
                field: if field == "asOf" {
                    "input.asOf".to_owned()
                } else {
                    format!("input.filter.{field}")
                },
                message,
            },
            other => other,
        })?;
        if input.correlation_id.as_ref().is_some_and(|c| c.len() > 64) {
            return Err(AppError::bad_input(
                "input.correlationId",
                "`correlationId` is at most 64 characters",
            )
            .into());
        }
        let tenant = &principal.tenant_id;
        let fingerprint = serde_json::json!({
            "subject": &subject,
            "format": input.format,
            "asOf": input.as_of.map(|d| crate::scalars::format_utc(d.0)),
            "correlationId": &input.correlation_id,
        });
        let create = async |txn: &DatabaseTransaction| {
            let run_id = check_subject(state, tenant, &subject).await?;
            let export_id = uuid::Uuid::new_v4().to_string();
            let request = ExportRequest {
                subject: stored.clone(),
                format: input.format,
                as_of: input.as_of.map_or(now, |d| d.0),
            };
            let json = request.encode()?;
            let new = NewExport {
                export_id: &export_id,
                tenant,
                request: request.stored(&json),
                run_id,
                requested_by: format!("key:{}", principal.key_id),
                // Who asked: the key says (`ApiKey.actorType`).
                origin: principal.actor_type,
                correlation_id: input.correlation_id.clone(),
                retry: state.config.exports.retry,
            };
            jobs::create(txn, new).await?;
            // Read inside the transaction: nothing after the commit can fail.
            store::get(txn, tenant, &export_id)
                .await?
                .ok_or_else(|| AppError::internal("created export not found"))
        };
        let export = WriteOnce::new(state, tenant, "createExport", idempotency_key, &fingerprint)?
            .after_commit(|_| super::worker::wake())
            .publish(Topic::ExportProgress)
            .run_with_receipt(
                create,
                |export| export.request.export_id.clone(),
                async |export_id: String| {
                    store::get(&state.db, tenant, &export_id)
                        .await?
                        .ok_or(AppError::NotFound("LogExport"))
                },
            )
            .await?;
        // The export as created (PENDING), whatever a worker has done since: the mutation's
        // result does not depend on how fast a worker claims the job.
        let request = export.request;
        Ok(LogExport(LogExportSnapshot {
            history: vec![request.clone()],
            request,
        }))
    }

    /// Cancels an export (role OPERATOR or ADMIN), by its `id` or `exportId`: a pending one
    /// never starts, a running one stops at its next batch and its partial file is removed.
    /// Returns it `CANCELLED`. Another tenant's or an unknown export is `NOT_FOUND`; a
    /// completed, failed or already cancelled one is `INVALID_TRANSITION`.
    async fn cancel_export(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Same key + same id returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<LogExport> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let tenant = &principal.tenant_id;
        let export_id = record_id_from(&id, NodeKind::LogExport);
        let fingerprint = serde_json::json!({ "exportId": &export_id });
        let cancelled_by = format!("key:{}", principal.key_id);
        let cancel = async |txn: &DatabaseTransaction| {
            jobs::cancel(txn, tenant, &export_id, &cancelled_by).await?;
            store::get(txn, tenant, &export_id)
                .await?
                .ok_or_else(|| AppError::internal("cancelled export not found"))
        };
        let export = WriteOnce::new(state, tenant, "cancelExport", idempotency_key, &fingerprint)?
            .after_commit(|_| crate::telemetry::export_job("cancelled"))
            .publish(Topic::ExportProgress)
            .run_with_receipt(
                cancel,
                |export| export.request.export_id.clone(),
                async |export_id: String| {
                    store::get(&state.db, tenant, &export_id)
                        .await?
                        .ok_or(AppError::NotFound("LogExport"))
                },
            )
            .await?;
        Ok(LogExport(export))
    }
}
