//! `LlmRun`'s depth levels in one query: every nested field is batched, so a page of 100 runs
//! with all of them costs a small constant number of SQL statements, the same as a page of 10.

use logbook::auth::Role;
use logbook::seed::{Profile, SeedOptions};
use serde_json::{json, Value};

use crate::support::{Backend, TestApp};

const DEEP: &str = r#"
query Deep($first: Int!) {
  llmRuns(first: $first) {
    nodes {
      runId
      trace { traceId steps(first: 5) { nodes { stepIndex } } }
      governanceEvents { entityId }
      replayWindow { windowStart }
      exports { id }
      systemRecords { id }
      integrity { grade }
      mismatches { id }
      evidence { checksum policyIds agentId }
    }
  }
}"#;

/// The fewest statements the page took over ten requests: a DataLoader batch whose 1 ms window
/// closes before every run of the page has asked (a loaded machine descheduling the worker for
/// longer than that, a debug build) splits in two and adds a statement, so one request's count is
/// an upper bound; the least of ten is the page's own cost.
const PANEL: &str = r#"
query Panel($first: Int!) {
  llmRuns(first: $first) {
    nodes {
      recordId runId model executionStatus costCents createdAt
      trace { traceId status steps(first: 15) { nodes { stepIndex } } }
      integrity { grade score }
      systemRecords { recordId severity }
    }
  }
}"#;

async fn statements_for(app: &TestApp, key: &str, first: i32) -> (u64, Value) {
    fewest_statements(app, key, DEEP, first).await
}

async fn fewest_statements(app: &TestApp, key: &str, document: &str, first: i32) -> (u64, Value) {
    let mut fewest = None;
    for _ in 0..10 {
        let before = app.state.sql.statements();
        let data = app.data(key, document, json!({ "first": first })).await;
        let used = app.state.sql.statements() - before;
        if fewest.as_ref().is_none_or(|(least, _)| used < *least) {
            fewest = Some((used, data));
        }
    }
    fewest.expect("ten requests")
}

async fn nested_fields_cost_a_constant_number_of_statements(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let options = SeedOptions {
        profile: Profile::Demo,
        tenants: None,
        runs: Some(150),
        seed: 7,
        anchor: None,
        progress: false,
    };
    logbook::seed::run(app.db(), &options).await.expect("seed");
    let key = app.key("demo", Role::Viewer).await;

    // Warm the key cache so authentication is not counted.
    let _ = app.data(&key, "{ viewer { role } }", json!({})).await;
    let (small, _) = statements_for(&app, &key, 10).await;
    let (large, data) = statements_for(&app, &key, 100).await;
    eprintln!("SQL statements: 10 runs → {small}, 100 runs → {large}");
    let runs = data["llmRuns"]["nodes"].as_array().expect("nodes");
    assert_eq!(runs.len(), 100);
    // One statement per batched field (integrity's evidence counts and its failures with seals
    // are one statement each, the replay window merges its sources): 15 today, whatever the
    // page size.
    assert!(
        large <= 18,
        "100 runs with every nested field took {large} statements"
    );
    assert!(
        // One statement per run would add ~90.
        large <= small + 3,
        "statements grow with the page: {small} for 10, {large} for 100"
    );

    // A console panel (BENCHMARKS.md, f_panel): runs with trace and steps, integrity and system
    // records in six statements (runs, traces, steps, evidence counts, failures with seals,
    // system records).
    // In this debug build on the tests' multi-threaded runtime, resolving 100 runs can outlast a
    // loader's 1 ms batch window, so a batch may split in two on every request (a release build
    // measured 6.97 per request under load, BENCHMARKS.md): allow two such splits, far below the
    // ~100 more that one statement per run would cost.
    let (panel, _) = fewest_statements(&app, &key, PANEL, 100).await;
    eprintln!("SQL statements: panel of 100 runs → {panel}");
    assert!(panel <= 6 + 2, "the panel took {panel} statements");

    // The nested data is real: traces, integrity grades and evidence checksums are present.
    assert!(runs.iter().any(|r| r["trace"]["steps"]["nodes"]
        .as_array()
        .is_some_and(|s| !s.is_empty())));
    assert!(runs.iter().all(|r| r["integrity"]["grade"].is_string()));
    assert!(runs.iter().all(|r| r["evidence"]["checksum"]
        .as_str()
        .is_some_and(|c| c.len() == 64)));
    app.stop().await;
}

async fn evidence_checksum_is_the_records_sha256(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let runs = crate::support::make_runs("acme", "r", 1, crate::support::fixed_time());
    crate::support::insert_runs(app.db(), &runs).await;
    let data = app
        .data(&key, r#"{ llmRun(runId: "r-run-00000") { evidence { checksum origin sourceDomain timezone immutable occurredAt recordedAt } } }"#, json!({}))
        .await;
    let evidence = &data["llmRun"]["evidence"];
    use sha2::Digest;
    let expected = hex::encode(sha2::Sha256::digest(
        logbook::run_node::evidence::checksum_input(&runs[0]).as_bytes(),
    ));
    assert_eq!(evidence["checksum"], json!(expected));
    assert_eq!(evidence["origin"], "SYSTEM");
    assert_eq!(evidence["sourceDomain"], "LOGS");
    assert_eq!(
        evidence["recordedAt"],
        json!(logbook::scalars::format_utc(runs[0].created_at))
    );
    app.stop().await;
}

crate::cases!(
    nested_fields_cost_a_constant_number_of_statements,
    evidence_checksum_is_the_records_sha256
);
