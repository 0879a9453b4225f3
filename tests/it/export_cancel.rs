//! Cancelling exports and the retry policy: `cancelExport` on a queued job (it never starts,
//! even on another server process), on a running one (it stops at its next batch, leaves no
//! file, and `exportProgress` ends on CANCELLED), on a finished one (`INVALID_TRANSITION`),
//! across tenants (`NOT_FOUND`) and under an idempotency key; a subject gone since the request
//! fails the job at its first attempt, `retryable: false`; the retry flags set how many
//! attempts a failing job gets.

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use logbook::auth::Role;
use logbook::config::{Config, ExportRetryArgs};
use serde_json::{json, Value};

use crate::exports_writes::{create, export_dir, fast, seed_runs};
use crate::support::{error_code, Backend, TestApp};

const CANCEL: &str = r#"
mutation Cancel($id: ID!, $key: String) {
  cancelExport(id: $id, idempotencyKey: $key) { exportId status history { status } }
}"#;

const STATUS: &str = r#"
query Status($id: ID!) {
  logExport(id: $id) {
    exportId status checksum error
    history { status }
    job {
      state stage rowsWritten attempt maxAttempts lastError lastErrorRetryable
      events { eventType attempt error metadata }
    }
  }
}"#;

async fn status(app: &TestApp, key: &str, id: &str) -> Value {
    app.data(key, STATUS, json!({ "id": id })).await["logExport"].clone()
}

/// Polls until the export completes or fails.
async fn finished(app: &TestApp, key: &str, id: &str) -> Value {
    for _ in 0..300 {
        let s = status(app, key, id).await;
        if s["status"] == "COMPLETED" || s["status"] == "FAILED" {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "export {id} did not finish: {:#}",
        status(app, key, id).await
    );
}

/// The files in `dir`, by name.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn event_types(s: &Value) -> Vec<String> {
    s["job"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect()
}

/// A server that records exports but runs no worker: its jobs stay queued.
async fn without_worker(backend: Backend, dir: &Path) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        fast(c, dir);
        c.exports.worker = false;
    })
    .await
}

async fn cancel_queued_export(backend: Backend) {
    let dir = export_dir();
    let app = without_worker(backend, &dir).await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    let cancelled = app
        .data(&key, CANCEL, json!({ "id": id, "key": "cancel-1" }))
        .await;
    assert_eq!(cancelled["cancelExport"]["status"], "CANCELLED");
    assert_eq!(
        cancelled["cancelExport"]["history"],
        json!([{ "status": "PENDING" }, { "status": "CANCELLED" }])
    );
    // The same key again: the first result, not INVALID_TRANSITION.
    let again = app
        .data(&key, CANCEL, json!({ "id": id, "key": "cancel-1" }))
        .await;
    assert_eq!(again, cancelled);
    // Without the key, a second cancel is refused.
    let body = app.gql(Some(&key), CANCEL, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "INVALID_TRANSITION", "{body:#}");

    // Another process with a worker never starts it.
    let url = app.database_url();
    let second = TestApp::spawn_on(backend, url, |c| fast(c, &dir)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = status(&second, &key, &id).await;
    assert_eq!(s["status"], "CANCELLED", "{s:#}");
    assert_eq!(s["job"]["state"], "CANCELLED");
    assert_eq!(s["job"]["stage"], "CANCELLED");
    assert_eq!(s["job"]["attempt"], 0);
    assert_eq!(event_types(&s), ["job_created", "job_cancelled"]);
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    // The list's status filter and facet know CANCELLED.
    let listed = second
        .data(
            &key,
            "{ logExports(filter: {status: [CANCELLED]}) { totalCount facets(fields: [STATUS]) { values { value count } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["logExports"]["totalCount"], 1);
    assert_eq!(
        listed["logExports"]["facets"][0]["values"],
        json!([{ "value": "CANCELLED", "count": "1" }])
    );
    second.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A running export stops at its next batch once cancelled, from another server process than
/// the one running it: no artefact, no partial file, and its progress subscription ends on
/// CANCELLED.
async fn cancel_running_export(backend: Backend) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let dir = export_dir();
    let app = TestApp::spawn_with(backend, |c| {
        fast(c, &dir);
        c.exports.batch_size = 2;
        c.exports.batch_delay = Duration::from_millis(200);
    })
    .await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    crate::exports_writes::wait_until_writing(&app, &key, &id).await;

    let url = format!("{}/graphql", app.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } })))
        .await
        .unwrap();
    ws.send(send(json!({
        "id": "p", "type": "subscribe",
        "payload": {
            "query": "subscription($id: ID!) { exportProgress(id: $id) { status job { state } } }",
            "variables": { "id": id },
        },
    })))
    .await
    .unwrap();

    // Cancelled through another process sharing the database.
    let other = TestApp::spawn_on(backend, app.database_url(), |c| {
        fast(c, &dir);
        c.exports.worker = false;
    })
    .await;
    let cancelled = other.data(&key, CANCEL, json!({ "id": id })).await;
    assert_eq!(cancelled["cancelExport"]["status"], "CANCELLED");

    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the subscription ends")
            .expect("open")
            .expect("frame");
        let Message::Text(text) = frame else { continue };
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        match message["type"].as_str() {
            Some("next") => last = message["payload"]["data"]["exportProgress"].clone(),
            Some("complete") => break,
            Some("ping") => ws.send(send(json!({ "type": "pong" }))).await.unwrap(),
            _ => {}
        }
    }
    assert_eq!(last["status"], "CANCELLED", "{last:#}");
    assert_eq!(last["job"]["state"], "CANCELLED");

    // The worker stops at its next batch and removes its partial file.
    for _ in 0..100 {
        if files(&dir).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    let rows = status(&app, &key, &id).await["job"]["rowsWritten"].clone();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = status(&app, &key, &id).await;
    assert_eq!(s["status"], "CANCELLED", "{s:#}");
    assert_eq!(
        s["job"]["rowsWritten"], rows,
        "nothing written after the cancel"
    );
    assert_ne!(s["job"]["rowsWritten"], "40");
    assert!(s["checksum"].is_null());
    let kinds = event_types(&s);
    assert_eq!(kinds.last().map(String::as_str), Some("job_cancelled"));
    assert!(!kinds
        .iter()
        .any(|k| k == "job_completed" || k == "job_failed"));
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    let download = app
        .http
        .get(format!("{}/exports/{id}/download", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_ne!(download.status(), 200);
    other.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn cancel_is_refused_after_the_end_and_across_tenants(backend: Backend) {
    let dir = export_dir();
    let app = TestApp::spawn_with(backend, |c| fast(c, &dir)).await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    assert_eq!(finished(&app, &key, &id).await["status"], "COMPLETED");
    let body = app.gql(Some(&key), CANCEL, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "INVALID_TRANSITION", "{body:#}");
    let s = status(&app, &key, &id).await;
    assert_eq!(s["status"], "COMPLETED");
    assert_eq!(s["history"].as_array().unwrap().len(), 3);

    // Another tenant's export and an unknown one: the same NOT_FOUND.
    let stranger = app.key("other", Role::Admin).await;
    let theirs = app.gql(Some(&stranger), CANCEL, json!({ "id": id })).await;
    assert_eq!(error_code(&theirs), "NOT_FOUND", "{theirs:#}");
    let unknown = app
        .gql(
            Some(&stranger),
            CANCEL,
            json!({ "id": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
    assert_eq!(
        theirs["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    // A viewer may not cancel.
    let viewer = app.key("acme", Role::Viewer).await;
    let body = app.gql(Some(&viewer), CANCEL, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bundle whose run is gone by the time the worker runs (here: the stored request names a run
/// that does not exist) fails at its first attempt, not retried, `retryable: false`.
async fn missing_subject_fails_without_retry(backend: Backend) {
    let dir = export_dir();
    let app = without_worker(backend, &dir).await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "RUN_BUNDLE", "format": "ZIP", "runId": "a-run-00003" }),
    )
    .await;
    let changed = app
        .raw(&format!(
            "UPDATE export_jobs SET request = REPLACE(request, 'a-run-00003', 'a-run-gone') \
             WHERE export_id = '{id}'"
        ))
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let second = TestApp::spawn_on(backend, app.database_url(), |c| fast(c, &dir)).await;
    let done = finished(&second, &key, &id).await;
    assert_eq!(done["status"], "FAILED", "{done:#}");
    assert_eq!(done["job"]["attempt"], 1);
    assert_eq!(done["job"]["maxAttempts"], 3);
    assert_eq!(done["job"]["lastErrorRetryable"], false);
    assert!(
        done["error"].as_str().unwrap().contains("not retryable"),
        "{done:#}"
    );
    let kinds = event_types(&done);
    assert_eq!(kinds, ["job_created", "job_started", "job_failed"]);
    let failed = &done["job"]["events"][2];
    assert_eq!(failed["metadata"]["retryable"], false);
    second.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    retry: ExportRetryArgs,
}

/// `--export-max-attempts` (and the backoff flags) decide how often a job whose attempts keep
/// failing with a retryable error is tried.
async fn retry_flags_set_the_attempts(backend: Backend) {
    for attempts in [2, 4] {
        let dir = export_dir();
        let flags = Serve::parse_from([
            "logbook".to_owned(),
            "--export-max-attempts".to_owned(),
            attempts.to_string(),
            "--export-retry-base".to_owned(),
            "50ms".to_owned(),
            "--export-retry-cap".to_owned(),
            "200ms".to_owned(),
        ]);
        let app = TestApp::spawn_with(backend, |c: &mut Config| {
            fast(c, &dir);
            c.exports.retry = flags.retry.policy().unwrap();
            c.exports.retry.jitter_factor = 0.0;
            c.exports.fail_first_attempts = 10;
        })
        .await;
        seed_runs(&app).await;
        let key = app.key("acme", Role::Operator).await;
        let id = create(
            &app,
            &key,
            json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
        )
        .await;
        let done = finished(&app, &key, &id).await;
        assert_eq!(done["status"], "FAILED", "{done:#}");
        assert_eq!(done["job"]["attempt"], attempts);
        assert_eq!(done["job"]["maxAttempts"], attempts);
        assert_eq!(done["job"]["lastErrorRetryable"], true);
        let retried = event_types(&done)
            .iter()
            .filter(|k| *k == "job_retried")
            .count();
        assert_eq!(retried, attempts as usize - 1);
        app.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

crate::cases!(
    cancel_queued_export,
    cancel_running_export,
    cancel_is_refused_after_the_end_and_across_tenants,
    missing_subject_fails_without_retry,
    retry_flags_set_the_attempts,
);
