//! This process's metrics, served in the Prometheus text format at `/metrics` through the
//! `metrics` facade and its Prometheus exporter. Every metric name and label is defined here.
//! Label values come from closed sets (transports, operation types, error codes, job states) or
//! are bounded ([`operation_label`]); never a tenant id, a key or query text.
//!
//! The recorder is process-global (the `metrics` facade has one), installed by the first
//! [`install`]; a process serving one server reports that server. Counters and histograms are
//! recorded where things happen; gauges that are readings (pool connections, open sockets) are
//! set when `/metrics` is scraped.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUEST_SECONDS: &str = "logbook_graphql_request_duration_seconds";
pub const SQL_SECONDS: &str = "logbook_sql_statement_duration_seconds";
pub const POOL_CONNECTIONS: &str = "logbook_db_pool_connections";
pub const POOL_MAX: &str = "logbook_db_pool_max_connections";
pub const REDIS_ERRORS: &str = "logbook_redis_errors_total";
pub const IDEMPOTENCY: &str = "logbook_idempotency_outcomes_total";
pub const RATE_LIMIT_REFUSALS: &str = "logbook_rate_limit_refusals_total";
pub const EXPORT_JOBS: &str = "logbook_export_jobs_total";
pub const EXPORT_ROWS: &str = "logbook_export_rows_written_total";
pub const WEBSOCKETS: &str = "logbook_websocket_connections";
pub const SUBSCRIPTIONS: &str = "logbook_subscriptions";
pub const LEDGER_APPENDS: &str = "logbook_ledger_appends_total";
pub const LEDGER_BATCH: &str = "logbook_ledger_group_commit_batch_size";

/// Seconds: from a fast keyset page (~1 ms) to the request budget (30 s).
const SECONDS_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Entries per group commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Distinct operation names reported before the rest are reported as `other`.
const MAX_OPERATION_NAMES: usize = 200;

/// Every `extensions.code` the API defines (docs/api.md §7); anything else is `OTHER`.
const ERROR_CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "BAD_CURSOR",
    "IMMUTABLE_RECORD",
    "IDEMPOTENCY_CONFLICT",
    "INVALID_TRANSITION",
    "REPLAY_MISMATCH",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_COMPLEX",
    "RATE_LIMITED",
    "PAYLOAD_TOO_LARGE",
    "UNAVAILABLE",
    "INTERNAL",
];

/// The process's recorder, installed on first use.
pub fn install() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Both bucket lists are non-empty constants, the only way setting them can fail.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(LEDGER_BATCH.into()), BATCH_BUCKETS)
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// Keeps the exporter's histogram storage drained between scrapes.
pub fn spawn_upkeep() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            install().run_upkeep();
        }
    });
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    install().render()
}

fn describe() {
    describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "GraphQL requests over HTTP, from arrival to the response body, by operation name, \
         operation type and outcome (ok or the first error's code)."
    );
    describe_histogram!(
        SQL_SECONDS,
        metrics::Unit::Seconds,
        "SQL statements, by outcome."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database pool connections by state (idle, in_use), read at scrape time."
    );
    describe_gauge!(POOL_MAX, "The database pool's maximum size.");
    describe_counter!(REDIS_ERRORS, "Redis commands that failed, by operation.");
    describe_counter!(
        IDEMPOTENCY,
        "Idempotency-key claims by outcome: new, duplicate (the stored result replayed), \
         conflict (the key was used with another input)."
    );
    describe_counter!(
        RATE_LIMIT_REFUSALS,
        "Requests refused by the per-key rate limit."
    );
    describe_counter!(
        EXPORT_JOBS,
        "Export jobs reaching a state (running, completed, retry_wait, failed)."
    );
    describe_counter!(EXPORT_ROWS, "Rows written into export artefacts.");
    describe_gauge!(
        WEBSOCKETS,
        "Open WebSocket connections, read at scrape time."
    );
    describe_gauge!(SUBSCRIPTIONS, "Active subscriptions, read at scrape time.");
    describe_counter!(LEDGER_APPENDS, "Audit ledger entries appended.");
    describe_histogram!(LEDGER_BATCH, "Entries per audit ledger group commit.");
}

/// The operation-name labels of one server: a name is its own label when it is one of the
/// first [`MAX_OPERATION_NAMES`] distinct names this server saw, `anonymous` without one, `other`
/// past the cap. GraphQL names are `[_A-Za-z][_0-9A-Za-z]*`; anything else is `invalid`.
#[derive(Default)]
pub struct OperationNames {
    seen: Mutex<HashSet<String>>,
}

impl OperationNames {
    pub fn label(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return "anonymous".into();
        };
        let valid = name.len() <= 128
            && name.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
            && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !valid {
            return "invalid".into();
        }
        let Ok(mut seen) = self.seen.lock() else {
            return "other".into();
        };
        if seen.contains(name) {
            return name.to_owned();
        }
        if seen.len() < MAX_OPERATION_NAMES {
            seen.insert(name.to_owned());
            return name.to_owned();
        }
        "other".into()
    }
}

/// The outcome label of an error code.
pub fn outcome_label(code: Option<&str>) -> &'static str {
    match code {
        None => "ok",
        Some(code) => ERROR_CODES
            .iter()
            .find(|known| **known == code)
            .copied()
            .unwrap_or("OTHER"),
    }
}

/// One GraphQL request over HTTP.
pub fn request(
    operation: String,
    operation_type: &'static str,
    outcome: &'static str,
    took: Duration,
) {
    histogram!(
        REQUEST_SECONDS,
        "operation" => operation,
        "type" => operation_type,
        "outcome" => outcome,
    )
    .record(took.as_secs_f64());
}

/// The SQL statement histograms, `ok` and `error`, registered once: a pool records every
/// statement through them without building a key and looking it up each time. Take them after
/// [`install`], or they record nowhere.
pub fn sql_statement_histograms() -> [metrics::Histogram; 2] {
    [
        histogram!(SQL_SECONDS, "outcome" => "ok"),
        histogram!(SQL_SECONDS, "outcome" => "error"),
    ]
}

/// The pool's readings, set at scrape time.
pub fn pool(idle: usize, in_use: usize, max: u32) {
    gauge!(POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    gauge!(POOL_CONNECTIONS, "state" => "in_use").set(in_use as f64);
    gauge!(POOL_MAX).set(f64::from(max));
}

/// Open sockets and subscriptions, set at scrape time.
pub fn sockets(connections: usize, subscriptions: usize) {
    gauge!(WEBSOCKETS).set(connections as f64);
    gauge!(SUBSCRIPTIONS).set(subscriptions as f64);
}

/// A failed Redis command; `operation` names what it was for (`rate_limit`, `publish`, …).
pub fn redis_error(operation: &'static str) {
    counter!(REDIS_ERRORS, "operation" => operation).increment(1);
}

/// An idempotency-key claim: `new`, `duplicate` or `conflict`.
pub fn idempotency(outcome: &'static str) {
    counter!(IDEMPOTENCY, "outcome" => outcome).increment(1);
}

pub fn rate_limit_refused() {
    counter!(RATE_LIMIT_REFUSALS).increment(1);
}

/// An export job reached `state`.
pub fn export_job(state: &'static str) {
    counter!(EXPORT_JOBS, "state" => state).increment(1);
}

pub fn export_rows(rows: u64) {
    counter!(EXPORT_ROWS).increment(rows);
}

/// One ledger group commit of `entries`.
pub fn ledger_batch(entries: usize) {
    counter!(LEDGER_APPENDS).increment(entries as u64);
    histogram!(LEDGER_BATCH).record(entries as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        let names = OperationNames::default();
        assert_eq!(names.label(None), "anonymous");
        assert_eq!(names.label(Some("Runs-Newest")), "invalid");
        assert_eq!(names.label(Some("RunsNewest")), "RunsNewest");
        for n in 0..MAX_OPERATION_NAMES {
            names.label(Some(&format!("Op{n}")));
        }
        assert_eq!(names.label(Some("OneTooMany")), "other");
        assert_eq!(names.label(Some("RunsNewest")), "RunsNewest");
    }

    #[test]
    fn outcomes_are_a_closed_set() {
        assert_eq!(outcome_label(None), "ok");
        assert_eq!(outcome_label(Some("RATE_LIMITED")), "RATE_LIMITED");
        assert_eq!(outcome_label(Some("tenant-42 exploded")), "OTHER");
    }
}
