//! Cost write mutations (docs/domain.md §9.2, §9.3, §9.5–§9.7): `recordCost` (INGEST; refused
//! past a hard budget), `createFeatureTag`, `updateFeatureTag`, `upsertBudget` (ADMIN) and
//! `detectCostAnomalies`, `acknowledgeCostAnomaly`, `resolveCostAnomaly` (OPERATOR or ADMIN: they
//! configure nothing, they derive or triage anomaly rows, the kind of action an on-call operator
//! takes). Resolvers check the input (`BAD_USER_INPUT` naming the argument path), run the write
//! once per idempotency key and answer with the same types the `cost` reads return.
//!
//! No audit entry is written when an anomaly is acknowledged or resolved: the ledger's event
//! types (docs/domain.md §4.2) do not cover cost anomalies, and, as for mismatches, who did it,
//! when and with which note is recorded on the anomaly itself.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject, ID};
use chrono::Duration;
use serde_json::json;

use super::anomaly_detect::{self, DetectionOutcome};
use super::graphql::{CostAnomaly, CostBudget, FeatureTag};
use super::rollup::NewCostRecord;
use super::write::{self, BudgetUpsert, FeatureTagChanges, NewFeatureTag, RecordedCost};
use super::{
    store, AnomalySnapshot, BudgetWithSpend, CostBudgetType, FeatureTagSnapshot, UNCLASSIFIED,
};
use crate::auth::{self, Permission, Principal, TenantId};
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::idempotency::WriteOnce;
use crate::input::{check_opt, check_text, non_negative};
use crate::scalars::{now, Date, DateTime};
use crate::state::AppState;

/// Most records one `recordCost` call takes (they are written in one transaction).
pub const MAX_COST_BATCH: usize = 1_000;
/// How far back `createdAt` may reach (backfills), and how far ahead (clock skew).
const MAX_BACKFILL_DAYS: i64 = 366;
const MAX_SKEW_MINUTES: i64 = 5;

/// One metered LLM/tool call.
#[derive(Debug, InputObject)]
pub struct CostRecordInput {
    /// At most 64 characters.
    pub model: String,
    /// A registered, active `namespace.action` tag; missing, unknown or inactive tags are
    /// recorded as `unclassified`.
    pub feature_tag: Option<String>,
    /// Absent for anonymous usage.
    pub user_id: Option<String>,
    /// Trace linkage.
    pub request_id: Option<String>,
    pub workflow_id: Option<String>,
    pub skill_id: Option<String>,
    /// >= 0; default 0.
    #[graphql(default)]
    pub input_tokens: i32,
    /// >= 0; default 0.
    #[graphql(default)]
    pub output_tokens: i32,
    /// Fractional US cents, >= 0, stored as given (never truncated).
    pub cost_cents: f64,
    /// Whether the call was a retry (feeds the RETRY_LOOP cause of anomalies).
    #[graphql(default)]
    pub is_retry: bool,
    /// When the cost was incurred (decides its UTC day); default now. At most 366 days back.
    pub created_at: Option<DateTime>,
}

/// A batch of 1..=1000 cost records, written all or nothing.
#[derive(Debug, InputObject)]
pub struct RecordCostInput {
    pub records: Vec<CostRecordInput>,
}

fn parse_record(
    i: usize,
    r: CostRecordInput,
    at: chrono::DateTime<chrono::Utc>,
) -> AppResult<NewCostRecord> {
    let field = |name: &str| format!("input.records.{i}.{name}");
    check_text(&field("model"), &r.model, 64)?;
    let opt = |name: &str, value: Option<String>, max: usize| -> AppResult<Option<String>> {
        let value = value.filter(|v| !v.is_empty());
        check_opt(&field(name), &value, max)?;
        Ok(value)
    };
    if !r.cost_cents.is_finite() || r.cost_cents < 0.0 {
        return Err(AppError::bad_input(
            field("costCents"),
            format!("{} must be a finite number >= 0", field("costCents")),
        ));
    }
    if let Some(when) = r.created_at {
        if when.0 > at + Duration::minutes(MAX_SKEW_MINUTES)
            || when.0 < at - Duration::days(MAX_BACKFILL_DAYS)
        {
            return Err(AppError::bad_input(
                field("createdAt"),
                format!(
                    "{} must be within the last {MAX_BACKFILL_DAYS} days and not in the future",
                    field("createdAt")
                ),
            ));
        }
    }
    Ok(NewCostRecord {
        feature_tag: opt("featureTag", r.feature_tag, 128)?,
        user_id: opt("userId", r.user_id, 64)?,
        request_id: opt("requestId", r.request_id, 64)?,
        workflow_id: opt("workflowId", r.workflow_id, 64)?,
        skill_id: opt("skillId", r.skill_id, 64)?,
        input_tokens: non_negative(&field("inputTokens"), r.input_tokens)?,
        output_tokens: non_negative(&field("outputTokens"), r.output_tokens)?,
        model: r.model,
        cost_cents: r.cost_cents,
        is_retry: r.is_retry,
        created_at: r.created_at.map(|d| d.0),
    })
}

fn parse_records(input: RecordCostInput) -> AppResult<Vec<NewCostRecord>> {
    if input.records.is_empty() || input.records.len() > MAX_COST_BATCH {
        return Err(AppError::bad_input(
            "input.records",
            format!("input.records must hold 1 to {MAX_COST_BATCH} records"),
        ));
    }
    let at = now();
    input
        .records
        .into_iter()
        .enumerate()
        .map(|(i, r)| parse_record(i, r, at))
        .collect()
}

/// The request hash input of `recordCost`: every field of every record.
fn records_json(rows: &[NewCostRecord]) -> serde_json::Value {
    rows.iter()
        .map(|r| {
            json!({
                "model": r.model, "featureTag": r.feature_tag, "userId": r.user_id,
                "requestId": r.request_id, "workflowId": r.workflow_id, "skillId": r.skill_id,
                "inputTokens": r.input_tokens, "outputTokens": r.output_tokens,
                "costCents": r.cost_cents, "isRetry": r.is_retry, "createdAt": r.created_at,
            })
        })
        .collect()
}

/// A stored cost record.
pub struct RecordedCostNode(RecordedCost);

#[Object(name = "RecordedCost")]
impl RecordedCostNode {
    /// The record's id (`cr_…`).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The tag the cost counts under: the requested one, or `unclassified` when it was
    /// missing, unknown or inactive.
    async fn feature_tag(&self) -> &str {
        &self.0.feature_tag
    }
    async fn requested_feature_tag(&self) -> Option<&str> {
        self.0.requested_feature_tag.as_deref()
    }
    async fn model(&self) -> &str {
        &self.0.model
    }
    async fn cost_cents(&self) -> f64 {
        self.0.cost_cents
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

/// What `recordCost` wrote.
#[derive(SimpleObject)]
pub struct RecordCostPayload {
    /// In input order.
    records: Vec<RecordedCostNode>,
    record_count: i32,
    total_cost_cents: f64,
    /// Records attributed to `unclassified` although they named another tag.
    reclassified_count: i32,
}

fn record_payload(rows: Vec<RecordedCost>) -> RecordCostPayload {
    let reclassified = rows
        .iter()
        .filter(|r| {
            r.feature_tag == UNCLASSIFIED
                && r.requested_feature_tag
                    .as_deref()
                    .is_some_and(|t| t != UNCLASSIFIED)
        })
        .count();
    RecordCostPayload {
        record_count: i32::try_from(rows.len()).unwrap_or(i32::MAX),
        total_cost_cents: rows.iter().map(|r| r.cost_cents).sum(),
        reclassified_count: i32::try_from(reclassified).unwrap_or(i32::MAX),
        records: rows.into_iter().map(RecordedCostNode).collect(),
    }
}

/// A new feature tag.
#[derive(Debug, InputObject)]
pub struct CreateFeatureTagInput {
    /// `namespace.action`: a dot with text on both sides, no spaces, at most 128 characters.
    pub tag: String,
    /// At most 256 characters.
    pub display_name: String,
    pub description: Option<String>,
    /// The feature's budget in cents, >= 0.
    pub budget_cents: Option<i32>,
    /// Default true.
    #[graphql(default = true)]
    pub is_active: bool,
}

/// Fields to change; omitted fields stay, `null` clears `description` or `budgetCents`.
#[derive(Debug, InputObject)]
pub struct UpdateFeatureTagInput {
    pub display_name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub budget_cents: MaybeUndefined<i32>,
    /// Inactive tags stop classifying new cost records.
    pub is_active: Option<bool>,
}

fn check_tag(field: &str, tag: &str) -> AppResult<()> {
    check_text(field, tag, 128)?;
    let well_formed = tag
        .split_once('.')
        .is_some_and(|(ns, action)| !ns.is_empty() && !action.is_empty())
        && !tag.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(AppError::bad_input(
            field,
            format!("{field} must look like `namespace.action`"),
        ));
    }
    Ok(())
}

fn check_budget_cents(field: &str, value: Option<i32>) -> AppResult<()> {
    match value {
        Some(v) if v < 0 => Err(AppError::bad_input(field, format!("{field} must be >= 0"))),
        _ => Ok(()),
    }
}

fn parse_new_tag(input: CreateFeatureTagInput) -> AppResult<NewFeatureTag> {
    check_tag("input.tag", &input.tag)?;
    check_text("input.displayName", &input.display_name, 256)?;
    check_budget_cents("input.budgetCents", input.budget_cents)?;
    Ok(NewFeatureTag {
        tag: input.tag,
        display_name: input.display_name,
        description: input.description,
        budget_cents: input.budget_cents,
        is_active: input.is_active,
    })
}

fn maybe<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

fn parse_changes(input: UpdateFeatureTagInput) -> AppResult<FeatureTagChanges> {
    if let Some(name) = &input.display_name {
        check_text("input.displayName", name, 256)?;
    }
    let changes = FeatureTagChanges {
        display_name: input.display_name,
        description: maybe(input.description),
        budget_cents: maybe(input.budget_cents),
        is_active: input.is_active,
    };
    check_budget_cents("input.budgetCents", changes.budget_cents.flatten())?;
    if changes == FeatureTagChanges::default() {
        return Err(AppError::bad_input(
            "input",
            "input names no field to change",
        ));
    }
    Ok(changes)
}

/// A budget to create, or to update when the tenant has one for this type and entity.
#[derive(Debug, InputObject)]
pub struct UpsertBudgetInput {
    pub budget_type: CostBudgetType,
    /// The feature tag or user id; required for FEATURE and USER, absent for TENANT.
    pub entity_id: Option<String>,
    /// >= 0.
    pub daily_limit_cents: Option<i32>,
    /// >= 0.
    pub monthly_limit_cents: Option<i32>,
    /// 0..=100; default 80.
    #[graphql(default = 80)]
    pub warn_threshold_pct: i32,
    #[graphql(default)]
    pub hard_limit_enabled: bool,
    /// Default: true for a new budget, unchanged for an existing one.
    pub is_active: Option<bool>,
}

fn parse_budget(input: UpsertBudgetInput) -> AppResult<BudgetUpsert> {
    let entity_id = input.entity_id.filter(|e| !e.is_empty());
    match (input.budget_type, &entity_id) {
        (CostBudgetType::Tenant, Some(_)) => {
            return Err(AppError::bad_input(
                "input.entityId",
                "input.entityId must be absent for a TENANT budget",
            ));
        }
        (CostBudgetType::Feature | CostBudgetType::User, None) => {
            return Err(AppError::bad_input(
                "input.entityId",
                "input.entityId is required for FEATURE and USER budgets",
            ));
        }
        _ => {}
    }
    check_opt("input.entityId", &entity_id, 128)?;
    check_budget_cents("input.dailyLimitCents", input.daily_limit_cents)?;
    check_budget_cents("input.monthlyLimitCents", input.monthly_limit_cents)?;
    if !(0..=100).contains(&input.warn_threshold_pct) {
        return Err(AppError::bad_input(
            "input.warnThresholdPct",
            "input.warnThresholdPct must be between 0 and 100",
        ));
    }
    Ok(BudgetUpsert {
        budget_type: input.budget_type,
        entity_id,
        daily_limit_cents: input.daily_limit_cents,
        monthly_limit_cents: input.monthly_limit_cents,
        warn_threshold_pct: input.warn_threshold_pct,
        hard_limit_enabled: input.hard_limit_enabled,
        is_active: input.is_active,
    })
}

/// What one detection run found on its day.
#[derive(SimpleObject)]
pub struct DetectCostAnomaliesPayload {
    /// The UTC day evaluated.
    day: Date,
    /// Anomalies created or updated by this run (re-running a day updates, never duplicates).
    anomalies: Vec<CostAnomaly>,
    created: i32,
    updated: i32,
    /// Tenant, features and users with cost in the rollup's recent history.
    entities_evaluated: i32,
    budgets_evaluated: i32,
    /// HIGH anomalies this run escalated to new incidents (none without `escalate`, and none
    /// already escalated by an earlier run).
    escalated: Vec<CostAnomalyEscalation>,
}

/// A cost anomaly and the incident opened for it.
#[derive(SimpleObject)]
pub struct CostAnomalyEscalation {
    anomaly_id: ID,
    /// `incident(incidentId:)` reads it; its `costAnomalies` lists the anomaly.
    incident_id: ID,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Longest resolution note of a cost anomaly, in characters.
const MAX_ANOMALY_NOTE: usize = 2_000;

/// Who acted, as stored on the anomaly: the API key's id.
fn actor(principal: &Principal) -> String {
    format!("key:{}", principal.key_id)
}

/// The anomaly id argument (`ca_…`, as `CostAnomaly.id` gives it).
fn anomaly_id(id: &ID) -> AppResult<String> {
    check_text("id", id.as_str(), 64)?;
    Ok(id.to_string())
}

/// The tag a completed idempotency key points at.
async fn stored_tag(
    state: &AppState,
    tenant: &TenantId,
    tag: &str,
) -> AppResult<FeatureTagSnapshot> {
    write::feature_tag_by_tag(&state.db, tenant, tag)
        .await?
        .ok_or(AppError::NotFound("FeatureTag"))
}

#[derive(Default)]
pub struct CostMutation;

#[Object]
impl CostMutation {
    /// Records 1..=1000 cost records (role INGEST) in one transaction together with their
    /// daily rollup, so every `cost` panel includes them at once; one bad record writes
    /// nothing. A batch that would take today's or the month's spend of an active budget with
    /// `hardLimitEnabled` past its limit writes nothing and is `INVALID_TRANSITION` with
    /// `extensions.reason` `BUDGET_EXCEEDED` (and `budgetId`, `period`, `limitCents`,
    /// `spendCents`).
    async fn record_cost(
        &self,
        ctx: &Context<'_>,
        input: RecordCostInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<RecordCostPayload> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        let rows = parse_records(input)?;
        let tenant = &principal.tenant_id;
        let input = records_json(&rows);
        let recorded = WriteOnce::new(state, tenant, "recordCost", idempotency_key, &input)?
            .run(async |txn| write::record_cost_batch(txn, tenant, &rows).await)
            .await?;
        Ok(record_payload(recorded))
    }

    /// Registers a feature tag (role ADMIN). A tag the tenant already has is `BAD_USER_INPUT`.
    async fn create_feature_tag(
        &self,
        ctx: &Context<'_>,
        input: CreateFeatureTagInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<FeatureTag> {
        let principal = auth::require(ctx, Permission::Administer).await?;
        let state = ctx.data_unchecked::<AppState>();
        let new = parse_new_tag(input)?;
        let tenant = &principal.tenant_id;
        let created = WriteOnce::new(state, tenant, "createFeatureTag", idempotency_key, &new)?
            .run_with_receipt(
                async |txn| write::create_feature_tag(txn, tenant, &new).await,
                |created| created.tag.clone(),
                async |tag: String| stored_tag(state, tenant, &tag).await,
            )
            .await?;
        Ok(FeatureTag(created))
    }

    /// Changes a feature tag of the key's tenant (role ADMIN); `NOT_FOUND` for a tag it does
    /// not have. Records already classified keep their classification.
    async fn update_feature_tag(
        &self,
        ctx: &Context<'_>,
        tag: String,
        input: UpdateFeatureTagInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<FeatureTag> {
        let principal = auth::require(ctx, Permission::Administer).await?;
        let state = ctx.data_unchecked::<AppState>();
        check_text("tag", &tag, 128)?;
        let changes = parse_changes(input)?;
        let tenant = &principal.tenant_id;
        let input = json!({ "tag": tag, "changes": changes });
        let updated = WriteOnce::new(state, tenant, "updateFeatureTag", idempotency_key, &input)?
            .run_with_receipt(
                async |txn| write::update_feature_tag(txn, tenant, &tag, &changes).await,
                |updated| updated.tag.clone(),
                async |tag: String| stored_tag(state, tenant, &tag).await,
            )
            .await?;
        Ok(FeatureTag(updated))
    }

    /// Creates or updates the tenant's budget for a type and entity (role ADMIN). There is at
    /// most one TENANT budget; an update sets the limits, threshold and hard flag.
    async fn upsert_budget(
        &self,
        ctx: &Context<'_>,
        input: UpsertBudgetInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CostBudget> {
        let principal = auth::require(ctx, Permission::Administer).await?;
        let state = ctx.data_unchecked::<AppState>();
        let budget = parse_budget(input)?;
        let tenant = &principal.tenant_id;
        let budget = WriteOnce::new(state, tenant, "upsertBudget", idempotency_key, &budget)?
            .run_with_receipt(
                async |txn| write::upsert_budget(txn, tenant, &budget).await,
                |upserted| upserted.id.clone(),
                async |id: String| {
                    write::budget_by_id(&state.db, tenant, &id)
                        .await?
                        .ok_or(AppError::NotFound("CostBudget"))
                },
            )
            .await?;
        // The spend is read after the commit; should that read fail, the budget is still
        // reported with no spend rather than the committed write as failed.
        let today = now().date_naive();
        let spend = match store::budget_spend(
            &state.db,
            tenant,
            std::slice::from_ref(&budget),
            today,
        )
        .await
        {
            Ok(mut spend) => spend.remove(&budget.id).unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = ?err, "budget spend not read after upsertBudget");
                Default::default()
            }
        };
        Ok(CostBudget(BudgetWithSpend { budget, spend }))
    }

    /// Runs cost anomaly detection for the key's tenant on the current UTC day (role OPERATOR
    /// or ADMIN): spikes of the tenant, its features and users, the tenant's sustained drift,
    /// and budget warnings/excesses, read from the daily rollup. Found anomalies appear in
    /// `cost { anomalies }`; running again the same day updates them instead of duplicating.
    /// With `escalate` (default true) each HIGH anomaly not yet escalated opens an incident
    /// (`CostAnomaly.incidentId`, `Incident.costAnomalies`).
    async fn detect_cost_anomalies(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = true)] escalate: bool,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<DetectCostAnomaliesPayload> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let tenant = &principal.tenant_id;
        // A fresh run reads its anomalies inside its transaction, so nothing after the commit
        // can fail; a replay reads them again.
        let (outcome, anomalies) = WriteOnce::new(
            state,
            tenant,
            "detectCostAnomalies",
            idempotency_key,
            &json!({ "escalate": escalate }),
        )?
        .publish_if(
            Topic::CostAnomalies,
            |(outcome, _): &(DetectionOutcome, Vec<AnomalySnapshot>)| {
                outcome.created + outcome.updated > 0
            },
        )
        .run_with_receipt(
            async |txn| {
                let outcome = anomaly_detect::detect(txn, tenant, now(), escalate).await?;
                let ids = &outcome.anomaly_ids;
                let anomalies = anomaly_detect::anomalies_by_id(txn, tenant, ids).await?;
                Ok((outcome, anomalies))
            },
            |(outcome, _)| outcome.clone(),
            async |outcome: DetectionOutcome| {
                let ids = &outcome.anomaly_ids;
                let anomalies = anomaly_detect::anomalies_by_id(&state.db, tenant, ids).await?;
                Ok((outcome, anomalies))
            },
        )
        .await?;
        let anomalies = anomalies.into_iter().map(CostAnomaly).collect();
        Ok(DetectCostAnomaliesPayload {
            day: Date(outcome.day),
            anomalies,
            created: count(outcome.created),
            updated: count(outcome.updated),
            entities_evaluated: count(outcome.entities_evaluated),
            budgets_evaluated: count(outcome.budgets_evaluated),
            escalated: outcome
                .escalated
                .into_iter()
                .map(|(anomaly, incident)| CostAnomalyEscalation {
                    anomaly_id: ID(anomaly),
                    incident_id: ID(incident),
                })
                .collect(),
        })
    }

    /// Acknowledges an OPEN cost anomaly of the tenant: someone is on it (roles OPERATOR,
    /// ADMIN). Acknowledging an acknowledged or resolved anomaly is `INVALID_TRANSITION`; an
    /// anomaly the tenant does not have is `NOT_FOUND`. `id` is `CostAnomaly.id` (`ca_…`).
    async fn acknowledge_cost_anomaly(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(desc = "Same key + same input returns the anomaly again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CostAnomaly> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let id = anomaly_id(&id)?;
        let who = actor(&principal);
        let tenant = &principal.tenant_id;
        let input = json!({ "id": id });
        let anomaly = WriteOnce::new(
            state,
            tenant,
            "acknowledgeCostAnomaly",
            idempotency_key,
            &input,
        )?
        .run_with_receipt(
            async |txn| write::acknowledge_anomaly(txn, tenant, &id, &who).await,
            |anomaly| anomaly.id.clone(),
            async |id: String| write::anomaly_by_id(&state.db, tenant, &id).await,
        )
        .await?;
        Ok(CostAnomaly(anomaly))
    }

    /// Resolves an OPEN or ACKNOWLEDGED cost anomaly of the tenant, with an optional note (at
    /// most 2 000 characters; roles OPERATOR, ADMIN). Resolving a resolved anomaly is
    /// `INVALID_TRANSITION` (the first resolver, time and note stay); an anomaly the tenant does
    /// not have is `NOT_FOUND`. Detection that finds the condition again opens a new anomaly.
    async fn resolve_cost_anomaly(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: Option<String>,
        #[graphql(desc = "Same key + same input returns the anomaly again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CostAnomaly> {
        let principal = auth::require(ctx, Permission::Operate).await?;
        let state = ctx.data_unchecked::<AppState>();
        let id = anomaly_id(&id)?;
        let note = note.filter(|n| !n.trim().is_empty());
        check_opt("note", &note, MAX_ANOMALY_NOTE)?;
        let who = actor(&principal);
        let tenant = &principal.tenant_id;
        let input = json!({ "id": id, "note": note });
        let note = note.as_deref();
        let anomaly = WriteOnce::new(state, tenant, "resolveCostAnomaly", idempotency_key, &input)?
            .run_with_receipt(
                async |txn| write::resolve_anomaly(txn, tenant, &id, &who, note).await,
                |anomaly| anomaly.id.clone(),
                async |id: String| write::anomaly_by_id(&state.db, tenant, &id).await,
            )
            .await?;
        Ok(CostAnomaly(anomaly))
    }
}
