//! The mismatch workflow: `reportMismatch`, `bulkReportMismatches`, `resolveMismatch`,
//! `linkMismatchIssue` — every state transition allowed and refused, roles, tenant isolation,
//! all-or-nothing batches and details stored as JSON.

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, Backend, TestApp};
use crate::traces_reads::{insert_traces, trace};

const FIELDS: &str = "id mismatchId traceId stepIndex reason expectedHash actualHash details \
    notificationSent issueUrl status resolvedAt resolvedBy resolutionNote reportedBy createdAt \
    trace { traceId }";

fn report_doc() -> String {
    format!(
        "mutation R($input: ReportMismatchInput!, $key: String) {{
           reportMismatch(input: $input, idempotencyKey: $key) {{ {FIELDS} }} }}"
    )
}

fn resolve_doc() -> String {
    format!(
        "mutation V($id: ID!, $note: String) {{ resolveMismatch(id: $id, note: $note) {{ {FIELDS} }} }}"
    )
}

fn link_doc() -> String {
    format!(
        "mutation L($id: ID!, $url: String!) {{ linkMismatchIssue(id: $id, issueUrl: $url) {{ {FIELDS} }} }}"
    )
}

fn bulk_doc() -> String {
    format!(
        "mutation B($inputs: [ReportMismatchInput!]!) {{ bulkReportMismatches(inputs: $inputs) {{ {FIELDS} }} }}"
    )
}

const GET: &str = r#"query G($id: ID!) { node(id: $id) { ... on TraceMismatch {
  mismatchId status details issueUrl notificationSent resolvedBy resolvedAt resolutionNote } } }"#;

const COUNT: &str = r#"{ traceMismatches(first: 100) { totalCount nodes { mismatchId } } }"#;

async fn setup(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    let t0 = fixed_time();
    let mut archived = trace("acme", "t-arch", "run-arch", t0);
    archived.archived_at = Some(t0);
    insert_traces(
        app.db(),
        vec![
            trace("acme", "t1", "run-1", t0),
            trace("acme", "t2", "run-2", t0),
            archived,
            trace("other", "t-other", "run-o", t0),
        ],
    )
    .await;
    app
}

fn input(trace_id: &str) -> Value {
    json!({
        "traceId": trace_id,
        "stepIndex": 3,
        "reason": "output_mismatch",
        "expectedHash": "aaaa1111",
        "actualHash": "bbbb2222",
        "details": {"model": "gpt-4o", "diff": [1, 2.5, null], "nested": {"é": "ü", "deep": {"x": true}}}
    })
}

async fn report(app: &TestApp, key: &str, input: Value) -> Value {
    app.data(key, &report_doc(), json!({ "input": input }))
        .await["reportMismatch"]
        .clone()
}

async fn node(app: &TestApp, key: &str, id: &Value) -> Value {
    app.data(key, GET, json!({ "id": id })).await["node"].clone()
}

async fn total(app: &TestApp, key: &str) -> i64 {
    app.data(key, COUNT, json!({})).await["traceMismatches"]["totalCount"]
        .as_i64()
        .expect("totalCount")
}

async fn report_roles_inputs_and_json_details(backend: Backend) {
    let app = setup(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let admin = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;

    // INGEST, OPERATOR and ADMIN may report; the details come back as the same JSON.
    let m = report(&app, &ingest, input("t1")).await;
    assert_eq!(m["status"], json!("OPEN"));
    assert_eq!(m["traceId"], json!("t1"));
    assert_eq!(m["stepIndex"], json!(3));
    assert_eq!(m["details"], input("t1")["details"]);
    assert_eq!(m["notificationSent"], json!(false));
    assert_eq!(m["resolvedAt"], Value::Null);
    assert!(m["reportedBy"]
        .as_str()
        .is_some_and(|r| r.starts_with("key:")));
    assert_eq!(m["trace"], json!({ "traceId": "t1" }));
    let stored = node(&app, &viewer, &m["id"]).await;
    assert_eq!(stored["details"], input("t1")["details"]);
    assert!(report(&app, &operator, input("t2")).await["mismatchId"].is_string());
    let minimal = json!({ "traceId": "t1", "reason": "hash_mismatch" });
    let m = report(&app, &admin, minimal.clone()).await;
    assert_eq!(m["details"], json!({}));
    assert_eq!(m["stepIndex"], Value::Null);
    assert_eq!(total(&app, &viewer).await, 3);
    if backend == Backend::Postgres {
        // Stored as real JSON, not a language-specific repr string (docs/decisions.md D20).
        let n = app
            .raw(
                "SELECT 1 FROM aos_trace_mismatches WHERE details->'nested'->'deep'->>'x' = 'true'",
            )
            .await
            .expect("jsonb query");
        assert_eq!(n, 2, "both reports with nested details");
    }

    // VIEWER may not report; nothing is written.
    let body = app
        .gql(
            Some(&viewer),
            &report_doc(),
            json!({ "input": input("t1") }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let body = app
        .gql(None, &report_doc(), json!({ "input": input("t1") }))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    // The trace must be one of the tenant's live traces; another tenant's looks missing.
    let mut messages = Vec::new();
    for trace_id in ["nope", "t-other", "t-arch"] {
        let body = app
            .gql(
                Some(&ingest),
                &report_doc(),
                json!({ "input": input(trace_id) }),
            )
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{trace_id}");
        messages.push(body["errors"][0]["message"].clone());
    }
    assert_eq!(messages[0], messages[1]);

    // Bad input names the field.
    for (field, value, path) in [
        ("stepIndex", json!(-1), "input.stepIndex"),
        ("reason", json!(""), "input.reason"),
        ("details", json!([1, 2]), "input.details"),
        ("details", json!("text"), "input.details"),
        ("expectedHash", json!(""), "input.expectedHash"),
        ("traceId", json!(""), "input.traceId"),
    ] {
        let mut bad = input("t1");
        bad[field] = value;
        let body = app
            .gql(Some(&ingest), &report_doc(), json!({ "input": bad }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{field}");
        assert_eq!(body["errors"][0]["extensions"]["field"], json!(path));
    }
    assert_eq!(total(&app, &viewer).await, 3);
}

async fn resolve_and_link_transitions(backend: Backend) {
    let app = setup(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let admin = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let m = report(&app, &ingest, input("t1")).await;
    let id = m["mismatchId"].clone();

    // Neither VIEWER nor INGEST may resolve or link; nothing changes.
    for key in [&viewer, &ingest] {
        let body = app
            .gql(Some(key), &resolve_doc(), json!({ "id": id, "note": "x" }))
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let body = app
            .gql(
                Some(key),
                &link_doc(),
                json!({ "id": id, "url": "https://github.com/o/r/issues/1" }),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    let stored = node(&app, &viewer, &m["id"]).await;
    assert_eq!(stored["status"], json!("OPEN"));
    assert_eq!(stored["issueUrl"], Value::Null);

    // OPEN: linking is allowed and marks the mismatch notified; the state stays OPEN.
    let linked = app
        .data(
            &operator,
            &link_doc(),
            json!({ "id": id, "url": "https://github.com/o/r/issues/7" }),
        )
        .await["linkMismatchIssue"]
        .clone();
    assert_eq!(linked["issueUrl"], json!("https://github.com/o/r/issues/7"));
    assert_eq!(linked["notificationSent"], json!(true));
    assert_eq!(linked["status"], json!("OPEN"));
    let body = app
        .gql(
            Some(&operator),
            &link_doc(),
            json!({ "id": id, "url": "not a url" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], json!("issueUrl"));

    // OPEN → RESOLVED: the note, resolver and time are stored.
    let resolved = app
        .data(
            &operator,
            &resolve_doc(),
            json!({ "id": id, "note": "provider nondeterminism" }),
        )
        .await["resolveMismatch"]
        .clone();
    assert_eq!(resolved["status"], json!("RESOLVED"));
    assert_eq!(resolved["resolutionNote"], json!("provider nondeterminism"));
    assert!(resolved["resolvedBy"]
        .as_str()
        .is_some_and(|r| r.starts_with("key:")));
    assert!(resolved["resolvedAt"].is_string());
    assert_eq!(
        node(&app, &viewer, &m["id"]).await["resolutionNote"],
        json!("provider nondeterminism")
    );

    // RESOLVED → RESOLVED is refused, even for ADMIN; the first resolution stays.
    let body = app
        .gql(
            Some(&admin),
            &resolve_doc(),
            json!({ "id": id, "note": "again" }),
        )
        .await;
    assert_eq!(error_code(&body), "INVALID_TRANSITION");
    let stored = node(&app, &viewer, &m["id"]).await;
    assert_eq!(stored["resolvedBy"], resolved["resolvedBy"]);
    assert_eq!(stored["resolvedAt"], resolved["resolvedAt"]);
    assert_eq!(stored["resolutionNote"], json!("provider nondeterminism"));

    // RESOLVED: linking is still allowed (orthogonal) and replaces the link.
    let relinked = app
        .data(
            &admin,
            &link_doc(),
            json!({ "id": id, "url": "https://tracker.example.com/PROJ-12" }),
        )
        .await["linkMismatchIssue"]
        .clone();
    assert_eq!(relinked["status"], json!("RESOLVED"));
    assert_eq!(
        relinked["issueUrl"],
        json!("https://tracker.example.com/PROJ-12")
    );
    assert_eq!(relinked["resolutionNote"], json!("provider nondeterminism"));

    // The global id works too, and a resolution without a note is fine.
    let other = report(&app, &ingest, input("t2")).await;
    let resolved = app
        .data(&admin, &resolve_doc(), json!({ "id": other["id"] }))
        .await["resolveMismatch"]
        .clone();
    assert_eq!(resolved["status"], json!("RESOLVED"));
    assert_eq!(resolved["resolutionNote"], Value::Null);
    assert_eq!(resolved["mismatchId"], other["mismatchId"]);
}

async fn cross_tenant_resolve_and_link_are_not_found(backend: Backend) {
    let app = setup(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let intruder = app.key("other", Role::Admin).await;
    let m = report(&app, &ingest, input("t1")).await;
    let id = m["mismatchId"].clone();

    let missing = app
        .gql(
            Some(&intruder),
            &resolve_doc(),
            json!({ "id": "00000000-0000-4000-8000-000000000000" }),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    for id in [&id, &m["id"]] {
        let body = app
            .gql(
                Some(&intruder),
                &resolve_doc(),
                json!({ "id": id, "note": "mine" }),
            )
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        assert_eq!(
            body["errors"][0]["message"],
            missing["errors"][0]["message"]
        );
        let body = app
            .gql(
                Some(&intruder),
                &link_doc(),
                json!({ "id": id, "url": "https://evil.example.com/1" }),
            )
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND");
        assert_eq!(
            body["errors"][0]["message"],
            missing["errors"][0]["message"]
        );
    }
    // Nothing changed.
    let stored = node(&app, &viewer, &m["id"]).await;
    assert_eq!(stored["status"], json!("OPEN"));
    assert_eq!(stored["issueUrl"], Value::Null);
    assert_eq!(stored["notificationSent"], json!(false));
    assert_eq!(stored["resolvedBy"], Value::Null);
    // And the other tenant sees none of acme's mismatches.
    assert_eq!(total(&app, &intruder).await, 0);
}

async fn bulk_report_is_all_or_nothing(backend: Backend) {
    let app = setup(backend).await;
    let operator = app.key("acme", Role::Operator).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let good = |i: i64| {
        let mut v = input(if i % 2 == 0 { "t1" } else { "t2" });
        v["stepIndex"] = json!(i);
        v
    };

    // One item naming a trace the tenant does not have: nothing is written.
    for bad_trace in ["missing", "t-other", "t-arch"] {
        let mut inputs: Vec<Value> = (0..5).map(good).collect();
        inputs[3]["traceId"] = json!(bad_trace);
        let body = app
            .gql(Some(&operator), &bulk_doc(), json!({ "inputs": inputs }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad_trace}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"],
            json!("inputs.3.traceId")
        );
    }
    // One invalid item: named, nothing written.
    let mut inputs: Vec<Value> = (0..5).map(good).collect();
    inputs[2]["reason"] = json!("");
    let body = app
        .gql(Some(&operator), &bulk_doc(), json!({ "inputs": inputs }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        json!("inputs.2.reason")
    );
    assert_eq!(total(&app, &viewer).await, 0);

    // Too many, or none.
    let inputs: Vec<Value> = (0..101).map(good).collect();
    let body = app
        .gql(Some(&operator), &bulk_doc(), json!({ "inputs": inputs }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], json!("inputs"));
    let body = app
        .gql(Some(&operator), &bulk_doc(), json!({ "inputs": [] }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let viewer_body = app
        .gql(Some(&viewer), &bulk_doc(), json!({ "inputs": [good(0)] }))
        .await;
    assert_eq!(error_code(&viewer_body), "FORBIDDEN");
    assert_eq!(total(&app, &viewer).await, 0);

    // All valid: every item written, returned in input order, details intact.
    let inputs: Vec<Value> = (0..100).map(good).collect();
    let data = app
        .data(&operator, &bulk_doc(), json!({ "inputs": inputs }))
        .await;
    let rows = data["bulkReportMismatches"].as_array().expect("list");
    assert_eq!(rows.len(), 100);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["stepIndex"], json!(i));
        assert_eq!(row["traceId"], inputs[i]["traceId"]);
        assert_eq!(row["details"], inputs[i]["details"]);
        assert_eq!(row["status"], json!("OPEN"));
    }
    assert_eq!(total(&app, &viewer).await, 100);
}

async fn report_with_idempotency_key_writes_once(backend: Backend) {
    let app = setup(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let vars = json!({ "input": input("t1"), "key": "report-1" });
    let first = app.data(&ingest, &report_doc(), vars.clone()).await;
    let again = app.data(&ingest, &report_doc(), vars).await;
    assert_eq!(
        first["reportMismatch"]["mismatchId"],
        again["reportMismatch"]["mismatchId"]
    );
    assert_eq!(total(&app, &viewer).await, 1);
    let body = app
        .gql(
            Some(&ingest),
            &report_doc(),
            json!({ "input": input("t2"), "key": "report-1" }),
        )
        .await;
    assert_eq!(error_code(&body), "IDEMPOTENCY_CONFLICT");
    assert_eq!(total(&app, &viewer).await, 1);
}

crate::cases!(
    report_roles_inputs_and_json_details,
    resolve_and_link_transitions,
    cross_tenant_resolve_and_link_are_not_found,
    bulk_report_is_all_or_nothing,
    report_with_idempotency_key_writes_once,
);
