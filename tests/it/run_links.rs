//! The links a console follows back to a run: `Trace.llmRun`, `AuditEntry.llmRun`,
//! `SystemRecord.llmRun` and `LogExport.llmRun`. Each resolves in the caller's tenant only (another
//! tenant has a run with the same run id throughout), and a page of them loads its runs in one
//! batched statement, whatever its size.

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::support::{Backend, TestApp};

async fn mutate(app: &TestApp, key: &str, document: &str, input: Value) -> Value {
    app.data(key, document, json!({ "i": input })).await
}

/// Writes, for `tenant`, runs `r0..rN`, a trace, an audit entry and a system record per run,
/// and a run-bundle export of `r0`; returns the run record ids by run id.
async fn write_tenant(app: &TestApp, tenant: &str, runs: usize) -> Vec<(String, String)> {
    let admin = app.key(tenant, Role::Admin).await;
    let mut ids = Vec::new();
    for i in 0..runs {
        let run_id = format!("r{i}");
        let data = mutate(
            app,
            &admin,
            "mutation($i: RecordLlmRunInput!) { recordLlmRun(input: $i) { recordId } }",
            json!({ "runId": run_id, "model": "gpt-4o", "executionStatus": "SUCCEEDED",
                    "startedAt": "2026-11-20T10:00:00Z" }),
        )
        .await;
        ids.push((
            run_id.clone(),
            data["recordLlmRun"]["recordId"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
        mutate(
            app,
            &admin,
            "mutation($i: StartTraceInput!) { startTrace(input: $i) { traceId } }",
            json!({ "runId": run_id }),
        )
        .await;
        mutate(
            app,
            &admin,
            "mutation($i: RecordAuditEventInput!) { recordAuditEvent(input: $i) { seq } }",
            json!({ "eventType": "LIMIT_CREATED", "entityType": "LIMIT", "entityId": format!("lim-{i}"),
                    "actorType": "SYSTEM", "afterState": { "value": i }, "runId": run_id }),
        )
        .await;
        mutate(
            app,
            &admin,
            "mutation($i: RecordSystemRecordInput!) { recordSystemRecord(input: $i) { recordId } }",
            json!({ "component": "WORKER", "eventType": "RESTART", "severity": "INFO",
                    "summary": format!("restart {i}"), "correlationId": run_id }),
        )
        .await;
    }
    mutate(
        app,
        &admin,
        "mutation($i: CreateExportInput!) { createExport(input: $i) { exportId } }",
        json!({ "scope": "RUN_BUNDLE", "format": "ZIP", "runId": "r0" }),
    )
    .await;
    ids
}

const LINKS: &str = r#"
query Links($first: Int) {
  traces(first: $first) { nodes { runId llmRun { runId recordId } } }
  auditEntries(first: $first, filter: { eventType: [LIMIT_CREATED] }) { nodes { runId llmRun { runId recordId } } }
  systemRecords(first: $first, filter: { scope: TENANT_ONLY }) { nodes { correlationId llmRun { runId recordId } } }
  logExports(first: $first) { nodes { runId llmRun { runId recordId } } }
}"#;

/// Checks every linked node of one list: the run it names, with the caller's record id.
fn check(list: &Value, name_field: &str, mine: &[(String, String)], what: &str) -> usize {
    let nodes = list["nodes"].as_array().expect("nodes");
    for node in nodes {
        let named = node[name_field].as_str().expect("a run id");
        let expected = mine.iter().find(|(run, _)| run == named).map(|(_, id)| id);
        match expected {
            Some(record) => assert_eq!(node["llmRun"]["recordId"], json!(record), "{what} {named}"),
            None => assert_eq!(node["llmRun"], Value::Null, "{what} {named}"),
        }
    }
    nodes.len()
}

async fn links_resolve_in_the_callers_tenant_and_batch(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let acme = write_tenant(&app, "acme", 12).await;
    // Globex has runs r0..r2 of its own (same run ids, other records) and no r3..r11.
    let globex = write_tenant(&app, "globex", 3).await;
    // A globex record correlated to a run only acme has: no link across tenants.
    let globex_admin = app.key("globex", Role::Admin).await;
    mutate(
        &app,
        &globex_admin,
        "mutation($i: RecordSystemRecordInput!) { recordSystemRecord(input: $i) { recordId } }",
        json!({ "component": "WORKER", "eventType": "RESTART", "severity": "INFO",
                "summary": "restart", "correlationId": "r5" }),
    )
    .await;
    let viewer = app.key("acme", Role::Viewer).await;
    let data = app.data(&viewer, LINKS, json!({ "first": 50 })).await;
    assert_eq!(check(&data["traces"], "runId", &acme, "trace"), 12);
    assert_eq!(check(&data["auditEntries"], "runId", &acme, "audit"), 12);
    assert_eq!(
        check(&data["systemRecords"], "correlationId", &acme, "system"),
        12
    );
    assert_eq!(check(&data["logExports"], "runId", &acme, "export"), 1);
    let globex_viewer = app.key("globex", Role::Viewer).await;
    let theirs = app
        .data(&globex_viewer, LINKS, json!({ "first": 50 }))
        .await;
    assert_eq!(
        check(&theirs["traces"], "runId", &globex, "globex trace"),
        3
    );
    assert_eq!(
        check(
            &theirs["systemRecords"],
            "correlationId",
            &globex,
            "globex system"
        ),
        4
    );
    let across = theirs["systemRecords"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["correlationId"] == "r5")
        .expect("the record naming r5");
    assert_eq!(across["llmRun"], Value::Null);
    assert_ne!(
        acme[0].1, globex[0].1,
        "the tenants' r0 are different records"
    );

    // The runs of a page load in one batched statement per list, whatever its size: four pages
    // of 12 links cost what four pages of 2 do (one per link would be 48 more). The fewest over
    // five requests, as a DataLoader batch window may split one batch in two under load.
    let statements = |first: i32| {
        let (app, viewer) = (&app, &viewer);
        async move {
            let mut fewest = u64::MAX;
            for _ in 0..5 {
                let before = app.state.sql.statements();
                app.data(viewer, LINKS, json!({ "first": first })).await;
                fewest = fewest.min(app.state.sql.statements() - before);
            }
            fewest
        }
    };
    let (small, large) = (statements(2).await, statements(12).await);
    eprintln!("SQL statements for the links: 2 per list → {small}, 12 per list → {large}");
    assert!(
        large <= small + 1,
        "the links' statements grow with the page: {small} → {large}"
    );
    assert!(
        large <= 10,
        "four pages with their runs took {large} statements"
    );
    app.stop().await;
}

crate::cases!(links_resolve_in_the_callers_tenant_and_batch);
