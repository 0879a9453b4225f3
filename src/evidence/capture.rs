//! SQL of evidence capture (docs/domain.md §8.2). One transaction per call; each evidence row is
//! written under its own savepoint so that a failing row is rolled back alone and recorded as a
//! `database_error` capture failure, in the same transaction, instead of being swallowed.

use std::future::Future;

use chrono::{DateTime, Utc};
use entity::{
    activity_evidence as ae, environment_evidence as ee, evidence_capture_failures as ecf,
    integrity_evidence as ie, policy_decisions as pd, provider_evidence as pe,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Set, TransactionTrait,
};
use serde_json::{json, Map, Value};

use super::{
    tenant_tag, truncate, ActivityCapture, CaptureOutcome, CaptureRequest, CaptureStatus,
    CapturedRow, EnvironmentCapture, EvidenceClass, PolicyDecisionCapture, ProviderCapture,
    RecordedFailure,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::integrity::{store as integrity_store, IntegrityReport};
use crate::scalars::now;

/// Error texts stored with a capture failure are cut to this many characters.
const MAX_ERROR_CHARS: usize = 500;

fn hex8() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

fn json_list(items: &Option<Vec<String>>) -> Option<Value> {
    items.as_ref().map(|v| json!(v))
}

/// The SDSR flags every row carries, from the context (a seal-only call has none: not synthetic).
struct Row<'a> {
    tenant: &'a TenantId,
    run_id: &'a str,
    tag: String,
    source: &'static str,
    is_synthetic: bool,
    scenario: Option<String>,
    at: DateTime<Utc>,
}

async fn write_environment(
    c: &DatabaseTransaction,
    r: &Row<'_>,
    e: &EnvironmentCapture,
) -> AppResult<CapturedRow> {
    let id = format!("ee-{}-{}", r.tag, r.run_id);
    let written = ee::Entity::insert(ee::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(r.tenant.as_str().to_owned()),
        run_id: Set(r.run_id.to_owned()),
        sdk_mode: Set(e.sdk_mode.to_owned()),
        sdk_version: Set(e.sdk_version.clone()),
        environment: Set(e.environment.map(str::to_owned)),
        telemetry_enabled: Set(Some(e.telemetry_enabled)),
        telemetry_delivery_status: Set(e.telemetry_delivery_status.map(str::to_owned)),
        trace_sampling_rate: Set(Some(e.trace_sampling_rate.unwrap_or(1.0))),
        metrics_enabled: Set(Some(e.metrics_enabled.unwrap_or(true))),
        client_ip: Set(e.client_ip.clone()),
        client_user_agent: Set(e.client_user_agent.clone()),
        client_origin: Set(e.client_origin.clone()),
        active_feature_flags: Set(json_list(&e.active_feature_flags)),
        debug_mode: Set(Some(e.debug_mode)),
        dry_run: Set(Some(e.dry_run)),
        capture_confidence_score: Set(e.capture_confidence_score),
        firewall_proxy_detected: Set(e.firewall_proxy_detected),
        is_synthetic: Set(r.is_synthetic),
        synthetic_scenario_id: Set(r.scenario.clone()),
        created_at: Set(r.at),
    })
    .on_conflict(
        OnConflict::columns([ee::Column::TenantId, ee::Column::RunId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(c)
    .await?;
    Ok(CapturedRow {
        class: EvidenceClass::Environment,
        id,
        step_index: None,
        status: if written > 0 {
            CaptureStatus::Created
        } else {
            CaptureStatus::Unchanged
        },
    })
}

async fn write_activity(
    c: &DatabaseTransaction,
    r: &Row<'_>,
    a: &ActivityCapture,
) -> AppResult<CapturedRow> {
    let id = format!("ae-{}-{}-{}", r.tag, r.run_id, a.step_index);
    let existed = ae::Entity::find()
        .select_only()
        .column(ae::Column::Id)
        .filter(ae::Column::TenantId.eq(r.tenant.as_str()))
        .filter(ae::Column::RunId.eq(r.run_id))
        .filter(ae::Column::StepIndex.eq(a.step_index))
        .into_tuple::<String>()
        .one(c)
        .await?;
    let fill = |col: &str| Expr::cust(format!("COALESCE(excluded.{col}, activity_evidence.{col})"));
    ae::Entity::insert(ae::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(r.tenant.as_str().to_owned()),
        run_id: Set(r.run_id.to_owned()),
        step_index: Set(a.step_index),
        skill_id: Set(a.skill_id.clone()),
        model_name: Set(a.model_name.clone()),
        prompt_fingerprint: Set(a.prompt_fingerprint.clone()),
        prompt_token_length: Set(a.prompt_token_length),
        prompt_template_id: Set(a.prompt_template_id.clone()),
        prompt_template_version: Set(a.prompt_template_version.clone()),
        response_fingerprint: Set(a.response_fingerprint.clone()),
        response_token_length: Set(a.response_token_length),
        completion_type: Set(a.completion_type.map(str::to_owned)),
        sensitivity_class: Set(a.sensitivity_class.map(str::to_owned)),
        redaction_status: Set(a.redaction_status.map(str::to_owned)),
        provider_safety_flags: Set(a.provider_safety_flags.clone()),
        evidence_source: Set(r.source.to_owned()),
        is_synthetic: Set(r.is_synthetic),
        synthetic_scenario_id: Set(r.scenario.clone()),
        created_at: Set(r.at),
    })
    .on_conflict(
        OnConflict::columns([
            ae::Column::TenantId,
            ae::Column::RunId,
            ae::Column::StepIndex,
        ])
        .values([
            (
                ae::Column::ResponseFingerprint,
                fill("response_fingerprint"),
            ),
            (
                ae::Column::ResponseTokenLength,
                fill("response_token_length"),
            ),
            (ae::Column::CompletionType, fill("completion_type")),
        ])
        .to_owned(),
    )
    .exec_without_returning(c)
    .await?;
    let has_response = a.response_fingerprint.is_some()
        || a.response_token_length.is_some()
        || a.completion_type.is_some();
    Ok(CapturedRow {
        class: EvidenceClass::Activity,
        id: existed.clone().unwrap_or(id),
        step_index: Some(a.step_index),
        status: match (existed, has_response) {
            (None, _) => CaptureStatus::Created,
            (Some(_), true) => CaptureStatus::Updated,
            (Some(_), false) => CaptureStatus::Unchanged,
        },
    })
}

async fn write_provider(
    c: &DatabaseTransaction,
    r: &Row<'_>,
    p: &ProviderCapture,
) -> AppResult<CapturedRow> {
    let id = format!("pe-{}-{}-{}", r.tag, r.run_id, p.step_index);
    let written = pe::Entity::insert(pe::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(r.tenant.as_str().to_owned()),
        run_id: Set(r.run_id.to_owned()),
        step_index: Set(p.step_index),
        provider_name: Set(p.provider_name.clone()),
        provider_request_id: Set(p.provider_request_id.clone()),
        model_name: Set(p.model_name.clone()),
        model_version: Set(p.model_version.clone()),
        input_tokens: Set(p.input_tokens),
        output_tokens: Set(p.output_tokens),
        cache_read_tokens: Set(Some(p.cache_read_tokens)),
        cache_creation_tokens: Set(Some(p.cache_creation_tokens)),
        total_tokens: Set(Some(p.total_tokens)),
        api_version: Set(p.api_version.clone()),
        endpoint: Set(p.endpoint.clone()),
        provider_latency_ms: Set(p.provider_latency_ms),
        provider_http_status: Set(p.provider_http_status),
        provider_error_code: Set(p.provider_error_code.clone()),
        provider_retry_count: Set(Some(p.provider_retry_count)),
        provider_safety_signals: Set(p.provider_safety_signals.clone()),
        requested_at: Set(r.at),
        responded_at: Set(Some(r.at)),
        is_synthetic: Set(r.is_synthetic),
        synthetic_scenario_id: Set(r.scenario.clone()),
        created_at: Set(r.at),
    })
    .on_conflict(
        OnConflict::columns([
            pe::Column::TenantId,
            pe::Column::RunId,
            pe::Column::StepIndex,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(c)
    .await?;
    Ok(CapturedRow {
        class: EvidenceClass::Provider,
        id,
        step_index: Some(p.step_index),
        status: if written > 0 {
            CaptureStatus::Created
        } else {
            CaptureStatus::Unchanged
        },
    })
}

async fn write_decision(
    c: &DatabaseTransaction,
    r: &Row<'_>,
    d: &PolicyDecisionCapture,
) -> AppResult<CapturedRow> {
    let id = format!("pd-{}-{}-{}-{}", r.tag, r.run_id, d.policy_type, hex8());
    pd::Entity::insert(pd::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(r.tenant.as_str().to_owned()),
        run_id: Set(r.run_id.to_owned()),
        policy_type: Set(d.policy_type.to_owned()),
        policy_rule_id: Set(d.policy_rule_id.clone()),
        policy_version: Set(d.policy_version),
        decision: Set(d.decision.to_owned()),
        decision_reason: Set(d.decision_reason.clone()),
        decision_confidence: Set(d.decision_confidence),
        policies_evaluated: Set(json_list(&d.policies_evaluated)),
        policy_results: Set(d.policy_results.map(str::to_owned)),
        evaluation_order: Set(json_list(&d.evaluation_order)),
        thresholds_used: Set(d.thresholds_used.clone()),
        customer_guardrail_result: Set(d.customer_guardrail_result.clone()),
        provider_moderation_result: Set(d.provider_moderation_result.clone()),
        decision_reason_codes: Set(json_list(&d.decision_reason_codes)),
        approval_request_id: Set(d.approval_request_id.clone()),
        required_approval_level: Set(d.required_approval_level),
        current_approval_level: Set(d.current_approval_level),
        evaluated_by: Set(d.evaluated_by.clone()),
        evaluated_at: Set(r.at),
        is_synthetic: Set(r.is_synthetic),
        synthetic_scenario_id: Set(r.scenario.clone()),
        created_at: Set(r.at),
    })
    .exec_without_returning(c)
    .await?;
    Ok(CapturedRow {
        class: EvidenceClass::PolicyDecision,
        id,
        step_index: None,
        status: CaptureStatus::Created,
    })
}

/// Records a capture failure; only the first per (run, class, reason) is kept.
async fn record_failure(
    c: &impl ConnectionTrait,
    r: &Row<'_>,
    evidence_type: &str,
    step_index: Option<i32>,
    reason: &str,
    message: Option<String>,
    resolution: &str,
) -> AppResult<RecordedFailure> {
    let message = message.map(|m| truncate(&m, MAX_ERROR_CHARS));
    let written = ecf::Entity::insert(ecf::ActiveModel {
        id: Set(format!(
            "ecf-{}-{}-{evidence_type}-{}",
            r.tag,
            r.run_id,
            hex8()
        )),
        tenant_id: Set(r.tenant.as_str().to_owned()),
        run_id: Set(r.run_id.to_owned()),
        evidence_type: Set(evidence_type.to_owned()),
        failure_reason: Set(reason.to_owned()),
        error_message: Set(message.clone()),
        resolution: Set(resolution.to_owned()),
        created_at: Set(r.at),
    })
    .on_conflict(
        OnConflict::columns([
            ecf::Column::TenantId,
            ecf::Column::RunId,
            ecf::Column::EvidenceType,
            ecf::Column::FailureReason,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(c)
    .await?;
    Ok(RecordedFailure {
        evidence_type: evidence_type.to_owned(),
        step_index,
        failure_reason: reason.to_owned(),
        error_message: message,
        resolution: resolution.to_owned(),
        newly_recorded: written > 0,
    })
}

/// Runs one row's write under a savepoint. A database error rolls the savepoint back and is
/// recorded as a `database_error` failure of the class (and logged); it is never dropped.
async fn guarded<'t, F, Fut>(
    txn: &'t DatabaseTransaction,
    r: &Row<'_>,
    class: EvidenceClass,
    step_index: Option<i32>,
    out: &mut CaptureOutcome,
    write: F,
) -> AppResult<()>
where
    F: FnOnce(DatabaseTransaction) -> Fut,
    Fut: Future<Output = (DatabaseTransaction, AppResult<CapturedRow>)> + 't,
{
    let savepoint = txn.begin().await?;
    let (savepoint, result) = write(savepoint).await;
    match result {
        Ok(row) => {
            savepoint.commit().await?;
            out.captured.push(row);
        }
        Err(err) => {
            savepoint.rollback().await?;
            let text = match &err {
                AppError::Internal(cause) => cause.clone(),
                other => other.message(),
            };
            tracing::warn!(run_id = r.run_id, table = class.table(), error = %text,
                "evidence capture failed; recorded as a capture failure");
            out.failures.push(
                record_failure(
                    txn,
                    r,
                    class.table(),
                    step_index,
                    "database_error",
                    Some(text),
                    "transient",
                )
                .await?,
            );
        }
    }
    Ok(())
}

/// The J row's JSON: table names of the artifacts, and the reasons (with `_capture_failures`
/// listing the unresolved failures when there are any).
fn seal_model(r: &Row<'_>, report: &IntegrityReport) -> ie::ActiveModel {
    let names = |items: &[crate::integrity::EvidenceArtifact]| {
        json!(items.iter().map(|a| a.table()).collect::<Vec<_>>())
    };
    let mut reasons = Map::new();
    for (artifact, reason) in &report.missing_reasons {
        reasons.insert(artifact.table().to_owned(), json!(reason));
    }
    let unresolved: Vec<Value> = report
        .capture_failures
        .iter()
        .filter(|f| f.resolution != crate::integrity::CaptureResolution::Superseded)
        .map(|f| {
            json!({
                "evidence_type": f.evidence_type,
                "failure_reason": f.failure_reason,
                "error_message": f.error_message,
                "resolution": f.resolution.as_str(),
            })
        })
        .collect();
    if !unresolved.is_empty() {
        reasons.insert("_capture_failures".into(), Value::Array(unresolved));
    }
    let status = report.grade.legacy().as_str();
    ie::ActiveModel {
        id: Set(format!("ie-{}-{}", r.tag, r.run_id)),
        tenant_id: Set(r.tenant.as_str().to_owned()),
        run_id: Set(r.run_id.to_owned()),
        expected_artifacts: Set(names(&crate::integrity::EvidenceArtifact::ALL)),
        expected_artifact_schema: Set(None),
        observed_artifacts: Set(names(&report.observed)),
        missing_artifacts: Set(Some(names(&report.missing))),
        missing_reasons: Set(Some(Value::Object(reasons))),
        integrity_score: Set(report.score),
        integrity_status: Set(status.to_owned()),
        verification_method: Set(Some("evidence_table_scan".to_owned())),
        verification_timestamp: Set(Some(r.at)),
        divergence_details: Set(None),
        recovery_action: Set(None),
        coverage_metrics: Set(Some(json!({
            "observed": report.observed.len(),
            "expected": crate::integrity::EvidenceArtifact::ALL.len(),
        }))),
        is_synthetic: Set(r.is_synthetic),
        synthetic_scenario_id: Set(r.scenario.clone()),
        created_at: Set(r.at),
    }
}

/// Grades the run inside the transaction (so it sees this call's evidence) and stores the seal;
/// the first seal of a run wins.
async fn seal(txn: &DatabaseTransaction, r: &Row<'_>) -> AppResult<CapturedRow> {
    let run_ids = [r.run_id.to_owned()];
    let report = integrity_store::integrity_for_runs(txn, r.tenant, &run_ids)
        .await?
        .remove(r.run_id)
        .ok_or_else(|| AppError::internal("integrity report missing for the run"))?;
    let model = seal_model(r, &report);
    let id = format!("ie-{}-{}", r.tag, r.run_id);
    let written = ie::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([ie::Column::TenantId, ie::Column::RunId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(CapturedRow {
        class: EvidenceClass::Integrity,
        id,
        step_index: None,
        status: if written > 0 {
            CaptureStatus::Created
        } else {
            CaptureStatus::Unchanged
        },
    })
}

/// Writes one run's evidence in one transaction. `NOT_FOUND` unless the tenant has a run record
/// with this run id.
pub async fn capture(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    req: &CaptureRequest,
) -> AppResult<CaptureOutcome> {
    if txn.get_database_backend() == DbBackend::Sqlite {
        // Take the write lock before the first read (see `cost::rollup::record_costs`).
        txn.execute_unprepared("UPDATE evidence_capture_failures SET id = id WHERE 0")
            .await?;
    }
    if !integrity_store::run_exists(txn, tenant, &req.run_id).await? {
        return Err(AppError::NotFound("LlmRun"));
    }
    let context = req.context.as_ref();
    let row = Row {
        tenant,
        run_id: &req.run_id,
        tag: tenant_tag(tenant),
        source: context.map_or("execution", |c| c.source.as_str()),
        is_synthetic: context.is_some_and(|c| c.is_synthetic),
        scenario: context.and_then(|c| c.synthetic_scenario_id.clone()),
        at: now(),
    };
    let r = &row;
    let mut out = CaptureOutcome {
        run_id: req.run_id.clone(),
        captured: Vec::new(),
        failures: Vec::new(),
    };
    // Each row in its own savepoint: a failure is recorded, the other rows still commit.
    macro_rules! capture {
        ($class:expr, $step:expr, $write:ident, $item:expr) => {
            guarded(txn, r, $class, $step, &mut out, |sp| async move {
                let res = $write(&sp, r, $item).await;
                (sp, res)
            })
            .await?
        };
    }
    if let Some(env) = &req.environment {
        capture!(EvidenceClass::Environment, None, write_environment, env);
    }
    for a in &req.activities {
        capture!(
            EvidenceClass::Activity,
            Some(a.step_index),
            write_activity,
            a
        );
    }
    for p in &req.providers {
        capture!(
            EvidenceClass::Provider,
            Some(p.step_index),
            write_provider,
            p
        );
    }
    for d in &req.policy_decisions {
        capture!(EvidenceClass::PolicyDecision, None, write_decision, d);
    }
    for f in &req.failures {
        out.failures.push(
            record_failure(
                txn,
                r,
                f.evidence_type,
                None,
                &f.failure_reason,
                f.error_message.clone(),
                f.resolution,
            )
            .await?,
        );
    }
    if req.seal {
        out.captured.push(seal(txn, r).await?);
    }
    Ok(out)
}
