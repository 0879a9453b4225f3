//! Cost anomaly detection (`docs/domain.md` §9.5), run by `detectCostAnomalies` over the daily
//! rollup.
//!
//! Each run evaluates one tenant on the current UTC day and writes, in one transaction held under
//! a per-tenant lock (so concurrent runs serialise):
//! - `cost_breach_history`: one row per (entity, type, day) that breached, upserted;
//! - `cost_drift_tracking`: the tenant's drift tracker, upserted on its unique key (re-activation
//!   does not collide, D30);
//! - `cost_anomalies`: an unresolved anomaly of the same (type, entity) detected since today's
//!   midnight is updated in place, otherwise a row is inserted — re-running a day never
//!   duplicates.
//!
//! Streaks (consecutive spike days, drift days) are computed from the rollup's daily history, not
//! from which days the detector happened to run (D30): a re-run on the same day gives the same
//! count, and a day on which nobody ran the detector still counts.
//!
//! Escalation (on by default): each HIGH anomaly of the run that is unresolved and has no
//! incident yet opens one (`crate::incidents::store::open`) in the same transaction, and is
//! linked to it; a re-run of the day finds it linked and opens nothing.
//!
//! The rules are pure functions of the histories (`rules`, `findings`); `store` reads and writes
//! the tables; `detect` runs one after the other.
//! `sweep` runs `detect` for every tenant with recent cost, one process at a time (for a
//! scheduler; docs/domain.md §9.5).

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};

use crate::auth::TenantId;
use crate::error::AppResult;

mod findings;
mod rules;
mod store;
mod sweep;

pub use findings::{detect_budgets, detect_trends, Candidate, EntityHistory, Findings};
pub use rules::{
    derived_cause, drift_on, severity, spike_on, DayCost, Evaluation, History, RetryCounts,
    ABSOLUTE_SPIKE_THRESHOLD, CONSECUTIVE_INTERVALS_REQUIRED, DRIFT_DAYS_REQUIRED,
    SUSTAINED_DRIFT_THRESHOLD,
};
pub use store::{anomalies_by_id, ESCALATED};
pub use sweep::{spawn as spawn_sweep, sweep, SweepOutcome};

/// The result of one run, stored for idempotent replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionOutcome {
    pub day: NaiveDate,
    /// Anomalies created or updated by the run, in detection order.
    pub anomaly_ids: Vec<String>,
    pub created: usize,
    pub updated: usize,
    pub entities_evaluated: usize,
    pub budgets_evaluated: usize,
    /// (anomaly id, incident id) of the anomalies this run escalated.
    #[serde(default)]
    pub escalated: Vec<(String, String)>,
}

/// Runs detection for the tenant on `at`'s UTC day, in one transaction; with `escalate`, HIGH
/// anomalies not yet escalated open incidents.
pub async fn detect(
    txn: &DatabaseTransaction,
    tenant: &TenantId,
    at: DateTime<Utc>,
    escalate: bool,
) -> AppResult<DetectionOutcome> {
    let today = at.date_naive();
    store::lock_tenant(txn, tenant).await?;
    let (entities, top_share) = store::read_histories(txn, tenant, today).await?;
    let retries = store::read_retries(txn, tenant, today).await?;
    let budgets = store::active_budgets(txn, tenant, today).await?;
    let mut found = detect_trends(tenant, today, &entities, &retries, top_share);
    found.candidates.extend(detect_budgets(&budgets, today));
    store::record_breaches(txn, tenant, &found.breaches, at).await?;
    store::track_drift(txn, tenant, today, found.drift, at).await?;
    let (anomaly_ids, created, updated) =
        store::persist(txn, tenant, &found.candidates, at).await?;
    let escalated = if escalate {
        store::escalate(txn, tenant, &anomaly_ids).await?
    } else {
        Vec::new()
    };
    Ok(DetectionOutcome {
        escalated,
        day: today,
        anomaly_ids,
        created,
        updated,
        entities_evaluated: found.entities_evaluated,
        budgets_evaluated: budgets.len(),
    })
}
