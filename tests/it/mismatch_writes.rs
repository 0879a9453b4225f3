//! The mismatch workflow: `reportMismatch`, `bulkReportMismatches`, `resolveMismatch`,
//! `linkMismatchIssue` — every state transition allowed and refused, roles, tenant isolation,
//! all-or-nothing batches and details stored as JSON — and the bulk changes over existing ids,
//! `bulkResolveMismatches`, `bulkLinkMismatchIssue` and `markMismatchesNotified`: all or
//! nothing, another tenant's id like an unknown one, limits, roles, already-changed ids left
//! alone, idempotency keys and the `traceMismatchResolved` events — and the optional webhook:
//! signed, retried, never in the request, marking the mismatch notified once accepted.

use logbook::auth::Role;
use serde_json::{json, Value};

use std::time::Duration;

use crate::subscriptions::Ws;
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
    with_traces(TestApp::spawn(backend).await).await
}

async fn with_traces(app: TestApp) -> TestApp {
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

const BULK_FIELDS: &str = "changedIds unchangedIds mismatches { mismatchId status issueUrl \
    notificationSent resolvedBy resolvedAt resolutionNote trace { traceId } }";

fn bulk_resolve_doc() -> String {
    format!(
        "mutation BR($ids: [ID!]!, $note: String, $key: String) {{
           bulkResolveMismatches(ids: $ids, note: $note, idempotencyKey: $key) {{ {BULK_FIELDS} }} }}"
    )
}

fn bulk_link_doc() -> String {
    format!(
        "mutation BL($ids: [ID!]!, $url: String!, $key: String) {{
           bulkLinkMismatchIssue(ids: $ids, issueUrl: $url, idempotencyKey: $key) {{ {BULK_FIELDS} }} }}"
    )
}

fn notified_doc() -> String {
    format!(
        "mutation MN($ids: [ID!]!, $key: String) {{
           markMismatchesNotified(ids: $ids, idempotencyKey: $key) {{ {BULK_FIELDS} }} }}"
    )
}

const STATES: &str = r#"{ traceMismatches(first: 500) { nodes {
  mismatchId status issueUrl notificationSent resolvedBy resolvedAt resolutionNote } } }"#;

/// Every mismatch the key's tenant has, by `mismatchId`, as a sorted JSON map: what "nothing
/// was written" compares.
async fn states(app: &TestApp, key: &str) -> Value {
    let data = app.data(key, STATES, json!({})).await;
    let mut map = serde_json::Map::new();
    for node in data["traceMismatches"]["nodes"].as_array().expect("nodes") {
        map.insert(
            node["mismatchId"].as_str().expect("id").to_owned(),
            node.clone(),
        );
    }
    Value::Object(map)
}

/// Reports `n` mismatches on `t1`/`t2` with `key`; their `mismatchId`s and global ids.
async fn report_many(app: &TestApp, key: &str, n: usize) -> (Vec<Value>, Vec<Value>) {
    let inputs: Vec<Value> = (0..n)
        .map(|i| input(if i % 2 == 0 { "t1" } else { "t2" }))
        .collect();
    let data = app
        .data(key, &bulk_doc(), json!({ "inputs": inputs }))
        .await;
    let rows = data["bulkReportMismatches"]
        .as_array()
        .expect("rows")
        .clone();
    (
        rows.iter().map(|r| r["mismatchId"].clone()).collect(),
        rows.iter().map(|r| r["id"].clone()).collect(),
    )
}

fn ids_of(result: &Value, list: &str) -> Vec<Value> {
    result[list].as_array().expect("ids").clone()
}

/// The refusals every bulk change shares: roles, the list's size, an unknown id, another
/// tenant's id (the same answer as an unknown one) and an id of another type; none writes.
async fn bulk_refusals(
    app: &TestApp,
    doc: &str,
    extra: Value,
    ids: &[Value],
    foreign: &Value,
    foreign_gid: &Value,
) {
    let viewer = app.key("acme", Role::Viewer).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let other_viewer = app.key("other", Role::Viewer).await;
    let vars = |ids: Vec<Value>| {
        let mut v = extra.clone();
        v["ids"] = json!(ids);
        v
    };
    let before = states(app, &viewer).await;
    let other_before = states(app, &other_viewer).await;

    for key in [&viewer, &ingest] {
        let body = app.gql(Some(key), doc, vars(ids.to_vec())).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    let body = app.gql(None, doc, vars(ids.to_vec())).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    // None, or more than 100 (even if they are repeats of valid ones).
    let too_many: Vec<Value> = (0..101).map(|i| ids[i % ids.len()].clone()).collect();
    for list in [Vec::new(), too_many] {
        let body = app.gql(Some(&operator), doc, vars(list)).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert_eq!(body["errors"][0]["extensions"]["field"], json!("ids"));
    }

    // One bad id anywhere: NOT_FOUND for the whole call, the same answer whether the id is
    // unknown or another tenant's (record id or global id), and nothing written.
    let unknown = json!("00000000-0000-4000-8000-000000000000");
    let unknown_body = {
        let mut list = ids.to_vec();
        list.push(unknown);
        app.gql(Some(&operator), doc, vars(list)).await
    };
    assert_eq!(error_code(&unknown_body), "NOT_FOUND", "{unknown_body}");
    assert_eq!(unknown_body["data"], Value::Null);
    let trace_gid = json!(logbook::ids::encode(logbook::ids::NodeKind::Trace, "t1").0);
    for bad in [foreign, foreign_gid, &trace_gid] {
        let mut list = ids.to_vec();
        list.insert(1, bad.clone());
        let body = app.gql(Some(&operator), doc, vars(list)).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{bad}: {body}");
        assert_eq!(
            body["errors"][0]["message"],
            unknown_body["errors"][0]["message"]
        );
        assert_eq!(body["data"], unknown_body["data"]);
    }
    assert_eq!(states(app, &viewer).await, before, "nothing written");
    assert_eq!(states(app, &other_viewer).await, other_before);
}

async fn bulk_resolve_is_all_or_nothing(backend: Backend) {
    let app = setup(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let admin = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let (ids, gids) = report_many(&app, &ingest, 6).await;
    let other_ingest = app.key("other", Role::Ingest).await;
    let foreign = report(&app, &other_ingest, input("t-other")).await;

    bulk_refusals(
        &app,
        &bulk_resolve_doc(),
        json!({ "note": "n" }),
        &ids[..3],
        &foreign["mismatchId"],
        &foreign["id"],
    )
    .await;
    let long_note = "x".repeat(4_001);
    let body = app
        .gql(
            Some(&operator),
            &bulk_resolve_doc(),
            json!({ "ids": ids[..2], "note": long_note }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], json!("note"));
    assert!(states(&app, &viewer)
        .await
        .as_object()
        .unwrap()
        .values()
        .all(|m| m["status"] == json!("OPEN")));

    // ids[0] is resolved first on its own; the bulk call leaves it as it was and reports it,
    // resolves the others (record or global id; a repeat counts once), in the order named.
    let first = app
        .data(
            &operator,
            &resolve_doc(),
            json!({ "id": ids[0], "note": "first" }),
        )
        .await["resolveMismatch"]
        .clone();
    let named = json!([ids[1], ids[0], gids[2], ids[1]]);
    let result = app
        .data(
            &admin,
            &bulk_resolve_doc(),
            json!({ "ids": named, "note": "bulk" }),
        )
        .await["bulkResolveMismatches"]
        .clone();
    assert_eq!(
        ids_of(&result, "changedIds"),
        vec![ids[1].clone(), ids[2].clone()]
    );
    assert_eq!(ids_of(&result, "unchangedIds"), vec![ids[0].clone()]);
    let rows = result["mismatches"].as_array().unwrap();
    let order: Vec<Value> = rows.iter().map(|m| m["mismatchId"].clone()).collect();
    assert_eq!(order, vec![ids[1].clone(), ids[0].clone(), ids[2].clone()]);
    assert!(rows.iter().all(|m| m["status"] == json!("RESOLVED")));
    assert_eq!(rows[0]["resolutionNote"], json!("bulk"));
    assert_eq!(rows[0]["trace"]["traceId"], json!("t2"));
    assert_ne!(rows[0]["resolvedBy"], first["resolvedBy"]);
    assert_eq!(rows[1]["resolutionNote"], json!("first"));
    assert_eq!(rows[1]["resolvedBy"], first["resolvedBy"]);
    assert_eq!(rows[1]["resolvedAt"], first["resolvedAt"]);
    let stored = states(&app, &viewer).await;
    assert_eq!(
        stored[ids[2].as_str().unwrap()]["resolutionNote"],
        json!("bulk")
    );
    assert_eq!(stored[ids[3].as_str().unwrap()]["status"], json!("OPEN"));

    // Nothing left to do: every id unchanged, no error, nothing rewritten.
    let again = app
        .data(
            &operator,
            &bulk_resolve_doc(),
            json!({ "ids": ids[..3], "note": "later" }),
        )
        .await["bulkResolveMismatches"]
        .clone();
    assert_eq!(ids_of(&again, "changedIds"), Vec::<Value>::new());
    assert_eq!(ids_of(&again, "unchangedIds").len(), 3);
    assert_eq!(states(&app, &viewer).await, stored);

    // An idempotency key: a duplicate gets the first answer (ids[3] reported as changed again),
    // another input under the same key is a conflict and writes nothing.
    let vars = json!({ "ids": [ids[3]], "key": "bulk-resolve-1" });
    let keyed = app.data(&operator, &bulk_resolve_doc(), vars.clone()).await;
    let replay = app.data(&operator, &bulk_resolve_doc(), vars).await;
    assert_eq!(keyed, replay);
    assert_eq!(
        ids_of(&replay["bulkResolveMismatches"], "changedIds"),
        vec![ids[3].clone()]
    );
    let body = app
        .gql(
            Some(&operator),
            &bulk_resolve_doc(),
            json!({ "ids": [ids[4]], "key": "bulk-resolve-1" }),
        )
        .await;
    assert_eq!(error_code(&body), "IDEMPOTENCY_CONFLICT");
    assert_eq!(
        states(&app, &viewer).await[ids[4].as_str().unwrap()]["status"],
        json!("OPEN")
    );

    // The other tenant's mismatch was never touched.
    let other_viewer = app.key("other", Role::Viewer).await;
    assert_eq!(
        node(&app, &other_viewer, &foreign["id"]).await["status"],
        json!("OPEN")
    );

    // 100 ids at once.
    let (hundred, _) = report_many(&app, &ingest, 100).await;
    let result = app
        .data(&operator, &bulk_resolve_doc(), json!({ "ids": hundred }))
        .await["bulkResolveMismatches"]
        .clone();
    assert_eq!(ids_of(&result, "changedIds"), hundred);
    let open = states(&app, &viewer)
        .await
        .as_object()
        .unwrap()
        .values()
        .filter(|m| m["status"] == json!("OPEN"))
        .count();
    assert_eq!(open, 2, "ids[4] and ids[5]");
}

async fn bulk_link_and_mark_notified(backend: Backend) {
    let app = setup(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let (ids, gids) = report_many(&app, &ingest, 5).await;
    let other_ingest = app.key("other", Role::Ingest).await;
    let foreign = report(&app, &other_ingest, input("t-other")).await;
    let url_a = "https://github.com/o/r/issues/1";
    let url_b = "https://tracker.example.com/PROJ-2";

    bulk_refusals(
        &app,
        &bulk_link_doc(),
        json!({ "url": url_a }),
        &ids[..3],
        &foreign["mismatchId"],
        &foreign["id"],
    )
    .await;
    bulk_refusals(
        &app,
        &notified_doc(),
        json!({}),
        &ids[..3],
        &foreign["mismatchId"],
        &foreign["id"],
    )
    .await;
    let long = format!("https://x.test/{}", "a".repeat(2_040));
    for bad in ["ftp://x/1", "not a url", "https://", long.as_str()] {
        let body = app
            .gql(
                Some(&operator),
                &bulk_link_doc(),
                json!({ "ids": ids[..2], "url": bad }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad}");
        assert_eq!(body["errors"][0]["extensions"]["field"], json!("issueUrl"));
    }
    assert!(states(&app, &viewer)
        .await
        .as_object()
        .unwrap()
        .values()
        .all(|m| m["issueUrl"].is_null() && m["notificationSent"] == json!(false)));

    // Linking works in either state and marks notified; the state does not move.
    app.data(&operator, &resolve_doc(), json!({ "id": ids[0] }))
        .await;
    let linked = app
        .data(
            &operator,
            &bulk_link_doc(),
            json!({ "ids": [ids[0], gids[1]], "url": url_a }),
        )
        .await["bulkLinkMismatchIssue"]
        .clone();
    assert_eq!(
        ids_of(&linked, "changedIds"),
        vec![ids[0].clone(), ids[1].clone()]
    );
    let rows = linked["mismatches"].as_array().unwrap();
    assert_eq!(rows[0]["status"], json!("RESOLVED"));
    assert_eq!(rows[1]["status"], json!("OPEN"));
    for row in rows {
        assert_eq!(row["issueUrl"], json!(url_a));
        assert_eq!(row["notificationSent"], json!(true));
    }
    // The same link again is left alone; a new link replaces the old one.
    let again = app
        .data(
            &operator,
            &bulk_link_doc(),
            json!({ "ids": [ids[0], ids[1], ids[2]], "url": url_a }),
        )
        .await["bulkLinkMismatchIssue"]
        .clone();
    assert_eq!(ids_of(&again, "changedIds"), vec![ids[2].clone()]);
    assert_eq!(
        ids_of(&again, "unchangedIds"),
        vec![ids[0].clone(), ids[1].clone()]
    );
    let relinked = app
        .data(
            &operator,
            &bulk_link_doc(),
            json!({ "ids": [ids[1]], "url": url_b }),
        )
        .await["bulkLinkMismatchIssue"]
        .clone();
    assert_eq!(relinked["mismatches"][0]["issueUrl"], json!(url_b));
    let stored = states(&app, &viewer).await;
    assert_eq!(stored[ids[0].as_str().unwrap()]["issueUrl"], json!(url_a));
    assert_eq!(stored[ids[1].as_str().unwrap()]["issueUrl"], json!(url_b));
    assert_eq!(stored[ids[3].as_str().unwrap()]["issueUrl"], Value::Null);

    // Marking notified: one way, leaves the link alone, already-notified ones unchanged.
    let vars = json!({ "ids": [ids[3], ids[0]], "key": "notified-1" });
    let marked = app.data(&operator, &notified_doc(), vars.clone()).await;
    let result = &marked["markMismatchesNotified"];
    assert_eq!(ids_of(result, "changedIds"), vec![ids[3].clone()]);
    assert_eq!(ids_of(result, "unchangedIds"), vec![ids[0].clone()]);
    assert_eq!(result["mismatches"][0]["notificationSent"], json!(true));
    assert_eq!(result["mismatches"][0]["issueUrl"], Value::Null);
    assert_eq!(result["mismatches"][1]["issueUrl"], json!(url_a));
    // Its idempotency key: the first answer again; another input is a conflict.
    assert_eq!(app.data(&operator, &notified_doc(), vars).await, marked);
    let body = app
        .gql(
            Some(&operator),
            &notified_doc(),
            json!({ "ids": [ids[4]], "key": "notified-1" }),
        )
        .await;
    assert_eq!(error_code(&body), "IDEMPOTENCY_CONFLICT");
    let stored = states(&app, &viewer).await;
    assert_eq!(
        stored[ids[4].as_str().unwrap()]["notificationSent"],
        json!(false)
    );
    assert_eq!(
        stored[ids[3].as_str().unwrap()]["notificationSent"],
        json!(true)
    );
    // Linking the same key's idempotency space: a bulk link under a used key conflicts too.
    let body = app
        .gql(
            Some(&operator),
            &bulk_link_doc(),
            json!({ "ids": [ids[4]], "url": url_a, "key": "notified-1" }),
        )
        .await;
    assert_eq!(error_code(&body), "IDEMPOTENCY_CONFLICT");

    // The other tenant's mismatch was never touched.
    let other_viewer = app.key("other", Role::Viewer).await;
    let theirs = node(&app, &other_viewer, &foreign["id"]).await;
    assert_eq!(theirs["issueUrl"], Value::Null);
    assert_eq!(theirs["notificationSent"], json!(false));
}

/// Every mismatch a bulk resolve resolves arrives on `traceMismatchResolved`, once; those it
/// left alone and another tenant's do not.
async fn bulk_resolutions_arrive_on_the_tail(backend: Backend) {
    let app = setup(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let (ids, _) = report_many(&app, &ingest, 4).await;
    let other_ingest = app.key("other", Role::Ingest).await;
    let other_operator = app.key("other", Role::Operator).await;
    let foreign = report(&app, &other_ingest, input("t-other")).await;
    // Resolved before anyone listens: not delivered.
    app.data(&operator, &resolve_doc(), json!({ "id": ids[0] }))
        .await;

    let tail =
        r#"subscription { traceMismatchResolved { cursor node { mismatchId resolutionNote } } }"#;
    let mut ws = Ws::with_key(&app, &viewer).await;
    ws.subscribe("resolved", tail, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // On PostgreSQL the announcement itself is observable (the process hears it back from
    // Redis or LISTEN/NOTIFY); without it the tail would still deliver, on its next tick.
    let announced = backend == Backend::Postgres;
    let heard = app.state.events.heard();
    app.data(
        &other_operator,
        &bulk_resolve_doc(),
        json!({ "ids": [foreign["mismatchId"]], "note": "theirs" }),
    )
    .await;
    if announced {
        heard_more_than(&app, heard).await;
    }
    let heard = app.state.events.heard();
    let result = app
        .data(
            &operator,
            &bulk_resolve_doc(),
            json!({ "ids": [ids[2], ids[0], ids[1]], "note": "bulk" }),
        )
        .await["bulkResolveMismatches"]
        .clone();
    if announced {
        heard_more_than(&app, heard).await;
    }
    assert_eq!(
        ids_of(&result, "changedIds"),
        vec![ids[2].clone(), ids[1].clone()]
    );
    let events = ws.take("resolved", 2).await;
    let mut got: Vec<Value> = events
        .iter()
        .map(|e| {
            let node = &e["traceMismatchResolved"]["node"];
            assert_eq!(node["resolutionNote"], json!("bulk"));
            node["mismatchId"].clone()
        })
        .collect();
    got.sort_by_key(|v| v.as_str().unwrap_or_default().to_owned());
    let mut want = vec![ids[1].clone(), ids[2].clone()];
    want.sort_by_key(|v| v.as_str().unwrap_or_default().to_owned());
    assert_eq!(got, want);
    ws.quiet().await;

    // A bulk call that changes nothing announces nothing.
    let heard = app.state.events.heard();
    app.data(&operator, &bulk_resolve_doc(), json!({ "ids": ids[..3] }))
        .await;
    ws.quiet().await;
    assert_eq!(app.state.events.heard(), heard);
    ws.close().await;
}

/// Waits until this process has heard more than `before` notifications from the shared bus.
async fn heard_more_than(app: &TestApp, before: u64) {
    for _ in 0..100 {
        if app.state.events.heard() > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no notification heard within 5 s");
}

/// A fake webhook receiver: the first `failures` POSTs answer 500 after `delay`; then 204.
struct FakeHook {
    failures: std::sync::atomic::AtomicUsize,
    delay: Duration,
    /// (headers, body) of every POST, in arrival order.
    received: std::sync::Mutex<Vec<(std::collections::HashMap<String, String>, String)>>,
}

async fn fake_hook_post(
    hook: actix_web::web::Data<FakeHook>,
    req: actix_web::HttpRequest,
    body: String,
) -> actix_web::HttpResponse {
    use std::sync::atomic::Ordering;
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    hook.received.lock().unwrap().push((headers, body));
    if hook
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        tokio::time::sleep(hook.delay).await;
        return actix_web::HttpResponse::InternalServerError().finish();
    }
    actix_web::HttpResponse::NoContent().finish()
}

const HOOK_SECRET: &str = "webhook-secret-0123456789";

fn expected_signature(timestamp: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn outbox(app: &TestApp) -> Vec<entity::mismatch_notifications::Model> {
    use sea_orm::EntityTrait;
    entity::mismatch_notifications::Entity::find()
        .all(app.db())
        .await
        .unwrap()
}

/// With `--mismatch-webhook-url`, each reported mismatch is POSTed once accepted: signed, retried
/// after a failure, never waited for by the report, and the mismatch is then marked notified.
async fn webhook_is_signed_retried_and_never_blocks(backend: Backend) {
    let hook = actix_web::web::Data::new(FakeHook {
        failures: 1.into(),
        delay: Duration::from_secs(2),
        received: Default::default(),
    });
    let fake = hook.clone();
    let (addr, handle) = crate::support::start_fake_endpoint(move |routes| {
        routes
            .app_data(fake.clone())
            .route("/hook", actix_web::web::post().to(fake_hook_post));
    });
    let app = with_traces(
        TestApp::spawn_with(backend, |c| {
            c.mismatch_webhook.url = Some(format!("http://{addr}/hook"));
            c.mismatch_webhook.secret = Some(HOOK_SECRET.to_owned());
            c.mismatch_webhook.poll_interval = Duration::from_millis(100);
            c.mismatch_webhook.retry_base = Duration::from_millis(300);
        })
        .await,
    )
    .await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;

    // The report answers while the endpoint is still stalling on its first (failing) delivery.
    let started = std::time::Instant::now();
    let m = report(&app, &ingest, input("t1")).await;
    let mut waited = 0;
    while hook.received.lock().unwrap().is_empty() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the report or the first attempt took {:?}",
        started.elapsed()
    );
    let early = app
        .data(&ingest, &report_doc(), json!({ "input": input("t2") }))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a second report waited for the endpoint: {:?}",
        started.elapsed()
    );
    let second = early["reportMismatch"].clone();

    // Both arrive, the first one retried after its 500; each then marked notified.
    let id = m["mismatchId"].as_str().unwrap().to_owned();
    let second_id = second["mismatchId"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let states = states(&app, &viewer).await;
        if states[&id]["notificationSent"] == json!(true)
            && states[&second_id]["notificationSent"] == json!(true)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states = states(&app, &viewer).await;
    assert_eq!(states[&id]["notificationSent"], json!(true), "{states}");
    assert_eq!(states[&second_id]["notificationSent"], json!(true));
    let received = hook.received.lock().unwrap().clone();
    let for_first: Vec<_> = received
        .iter()
        .filter(|(h, _)| h["x-logbook-delivery"] == id)
        .collect();
    assert_eq!(for_first.len(), 2, "one failed attempt, one accepted");
    assert_eq!(received.len(), 3, "{received:#?}");
    for (headers, body) in &received {
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-logbook-event"], "trace_mismatch.reported");
        assert_eq!(
            headers["x-logbook-signature"],
            expected_signature(&headers["x-logbook-timestamp"], body),
            "signed with the secret"
        );
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["event"], json!("trace_mismatch.reported"));
        assert_eq!(body["tenantId"], json!("acme"));
        assert_eq!(body["deliveryId"], json!(headers["x-logbook-delivery"]));
        assert_eq!(body["mismatch"]["mismatchId"], body["deliveryId"]);
        assert_eq!(body["mismatch"]["details"], input("t1")["details"]);
    }
    let (_, first_body) = for_first[0];
    let first_body: Value = serde_json::from_str(first_body).unwrap();
    assert_eq!(first_body["mismatch"]["id"], m["id"]);
    assert_eq!(first_body["mismatch"]["traceId"], json!("t1"));
    assert_ne!(
        expected_signature(&for_first[0].0["x-logbook-timestamp"], "{}"),
        for_first[0].0["x-logbook-signature"]
    );
    let rows = outbox(&app).await;
    assert_eq!(rows.len(), 2);
    let row = rows.iter().find(|r| r.mismatch_id == id).unwrap();
    assert_eq!(row.attempts, 2);
    assert!(row.delivered_at_ms.is_some());
    assert_eq!(row.last_error, None);

    // A bulk report queues one delivery per mismatch.
    let data = app
        .data(
            &ingest,
            &bulk_doc(),
            json!({ "inputs": [input("t1"), input("t2")] }),
        )
        .await;
    assert_eq!(data["bulkReportMismatches"].as_array().unwrap().len(), 2);
    for _ in 0..100 {
        if hook.received.lock().unwrap().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hook.received.lock().unwrap().len(), 5);
    assert_eq!(outbox(&app).await.len(), 4);
    handle.stop(false).await;
}

/// Without a webhook URL nothing is queued and nothing marks a mismatch notified.
async fn no_webhook_queues_nothing(backend: Backend) {
    let app = setup(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let m = report(&app, &ingest, input("t1")).await;
    assert_eq!(m["notificationSent"], json!(false));
    assert!(outbox(&app).await.is_empty());
}

crate::cases!(
    report_roles_inputs_and_json_details,
    resolve_and_link_transitions,
    cross_tenant_resolve_and_link_are_not_found,
    bulk_report_is_all_or_nothing,
    report_with_idempotency_key_writes_once,
    bulk_resolve_is_all_or_nothing,
    bulk_link_and_mark_notified,
    bulk_resolutions_arrive_on_the_tail,
    webhook_is_signed_retried_and_never_blocks,
    no_webhook_queues_nothing,
);
