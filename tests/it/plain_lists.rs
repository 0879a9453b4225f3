//! Plain lists (`src/plain.rs`): a page whose selection is only stored fields is answered in
//! one pass instead of a future per field. The answer must be the resolvers' own, byte for
//! byte. A fragment spread always takes the resolvers' path, so each document is sent twice,
//! once with the fields inline (the plain path) and once through a fragment, and the two
//! response bodies are compared as bytes. Histogram buckets take the same path.

use logbook::auth::Role;
use logbook::plain::PlainFields;
use logbook::runs::graphql::LlmRun;
use logbook::seed::{Profile, SeedOptions};
use logbook::stats::HistogramBucket;
use logbook::traces::graphql::TraceStep;
use serde_json::{json, Value};

use crate::support::{Backend, TestApp};

/// Fields computed on read rather than stored: the plain path leaves them to their resolvers.
const COMPUTED: &[&str] = &["determinismHash"];

async fn body(app: &TestApp, key: &str, query: &str, variables: Value) -> String {
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

/// Every field of `type_name` that takes no arguments and is a scalar or an enum (possibly in
/// a non-null wrapper), as the schema introspects it.
async fn leaf_fields(app: &TestApp, key: &str, type_name: &str) -> Vec<String> {
    let data = app
        .data(
            key,
            "query($name: String!) { __type(name: $name) { fields { name args { name } \
             type { kind ofType { kind } } } } }",
            json!({ "name": type_name }),
        )
        .await;
    let fields = data["__type"]["fields"].as_array().expect("fields");
    fields
        .iter()
        .filter(|f| f["args"].as_array().is_some_and(|a| a.is_empty()))
        .filter(|f| {
            let ty = &f["type"];
            let kind = if ty["kind"] == "NON_NULL" {
                &ty["ofType"]["kind"]
            } else {
                &ty["kind"]
            };
            kind == "SCALAR" || kind == "ENUM"
        })
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `type_name`'s leaf fields (at least `least`), each of which must have a plain reader unless
/// it is computed: a console's list page of stored fields then takes the plain path.
async fn leaf_fields_with_readers<T: PlainFields>(
    app: &TestApp,
    key: &str,
    type_name: &str,
    least: usize,
) -> Vec<String> {
    let fields = leaf_fields(app, key, type_name).await;
    assert!(
        fields.len() >= least,
        "{type_name}'s leaf fields: {fields:?}"
    );
    for field in &fields {
        assert!(
            T::plain_field(field).is_some() || COMPUTED.contains(&field.as_str()),
            "{type_name}.{field} has no plain reader"
        );
    }
    fields
}

/// Sends `template` with `{FIELDS}` replaced by `fields` inline and through a fragment on
/// `type_name`; asserts the two bodies are the same bytes and returns the inline one.
async fn same_both_ways(
    app: &TestApp,
    key: &str,
    template: &str,
    type_name: &str,
    fields: &str,
    variables: Value,
) -> String {
    let inline = template.replace("{FIELDS}", fields);
    let through_fragment = format!(
        "{} fragment F on {type_name} {{ {fields} }}",
        template.replace("{FIELDS}", "...F")
    );
    let plain = body(app, key, &inline, variables.clone()).await;
    let resolved = body(app, key, &through_fragment, variables).await;
    assert_eq!(
        plain, resolved,
        "plain and resolved answers differ for {inline}"
    );
    plain
}

async fn seeded(backend: Backend) -> (TestApp, String) {
    let app = TestApp::spawn_for_counting(backend).await;
    let options = SeedOptions {
        profile: Profile::Demo,
        tenants: None,
        runs: Some(120),
        seed: 11,
        anchor: None,
        progress: false,
    };
    logbook::seed::run(app.db(), &options).await.expect("seed");
    let key = app.key("demo", Role::Viewer).await;
    (app, key)
}

async fn plain_run_pages_answer_as_the_resolvers_do(backend: Backend) {
    let (app, key) = seeded(backend).await;
    let fields = leaf_fields_with_readers::<LlmRun>(&app, &key, "LlmRun", 18).await;

    let page = "query($first: Int!) { llmRuns(first: $first) { nodes { {FIELDS} } } }";
    let all = format!("{} __typename", fields.join(" "));
    let answer = same_both_ways(&app, &key, page, "LlmRun", &all, json!({ "first": 100 })).await;
    let parsed: Value = serde_json::from_str(&answer).unwrap();
    let nodes = parsed["data"]["llmRuns"]["nodes"]
        .as_array()
        .expect("nodes");
    assert_eq!(nodes.len(), 100, "{answer:.400}");
    // Nulls and non-nulls both occur, so both branches of the optional readers are compared.
    let mixed =
        |f: &String| nodes.iter().any(|n| n[f].is_null()) && nodes.iter().any(|n| !n[f].is_null());
    assert!(
        fields.iter().any(mixed),
        "no optional field is both null and set"
    );

    // Each field alone, aliases, a key selected twice, and an empty page.
    for field in &fields {
        same_both_ways(&app, &key, page, "LlmRun", field, json!({ "first": 3 })).await;
    }
    let aliased = "a: model id b: createdAt a: model costCents kind: __typename id";
    same_both_ways(&app, &key, page, "LlmRun", aliased, json!({ "first": 5 })).await;

    // Edges: cursors and plain nodes, and a node selected twice (merged by the resolvers).
    let edges = "query($first: Int!) { llmRuns(first: $first) { \
                 edges { __typename cursor node { {FIELDS} } } } }";
    same_both_ways(&app, &key, edges, "LlmRun", &all, json!({ "first": 60 })).await;
    let twice = "query($first: Int!) { llmRuns(first: $first) { \
                 edges { node { id } c: cursor node { {FIELDS} } } } }";
    same_both_ways(
        &app,
        &key,
        twice,
        "LlmRun",
        "model id",
        json!({ "first": 7 }),
    )
    .await;

    let empty = "query { llmRuns(first: 5, filter: { runId: \"no-such-run\" }) { \
                 nodes { {FIELDS} } edges { node { {FIELDS} } } } }";
    let none = same_both_ways(&app, &key, empty, "LlmRun", &all, json!({})).await;
    assert!(none.contains(r#""nodes":[],"edges":[]"#), "{none}");
    app.stop().await;
}

async fn plain_step_pages_answer_as_the_resolvers_do(backend: Backend) {
    let (app, key) = seeded(backend).await;
    let fields = leaf_fields_with_readers::<TraceStep>(&app, &key, "TraceStep", 20).await;
    let stored: Vec<&str> = fields
        .iter()
        .map(String::as_str)
        .filter(|f| !COMPUTED.contains(f))
        .collect();

    // Steps of several traces (JSON params and outcomes, floats, enums, nulls).
    let page =
        "{ traces(first: 10) { nodes { traceId steps(first: 15) { nodes { {FIELDS} } } } } }";
    let answer = same_both_ways(&app, &key, page, "TraceStep", &stored.join(" "), json!({})).await;
    let parsed: Value = serde_json::from_str(&answer).unwrap();
    let steps: usize = parsed["data"]["traces"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("traces: {answer:.600}"))
        .iter()
        .map(|t| t["steps"]["nodes"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(steps > 30, "too few steps to compare: {steps}");

    // A computed field in the selection sends the whole list down the resolvers' path; the
    // answer is the same either way.
    let with_hash = format!("{} determinismHash", stored.join(" "));
    same_both_ways(&app, &key, page, "TraceStep", &with_hash, json!({})).await;
    app.stop().await;
}

async fn plain_histograms_answer_as_the_resolvers_do(backend: Backend) {
    let (app, key) = seeded(backend).await;
    let fields =
        leaf_fields_with_readers::<HistogramBucket>(&app, &key, "HistogramBucket", 4).await;
    let all = format!("{} __typename", fields.join(" "));
    // With costs (runs) and without (traces), a day by the hour in a zone with a DST change in
    // range, and an alias and a repeated key.
    let from = "2026-03-27T00:00:00Z";
    let to = "2026-03-31T00:00:00Z";
    for page in [
        "query($from: DateTime!, $to: DateTime!) { llmRuns(first: 1) { \
         histogram(interval: HOUR, from: $from, to: $to, timeZone: \"Europe/Berlin\") { {FIELDS} } } }",
        "query($from: DateTime!, $to: DateTime!) { traces(first: 1) { \
         histogram(interval: DAY, from: $from, to: $to) { {FIELDS} } } }",
    ] {
        let vars = json!({ "from": from, "to": to });
        let answer = same_both_ways(&app, &key, page, "HistogramBucket", &all, vars.clone()).await;
        assert!(answer.contains("\"start\""), "{answer:.400}");
        let aliased = "n: count start n: count";
        same_both_ways(&app, &key, page, "HistogramBucket", aliased, vars).await;
    }
    // Seeded runs land in the window the demo profile writes: some bucket counts are not zero.
    let recent = "query($from: DateTime!, $to: DateTime!) { llmRuns(first: 1) { \
                  histogram(interval: DAY, from: $from, to: $to) { {FIELDS} } } }";
    let now = chrono::Utc::now();
    let vars = json!({
        "from": logbook::scalars::format_utc(now - chrono::Duration::days(60)),
        "to": logbook::scalars::format_utc(now + chrono::Duration::days(1)),
    });
    let answer = same_both_ways(&app, &key, recent, "HistogramBucket", &all, vars).await;
    let parsed: Value = serde_json::from_str(&answer).unwrap();
    let counted: i64 = parsed["data"]["llmRuns"]["histogram"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["count"].as_str().unwrap().parse::<i64>().unwrap())
        .sum();
    assert!(
        counted > 0,
        "no seeded run in the last 60 days: {answer:.400}"
    );
    app.stop().await;
}

crate::cases!(
    plain_run_pages_answer_as_the_resolvers_do,
    plain_step_pages_answer_as_the_resolvers_do,
    plain_histograms_answer_as_the_resolvers_do
);
