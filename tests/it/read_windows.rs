//! Tenant tiers' read windows (docs/api.md, "Read windows"): an OBSERVE tenant's lists answer
//! the last 7 days only, a GOVERN tenant's the last 365; every windowed connection reports the
//! window and whether it cut the request short; a range that ends before the window is refused;
//! lookups by id outside the window are NOT_FOUND. (An unknown tier cannot be stored: the
//! column's CHECK refuses it; `read_window`'s unit tests cover reading one as the lowest.)

use chrono::{Duration, Utc};
use logbook::auth::Role;
use logbook::scalars::format_utc;
use logbook::tenants::store as tenant_store;
use serde_json::{json, Value};

use crate::support::{error_code, insert_runs, make_runs, Backend, TestApp};
use crate::traces_reads::{insert_steps, insert_traces, steps, trace};

const LISTS: &str = r#"
query Lists($runs: LlmRunFilter, $traces: TraceFilter) {
  llmRuns(filter: $runs, first: 50) {
    totalCount
    readWindow { tier from clamped }
    nodes { runId }
  }
  traces(filter: $traces, first: 50) {
    totalCount
    readWindow { tier from clamped }
    nodes { traceId }
  }
  activity(first: 50) { readWindow { tier clamped } }
}"#;

/// A tenant of `tier` with runs and traces `days` ago (one each), and a viewer key.
async fn tenant(app: &TestApp, id: &str, tier: &str, days: &[i64]) -> String {
    tenant_store::ensure_tenant(app.db(), id, id, tier)
        .await
        .expect("tenant");
    let now = Utc::now();
    for d in days {
        let at = now - Duration::days(*d);
        let mut runs = make_runs(id, &format!("{id}-d{d}"), 1, at);
        runs[0].trace_id = None;
        insert_runs(app.db(), &runs).await;
        let trace_id = format!("{id}-t{d}");
        insert_traces(
            app.db(),
            vec![trace(id, &trace_id, &format!("{id}-d{d}-run-00000"), at)],
        )
        .await;
        insert_steps(app.db(), steps(&trace_id, 2, at)).await;
    }
    app.key(id, Role::Viewer).await
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = list["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n[field].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

async fn lists_answer_the_tiers_window_and_say_so(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let observe = tenant(&app, "obs", "OBSERVE", &[1, 10]).await;
    let govern = tenant(&app, "gov", "GOVERN", &[1, 100, 300, 400]).await;

    // OBSERVE: the last 7 days only, and the answer says it was cut.
    let seen = app.data(&observe, LISTS, json!({})).await;
    assert_eq!(ids(&seen["llmRuns"], "runId"), ["obs-d1-run-00000"]);
    assert_eq!(seen["llmRuns"]["totalCount"], json!(1));
    assert_eq!(ids(&seen["traces"], "traceId"), ["obs-t1"]);
    assert_eq!(seen["traces"]["totalCount"], json!(1));
    for list in ["llmRuns", "traces"] {
        assert_eq!(seen[list]["readWindow"]["tier"], json!("OBSERVE"));
        assert_eq!(seen[list]["readWindow"]["clamped"], json!(true));
        let from = chrono::DateTime::parse_from_rfc3339(
            seen[list]["readWindow"]["from"].as_str().expect("from"),
        )
        .expect("a time");
        let expected = Utc::now() - Duration::days(7);
        assert!(
            (from.with_timezone(&Utc) - expected).num_seconds().abs() < 60,
            "{from}"
        );
    }
    assert_eq!(
        seen["activity"]["readWindow"],
        json!({ "tier": "OBSERVE", "clamped": true })
    );

    // GOVERN: a year.
    let seen = app.data(&govern, LISTS, json!({})).await;
    assert_eq!(
        ids(&seen["llmRuns"], "runId"),
        [
            "gov-d1-run-00000",
            "gov-d100-run-00000",
            "gov-d300-run-00000"
        ]
    );
    assert_eq!(
        ids(&seen["traces"], "traceId"),
        ["gov-t1", "gov-t100", "gov-t300"]
    );
    assert_eq!(seen["traces"]["readWindow"]["tier"], json!("GOVERN"));

    // A lower bound inside the window: nothing cut, nothing reported.
    let inside = format_utc(Utc::now() - Duration::days(2));
    let seen = app
        .data(
            &observe,
            LISTS,
            json!({ "runs": { "createdAfter": inside }, "traces": { "createdAfter": inside } }),
        )
        .await;
    assert_eq!(seen["llmRuns"]["readWindow"]["clamped"], json!(false));
    assert_eq!(seen["traces"]["readWindow"]["clamped"], json!(false));
    assert_eq!(ids(&seen["traces"], "traceId"), ["obs-t1"]);

    // A lower bound before it: clamped, and said so.
    let before = format_utc(Utc::now() - Duration::days(20));
    let seen = app
        .data(
            &observe,
            LISTS,
            json!({ "runs": { "createdAfter": before }, "traces": { "createdAfter": before } }),
        )
        .await;
    assert_eq!(seen["llmRuns"]["readWindow"]["clamped"], json!(true));
    assert_eq!(seen["llmRuns"]["totalCount"], json!(1));

    // The views over the same filter read the same rows.
    let views = app
        .data(
            &observe,
            "{ llmRuns { facets(fields: [PROVIDER]) { values { count } otherCount } \
               aggregate { count } } }",
            json!({}),
        )
        .await;
    let runs = &views["llmRuns"];
    assert_eq!(runs["aggregate"]["count"], json!("1"), "{views:#}");
    let faceted: i64 = runs["facets"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            v["count"]
                .as_str()
                .and_then(|c| c.parse::<i64>().ok())
                .expect("count")
        })
        .sum();
    assert_eq!(faceted, 1, "{views:#}");
    let facets = app
        .data(
            &observe,
            "{ traceSteps(first: 10) { totalCount readWindow { clamped } } }",
            json!({}),
        )
        .await;
    assert_eq!(facets["traceSteps"]["totalCount"], json!(2));
    assert_eq!(facets["traceSteps"]["readWindow"]["clamped"], json!(true));
    app.stop().await;
}

async fn a_range_before_the_window_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let observe = tenant(&app, "obs", "OBSERVE", &[1, 10]).await;
    let govern = tenant(&app, "gov", "GOVERN", &[1, 10]).await;
    let ended = format_utc(Utc::now() - Duration::days(9));
    for (doc, vars) in [
        (
            "query($f: LlmRunFilter) { llmRuns(filter: $f) { totalCount } }",
            json!({ "f": { "createdBefore": ended } }),
        ),
        (
            "query($f: TraceFilter) { traces(filter: $f) { totalCount } }",
            json!({ "f": { "createdBefore": ended } }),
        ),
        (
            "query($at: DateTime) { llmRuns(asOf: $at) { totalCount } }",
            json!({ "at": ended }),
        ),
    ] {
        let body = app.gql(Some(&observe), doc, vars.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{doc}: {body:#}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("read window")),
            "{body:#}"
        );
        // Inside GOVERN's window, the same range is an ordinary question.
        let body = app.gql(Some(&govern), doc, vars).await;
        assert!(body.get("errors").is_none(), "{doc}: {body:#}");
    }
    app.stop().await;
}

async fn lookups_by_id_outside_the_window_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let observe = tenant(&app, "obs", "OBSERVE", &[1, 10]).await;
    let doc = "query($r: String!, $t: String!) { llmRun(runId: $r) { runId } trace(traceId: $t) { traceId } }";
    let inside = app
        .data(
            &observe,
            doc,
            json!({ "r": "obs-d1-run-00000", "t": "obs-t1" }),
        )
        .await;
    assert_eq!(inside["llmRun"]["runId"], json!("obs-d1-run-00000"));
    assert_eq!(inside["trace"]["traceId"], json!("obs-t1"));
    for (doc, vars) in [
        (
            "query($r: String!) { llmRun(runId: $r) { runId } }",
            json!({ "r": "obs-d10-run-00000" }),
        ),
        (
            "query($t: String!) { trace(traceId: $t) { traceId } }",
            json!({ "t": "obs-t10" }),
        ),
    ] {
        let body = app.gql(Some(&observe), doc, vars).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{doc}: {body:#}");
    }
    app.stop().await;
}

/// An export of a list reads no further back than the list: an OBSERVE tenant's export of its
/// runs holds only the last 7 days, and a range before the window is refused at `createExport`.
async fn exports_answer_the_window_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant(&app, "obs", "OBSERVE", &[1, 2, 10, 40]).await;
    let operator = app.key("obs", Role::Operator).await;
    let id = crate::exports_writes::create(
        &app,
        &operator,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    let done = crate::exports_writes::finished(&app, &operator, &id).await;
    assert_eq!(done["status"], json!("COMPLETED"), "{done:#}");
    assert_eq!(
        done["rowCount"],
        json!("2"),
        "only the runs of the last 7 days"
    );
    let body = crate::exports_writes::download(&app, &operator, &id).await;
    let text = String::from_utf8(body).expect("NDJSON");
    assert!(
        text.contains("obs-d1-") && text.contains("obs-d2-"),
        "{text}"
    );
    assert!(
        !text.contains("obs-d10-") && !text.contains("obs-d40-"),
        "{text}"
    );

    let before = format_utc(Utc::now() - Duration::days(20));
    let refused = app
        .gql(
            Some(&operator),
            "mutation($i: CreateExportInput!) { createExport(input: $i) { exportId } }",
            json!({ "i": { "scope": "LLM_RUNS", "format": "NDJSON",
                           "filter": { "llmRuns": { "createdBefore": before } } } }),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused:#}");
    assert_eq!(
        refused["errors"][0]["extensions"]["field"],
        json!("input.filter.createdBefore")
    );
    app.stop().await;
}

crate::cases!(
    exports_answer_the_window_too,
    lists_answer_the_tiers_window_and_say_so,
    a_range_before_the_window_is_refused,
    lookups_by_id_outside_the_window_are_not_found,
);
