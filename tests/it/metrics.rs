//! `/metrics`: the Prometheus exposition of request durations by operation, type and outcome,
//! SQL statements, the pool, idempotency outcomes, rate-limit refusals, export jobs and rows,
//! sockets and ledger group commits, with bounded labels (no tenant, no key, no query text).
//!
//! The recorder is process-global and the suite's servers share it, so every check is "at
//! least": this test's own traffic must show, whatever other tests add meanwhile.

use std::collections::BTreeMap;

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::exports_writes::{create, export_dir, fast, finished};
use crate::support::{fixed_time, insert_runs, make_runs, Backend, TestApp};

/// One sample line: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_owned(), value.trim_matches('"').to_owned()))
                })
                .collect();
            Some((name.to_owned(), labels, value))
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels` (summed over the rest).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

const AUDIT: &str = r#"
mutation MetricsAudit($input: RecordAuditEventInput!, $key: String) {
  recordAuditEvent(input: $input, idempotencyKey: $key) { recordId seq }
}"#;

fn audit_input(value: u32) -> Value {
    json!({
        "eventType": "LIMIT_CREATED",
        "entityType": "LIMIT",
        "entityId": "limit-1",
        "actorType": "HUMAN",
        "actorId": "alice",
        "afterState": { "limit_id": "limit-1", "value": value },
    })
}

async fn metrics_report_what_the_server_did(backend: Backend) {
    let dir = export_dir();
    let app = TestApp::spawn_with(backend, |config| {
        fast(config, &dir);
        config.limits.rate_limit_per_minute = 200;
    })
    .await;
    let viewer = app.key("tenant-secret-name", Role::Viewer).await;
    let admin = app.key("tenant-secret-name", Role::Admin).await;
    let operator = app.key("tenant-secret-name", Role::Operator).await;
    insert_runs(
        app.db(),
        &make_runs("tenant-secret-name", "m", 6, fixed_time()),
    )
    .await;

    app.data(&viewer, "query MetricsProbe { viewer { role } }", json!({}))
        .await;
    let refused = app
        .gql(None, "query MetricsProbe { viewer { role } }", json!({}))
        .await;
    assert_eq!(crate::support::error_code(&refused), "UNAUTHENTICATED");
    // Costs more than the whole minute allows.
    let limited = app
        .gql(
            Some(&viewer),
            "query MetricsLimited { llmRuns(first: 100) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(crate::support::error_code(&limited), "RATE_LIMITED");
    for (input, outcome) in [(1, None), (1, None), (2, Some("IDEMPOTENCY_CONFLICT"))] {
        let body = app
            .gql(
                Some(&admin),
                AUDIT,
                json!({ "input": audit_input(input), "key": "metrics-1" }),
            )
            .await;
        match outcome {
            None => assert!(body.get("errors").is_none(), "{body:#}"),
            Some(code) => assert_eq!(crate::support::error_code(&body), code),
        }
    }
    let export = create(
        &app,
        &operator,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON", "filter": { "llmRuns": {} } }),
    )
    .await;
    assert_eq!(
        finished(&app, &operator, &export).await["status"],
        "COMPLETED"
    );

    let answer = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.expect("text");
    let samples = parse(&text);
    let requests = "logbook_graphql_request_duration_seconds_count";
    assert!(text.contains("# TYPE logbook_graphql_request_duration_seconds histogram"));
    let ok = [
        ("operation", "MetricsProbe"),
        ("type", "query"),
        ("outcome", "ok"),
    ];
    assert!(value(&samples, requests, &ok) >= 1.0, "{text}");
    // Refused before the body is read: the operation is not known.
    let unauthenticated = [
        ("operation", "unknown"),
        ("type", "unknown"),
        ("outcome", "UNAUTHENTICATED"),
    ];
    assert!(value(&samples, requests, &unauthenticated) >= 1.0, "{text}");
    let limited = [("operation", "MetricsLimited"), ("outcome", "RATE_LIMITED")];
    assert!(value(&samples, requests, &limited) >= 1.0, "{text}");
    let conflict = [
        ("operation", "MetricsAudit"),
        ("type", "mutation"),
        ("outcome", "IDEMPOTENCY_CONFLICT"),
    ];
    assert!(value(&samples, requests, &conflict) >= 1.0, "{text}");
    let bucket = [
        ("operation", "MetricsProbe"),
        ("outcome", "ok"),
        ("le", "+Inf"),
    ];
    assert!(
        value(
            &samples,
            "logbook_graphql_request_duration_seconds_bucket",
            &bucket
        ) >= 1.0
    );

    for (name, labels) in [
        (
            "logbook_sql_statement_duration_seconds_count",
            vec![("outcome", "ok")],
        ),
        (
            "logbook_idempotency_outcomes_total",
            vec![("outcome", "new")],
        ),
        (
            "logbook_idempotency_outcomes_total",
            vec![("outcome", "duplicate")],
        ),
        (
            "logbook_idempotency_outcomes_total",
            vec![("outcome", "conflict")],
        ),
        ("logbook_rate_limit_refusals_total", vec![]),
        ("logbook_export_jobs_total", vec![("state", "running")]),
        ("logbook_export_jobs_total", vec![("state", "completed")]),
        ("logbook_export_rows_written_total", vec![]),
        ("logbook_ledger_appends_total", vec![]),
        ("logbook_ledger_group_commit_batch_size_count", vec![]),
        ("logbook_db_pool_max_connections", vec![]),
    ] {
        assert!(
            value(&samples, name, &labels) >= 1.0,
            "{name} {labels:?}:\n{text}"
        );
    }
    assert!(value(&samples, "logbook_export_rows_written_total", &[]) >= 6.0);
    for gauge in [
        "logbook_db_pool_connections",
        "logbook_websocket_connections",
        "logbook_subscriptions",
    ] {
        assert!(
            samples.iter().any(|(n, _, _)| n == gauge),
            "{gauge}:\n{text}"
        );
    }
    // Bounded labels: no tenant, no key, no document text.
    for secret in ["tenant-secret-name", viewer.as_str(), "viewer { role }"] {
        assert!(!text.contains(secret), "/metrics shows {secret:?}");
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

crate::cases!(metrics_report_what_the_server_did);
