//! Exports end to end: `createExport` → job → artefact + manifest → download → verify.
//! Each format parses back to exactly what the list query returns for the same filter and
//! `asOf`; digests verify (and stop verifying after one flipped byte); CSV quoting; a failed
//! first attempt is retried per the strategy; a server stopped mid-export is finished by
//! another; tenant isolation; Range requests; roles; partial files removed on failure and abort,
//! and swept once their attempt is dead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use logbook::auth::Role;
use logbook::config::Config;
use logbook::exports::settings::{RetryPolicy, RetryStrategy};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, insert_runs, make_runs, Backend, TestApp};

const RUN_FIELDS: &str = "recordId runId traceId provider model promptHash responseHash \
    inputTokens outputTokens costCents executionStatus startedAt completedAt source isSynthetic \
    syntheticScenarioId createdAt";

const CREATE: &str = r#"
mutation Create($input: CreateExportInput!, $key: String) {
  createExport(input: $input, idempotencyKey: $key) { exportId status scope format filter }
}"#;

const STATUS: &str = r#"
query Status($id: ID!) {
  logExport(id: $id) {
    exportId status checksum rowCount byteSize manifestSha256 error downloadPath manifestPath
    history { status error }
    job {
      state stage percent etaSeconds rowsWritten rowsTotal attempt maxAttempts retryStrategy
      lastError asOf
      events { seq eventType attempt error metadata integrityHash previousEventHash }
    }
  }
}"#;

pub(crate) fn export_dir() -> PathBuf {
    std::env::temp_dir().join(format!("lbx-{}", uuid::Uuid::new_v4().simple()))
}

/// Fast settings for tests: small batches (keyset paging exercised), quick polling, short
/// retry delays without jitter.
pub(crate) fn fast(config: &mut Config, dir: &Path) {
    config.exports.dir = dir.to_path_buf();
    config.exports.poll_interval = Duration::from_millis(100);
    config.exports.batch_size = 7;
    config.exports.retry = RetryPolicy {
        max_attempts: 3,
        strategy: RetryStrategy::Exponential,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
        jitter_factor: 0.0,
    };
}

/// `fast`, but 4 rows a batch, `batch_delay` apart: a job still running when the test looks.
fn slow(config: &mut Config, dir: &Path, batch_delay: Duration) {
    fast(config, dir);
    config.exports.batch_size = 4;
    config.exports.batch_delay = batch_delay;
}

async fn spawn(backend: Backend, dir: &Path) -> TestApp {
    TestApp::spawn_with(backend, |c| fast(c, dir)).await
}

pub(crate) async fn create(app: &TestApp, key: &str, input: Value) -> String {
    let data = app.data(key, CREATE, json!({ "input": input })).await;
    assert_eq!(data["createExport"]["status"], "PENDING", "{data:#}");
    data["createExport"]["exportId"]
        .as_str()
        .expect("exportId")
        .to_owned()
}

pub(crate) async fn status(app: &TestApp, key: &str, id: &str) -> Value {
    app.data(key, STATUS, json!({ "id": id })).await["logExport"].clone()
}

/// Polls until the export's job is running and has written rows (fails after 5 s).
pub(crate) async fn wait_until_writing(app: &TestApp, key: &str, id: &str) {
    for _ in 0..100 {
        let s = status(app, key, id).await;
        if s["job"]["state"] == "RUNNING" && s["job"]["rowsWritten"] != "0" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("export {id} did not start writing");
}

/// A server slowly exporting 40 runs of `acme` (4 rows a batch, 250 ms apart) under a job lease
/// of `lease`, returned once its worker has written rows: (server, OPERATOR key, export id).
pub(crate) async fn mid_export(
    backend: Backend,
    dir: &Path,
    lease: Duration,
) -> (TestApp, String, String) {
    let first = TestApp::spawn_with(backend, |c| {
        slow(c, dir, Duration::from_millis(250));
        c.exports.lease_ttl = lease;
    })
    .await;
    seed_runs(&first).await;
    let key = first.key("acme", Role::Operator).await;
    let id = create(
        &first,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    wait_until_writing(&first, &key, &id).await;
    (first, key, id)
}

/// Polls until the export completes or fails.
pub(crate) async fn finished(app: &TestApp, key: &str, id: &str) -> Value {
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

async fn get(
    app: &TestApp,
    key: Option<&str>,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = app.http.get(format!("{}{path}", app.base));
    if let Some(key) = key {
        r = r.bearer_auth(key);
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.expect("GET")
}

pub(crate) async fn download(app: &TestApp, key: &str, id: &str) -> Vec<u8> {
    let r = get(app, Some(key), &format!("/exports/{id}/download"), &[]).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.expect("body").to_vec()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// RFC 4180 parser (quoted fields, doubled quotes, CRLF records, newlines inside quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            _ => field.push(c),
        }
    }
    assert!(field.is_empty() && record.is_empty(), "CSV ends with CRLF");
    records
}

/// A JSON value as its CSV field.
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The list the console shows for `filter` (all pages).
async fn list_runs(app: &TestApp, key: &str, filter: &Value, as_of: Option<&str>) -> Vec<Value> {
    let query = format!(
        "query($f: LlmRunFilter, $asOf: DateTime, $after: String) {{ llmRuns(filter: $f, asOf: $asOf, first: 100, after: $after) {{ nodes {{ {RUN_FIELDS} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .data(
                key,
                &query,
                json!({ "f": filter, "asOf": as_of, "after": after }),
            )
            .await;
        let page = &data["llmRuns"];
        out.extend(page["nodes"].as_array().expect("nodes").iter().cloned());
        if page["pageInfo"]["hasNextPage"] != true {
            return out;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

pub(crate) async fn seed_runs(app: &TestApp) {
    // Keys create the tenants the rows belong to.
    app.key("acme", Role::Viewer).await;
    app.key("other", Role::Viewer).await;
    insert_runs(app.db(), &make_runs("acme", "a", 40, fixed_time())).await;
    insert_runs(app.db(), &make_runs("other", "o", 5, fixed_time())).await;
}

async fn round_trip_each_format(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let filter = json!({ "provider": "anthropic", "status": ["SUCCEEDED", "ABORTED"] });
    let expected = list_runs(&app, &key, &filter, None).await;
    assert!(expected.len() >= 8, "enough rows to span batches");

    for format in ["JSON", "NDJSON", "CSV"] {
        let id = create(
            &app,
            &key,
            json!({ "scope": "LLM_RUNS", "format": format, "filter": { "llmRuns": filter } }),
        )
        .await;
        let done = finished(&app, &key, &id).await;
        assert_eq!(done["status"], "COMPLETED", "{done:#}");
        assert_eq!(done["rowCount"], expected.len().to_string());
        let body = download(&app, &key, &id).await;
        assert_eq!(done["checksum"], sha256_hex(&body));
        let text = String::from_utf8(body).expect("UTF-8");
        let rows: Vec<Value> = match format {
            "JSON" => serde_json::from_str(&text).expect("a JSON array"),
            "NDJSON" => text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect(),
            _ => {
                let records = parse_csv(&text);
                let header = &records[0];
                let want: Vec<&str> = RUN_FIELDS.split_whitespace().collect();
                assert_eq!(header, &want, "CSV header = the column set");
                let cells: Vec<Vec<String>> = expected
                    .iter()
                    .map(|row| want.iter().map(|f| csv_cell(&row[*f])).collect())
                    .collect();
                assert_eq!(records[1..].to_vec(), cells, "CSV records = the list");
                continue;
            }
        };
        assert_eq!(rows, expected, "{format} rows = the list, same order");
    }

    // asOf: the export and the list agree on a watermark in the past.
    let as_of = expected[5]["createdAt"]
        .as_str()
        .expect("createdAt")
        .to_owned();
    let before = list_runs(&app, &key, &json!({}), Some(&as_of)).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON", "asOf": as_of }),
    )
    .await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["job"]["asOf"], as_of.as_str());
    let body = download(&app, &key, &id).await;
    let rows: Vec<Value> = String::from_utf8(body)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(rows, before);
    assert!(
        rows.len() < 40
            && rows
                .iter()
                .all(|r| r["recordId"].as_str().unwrap().starts_with("a-"))
    );

    // System records: the same filter input as `systemRecords`.
    let ingest = app.key("acme", Role::Ingest).await;
    for i in 0..9 {
        app.data(
            &ingest,
            "mutation($i: RecordSystemRecordInput!) { recordSystemRecord(input: $i) { recordId } }",
            json!({ "i": { "component": "WORKER", "eventType": "RESTART", "severity": if i % 2 == 0 { "INFO" } else { "WARN" }, "summary": format!("restart {i}"), "details": { "n": i } } }),
        )
        .await;
    }
    let sys_filter = json!({ "scope": "TENANT_ONLY", "severity": ["WARN"] });
    let listed = app
        .data(
            &key,
            "query($f: SystemRecordFilter) { systemRecords(filter: $f, first: 100) { nodes { recordId tenantId isSystemWide component eventType severity summary details causedBy correlationId createdAt } } }",
            json!({ "f": sys_filter }),
        )
        .await["systemRecords"]["nodes"]
        .clone();
    let id = create(
        &app,
        &key,
        json!({ "scope": "SYSTEM_RECORDS", "format": "JSON", "filter": { "systemRecords": sys_filter } }),
    )
    .await;
    assert_eq!(finished(&app, &key, &id).await["status"], "COMPLETED");
    let rows: Value = serde_json::from_slice(&download(&app, &key, &id).await).expect("json");
    assert_eq!(rows, listed);
    assert_eq!(rows.as_array().map(Vec::len), Some(4));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn digests_verify_and_anchor_in_the_ledger(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let history: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["PENDING", "RUNNING", "COMPLETED"]);
    let job = &done["job"];
    assert_eq!(job["state"], "COMPLETED");
    assert_eq!(job["stage"], "COMPLETED");
    assert_eq!(job["percent"], 100.0);
    assert_eq!(job["rowsWritten"], "40");
    // The job's audit trail is a hash chain.
    let events = job["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["job_created", "job_started", "job_completed"]);
    for pair in events.windows(2) {
        assert_eq!(pair[1]["previousEventHash"], pair[0]["integrityHash"]);
    }

    // Download both files under their served names, then verify offline.
    let out = export_dir();
    std::fs::create_dir_all(&out).unwrap();
    let mut names = Vec::new();
    for path in [&done["downloadPath"], &done["manifestPath"]] {
        let r = get(&app, Some(&key), path.as_str().unwrap(), &[]).await;
        assert_eq!(r.status(), 200);
        let disposition = r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let digest = r.headers()["digest"].to_str().unwrap().to_owned();
        let name = disposition
            .split("filename=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches('"')
            .to_owned();
        let body = r.bytes().await.unwrap();
        assert_eq!(etag, format!("\"{}\"", sha256_hex(&body)));
        use base64::Engine;
        assert_eq!(
            digest,
            format!(
                "sha-256={}",
                base64::engine::general_purpose::STANDARD
                    .encode(hex::decode(sha256_hex(&body)).unwrap())
            )
        );
        std::fs::write(out.join(&name), &body).unwrap();
        names.push(name);
    }
    let artefact = out.join(&names[0]);
    let manifest_file = out.join(&names[1]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_file).unwrap()).unwrap();
    assert_eq!(manifest["artefact"]["sha256"], done["checksum"]);
    assert_eq!(manifest["row_counts"]["rows"], 40);
    assert_eq!(manifest["column_set"]["version"], 1);
    assert_eq!(manifest["scope"], "llm_runs");
    assert_eq!(
        sha256_hex(&std::fs::read(&manifest_file).unwrap()),
        done["manifestSha256"].as_str().unwrap()
    );
    let cli = |file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_logbook"))
            .args(["export", "verify"])
            .arg(file)
            .output()
            .expect("run logbook export verify")
    };
    for file in [&artefact, &manifest_file] {
        let run = cli(file);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            String::from_utf8_lossy(&run.stdout).contains(done["manifestSha256"].as_str().unwrap())
        );
    }
    // One flipped byte: verification fails and names the mismatch.
    let mut bytes = std::fs::read(&artefact).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&artefact, &bytes).unwrap();
    let run = cli(&artefact);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("mismatch") && stderr.contains("sha256"),
        "{stderr}"
    );

    // The manifest hash is in the tenant's audit ledger.
    let entries = app
        .data(
            &key,
            "query($f: AuditEntryFilter) { auditEntries(filter: $f) { nodes { afterState entryHash } } }",
            json!({ "f": { "entityType": "EXPORT", "entityId": id, "eventType": ["EXPORT_COMPLETED"] } }),
        )
        .await;
    let nodes = entries["auditEntries"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0]["afterState"]["manifest_sha256"],
        done["manifestSha256"]
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
}

async fn csv_quotes_commas_newlines_and_unicode(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    let mut runs = make_runs("acme", "q", 6, fixed_time());
    let tricky = [
        "plain",
        "with,comma",
        "say \"hi\"",
        "two\nlines",
        "crlf\r\nend",
        "naïve ünïcödé — 日本語 🎉",
    ];
    for (run, model) in runs.iter_mut().zip(tricky) {
        run.model = model.to_owned();
        run.synthetic_scenario_id = Some(format!("{model},\"x\""));
    }
    let key = app.key("acme", Role::Admin).await;
    insert_runs(app.db(), &runs).await;
    let id = create(&app, &key, json!({ "scope": "LLM_RUNS", "format": "CSV" })).await;
    assert_eq!(finished(&app, &key, &id).await["status"], "COMPLETED");
    let text = String::from_utf8(download(&app, &key, &id).await).expect("UTF-8");
    let records = parse_csv(&text);
    let expected = list_runs(&app, &key, &json!({}), None).await;
    let fields: Vec<&str> = RUN_FIELDS.split_whitespace().collect();
    let model = fields.iter().position(|f| *f == "model").unwrap();
    assert_eq!(records.len(), 7);
    for (record, row) in records[1..].iter().zip(&expected) {
        let want: Vec<String> = fields.iter().map(|f| csv_cell(&row[*f])).collect();
        assert_eq!(record, &want);
    }
    let mut models: Vec<&str> = records[1..].iter().map(|r| r[model].as_str()).collect();
    models.sort_unstable();
    let mut want = tricky.to_vec();
    want.sort_unstable();
    assert_eq!(models, want);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn failed_first_attempt_is_retried(backend: Backend) {
    let dir = export_dir();
    let app = TestApp::spawn_with(backend, |c| {
        fast(c, &dir);
        c.exports.fail_first_attempts = 1;
    })
    .await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(&app, &key, json!({ "scope": "LLM_RUNS", "format": "JSON" })).await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let job = &done["job"];
    assert_eq!(job["attempt"], 2);
    assert_eq!(job["maxAttempts"], 3);
    assert_eq!(job["retryStrategy"], "EXPONENTIAL");
    let events = job["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "job_created",
            "job_started",
            "job_failed",
            "job_retried",
            "job_started",
            "job_completed"
        ]
    );
    // Exponential, base 200 ms, attempt 1: 200 ms.
    assert_eq!(events[3]["metadata"]["delay_seconds"], 0.2);
    assert!(events[2]["error"]
        .as_str()
        .unwrap()
        .contains("injected failure"));
    let history: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["PENDING", "RUNNING", "PENDING", "RUNNING", "COMPLETED"]
    );
    assert!(done["history"][2]["error"]
        .as_str()
        .unwrap()
        .contains("retrying at"));
    let rows: Value = serde_json::from_slice(&download(&app, &key, &id).await).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(40));

    // Attempts spent: FAILED after max_attempts, with the reason.
    let dir2 = export_dir();
    let app2 = TestApp::spawn_with(backend, |c| {
        fast(c, &dir2);
        c.exports.fail_first_attempts = 10;
        c.exports.retry.base_delay = Duration::from_millis(50);
    })
    .await;
    let key2 = app2.key("acme", Role::Operator).await;
    insert_runs(app2.db(), &make_runs("acme", "f", 10, fixed_time())).await;
    let id = create(
        &app2,
        &key2,
        json!({ "scope": "LLM_RUNS", "format": "CSV" }),
    )
    .await;
    let done = finished(&app2, &key2, &id).await;
    assert_eq!(done["status"], "FAILED");
    assert_eq!(done["job"]["state"], "FAILED");
    assert_eq!(done["job"]["attempt"], 3);
    assert!(done["error"]
        .as_str()
        .unwrap()
        .contains("no attempts remain"));
    let r = get(&app2, Some(&key2), &format!("/exports/{id}/download"), &[]).await;
    assert_eq!(r.status(), 409);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

async fn restart_mid_export_completes(backend: Backend) {
    let dir = export_dir();
    let (first, key, id) = mid_export(backend, &dir, Duration::from_millis(1500)).await;
    // The first server dies mid-export: its worker stops heartbeating.
    if let Some(worker) = &first.server.export_worker {
        worker.abort();
    }
    let url = first.database_url();
    first.stop().await;

    let second = TestApp::spawn_on(backend, url, |c| {
        fast(c, &dir);
        c.exports.lease_ttl = Duration::from_millis(1500);
    })
    .await;
    let done = finished(&second, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    assert_eq!(done["rowCount"], "40");
    assert_eq!(done["job"]["attempt"], 2);
    let kinds: Vec<&str> = done["job"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"job_reclaimed"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"job_completed"));
    let body = download(&second, &key, &id).await;
    assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 40);
    assert_eq!(done["checksum"], sha256_hex(&body));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn other_tenants_export_is_not_found(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    assert_eq!(finished(&app, &key, &id).await["status"], "COMPLETED");
    let stranger = app.key("other", Role::Admin).await;
    let body = app.gql(Some(&stranger), STATUS, json!({ "id": id })).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let missing = app
        .gql(
            Some(&stranger),
            STATUS,
            json!({ "id": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["message"],
        missing["errors"][0]["message"]
    );
    for what in ["download", "manifest"] {
        let theirs = get(&app, Some(&stranger), &format!("/exports/{id}/{what}"), &[]).await;
        assert_eq!(theirs.status(), 404);
        let theirs = theirs.text().await.unwrap();
        let nothing = get(
            &app,
            Some(&stranger),
            &format!("/exports/{}/{what}", uuid::Uuid::new_v4()),
            &[],
        )
        .await;
        assert_eq!(nothing.status(), 404);
        // The same body but for the request id every error carries.
        let without_request_id = |text: &str| {
            let mut body: Value = serde_json::from_str(text).expect("a JSON body");
            let extensions = &mut body["errors"][0]["extensions"];
            assert!(extensions["requestId"].is_string(), "{text}");
            extensions
                .as_object_mut()
                .expect("extensions")
                .remove("requestId");
            body
        };
        assert_eq!(
            without_request_id(&theirs),
            without_request_id(&nothing.text().await.unwrap())
        );
    }
    // Nor can another tenant's run be bundled.
    let body = app
        .gql(
            Some(&stranger),
            CREATE,
            json!({ "input": { "scope": "RUN_BUNDLE", "format": "ZIP", "runId": "a-run-00001" } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn range_requests(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed_runs(&app).await;
    let key = app.key("acme", Role::Operator).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let id = create(&app, &key, json!({ "scope": "LLM_RUNS", "format": "JSON" })).await;
    assert_eq!(finished(&app, &key, &id).await["status"], "COMPLETED");
    let full = download(&app, &viewer, &id).await;
    let size = full.len();
    let path = format!("/exports/{id}/download");
    let r = get(&app, Some(&viewer), &path, &[("Range", "bytes=0-9")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-9/{size}").as_str()
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &full[..10]);
    let r = get(&app, Some(&viewer), &path, &[("Range", "bytes=-5")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &full[size - 5..]);
    let r = get(&app, Some(&viewer), &path, &[("Range", "bytes=100-")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &full[100..]);
    for bad in [
        format!("bytes={size}-"),
        "bytes=9-3".to_owned(),
        "lines=1-2".to_owned(),
    ] {
        let r = get(&app, Some(&viewer), &path, &[("Range", &bad)]).await;
        assert_eq!(r.status(), 416, "{bad}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes */{size}").as_str()
        );
    }
    let etag = format!("\"{}\"", sha256_hex(&full));
    let r = get(&app, Some(&viewer), &path, &[("If-None-Match", &etag)]).await;
    assert_eq!(r.status(), 304);
    // If-Range with another validator: the whole file.
    let r = get(
        &app,
        Some(&viewer),
        &path,
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), size);
    let r = get(&app, None, &path, &[]).await;
    assert_eq!(r.status(), 401);
    let ingest = app.key("acme", Role::Ingest).await;
    assert_eq!(get(&app, Some(&ingest), &path, &[]).await.status(), 403);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn roles_and_input_checks(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed_runs(&app).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let body = app
        .gql(
            Some(&viewer),
            CREATE,
            json!({ "input": { "scope": "LLM_RUNS", "format": "NDJSON" } }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let ingest = app.key("acme", Role::Ingest).await;
    let body = app
        .gql(
            Some(&ingest),
            CREATE,
            json!({ "input": { "scope": "LLM_RUNS", "format": "NDJSON" } }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let op = app.key("acme", Role::Operator).await;
    let cases = [
        (
            json!({ "scope": "LLM_RUNS", "format": "ZIP" }),
            "input.format",
        ),
        (
            json!({ "scope": "RUN_BUNDLE", "format": "CSV", "runId": "a-run-00001" }),
            "input.format",
        ),
        (
            json!({ "scope": "LLM_RUNS", "format": "CSV", "filter": { "auditEntries": {} } }),
            "input.filter",
        ),
        (
            json!({ "scope": "RUN_BUNDLE", "format": "ZIP" }),
            "input.runId",
        ),
        (
            json!({ "scope": "LLM_RUNS", "format": "CSV", "runId": "x" }),
            "input.runId",
        ),
        (
            json!({ "scope": "LLM_RUNS", "format": "CSV", "asOf": "2999-01-01T00:00:00Z" }),
            "input.asOf",
        ),
    ];
    for (input, field) in cases {
        let body = app.gql(Some(&op), CREATE, json!({ "input": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{input}");
    }
    // Nothing was recorded by the refused requests.
    let count = app
        .data(&op, "{ logExports { totalCount } }", json!({}))
        .await;
    assert_eq!(count["logExports"]["totalCount"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run_bundle_holds_the_trace_steps(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed_runs(&app).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let run_id = "a-run-00003";
    app.data(
        &ingest,
        "mutation($i: StartTraceInput!) { startTrace(input: $i) { traceId } }",
        json!({ "i": { "traceId": "tr-bundle", "runId": run_id, "plan": [{"skill": "llm_invoke"}] } }),
    )
    .await;
    let steps: Vec<Value> = (0..12)
        .map(|i| {
            json!({
                "stepIndex": i, "skillName": "llm_invoke", "params": {"n": i},
                "status": "success", "outcomeCategory": "SUCCESS", "costCents": 1.5, "durationMs": 10.0,
            })
        })
        .collect();
    app.data(
        &ingest,
        "mutation($s: [TraceStepInput!]!) { recordSteps(traceId: \"tr-bundle\", steps: $s) { insertedCount } }",
        json!({ "s": steps }),
    )
    .await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "RUN_BUNDLE", "format": "ZIP", "runId": run_id }),
    )
    .await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let bytes = download(&app, &key, &id).await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).expect("zip");
    let mut names: Vec<String> = archive
        .file_names()
        .map(|n| n.expect("entry name").into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "audit.ndjson",
            "evidence.json",
            "run.json",
            "steps.ndjson",
            "system_records.ndjson",
            "trace.json"
        ]
    );
    let mut text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("steps.ndjson").unwrap(), &mut text)
        .unwrap();
    let steps: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 12);
    assert_eq!(steps[11]["stepIndex"], 11);
    let mut run = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("run.json").unwrap(), &mut run).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&run).unwrap()["runId"],
        run_id
    );
    let mut evidence = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("evidence.json").unwrap(),
        &mut evidence,
    )
    .unwrap();
    let evidence: Value = serde_json::from_str(&evidence).unwrap();
    assert_eq!(evidence["total_steps"], 12);
    assert_eq!(evidence["trace_id"], "tr-bundle");
    // Member digests verify, and the export is listed under the run (O5).
    let out = export_dir();
    std::fs::create_dir_all(&out).unwrap();
    let artefact = out.join(format!("logbook-export-{id}.zip"));
    std::fs::write(&artefact, &bytes).unwrap();
    let manifest = get(&app, Some(&key), &format!("/exports/{id}/manifest"), &[]).await;
    std::fs::write(
        logbook::export_files::manifest::manifest_path(&artefact),
        manifest.bytes().await.unwrap(),
    )
    .unwrap();
    let verified = logbook::export_files::verify::verify(&artefact, None, None).expect("verifies");
    assert_eq!(verified.members, 6);
    let exports = app
        .data(
            &key,
            "query($r: String!) { llmRun(runId: $r) { exports { exportId scope } } }",
            json!({ "r": run_id }),
        )
        .await;
    assert_eq!(exports["llmRun"]["exports"][0]["exportId"], id.as_str());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
}

async fn progress_subscription_follows_the_job(backend: Backend) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let dir = export_dir();
    let app = TestApp::spawn_with(backend, |c| {
        slow(c, &dir, Duration::from_millis(150));
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
            "query": "subscription($id: ID!) { exportProgress(id: $id) { status job { stage percent rowsWritten etaSeconds attempt } } }",
            "variables": { "id": id },
        },
    })))
    .await
    .unwrap();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the subscription ends")
            .expect("open")
            .expect("frame");
        let Message::Text(text) = frame else { continue };
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        match message["type"].as_str() {
            Some("next") => {
                assert!(message["payload"].get("errors").is_none(), "{message}");
                events.push(message["payload"]["data"]["exportProgress"].clone());
            }
            Some("complete") => break,
            Some("ping") => ws.send(send(json!({ "type": "pong" }))).await.unwrap(),
            Some("connection_ack") => {}
            _ => panic!("unexpected {message}"),
        }
    }
    assert!(events.len() >= 3, "{events:#?}");
    assert_eq!(events.last().unwrap()["status"], "COMPLETED");
    assert_eq!(events.last().unwrap()["job"]["percent"], 100.0);
    let percents: Vec<f64> = events
        .iter()
        .filter_map(|e| e["job"]["percent"].as_f64())
        .collect();
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert!(
        percents.iter().any(|p| *p > 0.0 && *p < 100.0),
        "intermediate progress: {percents:?}"
    );
    // Another tenant cannot follow it.
    let stranger = app.key("other", Role::Viewer).await;
    let body = app
        .gql(
            Some(&stranger),
            "query($id: ID!) { logExport(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An AUDIT export carries its tenant's ledger file: served at `/exports/{id}/ledger`, digested
/// in the manifest, verified offline by `logbook ledger verify --file` and, with the public
/// key, by `logbook export verify`, which also finds every exported entry in the signed ledger.
async fn audit_export_carries_a_verifiable_ledger(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let key = app.key("acme", Role::Operator).await;
    for i in 0..12 {
        let input = json!({
            "eventType": "LIMIT_CREATED", "entityType": "LIMIT",
            "entityId": format!("lim-{}", i % 3), "actorType": "SYSTEM",
            "afterState": { "value": i },
        });
        let data = app
            .data(
                &ingest,
                "mutation($i: RecordAuditEventInput!) { recordAuditEvent(input: $i) { seq } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(data["recordAuditEvent"]["seq"], json!(i + 1));
    }
    // Another tenant's chain never leaks into this tenant's ledger file.
    let theirs = app.key("other", Role::Ingest).await;
    let _ = app
        .data(
            &theirs,
            "mutation($i: RecordAuditEventInput!) { recordAuditEvent(input: $i) { seq } }",
            json!({ "i": { "eventType": "LIMIT_CREATED", "entityType": "LIMIT",
                "entityId": "x", "actorType": "SYSTEM", "afterState": {} } }),
        )
        .await;
    let public_key = app
        .data(&key, "{ ledger { publicKey { hex } } }", json!({}))
        .await["ledger"]["publicKey"]["hex"]
        .as_str()
        .unwrap()
        .to_owned();

    let id = create(
        &app,
        &key,
        json!({ "scope": "AUDIT", "format": "NDJSON", "filter": { "auditEntries": { "entityId": "lim-1" } } }),
    )
    .await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    assert_eq!(done["rowCount"], json!("4"));

    let out = export_dir();
    std::fs::create_dir_all(&out).unwrap();
    let fetch = |suffix: &'static str| {
        let (app, key, id) = (&app, &key, &id);
        async move {
            let r = get(app, Some(key), &format!("/exports/{id}/{suffix}"), &[]).await;
            assert_eq!(r.status(), 200, "{suffix}");
            let etag = r.headers()["etag"].to_str().unwrap().to_owned();
            let body = r.bytes().await.unwrap().to_vec();
            assert_eq!(etag, format!("\"{}\"", sha256_hex(&body)), "{suffix}");
            body
        }
    };
    let artefact = out.join(format!("logbook-export-{id}.ndjson"));
    let manifest_file = out.join(format!("logbook-export-{id}.ndjson.manifest.json"));
    let ledger_file = out.join(format!("logbook-export-{id}.ndjson.ledger.ndjson"));
    std::fs::write(&artefact, fetch("download").await).unwrap();
    std::fs::write(&manifest_file, fetch("manifest").await).unwrap();
    let ledger_bytes = fetch("ledger").await;
    std::fs::write(&ledger_file, &ledger_bytes).unwrap();

    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_file).unwrap()).unwrap();
    assert_eq!(manifest["ledger"]["tree_size"], json!(12));
    assert_eq!(manifest["ledger"]["public_key"], json!(public_key));
    assert_eq!(
        manifest["ledger"]["file"]["sha256"],
        json!(sha256_hex(&ledger_bytes))
    );
    // The file: a header, the tenant's 12 entries in seq order, a signed checkpoint.
    let lines: Vec<Value> = ledger_bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 14);
    assert_eq!(lines[0]["type"], "header");
    assert!(lines[1..13]
        .iter()
        .enumerate()
        .all(|(i, l)| l["type"] == "entry"
            && l["seq"] == json!(i + 1)
            && l["tenant_id"] == "acme"));
    assert_eq!(lines[13]["type"], "checkpoint");
    assert_eq!(lines[13]["tree_size"], json!(12));

    let run = |args: &[&str], file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_logbook"))
            .args(args)
            .arg(file)
            .args(["--public-key", &public_key])
            .output()
            .expect("run logbook")
    };
    let offline = run(&["ledger", "verify", "--file"], &ledger_file);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let verified = run(&["export", "verify"], &artefact);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        stdout.contains("4 exported entries are in the signed ledger"),
        "{stdout}"
    );

    // A row whose entryHash was changed is not in the signed ledger: named by seq. (The
    // manifest is rewritten to the tampered digest, as a forger would, so only the ledger
    // cross-check can catch it.)
    let text = std::fs::read_to_string(&artefact).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let hash = first["entryHash"].as_str().unwrap();
    let forged_hash = format!(
        "{}{}",
        if hash.starts_with('0') { "1" } else { "0" },
        &hash[1..]
    );
    let forged = text.replacen(hash, &forged_hash, 1);
    std::fs::write(&artefact, &forged).unwrap();
    let mut m = manifest.clone();
    m["artefact"]["sha256"] = json!(sha256_hex(forged.as_bytes()));
    std::fs::write(&manifest_file, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let caught = run(&["export", "verify"], &artefact);
    let stderr = String::from_utf8_lossy(&caught.stderr);
    assert!(!caught.status.success());
    assert!(
        stderr.contains(&format!("seq {}", first["seq"])) && stderr.contains("signed ledger"),
        "{stderr}"
    );

    // One flipped byte in the ledger file: its digest no longer matches the manifest.
    let mut bytes = ledger_bytes.clone();
    bytes[20] ^= 0x01;
    std::fs::write(&ledger_file, &bytes).unwrap();
    let caught = run(&["export", "verify"], &manifest_file);
    let stderr = String::from_utf8_lossy(&caught.stderr);
    assert!(!caught.status.success());
    assert!(stderr.contains("ledger file"), "{stderr}");

    // Only AUDIT exports have a ledger file; another tenant cannot fetch this one.
    let runs = create(
        &app,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    assert_eq!(finished(&app, &key, &runs).await["status"], "COMPLETED");
    let r = get(&app, Some(&key), &format!("/exports/{runs}/ledger"), &[]).await;
    assert_eq!(r.status(), 404);
    let reader = app.key("other", Role::Viewer).await;
    let r = get(&app, Some(&reader), &format!("/exports/{id}/ledger"), &[]).await;
    assert_eq!(r.status(), 404);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
}

/// The partial files (`*.part-<attempt>`) in `dir`, by name.
fn part_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains(".part-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// An aborted worker's guard removes its part file at once; what a process killed outright
/// leaves (here: the same file, put back) is swept by the next worker to start once the
/// attempt's lease is dead; a live attempt's part file is never swept by another process; files
/// of unknown jobs and other files are left alone.
async fn partial_files_are_removed_and_swept(backend: Backend) {
    let dir = export_dir();
    let lease = Duration::from_millis(1500);
    let slow = |c: &mut Config| {
        slow(c, &dir, Duration::from_millis(250));
        c.exports.lease_ttl = lease;
    };
    let first = TestApp::spawn_with(backend, slow).await;
    seed_runs(&first).await;
    insert_runs(first.db(), &make_runs("acme", "more", 40, fixed_time())).await;
    let key = first.key("acme", Role::Operator).await;
    let id = create(
        &first,
        &key,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    let part = |attempt: i32| dir.join(format!("logbook-export-{id}.ndjson.part-{attempt}"));
    // Files the sweeps must keep: a part file of a job this database does not know, and others.
    let foreign = dir.join(format!(
        "logbook-export-{}.csv.part-1",
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&foreign, b"another deployment's").unwrap();
    std::fs::write(dir.join("notes.part-1"), b"not an export").unwrap();

    // Mid-export: attempt 1 writes its part file.
    let mut running = false;
    for _ in 0..100 {
        let s = status(&first, &key, &id).await;
        if s["job"]["state"] == "RUNNING" && s["job"]["rowsWritten"] != "0" && part(1).exists() {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(running, "the export started");
    // (Possibly still empty: the writer buffers 1 MiB.)
    let written = std::fs::read(part(1)).unwrap();

    // The worker task is aborted: its guard deletes the part file.
    if let Some(worker) = &first.server.export_worker {
        worker.abort();
    }
    wait_for("the aborted attempt's part file removed", || {
        !part(1).exists()
    })
    .await;
    // A process killed outright (SIGKILL) runs no destructor and leaves the file behind.
    std::fs::write(part(1), &written).unwrap();
    let url = first.database_url();
    first.stop().await;
    // Once attempt 1's lease is dead, a restarted worker's startup sweep deletes its files.
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let second = TestApp::spawn_on(backend, url.clone(), slow).await;
    wait_for("the dead attempt's part file swept", || !part(1).exists()).await;

    // The second worker runs attempt 2. A third process starting meanwhile sweeps the
    // directory (the dead file planted below shows it did) but leaves attempt 2's live part file:
    // attempt 2 completes (its rename needs the file), with no attempt 3.
    wait_for("attempt 2 writing", || part(2).exists()).await;
    let stale = dir.join(format!("logbook-export-{id}.ndjson.manifest.json.part-1"));
    std::fs::write(&stale, b"{").unwrap();
    let third = TestApp::spawn_on(backend, url, |c| fast(c, &dir)).await;
    wait_for("the third worker's sweep", || !stale.exists()).await;
    let done = finished(&second, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    assert_eq!(done["job"]["attempt"], 2);
    assert_eq!(done["rowCount"], "80");
    assert_eq!(
        part_files(&dir),
        [
            foreign.file_name().unwrap().to_string_lossy().into_owned(),
            "notes.part-1".to_owned()
        ]
    );
    drop(third);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every failed attempt removes its partial files: list exports and bundles alike (a bundle
/// failing after its first batch of steps used to leave its `.part-N` ZIP behind).
async fn failing_jobs_leave_no_partial_files(backend: Backend) {
    let dir = export_dir();
    let app = TestApp::spawn_with(backend, |c| {
        fast(c, &dir);
        c.exports.fail_first_attempts = 10;
        c.exports.retry.base_delay = Duration::from_millis(50);
    })
    .await;
    seed_runs(&app).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let run_id = "a-run-00003";
    app.data(
        &ingest,
        "mutation($i: StartTraceInput!) { startTrace(input: $i) { traceId } }",
        json!({ "i": { "traceId": "tr-fail", "runId": run_id, "plan": [{"skill": "llm_invoke"}] } }),
    )
    .await;
    let steps: Vec<Value> = (0..12)
        .map(|i| {
            json!({
                "stepIndex": i, "skillName": "llm_invoke", "params": {"n": i},
                "status": "success", "outcomeCategory": "SUCCESS", "costCents": 1.5, "durationMs": 10.0,
            })
        })
        .collect();
    app.data(
        &ingest,
        "mutation($s: [TraceStepInput!]!) { recordSteps(traceId: \"tr-fail\", steps: $s) { insertedCount } }",
        json!({ "s": steps }),
    )
    .await;
    let key = app.key("acme", Role::Operator).await;
    for input in [
        json!({ "scope": "RUN_BUNDLE", "format": "ZIP", "runId": run_id }),
        json!({ "scope": "LLM_RUNS", "format": "CSV" }),
    ] {
        let id = create(&app, &key, input.clone()).await;
        let done = finished(&app, &key, &id).await;
        assert_eq!(done["status"], "FAILED", "{done:#}");
        assert_eq!(done["job"]["attempt"], 3);
        assert!(
            part_files(&dir).is_empty(),
            "{input}: {:?}",
            part_files(&dir)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

crate::cases!(
    round_trip_each_format,
    digests_verify_and_anchor_in_the_ledger,
    audit_export_carries_a_verifiable_ledger,
    csv_quotes_commas_newlines_and_unicode,
    failed_first_attempt_is_retried,
    restart_mid_export_completes,
    other_tenants_export_is_not_found,
    range_requests,
    roles_and_input_checks,
    run_bundle_holds_the_trace_steps,
    progress_subscription_follows_the_job,
    partial_files_are_removed_and_swept,
    failing_jobs_leave_no_partial_files,
);
