//! The published contract: the served SDL equals `schema.graphql` at the repository root.

use crate::support::{Backend, TestApp};

async fn served_sdl_equals_schema_file(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let served = app.get_text("/schema.graphql").await;
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repo root");
    assert!(served == file, "the served SDL differs from schema.graphql: run `cargo run -- print-schema > schema.graphql`");
    assert_eq!(logbook::graphql::sdl(), file);
    app.stop().await;
}

/// Every GraphiQL example is a valid operation that runs without errors other than NOT_FOUND
/// (examples name ids that may not exist).
async fn graphiql_examples_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", logbook::auth::Role::Admin).await;
    crate::support::insert_runs(
        app.db(),
        &crate::support::make_runs("acme", "r", 3, crate::support::fixed_time()),
    )
    .await;
    for (name, query) in logbook::graphiql::EXAMPLES {
        let body = app.gql(Some(&key), query, serde_json::json!({})).await;
        for error in body["errors"].as_array().into_iter().flatten() {
            assert_eq!(error["extensions"]["code"], "NOT_FOUND", "{name}: {body:#}");
        }
        let errors = body["errors"].as_array().map_or(0, Vec::len);
        assert!(body["data"].is_object() || errors > 0, "{name}: {body:#}");
    }
    let page = app.get_text("/graphiql").await;
    assert!(page.contains("RunsNewest") && !page.contains("__LOGBOOK_TABS__"));
    app.stop().await;
}

crate::cases!(served_sdl_equals_schema_file, graphiql_examples_run);
