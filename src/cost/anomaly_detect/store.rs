//! The detector's reads and writes: histories, retries and budgets in; breaches, the drift
//! tracker and anomalies out.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Days, NaiveDate, Utc};
use entity::{cost_anomalies, cost_budgets, cost_daily_aggregates as cda};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, Set, Statement,
};

use super::findings::{Candidate, EntityHistory};
use super::rules::{back, DayCost, Evaluation, History, RetryCounts, HISTORY_DAYS};
use crate::auth::TenantId;
use crate::cost::rollup::new_id;
use crate::cost::store::{anomaly_snapshot, budget_snapshot, budget_spend};
use crate::cost::{
    midnight, AnomalySnapshot, BudgetSnapshot, BudgetSpend, CostAnomalySeverity, CostAnomalyType,
    CostEntityType, ANONYMOUS, UNCLASSIFIED,
};
use crate::error::{AppError, AppResult};
use crate::incidents::store::{self as incidents, NewIncident};
use crate::incidents::{IncidentCause, IncidentSeverity};

/// `action_taken` of an anomaly escalated to an incident.
pub const ESCALATED: &str = "ESCALATED_TO_INCIDENT";

fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

/// Serialises detection runs of one tenant: a transaction-scoped advisory lock on PostgreSQL;
/// on SQLite, taking the write lock up front.
pub(super) async fn lock_tenant(txn: &impl ConnectionTrait, tenant: &TenantId) -> AppResult<()> {
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [format!("cost_detect:{}", tenant.as_str()).into()],
        ))
        .await?;
    } else {
        txn.execute_unprepared("UPDATE cost_anomalies SET id = id WHERE 0")
            .await?;
    }
    Ok(())
}

/// Per-entity histories from the rollup's tenant, feature and user grains.
pub(super) async fn read_histories(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    today: NaiveDate,
) -> AppResult<(Vec<EntityHistory>, Option<f64>)> {
    let rows: Vec<(NaiveDate, String, String, f64, i64, i32)> = cda::Entity::find()
        .select_only()
        .column(cda::Column::Date)
        .column(cda::Column::FeatureTag)
        .column(cda::Column::UserId)
        .column(cda::Column::TotalCostCents)
        .column(cda::Column::TotalInputTokens)
        .column(cda::Column::RequestCount)
        .filter(cda::Column::TenantId.eq(tenant.as_str()))
        .filter(cda::Column::Date.gte(back(today, HISTORY_DAYS)))
        .filter(cda::Column::Date.lte(today))
        .filter(Expr::cust("model = ''"))
        .into_tuple()
        .all(txn)
        .await?;
    let mut by_entity: BTreeMap<(u8, String), EntityHistory> = BTreeMap::new();
    let mut today_features: Vec<f64> = Vec::new();
    let mut today_total = 0.0;
    for (day, feature, user, cost, input, requests) in rows {
        let (order, entity_type, id) = match (feature.is_empty(), user.is_empty()) {
            (true, true) => (0, CostEntityType::Tenant, None),
            (false, true) => (1, CostEntityType::Feature, Some(feature)),
            (true, false) => (2, CostEntityType::User, Some(user)),
            (false, false) => continue,
        };
        if day == today {
            match entity_type {
                CostEntityType::Tenant => today_total = cost,
                CostEntityType::Feature => today_features.push(cost),
                _ => {}
            }
        }
        by_entity
            .entry((order, id.clone().unwrap_or_default()))
            .or_insert_with(|| EntityHistory {
                entity_type,
                entity_id: id,
                history: History::new(),
            })
            .history
            .insert(
                day,
                DayCost {
                    cost_cents: cost,
                    input_tokens: input,
                    requests: i64::from(requests),
                },
            );
    }
    let top_share = today_features
        .into_iter()
        .reduce(f64::max)
        .filter(|_| today_total > 0.0)
        .map(|top| top / today_total);
    Ok((by_entity.into_values().collect(), top_share))
}

/// Requests and retries of today and yesterday per entity, from the raw rows of those two days
/// (an index range on (tenant_id, created_at)).
pub(super) async fn read_retries(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    today: NaiveDate,
) -> AppResult<HashMap<(&'static str, String), RetryCounts>> {
    let backend = txn.get_database_backend();
    let p = |n| placeholder(backend, n);
    let sql = format!(
        "SELECT feature_tag, user_id, \
         CASE WHEN created_at >= {today} THEN 1 ELSE 0 END AS is_today, \
         CAST(COUNT(*) AS BIGINT), \
         CAST(SUM(CASE WHEN is_retry THEN 1 ELSE 0 END) AS BIGINT) \
         FROM cost_records WHERE tenant_id = {tenant} AND created_at >= {from} \
         AND created_at < {to} GROUP BY feature_tag, user_id, 3",
        today = p(1),
        tenant = p(2),
        from = p(3),
        to = p(4),
    );
    let start_today: DateTime<Utc> = midnight(today);
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                start_today.into(),
                tenant.as_str().into(),
                midnight(back(today, 1)).into(),
                midnight(today + Days::new(1)).into(),
            ],
        ))
        .await?;
    let mut out: HashMap<(&'static str, String), RetryCounts> = HashMap::new();
    for row in rows {
        let feature: Option<String> = row.try_get_by_index(0)?;
        let user: Option<String> = row.try_get_by_index(1)?;
        let is_today: i32 = row.try_get_by_index(2)?;
        let requests: i64 = row.try_get_by_index(3)?;
        let retries: i64 = row.try_get_by_index(4)?;
        let feature = feature
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| UNCLASSIFIED.to_owned());
        let user = user
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| ANONYMOUS.to_owned());
        for key in [
            (CostEntityType::Tenant.as_str(), tenant.as_str().to_owned()),
            (CostEntityType::Feature.as_str(), feature.clone()),
            (CostEntityType::User.as_str(), user.clone()),
        ] {
            let entry = out.entry(key).or_default();
            let slot = if is_today == 1 {
                &mut entry.today
            } else {
                &mut entry.yesterday
            };
            slot.0 += requests;
            slot.1 += retries;
        }
    }
    Ok(out)
}

pub(super) async fn active_budgets(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    today: NaiveDate,
) -> AppResult<Vec<(BudgetSnapshot, BudgetSpend)>> {
    let budgets: Vec<BudgetSnapshot> = cost_budgets::Entity::find()
        .filter(cost_budgets::Column::TenantId.eq(tenant.as_str()))
        .filter(cost_budgets::Column::IsActive.eq(true))
        .all(txn)
        .await?
        .into_iter()
        .map(budget_snapshot)
        .collect::<AppResult<_>>()?;
    let spend = budget_spend(txn, tenant, &budgets, today).await?;
    Ok(budgets
        .into_iter()
        .map(|b| {
            let s = spend.get(&b.id).copied().unwrap_or_default();
            (b, s)
        })
        .collect())
}

/// Upserts breach rows (one per entity, type and day).
pub(super) async fn record_breaches(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    breaches: &[(CostEntityType, Option<String>, CostAnomalyType, Evaluation)],
    at: DateTime<Utc>,
) -> AppResult<()> {
    let backend = txn.get_database_backend();
    let p = |n| placeholder(backend, n);
    for (kind, id, breach, eval) in breaches {
        let sql = format!(
            "INSERT INTO cost_breach_history (id, tenant_id, entity_type, entity_id, breach_type, \
             breach_date, deviation_pct, current_value_cents, baseline_value_cents, created_at) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}) \
             ON CONFLICT (tenant_id, entity_type, entity_id, breach_type, breach_date) DO UPDATE \
             SET deviation_pct = excluded.deviation_pct, \
             current_value_cents = excluded.current_value_cents, \
             baseline_value_cents = excluded.baseline_value_cents",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10)
        );
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                new_id("bh_").into(),
                tenant.as_str().into(),
                kind.as_str().into(),
                id.clone().unwrap_or_default().into(),
                breach.as_str().into(),
                eval.day.into(),
                eval.deviation_pct().into(),
                eval.current.into(),
                eval.baseline.into(),
                at.into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// The tenant's drift tracker: upserted while drifting (the streak is the data's, so a re-run
/// on the same day keeps it), marked inactive otherwise.
pub(super) async fn track_drift(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    today: NaiveDate,
    drift: Option<(Evaluation, usize)>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let backend = txn.get_database_backend();
    let p = |n| placeholder(backend, n);
    let statement = match drift {
        Some((eval, days)) => {
            let first = back(today, days.saturating_sub(1) as u64);
            Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO cost_drift_tracking (id, tenant_id, entity_type, entity_id, \
                     rolling_7d_avg_cents, baseline_7d_avg_cents, drift_pct, drift_days_count, \
                     first_drift_date, last_check_date, is_active, created_at, updated_at) \
                     VALUES ({}, {}, 'tenant', '', {}, {}, {}, {}, {}, {}, {}, {}, {}) \
                     ON CONFLICT (tenant_id, entity_type, entity_id) DO UPDATE SET \
                     rolling_7d_avg_cents = excluded.rolling_7d_avg_cents, \
                     baseline_7d_avg_cents = excluded.baseline_7d_avg_cents, \
                     drift_pct = excluded.drift_pct, \
                     drift_days_count = excluded.drift_days_count, \
                     first_drift_date = excluded.first_drift_date, \
                     last_check_date = excluded.last_check_date, \
                     is_active = excluded.is_active, updated_at = excluded.updated_at",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6),
                    p(7),
                    p(8),
                    p(9),
                    p(10),
                    p(11)
                ),
                [
                    new_id("dt_").into(),
                    tenant.as_str().into(),
                    eval.current.into(),
                    eval.baseline.into(),
                    eval.deviation_pct().into(),
                    i32::try_from(days).unwrap_or(i32::MAX).into(),
                    first.into(),
                    today.into(),
                    true.into(),
                    at.into(),
                    at.into(),
                ],
            )
        }
        None => Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE cost_drift_tracking SET is_active = {}, last_check_date = {}, \
                 updated_at = {} WHERE tenant_id = {} AND entity_type = 'tenant' \
                 AND entity_id = ''",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            [
                false.into(),
                today.into(),
                at.into(),
                tenant.as_str().into(),
            ],
        ),
    };
    txn.execute_raw(statement).await?;
    Ok(())
}

/// Updates today's unresolved anomaly with the same (type, entity) or inserts one.
pub(super) async fn persist(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    candidates: &[Candidate],
    at: DateTime<Utc>,
) -> AppResult<(Vec<String>, usize, usize)> {
    use cost_anomalies::Column as C;
    let existing: Vec<(String, String, String, Option<String>)> = cost_anomalies::Entity::find()
        .select_only()
        .column(C::Id)
        .column(C::AnomalyType)
        .column(C::EntityType)
        .column(C::EntityId)
        .filter(C::TenantId.eq(tenant.as_str()))
        .filter(C::Resolved.eq(false))
        .filter(C::DetectedAt.gte(midnight(at.date_naive())))
        .into_tuple()
        .all(txn)
        .await?;
    let mut today: HashMap<(String, String, Option<String>), String> = HashMap::new();
    for (id, kind, entity_type, entity_id) in existing {
        today.entry((kind, entity_type, entity_id)).or_insert(id);
    }
    let (mut ids, mut created, mut updated) = (Vec::new(), 0, 0);
    for c in candidates {
        let key = (
            c.anomaly_type.as_str().to_owned(),
            c.entity_type.as_str().to_owned(),
            c.entity_id.clone(),
        );
        let cause = c.derived_cause.map(|d| d.as_str().to_owned());
        if let Some(id) = today.get(&key) {
            cost_anomalies::Entity::update_many()
                .col_expr(C::CurrentValueCents, Expr::value(c.current))
                .col_expr(C::ExpectedValueCents, Expr::value(c.expected))
                .col_expr(C::DeviationPct, Expr::value(c.deviation_pct))
                .col_expr(C::Severity, Expr::value(c.severity.as_str()))
                .col_expr(C::Message, Expr::value(c.message.clone()))
                .col_expr(C::BreachCount, Expr::value(c.breach_count))
                .col_expr(C::DerivedCause, Expr::value(cause))
                .col_expr(C::Metadata, Expr::value(c.metadata.clone()))
                .filter(C::TenantId.eq(tenant.as_str()))
                .filter(C::Id.eq(id.as_str()))
                .exec(txn)
                .await?;
            ids.push(id.clone());
            updated += 1;
            continue;
        }
        let id = new_id("ca_");
        cost_anomalies::Entity::insert(cost_anomalies::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant.as_str().to_owned()),
            anomaly_type: Set(c.anomaly_type.as_str().to_owned()),
            severity: Set(c.severity.as_str().to_owned()),
            entity_type: Set(c.entity_type.as_str().to_owned()),
            entity_id: Set(c.entity_id.clone()),
            current_value_cents: Set(c.current),
            expected_value_cents: Set(c.expected),
            deviation_pct: Set(c.deviation_pct),
            threshold_pct: Set(if c.anomaly_type == CostAnomalyType::AbsoluteSpike {
                140.0
            } else {
                125.0
            }),
            message: Set(c.message.clone()),
            incident_id: Set(None),
            action_taken: Set(None),
            resolved: Set(false),
            resolved_at: Set(None),
            metadata: Set(Some(c.metadata.clone())),
            detected_at: Set(at),
            snapshot_id: Set(None),
            baseline_id: Set(None),
            derived_cause: Set(cause),
            breach_count: Set(c.breach_count),
            acknowledged_at: Set(None),
            acknowledged_by: Set(None),
            resolved_by: Set(None),
            resolution_note: Set(None),
        })
        .exec_without_returning(txn)
        .await?;
        today.insert(key, id.clone());
        ids.push(id);
        created += 1;
    }
    Ok((ids, created, updated))
}

/// The tenant's anomalies with these ids, in the given order.
pub async fn anomalies_by_id(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: &[String],
) -> AppResult<Vec<AnomalySnapshot>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = cost_anomalies::Entity::find()
        .filter(cost_anomalies::Column::TenantId.eq(tenant.as_str()))
        .filter(cost_anomalies::Column::Id.is_in(ids.iter().map(String::as_str)))
        .all(db)
        .await?;
    let mut by_id: HashMap<String, AnomalySnapshot> = rows
        .into_iter()
        .map(|m| anomaly_snapshot(m).map(|a| (a.id.clone(), a)))
        .collect::<AppResult<_>>()?;
    ids.iter()
        .map(|id| {
            by_id
                .remove(id)
                .ok_or_else(|| AppError::internal(format!("anomaly {id} vanished")))
        })
        .collect()
}

/// Opens an incident for each anomaly among `ids` that is HIGH (or legacy CRITICAL), unresolved
/// and not yet escalated, and links it (`incident_id`, `action_taken` = [`ESCALATED`]) in the
/// same transaction. An anomaly updated in place by a re-run keeps its incident, so a day's
/// anomaly is escalated once. Returns (anomaly id, incident id) pairs in `ids` order.
pub(super) async fn escalate(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: &[String],
) -> AppResult<Vec<(String, String)>> {
    use cost_anomalies::Column as C;
    let mut escalated = Vec::new();
    for anomaly in anomalies_by_id(txn, tenant, ids).await? {
        let high = matches!(
            anomaly.severity,
            CostAnomalySeverity::High | CostAnomalySeverity::Critical
        );
        if !high || anomaly.resolved || anomaly.incident_id.is_some() {
            continue;
        }
        let entity = match &anomaly.entity_id {
            Some(id) => format!("{} {id}", anomaly.entity_type.as_str()),
            None => anomaly.entity_type.as_str().to_owned(),
        };
        let incident = incidents::open(
            txn,
            tenant,
            NewIncident {
                title: format!("Cost anomaly: {}", anomaly.message),
                severity: if anomaly.severity == CostAnomalySeverity::Critical {
                    IncidentSeverity::Critical
                } else {
                    IncidentSeverity::High
                },
                trigger_type: "cost_anomaly",
                category: Some("cost".to_owned()),
                description: Some(format!(
                    "{} of {entity}: {:.2} cents against {:.2} expected ({:.1} %); cost anomaly {}",
                    anomaly.anomaly_type.as_str(),
                    anomaly.current_value_cents,
                    anomaly.expected_value_cents,
                    anomaly.deviation_pct,
                    anomaly.id,
                )),
                cause_type: IncidentCause::System,
                started_at: anomaly.detected_at,
            },
        )
        .await?;
        cost_anomalies::Entity::update_many()
            .col_expr(C::IncidentId, Expr::value(incident.clone()))
            .col_expr(C::ActionTaken, Expr::value(ESCALATED))
            .filter(C::TenantId.eq(tenant.as_str()))
            .filter(C::Id.eq(anomaly.id.as_str()))
            .exec(txn)
            .await?;
        escalated.push((anomaly.id, incident));
    }
    Ok(escalated)
}
