//! Query limits: depth, complexity (list fields cost `first` × child cost), root fields and
//! aliases, each failing with its code before anything runs.

use logbook::auth::Role;
use serde_json::json;

use crate::support::{error_code, fixed_time, insert_runs, make_runs, Backend, TestApp};

async fn complexity_and_fan_out_limits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;

    // 100 runs × 14 fields fits; four such lists do not.
    let fields = "id recordId runId traceId provider model inputTokens outputTokens costCents executionStatus startedAt completedAt source createdAt";
    let one = format!("{{ a: llmRuns(first: 100) {{ nodes {{ {fields} }} }} }}");
    let body = app.gql(Some(&key), &one, json!({})).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let four: String = (0..4)
        .map(|i| format!("r{i}: llmRuns(first: 100) {{ nodes {{ {fields} }} }} "))
        .collect();
    let body = app
        .gql(Some(&key), &format!("{{ {four} }}"), json!({}))
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body:#}");

    // 21 aliases of one root field.
    let many: String = (0..21)
        .map(|i| format!("v{i}: viewer {{ role }} "))
        .collect();
    let body = app
        .gql(Some(&key), &format!("{{ {many} }}"), json!({}))
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body:#}");
    // 20 are fine.
    let twenty: String = (0..20)
        .map(|i| format!("v{i}: viewer {{ role }} "))
        .collect();
    let body = app
        .gql(Some(&key), &format!("{{ {twenty} }}"), json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    // Hidden behind a fragment, still counted.
    let body = app
        .gql(
            Some(&key),
            &format!("query {{ ...F }} fragment F on Query {{ {many} }}"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body:#}");
    app.stop().await;
}

/// Root fields come back in selection order even though the root merges several domains.
async fn root_fields_keep_selection_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let query = "{ z: llmRuns(first: 1) { totalCount } cost { featureTags { totalCount } } a: viewer { role } traces { totalCount } }";
    let text = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&key)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("text");
    let at = |k: &str| {
        text.find(&format!("\"{k}\":"))
            .unwrap_or_else(|| panic!("{k} in {text}"))
    };
    assert!(
        at("z") < at("cost") && at("cost") < at("a") && at("a") < at("traces"),
        "{text}"
    );
    app.stop().await;
}

/// Configured page sizes (`--default-page-size 3 --max-page-size 7`): a page without `first`
/// has 3 rows, `first` goes up to 7, and the cost of a list without `first` is priced at 3, so
/// a complexity limit of 50 admits what the built-in 50-row default would price at 101.
async fn page_sizes_are_configurable(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.limits.page_sizes = logbook::limits::PageSizes::new(3, 7).unwrap();
        c.limits.max_complexity = 50;
    })
    .await;
    let key = app.key("acme", Role::Viewer).await;
    insert_runs(app.db(), &make_runs("acme", "ps", 12, fixed_time())).await;

    let data = app
        .data(&key, "{ llmRuns { nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        data["llmRuns"]["nodes"].as_array().map(Vec::len),
        Some(3),
        "{data:#}"
    );
    let data = app
        .data(&key, "{ llmRuns(first: 7) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(data["llmRuns"]["nodes"].as_array().map(Vec::len), Some(7));
    let body = app
        .gql(
            Some(&key),
            "{ llmRuns(first: 8) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert!(
        body.to_string().contains("between 1 and 7"),
        "names the configured maximum: {body:#}"
    );
    // `llmRuns { nodes { id } }` is priced at 3 rows: 3 × (nodes + id) + 1 = 7 points (the
    // first query above; at the built-in 50 rows it would cost 101, over the limit of 50).
    // Three lists of 7 (15 points each) and one of the default: 52 points.
    let body = app
        .gql(
            Some(&key),
            "{ a: llmRuns(first: 7) { nodes { id } } b: llmRuns(first: 7) { nodes { id } } \
             c: llmRuns(first: 7) { nodes { id } } d: llmRuns { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "QUERY_TOO_COMPLEX", "{body:#}");
    assert!(
        body.to_string()
            .contains("costs 52 complexity points; the limit is 50"),
        "{body:#}"
    );
    app.stop().await;
}

/// The server's PostgreSQL sessions plan each statement for its values (a generic plan of a
/// prepared statement ignores the bound tenant and times) and bound every statement's time.
async fn sessions_plan_for_their_values_and_time_out(backend: Backend) {
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn(backend).await;
    let row = app
        .db()
        .query_one_raw(Statement::from_string(
            app.db().get_database_backend(),
            "SELECT current_setting('plan_cache_mode') AS mode, \
             current_setting('statement_timeout') AS timeout"
                .to_owned(),
        ))
        .await
        .expect("settings")
        .expect("a row");
    let mode: String = row.try_get("", "mode").unwrap();
    let timeout: String = row.try_get("", "timeout").unwrap();
    assert_eq!(
        (mode.as_str(), timeout.as_str()),
        ("force_custom_plan", "10s")
    );
    app.stop().await;
}

crate::cases!(
    complexity_and_fan_out_limits,
    root_fields_keep_selection_order,
    page_sizes_are_configurable,
    [postgres] sessions_plan_for_their_values_and_time_out
);
