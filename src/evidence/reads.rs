//! Reading captured evidence back (docs/domain.md §8.1): a run's environment (class H),
//! activity (B), provider (G) and policy decision (D) rows, as immutable snapshots served as they
//! are under `LlmRun.evidence`. Each read is one statement for any number of one tenant's runs,
//! behind a DataLoader per request. The seal (J) and capture failures are read by
//! `crate::integrity`, which grades them.

use std::collections::HashMap;

use async_graphql::{Json, SimpleObject};
use entity::{activity_evidence, environment_evidence, policy_decisions, provider_evidence};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;

use crate::auth::TenantId;
use crate::error::AppResult;
use crate::scalars::DateTime;

/// The SDK and client environment a run was captured in (class H).
#[derive(Debug, Clone, PartialEq, SimpleObject)]
pub struct EnvironmentEvidence {
    pub id: String,
    pub run_id: String,
    pub sdk_mode: String,
    pub sdk_version: Option<String>,
    pub environment: Option<String>,
    pub telemetry_enabled: Option<bool>,
    pub telemetry_delivery_status: Option<String>,
    pub trace_sampling_rate: Option<f64>,
    pub metrics_enabled: Option<bool>,
    pub client_ip: Option<String>,
    pub client_user_agent: Option<String>,
    pub client_origin: Option<String>,
    pub active_feature_flags: Option<Json<Value>>,
    pub debug_mode: Option<bool>,
    pub dry_run: Option<bool>,
    pub capture_confidence_score: Option<f64>,
    pub firewall_proxy_detected: Option<bool>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTime,
}

/// What one step sent to a model, by fingerprint (class B; prompt text is never stored).
#[derive(Debug, Clone, PartialEq, SimpleObject)]
pub struct ActivityEvidence {
    pub id: String,
    pub run_id: String,
    pub step_index: i32,
    pub skill_id: String,
    pub model_name: String,
    pub prompt_fingerprint: String,
    pub prompt_token_length: i32,
    pub prompt_template_id: Option<String>,
    pub prompt_template_version: Option<String>,
    pub response_fingerprint: Option<String>,
    pub response_token_length: Option<i32>,
    pub completion_type: Option<String>,
    pub sensitivity_class: Option<String>,
    pub redaction_status: Option<String>,
    pub provider_safety_flags: Option<Json<Value>>,
    /// Who produced the evidence: `sdk`, `worker`, `provider` or `reconciler`.
    pub evidence_source: String,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTime,
}

/// What the model provider answered for one step (class G).
#[derive(Debug, Clone, PartialEq, SimpleObject)]
pub struct ProviderEvidence {
    pub id: String,
    pub run_id: String,
    pub step_index: i32,
    pub provider_name: String,
    pub provider_request_id: Option<String>,
    pub model_name: String,
    pub model_version: Option<String>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
    pub cache_read_tokens: Option<i32>,
    pub cache_creation_tokens: Option<i32>,
    pub total_tokens: Option<i32>,
    pub api_version: Option<String>,
    pub endpoint: Option<String>,
    pub provider_latency_ms: Option<i32>,
    pub provider_http_status: Option<i32>,
    pub provider_error_code: Option<String>,
    pub provider_retry_count: Option<i32>,
    pub provider_safety_signals: Option<Json<Value>>,
    pub requested_at: DateTime,
    pub responded_at: Option<DateTime>,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTime,
}

/// One policy evaluation of the run and its outcome (class D).
#[derive(Debug, Clone, PartialEq, SimpleObject)]
pub struct PolicyDecision {
    pub id: String,
    pub run_id: String,
    pub policy_type: String,
    pub policy_rule_id: Option<String>,
    pub policy_version: Option<i32>,
    /// As stored, e.g. `GRANTED`, `DENIED`, `ESCALATED`.
    pub decision: String,
    pub decision_reason: Option<String>,
    pub decision_confidence: Option<f64>,
    pub policies_evaluated: Option<Json<Value>>,
    pub policy_results: Option<String>,
    pub evaluation_order: Option<Json<Value>>,
    pub thresholds_used: Option<Json<Value>>,
    pub customer_guardrail_result: Option<Json<Value>>,
    pub provider_moderation_result: Option<Json<Value>>,
    pub decision_reason_codes: Option<Json<Value>>,
    pub approval_request_id: Option<String>,
    pub required_approval_level: Option<i32>,
    pub current_approval_level: Option<i32>,
    pub evaluated_by: Option<String>,
    pub evaluated_at: DateTime,
    pub is_synthetic: bool,
    pub synthetic_scenario_id: Option<String>,
    pub created_at: DateTime,
}

/// A table of per-run evidence rows: how to select one tenant's rows of some runs, in the order
/// they are shown, and the snapshot a row becomes.
pub trait RunEvidence: Sized + Clone + Send + Sync + 'static {
    type Entity: EntityTrait;
    const TENANT: <Self::Entity as EntityTrait>::Column;
    const RUN: <Self::Entity as EntityTrait>::Column;
    /// Shown in this order within a run (ties by id).
    const ORDER: <Self::Entity as EntityTrait>::Column;
    const ID: <Self::Entity as EntityTrait>::Column;

    fn snapshot(row: <Self::Entity as EntityTrait>::Model) -> Self;
    fn run_id(&self) -> &str;
}

/// The tenant's rows of `T` for these runs, grouped by run id, in `T::ORDER`.
pub async fn for_runs<T: RunEvidence>(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, Vec<T>>> {
    let mut out: HashMap<String, Vec<T>> = HashMap::new();
    if run_ids.is_empty() {
        return Ok(out);
    }
    let rows = T::Entity::find()
        .filter(T::TENANT.eq(tenant.as_str()))
        .filter(T::RUN.is_in(run_ids.iter().map(String::as_str)))
        .order_by_asc(T::ORDER)
        .order_by_asc(T::ID)
        .all(db)
        .await?;
    for row in rows {
        let snapshot = T::snapshot(row);
        out.entry(snapshot.run_id().to_owned())
            .or_default()
            .push(snapshot);
    }
    Ok(out)
}

impl RunEvidence for EnvironmentEvidence {
    type Entity = environment_evidence::Entity;
    const TENANT: environment_evidence::Column = environment_evidence::Column::TenantId;
    const RUN: environment_evidence::Column = environment_evidence::Column::RunId;
    const ORDER: environment_evidence::Column = environment_evidence::Column::CreatedAt;
    const ID: environment_evidence::Column = environment_evidence::Column::Id;

    fn snapshot(m: environment_evidence::Model) -> Self {
        EnvironmentEvidence {
            id: m.id,
            run_id: m.run_id,
            sdk_mode: m.sdk_mode,
            sdk_version: m.sdk_version,
            environment: m.environment,
            telemetry_enabled: m.telemetry_enabled,
            telemetry_delivery_status: m.telemetry_delivery_status,
            trace_sampling_rate: m.trace_sampling_rate,
            metrics_enabled: m.metrics_enabled,
            client_ip: m.client_ip,
            client_user_agent: m.client_user_agent,
            client_origin: m.client_origin,
            active_feature_flags: m.active_feature_flags.map(Json),
            debug_mode: m.debug_mode,
            dry_run: m.dry_run,
            capture_confidence_score: m.capture_confidence_score,
            firewall_proxy_detected: m.firewall_proxy_detected,
            is_synthetic: m.is_synthetic,
            synthetic_scenario_id: m.synthetic_scenario_id,
            created_at: m.created_at.into(),
        }
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }
}

impl RunEvidence for ActivityEvidence {
    type Entity = activity_evidence::Entity;
    const TENANT: activity_evidence::Column = activity_evidence::Column::TenantId;
    const RUN: activity_evidence::Column = activity_evidence::Column::RunId;
    const ORDER: activity_evidence::Column = activity_evidence::Column::StepIndex;
    const ID: activity_evidence::Column = activity_evidence::Column::Id;

    fn snapshot(m: activity_evidence::Model) -> Self {
        ActivityEvidence {
            id: m.id,
            run_id: m.run_id,
            step_index: m.step_index,
            skill_id: m.skill_id,
            model_name: m.model_name,
            prompt_fingerprint: m.prompt_fingerprint,
            prompt_token_length: m.prompt_token_length,
            prompt_template_id: m.prompt_template_id,
            prompt_template_version: m.prompt_template_version,
            response_fingerprint: m.response_fingerprint,
            response_token_length: m.response_token_length,
            completion_type: m.completion_type,
            sensitivity_class: m.sensitivity_class,
            redaction_status: m.redaction_status,
            provider_safety_flags: m.provider_safety_flags.map(Json),
            evidence_source: m.evidence_source,
            is_synthetic: m.is_synthetic,
            synthetic_scenario_id: m.synthetic_scenario_id,
            created_at: m.created_at.into(),
        }
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }
}

impl RunEvidence for ProviderEvidence {
    type Entity = provider_evidence::Entity;
    const TENANT: provider_evidence::Column = provider_evidence::Column::TenantId;
    const RUN: provider_evidence::Column = provider_evidence::Column::RunId;
    const ORDER: provider_evidence::Column = provider_evidence::Column::StepIndex;
    const ID: provider_evidence::Column = provider_evidence::Column::Id;

    fn snapshot(m: provider_evidence::Model) -> Self {
        ProviderEvidence {
            id: m.id,
            run_id: m.run_id,
            step_index: m.step_index,
            provider_name: m.provider_name,
            provider_request_id: m.provider_request_id,
            model_name: m.model_name,
            model_version: m.model_version,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            cache_read_tokens: m.cache_read_tokens,
            cache_creation_tokens: m.cache_creation_tokens,
            total_tokens: m.total_tokens,
            api_version: m.api_version,
            endpoint: m.endpoint,
            provider_latency_ms: m.provider_latency_ms,
            provider_http_status: m.provider_http_status,
            provider_error_code: m.provider_error_code,
            provider_retry_count: m.provider_retry_count,
            provider_safety_signals: m.provider_safety_signals.map(Json),
            requested_at: m.requested_at.into(),
            responded_at: m.responded_at.map(Into::into),
            is_synthetic: m.is_synthetic,
            synthetic_scenario_id: m.synthetic_scenario_id,
            created_at: m.created_at.into(),
        }
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }
}

impl RunEvidence for PolicyDecision {
    type Entity = policy_decisions::Entity;
    const TENANT: policy_decisions::Column = policy_decisions::Column::TenantId;
    const RUN: policy_decisions::Column = policy_decisions::Column::RunId;
    const ORDER: policy_decisions::Column = policy_decisions::Column::EvaluatedAt;
    const ID: policy_decisions::Column = policy_decisions::Column::Id;

    fn snapshot(m: policy_decisions::Model) -> Self {
        PolicyDecision {
            id: m.id,
            run_id: m.run_id,
            policy_type: m.policy_type,
            policy_rule_id: m.policy_rule_id,
            policy_version: m.policy_version,
            decision: m.decision,
            decision_reason: m.decision_reason,
            decision_confidence: m.decision_confidence,
            policies_evaluated: m.policies_evaluated.map(Json),
            policy_results: m.policy_results,
            evaluation_order: m.evaluation_order.map(Json),
            thresholds_used: m.thresholds_used.map(Json),
            customer_guardrail_result: m.customer_guardrail_result.map(Json),
            provider_moderation_result: m.provider_moderation_result.map(Json),
            decision_reason_codes: m.decision_reason_codes.map(Json),
            approval_request_id: m.approval_request_id,
            required_approval_level: m.required_approval_level,
            current_approval_level: m.current_approval_level,
            evaluated_by: m.evaluated_by,
            evaluated_at: m.evaluated_at.into(),
            is_synthetic: m.is_synthetic,
            synthetic_scenario_id: m.synthetic_scenario_id,
            created_at: m.created_at.into(),
        }
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// The DataLoader over one evidence table: rows by run id, one statement per batch.
pub struct EvidenceLoader<T> {
    pub db: sea_orm::DatabaseConnection,
    pub tenant: TenantId,
    pub table: std::marker::PhantomData<T>,
}

impl<T: RunEvidence> EvidenceLoader<T> {
    pub fn new(db: sea_orm::DatabaseConnection, tenant: TenantId) -> Self {
        EvidenceLoader {
            db,
            tenant,
            table: std::marker::PhantomData,
        }
    }
}

impl<T: RunEvidence> async_graphql::dataloader::Loader<String> for EvidenceLoader<T> {
    type Value = Vec<T>;
    type Error = crate::traces::graphql::LoadError;

    async fn load(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Vec<T>>, crate::traces::graphql::LoadError> {
        Ok(for_runs::<T>(&self.db, &self.tenant, keys).await?)
    }
}
