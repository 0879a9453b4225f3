//! The optional mismatch webhook (docs/writes.md, "Mismatch webhook"): with
//! `--mismatch-webhook-url`, every reported mismatch is POSTed there as signed JSON.
//!
//! Never in the request: `reportMismatch` and `bulkReportMismatches` only add a row per
//! mismatch to the outbox `mismatch_notifications`, in their own transaction (so a mismatch is
//! queued exactly when it is stored). A worker in every server process takes due rows (one
//! process per row: a compare-and-set of `next_attempt_ms` leases it), POSTs, and on a 2xx
//! marks the row delivered and the mismatch `notification_sent`, in one transaction; on
//! anything else it records the error and retries later, the wait doubling from
//! `retry_base` up to an hour, until `max_attempts`. A process that dies mid-delivery leaves
//! the lease to expire, and another attempt is made: delivery is at least once, and the
//! receiver deduplicates on `X-Logbook-Delivery` (the mismatch id).

use std::sync::LazyLock;
use std::time::Duration;

use entity::aos_trace_mismatches as mismatches;
use entity::mismatch_notifications::{ActiveModel, Column, Entity, Model};
use hmac::{Hmac, Mac};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::{json, Value};
use sha2::Sha256;

use super::store::snapshot;
use super::MismatchSnapshot;
use crate::config::WebhookSettings;
use crate::error::AppResult;
use crate::ids::{self, NodeKind};
use crate::scalars::{format_utc, now};
use crate::state::AppState;

/// The `X-Logbook-Event` of a new mismatch.
pub const EVENT: &str = "trace_mismatch.reported";
/// Rows one pass takes.
const BATCH: u64 = 20;
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3_600);
/// Stored error text is cut to this many characters.
const MAX_ERROR: usize = 500;

static WAKE: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

fn now_ms() -> i64 {
    now().timestamp_millis()
}

/// Queues one delivery per reported mismatch, in the report's transaction; nothing when the
/// webhook is off.
pub async fn enqueue(
    txn: &DatabaseTransaction,
    settings: &WebhookSettings,
    rows: &[MismatchSnapshot],
) -> AppResult<()> {
    if !settings.enabled() || rows.is_empty() {
        return Ok(());
    }
    let at = now_ms();
    Entity::insert_many(rows.iter().map(|m| ActiveModel {
        mismatch_id: Set(m.id.clone()),
        tenant_id: Set(m.tenant_id.clone()),
        attempts: Set(0),
        next_attempt_ms: Set(at),
        delivered_at_ms: Set(None),
        last_error: Set(None),
        created_at_ms: Set(at),
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// After a report commits: this process's worker looks at once (others find it by polling).
pub fn wake<T>(_: &T) {
    WAKE.notify_one();
}

/// The signed body: the mismatch as reported.
pub fn body(m: &MismatchSnapshot) -> Value {
    json!({
        "event": EVENT,
        "deliveryId": m.id,
        "tenantId": m.tenant_id,
        "mismatch": {
            "id": ids::encode(NodeKind::TraceMismatch, &m.id).0,
            "mismatchId": m.id,
            "traceId": m.trace_id,
            "stepIndex": m.step_index,
            "reason": m.reason,
            "expectedHash": m.expected_hash,
            "actualHash": m.actual_hash,
            "details": m.details,
            "reportedBy": m.reported_by,
            "createdAt": format_utc(m.created_at),
        },
    })
}

/// `X-Logbook-Signature`: `sha256=` and the hex HMAC-SHA256, keyed with the secret, of
/// `<X-Logbook-Timestamp>.<body>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// The wait before attempt `attempts + 1`, after `attempts` failures.
fn backoff(settings: &WebhookSettings, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    settings
        .retry_base
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Starts this process's delivery worker when a webhook URL is configured.
pub fn spawn(state: &AppState) -> Option<tokio::task::AbortHandle> {
    let settings = state.config.mismatch_webhook.clone();
    let (Some(url), Some(secret)) = (settings.url.clone(), settings.secret.clone()) else {
        return None;
    };
    let client = match reqwest::Client::builder().timeout(settings.timeout).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "the mismatch webhook will not be called");
            return None;
        }
    };
    let worker = Worker {
        db: state.db.clone(),
        client,
        url,
        secret,
        settings,
    };
    let shutdown = state.shutdown.clone();
    Some(
        tokio::spawn(async move {
            loop {
                let busy = match worker.pass().await {
                    Ok(taken) => taken > 0,
                    Err(e) => {
                        tracing::warn!(error = ?e, "mismatch webhook pass failed");
                        false
                    }
                };
                if busy {
                    continue;
                }
                tokio::select! {
                    () = WAKE.notified() => {}
                    () = tokio::time::sleep(worker.settings.poll_interval) => {}
                    () = shutdown.triggered() => return,
                }
            }
        })
        .abort_handle(),
    )
}

struct Worker {
    db: DatabaseConnection,
    client: reqwest::Client,
    url: String,
    secret: String,
    settings: WebhookSettings,
}

impl Worker {
    /// Delivers the due rows this process manages to lease; how many it leased.
    async fn pass(&self) -> AppResult<usize> {
        let at = now_ms();
        let due = Entity::find()
            .filter(Column::DeliveredAtMs.is_null())
            .filter(Column::NextAttemptMs.lte(at))
            .filter(Column::Attempts.lt(self.settings.max_attempts))
            .order_by_asc(Column::NextAttemptMs)
            .limit(BATCH)
            .all(&self.db)
            .await?;
        let mut taken = 0;
        for row in due {
            // Leased for one attempt's time and a margin; a crash leaves it to expire.
            let lease = at + duration_ms(self.settings.timeout) + 5_000;
            let leased = Entity::update_many()
                .col_expr(Column::NextAttemptMs, Expr::value(lease))
                .filter(Column::MismatchId.eq(&row.mismatch_id))
                .filter(Column::NextAttemptMs.eq(row.next_attempt_ms))
                .filter(Column::DeliveredAtMs.is_null())
                .exec(&self.db)
                .await?
                .rows_affected
                == 1;
            if leased {
                taken += 1;
                self.attempt(row).await?;
            }
        }
        Ok(taken)
    }

    /// One POST of `row`'s mismatch, and its outcome recorded.
    async fn attempt(&self, row: Model) -> AppResult<()> {
        let attempts = row.attempts.saturating_add(1);
        let stored = mismatches::Entity::find_by_id(row.mismatch_id.clone())
            .filter(mismatches::Column::TenantId.eq(&row.tenant_id))
            .one(&self.db)
            .await?;
        let outcome = match stored {
            None => Err("the mismatch no longer exists".to_owned()),
            Some(m) => self.post(&snapshot(m)?).await,
        };
        match outcome {
            Ok(()) => {
                let txn = self.db.begin().await?;
                Entity::update_many()
                    .col_expr(Column::DeliveredAtMs, Expr::value(now_ms()))
                    .col_expr(Column::Attempts, Expr::value(attempts))
                    .col_expr(Column::LastError, Expr::value(Option::<String>::None))
                    .filter(Column::MismatchId.eq(&row.mismatch_id))
                    .exec(&txn)
                    .await?;
                mismatches::Entity::update_many()
                    .col_expr(mismatches::Column::NotificationSent, Expr::value(true))
                    .filter(mismatches::Column::Id.eq(&row.mismatch_id))
                    .filter(mismatches::Column::TenantId.eq(&row.tenant_id))
                    .exec(&txn)
                    .await?;
                txn.commit().await?;
            }
            Err(error) => {
                let error: String = error.chars().take(MAX_ERROR).collect();
                let last = attempts >= self.settings.max_attempts;
                if last {
                    tracing::warn!(mismatch = %row.mismatch_id, attempts, %error,
                        "mismatch webhook delivery given up");
                } else {
                    tracing::info!(mismatch = %row.mismatch_id, attempts, %error,
                        "mismatch webhook delivery failed; will retry");
                }
                let next = now_ms() + duration_ms(backoff(&self.settings, attempts));
                Entity::update_many()
                    .col_expr(Column::Attempts, Expr::value(attempts))
                    .col_expr(Column::NextAttemptMs, Expr::value(next))
                    .col_expr(Column::LastError, Expr::value(error))
                    .filter(Column::MismatchId.eq(&row.mismatch_id))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(())
    }

    /// POSTs the mismatch; a 2xx answer is the only success.
    async fn post(&self, m: &MismatchSnapshot) -> Result<(), String> {
        let body = body(m).to_string();
        let timestamp = now().timestamp();
        let signature = signature(&self.secret, timestamp, &body)?;
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-logbook-event", EVENT)
            .header("x-logbook-delivery", &m.id)
            .header("x-logbook-timestamp", timestamp.to_string())
            .header("x-logbook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST failed: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {}", response.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently (Python: hmac.new(key, b"1700000000.{}", sha256)).
        assert_eq!(
            signature("0123456789abcdef", 1_700_000_000, "{}").unwrap(),
            "sha256=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let settings = WebhookSettings {
            retry_base: Duration::from_secs(5),
            ..Default::default()
        };
        assert_eq!(backoff(&settings, 1), Duration::from_secs(5));
        assert_eq!(backoff(&settings, 2), Duration::from_secs(10));
        assert_eq!(backoff(&settings, 4), Duration::from_secs(40));
        assert_eq!(backoff(&settings, 40), MAX_BACKOFF);
    }
}
