//! `traceMismatches`: status and window filters with `totalCount` and the open/resolved summary,
//! paging, the 500 ceiling, the nested `trace`, `node(id)` and tenant isolation.

use chrono::{DateTime, Duration, Utc};
use entity::aos_trace_mismatches;
use logbook::auth::Role;
use sea_orm::{EntityTrait, IntoActiveModel};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, Backend, TestApp};
use crate::traces_reads::{insert_traces, trace};

pub fn mismatch(
    tenant: &str,
    id: &str,
    trace_id: &str,
    created_at: DateTime<Utc>,
    resolved: bool,
) -> aos_trace_mismatches::Model {
    aos_trace_mismatches::Model {
        id: id.to_owned(),
        trace_id: trace_id.to_owned(),
        tenant_id: tenant.to_owned(),
        reported_by: Some("alice".into()),
        step_index: Some(3),
        reason: "output_mismatch".into(),
        expected_hash: Some("aaaa".into()),
        actual_hash: Some("bbbb".into()),
        details: json!({"note": "diverged"}),
        notification_sent: resolved,
        issue_url: resolved.then(|| "https://github.com/o/r/issues/1".into()),
        resolved,
        resolved_at: resolved.then_some(created_at + Duration::seconds(5)),
        resolved_by: resolved.then(|| "bob".into()),
        resolution_note: resolved.then(|| "flaky provider".into()),
        created_at,
    }
}

const LIST: &str = r#"
query List($filter: TraceMismatchFilter, $first: Int, $after: String, $asOf: DateTime) {
  traceMismatches(filter: $filter, first: $first, after: $after, asOf: $asOf) {
    totalCount
    summary { open resolved }
    nodes { id mismatchId traceId status trace { traceId } }
    pageInfo { hasNextPage endCursor }
  }
}"#;

fn ids(connection: &Value) -> Vec<String> {
    connection["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["mismatchId"].as_str().expect("id").to_owned())
        .collect()
}

async fn list_filters_summary_and_isolation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let other_key = app.key("other", Role::Viewer).await;
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
    // m00 newest … m09 oldest, one hour apart; every third resolved; m00–m04 on t1.
    let mut rows: Vec<_> = (0..10)
        .map(|i| {
            let trace_id = if i < 5 { "t1" } else { "t2" };
            mismatch(
                "acme",
                &format!("m{i:02}"),
                trace_id,
                t0 - Duration::hours(i),
                i % 3 == 0,
            )
        })
        .collect();
    rows.push(mismatch(
        "acme",
        "m-arch",
        "t-arch",
        t0 - Duration::hours(20),
        false,
    ));
    // Another tenant's mismatch, even one naming acme's trace, stays invisible.
    rows.push(mismatch("other", "x1", "t1", t0, false));
    rows.push(mismatch("other", "x2", "t-other", t0, true));
    aos_trace_mismatches::Entity::insert_many(
        rows.into_iter().map(IntoActiveModel::into_active_model),
    )
    .exec_without_returning(app.db())
    .await
    .expect("insert mismatches");

    let data = app.data(&key, LIST, json!({ "first": 100 })).await;
    let list = &data["traceMismatches"];
    assert_eq!(list["totalCount"], json!(11));
    assert_eq!(list["summary"], json!({ "open": 7, "resolved": 4 }));
    let mut want: Vec<String> = (0..10).map(|i| format!("m{i:02}")).collect();
    want.push("m-arch".into());
    assert_eq!(ids(list), want);
    // The nested trace resolves for live traces only.
    assert_eq!(list["nodes"][0]["trace"], json!({ "traceId": "t1" }));
    assert_eq!(list["nodes"][10]["trace"], Value::Null);
    assert_eq!(list["nodes"][0]["status"], json!("RESOLVED"));
    assert_eq!(list["nodes"][1]["status"], json!("OPEN"));

    // Status filter: the summary still counts both states of the window.
    let data = app
        .data(
            &key,
            LIST,
            json!({ "first": 100, "filter": { "status": "OPEN" } }),
        )
        .await;
    let list = &data["traceMismatches"];
    assert_eq!(list["totalCount"], json!(7));
    assert_eq!(list["summary"], json!({ "open": 7, "resolved": 4 }));
    assert!(list["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .all(|n| n["status"] == json!("OPEN")));

    // Window (inclusive bounds) and trace filters.
    let window = json!({
        "createdAfter": logbook::scalars::format_utc(t0 - Duration::hours(6)),
        "createdBefore": logbook::scalars::format_utc(t0 - Duration::hours(2)),
    });
    let data = app
        .data(&key, LIST, json!({ "first": 100, "filter": window }))
        .await;
    let list = &data["traceMismatches"];
    assert_eq!(ids(list), vec!["m02", "m03", "m04", "m05", "m06"]);
    assert_eq!(list["summary"], json!({ "open": 3, "resolved": 2 }));
    let mut resolved_window = window.clone();
    resolved_window["status"] = json!("RESOLVED");
    resolved_window["traceId"] = json!("t1");
    let data = app
        .data(
            &key,
            LIST,
            json!({ "first": 100, "filter": resolved_window }),
        )
        .await;
    let list = &data["traceMismatches"];
    assert_eq!(ids(list), vec!["m03"]);
    assert_eq!(list["totalCount"], json!(1));
    assert_eq!(list["summary"], json!({ "open": 2, "resolved": 1 }));

    // Paging: 4 + 4 + 3, no repeats; asOf.
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let data = app
            .data(&key, LIST, json!({ "first": 4, "after": cursor }))
            .await;
        let list = &data["traceMismatches"];
        seen.extend(ids(list));
        if !list["pageInfo"]["hasNextPage"].as_bool().expect("bool") {
            break;
        }
        cursor = list["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, want);
    let data = app
        .data(
            &key,
            LIST,
            json!({ "first": 100, "asOf": logbook::scalars::format_utc(t0 - Duration::hours(8)) }),
        )
        .await;
    assert_eq!(ids(&data["traceMismatches"]), vec!["m08", "m09", "m-arch"]);
    assert_eq!(
        data["traceMismatches"]["summary"],
        json!({ "open": 2, "resolved": 1 })
    );

    // Up to 500 per page.
    const LEAN: &str =
        "query($first: Int) { traceMismatches(first: $first) { nodes { mismatchId } } }";
    let data = app.data(&key, LEAN, json!({ "first": 500 })).await;
    assert_eq!(ids(&data["traceMismatches"]).len(), 11);
    let body = app.gql(Some(&key), LEAN, json!({ "first": 501 })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");

    // The other tenant sees only its own.
    let data = app.data(&other_key, LIST, json!({ "first": 100 })).await;
    let list = &data["traceMismatches"];
    assert_eq!(ids(list), vec!["x2", "x1"]);
    assert_eq!(list["summary"], json!({ "open": 1, "resolved": 1 }));
    // x1 names acme's trace: its nested trace is not revealed.
    assert_eq!(list["nodes"][1]["trace"], Value::Null);
    assert_eq!(list["nodes"][0]["trace"], json!({ "traceId": "t-other" }));

    // node(id) and every field of one mismatch; another tenant's id is NOT_FOUND.
    let data = app.data(&key, LIST, json!({ "first": 1 })).await;
    let id = data["traceMismatches"]["nodes"][0]["id"].clone();
    let node = app
        .data(
            &key,
            r#"query($id: ID!) { node(id: $id) { ... on TraceMismatch {
                mismatchId traceId stepIndex reason expectedHash actualHash details notificationSent
                issueUrl status resolvedAt resolvedBy resolutionNote reportedBy createdAt } } }"#,
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        node["node"],
        json!({
            "mismatchId": "m00", "traceId": "t1", "stepIndex": 3, "reason": "output_mismatch",
            "expectedHash": "aaaa", "actualHash": "bbbb", "details": { "note": "diverged" },
            "notificationSent": true, "issueUrl": "https://github.com/o/r/issues/1",
            "status": "RESOLVED", "resolvedAt": logbook::scalars::format_utc(t0 + Duration::seconds(5)),
            "resolvedBy": "bob", "resolutionNote": "flaky provider", "reportedBy": "alice",
            "createdAt": logbook::scalars::format_utc(t0),
        })
    );
    let body = app
        .gql(
            Some(&other_key),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    app.stop().await;
}

crate::cases!(list_filters_summary_and_isolation);
