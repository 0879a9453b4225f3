//! Detection for every tenant with recent cost, as a scheduled job would run it: one process at
//! a time across all server processes sharing the database.
//!
//! On PostgreSQL the sweep holds `pg_try_advisory_xact_lock` on one pooled connection, in a
//! transaction kept open for the whole sweep: a second process asking while it runs gets `false`
//! at once and skips this round (nothing waits), and a crashed process's connection closes and
//! releases the lock. Each tenant is then evaluated in its own transaction on another connection
//! (`detect`, which still takes the per-tenant lock that serialises it with a concurrent
//! `detectCostAnomalies`). On SQLite there is no cross-process lock to take; each tenant's run
//! holds the write lock, so concurrent sweeps serialise tenant by tenant and a second one only
//! re-runs days already evaluated (an update in place, never a duplicate).

use chrono::{DateTime, Days, Utc};
use entity::cost_daily_aggregates as cda;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};

use super::detect;
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::events::Topic;
use crate::state::AppState;

/// The advisory lock key of the sweep (PostgreSQL `hashtext` of it).
const SWEEP_LOCK: &str = "cost_detect_sweep";
/// Tenants with cost on any of the last this many days are swept (the spike baseline's reach).
const SWEEP_DAYS: u64 = 28;

/// What one call of [`sweep`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepOutcome {
    /// Another process holds the sweep lock; nothing was evaluated.
    Skipped,
    Ran {
        tenants: usize,
        created: usize,
        updated: usize,
        escalated: usize,
    },
}

/// Runs detection (with escalation when `escalate`) for every tenant with cost since
/// [`SWEEP_DAYS`] days before `at`, unless another process is sweeping. Subscribers of a tenant
/// whose anomalies changed are woken after its commit.
pub async fn sweep(state: &AppState, at: DateTime<Utc>, escalate: bool) -> AppResult<SweepOutcome> {
    let db = &state.db;
    let guard = db.begin().await?;
    if !crate::db::try_advisory_xact_lock(&guard, SWEEP_LOCK).await? {
        guard.rollback().await?;
        return Ok(SweepOutcome::Skipped);
    }
    let since = at.date_naive() - Days::new(SWEEP_DAYS);
    let tenants: Vec<String> = cda::Entity::find()
        .select_only()
        .column(cda::Column::TenantId)
        .distinct()
        .filter(cda::Column::Date.gte(since))
        .order_by_asc(cda::Column::TenantId)
        .into_tuple()
        .all(db)
        .await?;
    let (mut created, mut updated, mut escalated) = (0, 0, 0);
    for tenant in &tenants {
        let tenant = TenantId::trusted(tenant);
        let txn = db.begin().await?;
        let outcome = detect(&txn, &tenant, at, escalate).await?;
        txn.commit().await?;
        if outcome.created + outcome.updated > 0 {
            state.events.publish(Topic::CostAnomalies, &tenant).await;
        }
        created += outcome.created;
        updated += outcome.updated;
        escalated += outcome.escalated.len();
    }
    // Ends the guard transaction, releasing the advisory lock.
    guard.rollback().await?;
    Ok(SweepOutcome::Ran {
        tenants: tenants.len(),
        created,
        updated,
        escalated,
    })
}

/// Runs [`sweep`] (with escalation) every `every`, first one `every` after start, for as long
/// as the process lives. Every process runs the timer; the advisory lock makes one of them
/// evaluate each round and the others skip. A failed round is logged and the next one tried.
pub fn spawn(state: &AppState, every: std::time::Duration) {
    let state = state.clone();
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + every;
        let mut ticks = tokio::time::interval_at(first, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match sweep(&state, Utc::now(), true).await {
                Ok(SweepOutcome::Skipped) => {
                    tracing::debug!("cost anomaly sweep: another process is sweeping")
                }
                Ok(SweepOutcome::Ran {
                    tenants,
                    created,
                    updated,
                    escalated,
                }) => tracing::info!(
                    tenants,
                    created,
                    updated,
                    escalated,
                    "cost anomaly sweep done"
                ),
                Err(err) => tracing::warn!(error = ?err, "cost anomaly sweep failed"),
            }
        }
    });
}
