//! `llmRuns` and `llmRun`: keyset paging both ways under concurrent inserts, filters with their
//! `totalCount`, `asOf`, cursors bound to their filter, bad arguments.

use std::collections::HashSet;

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, insert_runs, make_runs, Backend, TestApp};

const PAGE: &str = r#"
query Page($filter: LlmRunFilter, $first: Int, $after: String, $last: Int, $before: String, $asOf: DateTime) {
  llmRuns(filter: $filter, first: $first, after: $after, last: $last, before: $before, asOf: $asOf) {
    totalCount
    edges { cursor node { id recordId runId executionStatus createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"#;

fn record_ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["recordId"].as_str().expect("id").to_owned())
        .collect()
}

/// Pages the whole list forward (or backward) with `size`-row pages; returns ids in list order.
async fn walk(
    app: &TestApp,
    key: &str,
    size: i32,
    forward: bool,
    filter: Value,
    as_of: Value,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let vars = if forward {
            json!({ "filter": filter, "first": size, "after": cursor, "asOf": as_of })
        } else {
            json!({ "filter": filter, "last": size, "before": cursor, "asOf": as_of })
        };
        let data = app.data(key, PAGE, vars).await;
        let connection = &data["llmRuns"];
        let mut ids = record_ids(connection);
        let info = &connection["pageInfo"];
        if forward {
            seen.append(&mut ids);
            if !info["hasNextPage"].as_bool().expect("bool") {
                break;
            }
            cursor = info["endCursor"].as_str().map(str::to_owned);
        } else {
            ids.append(&mut seen);
            seen = ids;
            if !info["hasPreviousPage"].as_bool().expect("bool") {
                break;
            }
            cursor = info["startCursor"].as_str().map(str::to_owned);
        }
        assert!(seen.len() < 10_000, "paging does not terminate");
    }
    seen
}

async fn paging_never_skips_or_repeats_under_concurrent_inserts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let existing = make_runs("acme", "old", 150, fixed_time());
    insert_runs(app.db(), &existing).await;
    let expected: Vec<String> = {
        let mut rows: Vec<_> = existing
            .iter()
            .map(|r| (r.created_at, r.id.clone()))
            .collect();
        rows.sort_by(|a, b| b.cmp(a));
        rows.into_iter().map(|(_, id)| id).collect()
    };

    // A writer inserting new runs the whole time both walks run.
    let db = app.db().clone();
    let writer = tokio::spawn(async move {
        for batch in 0..30 {
            let runs = make_runs("acme", &format!("new{batch}"), 3, logbook::scalars::now());
            insert_runs(&db, &runs).await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    for forward in [true, false] {
        let seen = walk(&app, &key, 7, forward, Value::Null, Value::Null).await;
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a row was repeated (forward={forward})"
        );
        let old: Vec<String> = seen
            .iter()
            .filter(|id| id.starts_with("old-"))
            .cloned()
            .collect();
        assert_eq!(
            old, expected,
            "pre-existing rows skipped or out of order (forward={forward})"
        );
    }
    writer.await.expect("writer");
    app.stop().await;
}

async fn filters_total_count_and_as_of(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let runs = make_runs("acme", "r", 60, fixed_time());
    insert_runs(app.db(), &runs).await;
    let _ = app.key("other", Role::Viewer).await;
    insert_runs(app.db(), &make_runs("other", "x", 10, fixed_time())).await;

    let window_start = fixed_time() - chrono::Duration::seconds(30);
    let filter = json!({ "status": ["FAILED", "TIMEOUT"], "provider": "openai", "createdAfter": logbook::scalars::format_utc(window_start) });
    let expected: Vec<&str> = runs
        .iter()
        .filter(|r| {
            matches!(r.execution_status.as_str(), "FAILED" | "TIMEOUT")
                && r.provider == "openai"
                && r.created_at >= window_start
        })
        .map(|r| r.id.as_str())
        .collect();
    assert!(!expected.is_empty());
    let data = app
        .data(&key, PAGE, json!({ "filter": filter, "first": 5 }))
        .await;
    assert_eq!(
        data["llmRuns"]["totalCount"],
        json!(expected.len()),
        "totalCount uses the page's filter"
    );
    let all = walk(&app, &key, 5, true, filter.clone(), Value::Null).await;
    let mut want: Vec<&str> = expected.clone();
    want.sort_by(|a, b| b.cmp(a));
    let mut got: Vec<&str> = all.iter().map(String::as_str).collect();
    got.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, want);

    // asOf hides rows recorded later, in the page and in totalCount.
    let as_of = fixed_time() - chrono::Duration::seconds(40);
    let visible = runs.iter().filter(|r| r.created_at <= as_of).count();
    let data = app
        .data(
            &key,
            PAGE,
            json!({ "first": 100, "asOf": logbook::scalars::format_utc(as_of) }),
        )
        .await;
    assert_eq!(data["llmRuns"]["totalCount"], json!(visible));
    assert_eq!(record_ids(&data["llmRuns"]).len(), visible);

    // isSynthetic and runId filters.
    let data = app
        .data(
            &key,
            PAGE,
            json!({ "filter": { "isSynthetic": true }, "first": 100 }),
        )
        .await;
    assert_eq!(
        data["llmRuns"]["totalCount"],
        json!(runs.iter().filter(|r| r.is_synthetic).count())
    );
    let data = app
        .data(&key, PAGE, json!({ "filter": { "runId": "r-run-00007" } }))
        .await;
    assert_eq!(record_ids(&data["llmRuns"]), vec!["r-rec-00007".to_owned()]);
    app.stop().await;
}

async fn bad_cursors_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    insert_runs(app.db(), &make_runs("acme", "r", 20, fixed_time())).await;
    let data = app.data(&key, PAGE, json!({ "first": 5 })).await;
    let cursor = data["llmRuns"]["pageInfo"]["endCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();

    // The same cursor with another filter.
    let body = app
        .gql(
            Some(&key),
            PAGE,
            json!({ "first": 5, "after": cursor, "filter": { "provider": "openai" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR", "{body:#}");
    // With another asOf.
    let body = app
        .gql(
            Some(&key),
            PAGE,
            json!({ "first": 5, "after": cursor, "asOf": "2030-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");
    // Forged: one character changed.
    let mut forged: Vec<char> = cursor.chars().collect();
    let middle = forged.len() / 2;
    forged[middle] = if forged[middle] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let body = app
        .gql(Some(&key), PAGE, json!({ "first": 5, "after": forged }))
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");
    // Garbage, and a cursor used as `before`.
    for garbage in ["", "not-a-cursor", "%%%", "AAAA"] {
        let body = app
            .gql(Some(&key), PAGE, json!({ "first": 5, "after": garbage }))
            .await;
        assert_eq!(error_code(&body), "BAD_CURSOR", "{garbage:?}");
        let body = app
            .gql(Some(&key), PAGE, json!({ "last": 5, "before": garbage }))
            .await;
        assert_eq!(error_code(&body), "BAD_CURSOR", "{garbage:?}");
    }
    // The genuine cursor still works.
    let data = app
        .data(&key, PAGE, json!({ "first": 5, "after": cursor }))
        .await;
    assert_eq!(record_ids(&data["llmRuns"]).len(), 5);
    app.stop().await;
}

async fn bad_page_arguments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    for (vars, field) in [
        (json!({ "first": 0 }), "first"),
        (json!({ "first": 101 }), "first"),
        (json!({ "first": -1 }), "first"),
        (json!({ "last": 101 }), "last"),
        (json!({ "first": 5, "last": 5 }), "last"),
    ] {
        let body = app.gql(Some(&key), PAGE, vars.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{vars}: {body:#}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"],
            json!(field),
            "{vars}"
        );
    }
    let body = app.gql(Some(&key), PAGE, json!({ "first": 101 })).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("100"),
        "names the limit"
    );
    // Defaults: 50 rows.
    insert_runs(app.db(), &make_runs("acme", "r", 60, fixed_time())).await;
    let data = app.data(&key, PAGE, json!({})).await;
    assert_eq!(record_ids(&data["llmRuns"]).len(), 50);
    assert_eq!(data["llmRuns"]["pageInfo"]["hasNextPage"], json!(true));
    assert_eq!(data["llmRuns"]["pageInfo"]["hasPreviousPage"], json!(false));
    app.stop().await;
}

async fn lookup_by_run_id_and_node(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let runs = make_runs("acme", "r", 3, fixed_time());
    insert_runs(app.db(), &runs).await;
    let query = "query($id: String!) { llmRun(runId: $id) { id runId model provider inputTokens outputTokens costCents executionStatus source isSynthetic startedAt completedAt createdAt traceId } }";
    let data = app.data(&key, query, json!({ "id": "r-run-00001" })).await;
    let run = &data["llmRun"];
    assert_eq!(run["runId"], "r-run-00001");
    assert_eq!(run["model"], "gpt-4o");
    assert_eq!(run["inputTokens"], 101);
    assert_eq!(run["executionStatus"], "FAILED");
    assert_eq!(
        run["createdAt"],
        json!(logbook::scalars::format_utc(runs[1].created_at))
    );
    assert!(run["createdAt"].as_str().expect("time").ends_with('Z'));

    let node = app
        .data(
            &key,
            "query($id: ID!) { node(id: $id) { id ... on LlmRun { runId } } }",
            json!({ "id": run["id"] }),
        )
        .await;
    assert_eq!(node["node"]["runId"], "r-run-00001");
    let nodes = app
        .data(
            &key,
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            json!({ "ids": [run["id"], "bogus"] }),
        )
        .await;
    assert_eq!(nodes["nodes"][0]["id"], run["id"]);
    assert_eq!(nodes["nodes"][1], Value::Null);

    let body = app.gql(Some(&key), query, json!({ "id": "missing" })).await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    app.stop().await;
}

crate::cases!(
    paging_never_skips_or_repeats_under_concurrent_inserts,
    filters_total_count_and_as_of,
    bad_cursors_are_refused,
    bad_page_arguments,
    lookup_by_run_id_and_node,
);
